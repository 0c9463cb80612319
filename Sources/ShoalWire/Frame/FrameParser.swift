// Byte-level incremental state machine for frame headers: input may stop after any byte, so the header
// is decoded field by field into the parser's own 19 bytes instead of being spilled and re-read.
// Message-level rules (fragmentation, size, UTF-8) live in MessageReader on top of it.

/// Decodes one frame header at a time and tracks how much of its payload is still due.
struct FrameParser {
    /// Where the parser is within the current frame.
    enum Phase: UInt8 {
        case byte0, byte1, extendedLength, maskKey, payload
    }

    /// What a header byte completed, so the reader can apply its rules as early as possible.
    enum Progress {
        /// Nothing the reader needs to look at yet.
        case partial
        /// Byte 0 is in: opcode and FIN are known (and already checked at frame level).
        case opcodeKnown
        /// The payload length is known but the mask key is still due.
        case lengthKnown
        /// The header is complete; the payload follows (it may be empty).
        case complete
    }

    // Every connection's reader holds a parser for its whole life, so the frame's length is not kept
    // beside what remains of it (8 bytes of every idle connection): while the header is read,
    // `frameRemaining` holds the announced length; once the payload starts, the two one-byte fields
    // below say what the length was needed for.

    /// While the header is read: the payload length announced so far (< 2^63, checked). Once the
    /// payload is due: its bytes not yet consumed.
    private(set) var frameRemaining = 0
    private(set) var maskKey: UInt32 = 0
    private(set) var phase = Phase.byte0
    /// Bytes still due in the extendedLength or maskKey phase.
    private var phaseBytesLeft: UInt8 = 0
    private(set) var header = FrameHeader()
    /// Reserved bits a negotiated extension gives meaning to (RSV1 for permessage-deflate); any other
    /// reserved bit fails the frame. Which frames may carry them is the reader's rule.
    var allowedReservedBits: UInt8 = 0
    /// Key index for the next payload byte (payload bytes consumed so far, modulo 4): masking restarts
    /// at key byte 0 with every frame.
    private(set) var keyOffset: UInt8 = 0
    /// Whether no payload byte of the current frame was consumed yet.
    private(set) var atPayloadStart = false

    /// The current frame's payload length: valid once the length is known (`.lengthKnown` or
    /// `.complete`) and until the first payload byte is consumed.
    var frameLength: Int { frameRemaining }

    /// Consumes one header byte. Throws 1002 for anything wrong at frame level: reserved bits not allowed, unknown
    /// opcodes, fragmented or oversized control frames, a mask bit that `masking` refuses,
    /// and 64-bit lengths with the top bit set.
    mutating func consumeHeaderByte(_ byte: UInt8, masking: FrameMasking) throws(ProtocolViolation) -> Progress {
        switch phase {
        case .byte0:
            try acceptByte0(byte)
            return .opcodeKnown

        case .byte1:
            phaseBytesLeft = try acceptByte1(byte, masking: masking)
            if phaseBytesLeft > 0 {
                frameRemaining = 0
                phase = .extendedLength
                return .partial
            }
            return lengthDone()

        case .extendedLength:
            if phaseBytesLeft == 8 && byte & 0x80 != 0 {
                throw .protocolError("64-bit payload length with the most significant bit set")
            }
            // The top bit is known clear, so eight shifts stay below 2^63 and never wrap.
            frameRemaining = frameRemaining << 8 | Int(byte)
            phaseBytesLeft -= 1
            return phaseBytesLeft == 0 ? lengthDone() : .partial

        case .maskKey:
            maskKey = maskKey << 8 | UInt32(byte)
            phaseBytesLeft -= 1
            if phaseBytesLeft == 0 {
                return startPayload()
            }
            return .partial

        case .payload:
            preconditionFailure("header byte consumed while payload is due")
        }
    }

    /// Byte 0 and its frame-level checks; the next byte is byte 1.
    @inline(__always)
    private mutating func acceptByte0(_ byte: UInt8) throws(ProtocolViolation) {
        header.byte0 = byte
        guard header.rsv & ~allowedReservedBits == 0 else {
            throw .protocolError("reserved bits set without a negotiated extension")
        }
        guard let opcode = header.opcode else {
            throw .protocolError("unknown opcode \(byte & FrameHeader.opcodeBits)")
        }
        if opcode.isControl && !header.fin {
            throw .protocolError("fragmented control frame")
        }
        phase = .byte1
    }

    /// Byte 1 and its checks; sets the 7-bit length and returns how many extended length bytes follow.
    @inline(__always)
    private mutating func acceptByte1(_ byte: UInt8, masking: FrameMasking) throws(ProtocolViolation) -> UInt8 {
        header.byte1 = byte
        if let violation = masking.violation(masked: header.masked) { throw violation }
        if header.opcode!.isControl && header.length7 > UInt8(Limits.maxControlPayload) {
            throw .protocolError("control frame payload over 125 bytes")
        }
        frameRemaining = Int(header.length7)
        return header.extendedLengthBytes
    }

    // MARK: Whole-header fast path
    //
    // When a frame starts with all of its header bytes in the input (the usual case: up to 14 bytes),
    // the reader decodes it in three steps instead of one call per byte. The checks are the same, in
    // the same order, as the byte-wise path above, so the first violation reported is the same.

    /// The largest frame header: 2 bytes, 8 of extended length, 4 of mask key.
    static let maxHeaderSize = 14

    /// Step 1: byte 0 at a frame start (phase must be `.byte0`).
    @inline(__always)
    mutating func fastByte0(_ byte: UInt8) throws(ProtocolViolation) {
        try acceptByte0(byte)
    }

    /// Step 2: byte 1 and the extended length at `bytes` (which holds at least 9 readable bytes).
    /// Returns the number of bytes consumed (1, 3 or 9); the length is known afterwards.
    @inline(__always)
    mutating func fastLength(_ bytes: UnsafeRawPointer, masking: FrameMasking) throws(ProtocolViolation) -> Int {
        switch try acceptByte1(bytes.load(as: UInt8.self), masking: masking) {
        case 0:
            return 1
        case 2:
            frameRemaining = Int(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 1, as: UInt16.self)))
            return 3
        default:
            let length = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
            if length & (1 << 63) != 0 {
                throw .protocolError("64-bit payload length with the most significant bit set")
            }
            frameRemaining = Int(length)
            return 9
        }
    }

    /// Step 3: the mask key (if the frame is masked) at `bytes`; the payload is due afterwards.
    /// Returns the number of bytes consumed (0 or 4).
    @inline(__always)
    mutating func fastMaskKey(_ bytes: UnsafeRawPointer) -> Int {
        if header.masked {
            maskKey = UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))
            _ = startPayload()
            return 4
        }
        maskKey = 0
        _ = startPayload()
        return 0
    }

    /// `count` payload bytes of the current frame were consumed (at most `frameRemaining`).
    mutating func consumePayload(_ count: Int) {
        frameRemaining -= count
        keyOffset = UInt8(truncatingIfNeeded: Int(keyOffset) &+ count) & 3
        if count > 0 { atPayloadStart = false }
    }

    /// Marks the current frame's payload as fully consumed; the next byte starts a new header.
    mutating func finishFrame() {
        phase = .byte0
        frameRemaining = 0
    }

    private mutating func lengthDone() -> Progress {
        if header.masked {
            maskKey = 0
            phaseBytesLeft = 4
            phase = .maskKey
            return .lengthKnown
        }
        maskKey = 0
        return startPayload()
    }

    private mutating func startPayload() -> Progress {
        keyOffset = 0
        atPayloadStart = true
        phase = .payload
        return .complete
    }
}
