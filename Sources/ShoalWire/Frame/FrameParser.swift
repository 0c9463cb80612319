// Byte-level incremental state machine for frame headers: input may stop after any byte, so the header
// is decoded field by field into the parser's own 24 bytes instead of being spilled and re-read.
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

    /// Payload length of the current frame (< 2^63, checked).
    private(set) var frameLength = 0
    /// Payload bytes of the current frame not yet consumed.
    var frameRemaining = 0
    private(set) var maskKey: UInt32 = 0
    private(set) var phase = Phase.byte0
    /// Bytes still due in the extendedLength or maskKey phase.
    private var phaseBytesLeft: UInt8 = 0
    private(set) var header = FrameHeader()

    /// Key index for the next payload byte: masking restarts at key byte 0 with every frame.
    var keyOffset: Int { (frameLength - frameRemaining) & 3 }
    /// Whether no payload byte of the current frame was consumed yet.
    var atPayloadStart: Bool { frameRemaining == frameLength }

    /// Consumes one header byte. Throws 1002 for anything wrong at frame level: reserved bits, unknown
    /// opcodes, fragmented or oversized control frames, masking that does not match `requireMasking`,
    /// and 64-bit lengths with the top bit set.
    mutating func consumeHeaderByte(_ byte: UInt8, requireMasking: Bool) throws(ProtocolViolation) -> Progress {
        switch phase {
        case .byte0:
            header.byte0 = byte
            guard header.rsv == 0 else {
                throw .protocolError("reserved bits set without a negotiated extension")
            }
            guard let opcode = header.opcode else {
                throw .protocolError("unknown opcode \(byte & FrameHeader.opcodeBits)")
            }
            if opcode.isControl && !header.fin {
                throw .protocolError("fragmented control frame")
            }
            phase = .byte1
            return .opcodeKnown

        case .byte1:
            header.byte1 = byte
            if requireMasking && !header.masked {
                throw .protocolError("unmasked client frame")
            }
            if header.opcode!.isControl && header.length7 > UInt8(Limits.maxControlPayload) {
                throw .protocolError("control frame payload over 125 bytes")
            }
            frameLength = Int(header.length7)
            phaseBytesLeft = header.extendedLengthBytes
            if phaseBytesLeft > 0 {
                frameLength = 0
                phase = .extendedLength
                return .partial
            }
            return lengthDone()

        case .extendedLength:
            if phaseBytesLeft == 8 && byte & 0x80 != 0 {
                throw .protocolError("64-bit payload length with the most significant bit set")
            }
            // The top bit is known clear, so eight shifts stay below 2^63 and never wrap.
            frameLength = frameLength << 8 | Int(byte)
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
        frameRemaining = frameLength
        phase = .payload
        return .complete
    }
}
