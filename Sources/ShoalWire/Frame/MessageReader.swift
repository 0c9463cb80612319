// Turns client bytes into complete messages and control events: fragmentation, interleaved control
// frames, UTF-8 and size limits on top of FrameParser, and permessage-deflate messages when compression
// was negotiated. It lives in every connection, so it keeps its stored state small (the rules it enforces,
// the same for every connection of a server, are handed to each call) and allocates only for messages
// that do not arrive in one piece.

/// Incremental reader of client frames: input may be split at any byte.
///
/// A struct holding an optional reference to its reassembly buffer: the buffer is allocated the first
/// time a message spans frames or reads, reused afterwards, and freed when the reader is dropped or
/// after a message that made it grow beyond 4 KiB (`ReassemblyBuffer.retainLimit`). Copies share that buffer, so keep exactly one
/// reader per connection and do not copy it while in use.
///
/// With an inflater (permessage-deflate negotiated), a message whose first frame has RSV1 set is
/// compressed: its compressed bytes are reassembled like any other message (the size limit applies to
/// them too), inflated when the message completes, under the same size limit, and for text validated
/// as UTF-8 then. Uncompressed messages take the same path as without an inflater.
public struct MessageReader {
    /// What a reader enforces: the same for every reader of a server, so it is passed to each `next`
    /// call rather than stored in every connection's reader.
    public struct Configuration: Sendable {
        /// Bound on a message's bytes, compressed and inflated alike (1009 beyond it).
        public let maxMessageSize: Int
        /// Data frames allowed per message, empty ones included (1009 beyond it). 32 bits: four
        /// billion fragments is no limit anyone needs.
        public let maxFragments: UInt32
        /// The mask bit every frame must have (1002 otherwise).
        public let masking: FrameMasking
        /// Whether unmasked frames are refused (1002): a server's reader.
        public var requireMasking: Bool { masking == .required }

        /// `masking` is `.required` for a server (clients must mask, RFC 6455 §5.1) and `.forbidden`
        /// for a client (a server must not). `maxFragments` is 1 or more.
        public init(
            maxMessageSize: Int = Limits.defaultMaxMessageSize, masking: FrameMasking,
            maxFragments: Int = Limits.defaultMaxFragments
        ) {
            precondition(maxFragments >= 1 && maxFragments <= UInt32.max, "maxFragments must be 1...2^32-1")
            self.maxMessageSize = maxMessageSize
            self.masking = masking
            self.maxFragments = UInt32(maxFragments)
        }

        /// `requireMasking` true is a server's reader; false accepts masked and unmasked frames
        /// (`.either`: tools that read frames of either side).
        public init(
            maxMessageSize: Int = Limits.defaultMaxMessageSize, requireMasking: Bool = true,
            maxFragments: Int = Limits.defaultMaxFragments
        ) {
            self.init(maxMessageSize: maxMessageSize, masking: requireMasking ? .required : .either, maxFragments: maxFragments)
        }
    }

    /// Data bytes of the message in progress (plus, while a control frame is split across reads, that
    /// frame's payload after them). Nil until a message needs reassembly.
    private var buffer: ReassemblyBuffer?
    /// The connection's compression codecs, whose inflater inflates compressed messages; nil when
    /// compression was not negotiated (RSV1 is then a 1002).
    public let codecs: DeflateCodecs?
    /// Announced data bytes of the message in progress, current frame included. At a frame boundary it
    /// equals the data bytes held in `buffer`, because only whole single-frame messages skip the buffer.
    private var messageSize = 0
    private var parser = FrameParser()
    /// Carries UTF-8 state from one fragment or read to the next for text messages.
    private var utf8 = UTF8Validator()
    private var message = MessageState.none
    /// Whether the message in progress had RSV1 on its first frame.
    private var compressed = false
    /// Data frames of the message in progress so far (32 bits, as `Configuration.maxFragments`).
    private var fragments: UInt32 = 0

    private enum MessageState: UInt8 {
        case none, text, binary
        /// A close frame was delivered; everything after it is ignored.
        case closed
    }

    /// Creates a reader. `inflater` is given when permessage-deflate was negotiated; it may be shared by
    /// the readers of several connections only if it forgets between messages
    /// (client_no_context_takeover), see MessageInflater.
    public init(inflater: MessageInflater? = nil) {
        self.init(codecs: inflater.map { DeflateCodecs(inflater: $0, deflater: nil) })
    }

    /// Creates a reader that inflates with `codecs.inflater` (the same sharing rule applies) and keeps
    /// the pair for the connection's sends: a server connection's one reference to its compression.
    public init(codecs: DeflateCodecs?) {
        self.codecs = codecs
        if codecs != nil {
            parser.allowedReservedBits = FrameHeader.rsv1Bit
        }
    }

    /// Consumes bytes of `input` from `offset` (advancing it), unmasking in place, under `configuration`
    /// (give every call of one reader the same). Returns the next complete event, or nil once every byte
    /// of `input` was consumed and more input is needed. After it throws, the reader must not be used again.
    ///
    /// A single-frame message (or control frame) whose payload lies wholly in `input` is returned as a
    /// view into `input`; anything else as a view into the reader's buffer, and an inflated message as a
    /// view into the inflater's. Call again until it returns nil: the next call is also what recycles the
    /// buffer behind the previous event.
    public mutating func next(
        _ input: UnsafeMutableRawBufferPointer,
        _ offset: inout Int,
        _ configuration: Configuration
    ) throws(ProtocolViolation) -> InboundEvent? {
        if message == .closed {
            offset = input.count
            return nil
        }
        if parser.phase == .byte0 {
            recycleBuffer()
        }
        while true {
            if parser.phase == .byte0 && input.count - offset >= FrameParser.maxHeaderSize {
                try consumeWholeHeader(input, &offset, configuration)
            } else if parser.phase != .payload {
                guard offset < input.count else { return nil }
                let byte = input[offset]
                offset += 1
                switch try parser.consumeHeaderByte(byte, masking: configuration.masking) {
                case .partial:
                    continue
                case .opcodeKnown:
                    try checkFragmentation(configuration)
                    continue
                case .lengthKnown:
                    try checkLength(configuration)
                    continue
                case .complete:
                    try checkLength(configuration)
                    startFrame()
                }
            }
            if let event = try consumePayload(input, &offset, configuration) {
                return event
            }
            if parser.phase == .payload {
                return nil  // input exhausted mid-payload
            }
        }
    }

    /// Decodes a header that lies wholly in `input` (at least 14 bytes from `offset`) with the same
    /// checks, in the same order, as the byte-wise path: byte 0, fragmentation, byte 1 and length,
    /// length rules, mask key.
    @inline(__always)
    private mutating func consumeWholeHeader(
        _ input: UnsafeMutableRawBufferPointer,
        _ offset: inout Int,
        _ configuration: Configuration
    ) throws(ProtocolViolation) {
        let start = UnsafeRawPointer(input.baseAddress!) + offset
        try parser.fastByte0(start.load(as: UInt8.self))
        try checkFragmentation(configuration)
        let lengthBytes = try parser.fastLength(start + 1, masking: configuration.masking)
        try checkLength(configuration)
        let keyBytes = parser.fastMaskKey(start + 1 + lengthBytes)
        offset += 1 + lengthBytes + keyBytes
        startFrame()
    }

    // MARK: - Payload

    /// Consumes payload bytes of the current frame. Returns an event when the frame completes one.
    private mutating func consumePayload(
        _ input: UnsafeMutableRawBufferPointer,
        _ offset: inout Int,
        _ configuration: Configuration
    ) throws(ProtocolViolation) -> InboundEvent? {
        let header = parser.header
        let opcode = header.opcode!  // FrameParser rejects unknown opcodes
        let available = input.count - offset
        let remaining = parser.frameRemaining

        // Fast path: the whole payload of a control frame or single-frame message is here; hand out a
        // view into `input` and copy nothing.
        if parser.atPayloadStart && available >= remaining
            && (opcode.isControl || (header.fin && opcode != .continuation))
        {
            let payload = UnsafeMutableRawBufferPointer(rebasing: input[offset..<offset + remaining])
            offset += remaining
            if header.masked {
                Masking.apply(maskKey: parser.maskKey, keyOffset: 0, to: payload)
            }
            parser.finishFrame()
            if opcode == .text && !compressed {
                try validateText(UnsafeRawBufferPointer(payload))
            }
            return try complete(opcode, UnsafeRawBufferPointer(payload), configuration)
        }

        let chunkLength = min(available, parser.frameRemaining)
        let chunk = UnsafeMutableRawBufferPointer(rebasing: input[offset..<offset + chunkLength])
        if header.masked {
            Masking.apply(maskKey: parser.maskKey, keyOffset: Int(parser.keyOffset), to: chunk)
        }
        offset += chunkLength
        parser.consumePayload(chunkLength)
        if !opcode.isControl && message == .text && !compressed {
            // Validate as bytes arrive so a bad byte fails the connection before the rest is read.
            try validateText(UnsafeRawBufferPointer(chunk))
        }
        if chunkLength > 0 {
            // A control frame's first payload bytes make the buffer if there is none, so `remaining`
            // is then its whole length.
            storage(reserving: opcode.isControl ? remaining : min(messageSize, ReassemblyBuffer.retainLimit))
                .append(UnsafeRawBufferPointer(chunk))
        }
        guard parser.frameRemaining == 0 else { return nil }
        parser.finishFrame()
        if !opcode.isControl && !header.fin {
            return nil
        }
        // Control payloads sit after the data bytes of a message they interrupted.
        let start = opcode.isControl ? messageSize : 0
        let view = buffer.map { $0.view(start..<$0.count) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
        return try complete(opcode, view, configuration)
    }

    /// Builds the event for a frame whose payload is complete; nil never happens for a FIN frame.
    private mutating func complete(
        _ opcode: Opcode,
        _ payload: UnsafeRawBufferPointer,
        _ configuration: Configuration
    ) throws(ProtocolViolation) -> InboundEvent {
        switch opcode {
        case .ping:
            return .ping(payload)
        case .pong:
            return .pong(payload)
        case .close:
            return try closeEvent(payload)
        case .text, .binary, .continuation:
            let isText = message == .text
            let payload = compressed ? try inflate(payload, maxMessageSize: configuration.maxMessageSize) : payload
            if isText && !utf8.isAtBoundary {
                throw ProtocolViolation(
                    closeCode: CloseCode.invalidPayload, reason: "text message ends inside a UTF-8 sequence")
            }
            message = .none
            messageSize = 0
            compressed = false
            utf8.reset()
            return isText ? .text(payload) : .binary(payload)
        }
    }

    /// Inflates a complete compressed message (a view into `input` or the buffer) and validates text.
    private mutating func inflate(
        _ payload: UnsafeRawBufferPointer, maxMessageSize: Int
    ) throws(ProtocolViolation) -> UnsafeRawBufferPointer {
        let inflated = try codecs!.inflater.inflate(payload, maxMessageSize: maxMessageSize)  // compressed implies one
        if message == .text {
            try validateText(inflated)
        }
        return inflated
    }

    private mutating func closeEvent(_ payload: UnsafeRawBufferPointer) throws(ProtocolViolation) -> InboundEvent {
        guard payload.count >= 2 else {
            // A 1-byte payload was rejected from the header already.
            message = .closed
            return .close(code: nil, reason: payload)
        }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        guard CloseCode.isValidOnWire(code) else {
            throw .protocolError("close code \(code) may not be sent")
        }
        let reason = UnsafeRawBufferPointer(rebasing: payload[2...])
        var validator = UTF8Validator()
        guard validator.feed(reason) && validator.isAtBoundary else {
            throw ProtocolViolation(closeCode: CloseCode.invalidPayload, reason: "close reason is not valid UTF-8")
        }
        message = .closed
        return .close(code: code, reason: reason)
    }

    private mutating func validateText(_ bytes: UnsafeRawBufferPointer) throws(ProtocolViolation) {
        guard utf8.feed(bytes) else {
            throw ProtocolViolation(closeCode: CloseCode.invalidPayload, reason: "text message is not valid UTF-8")
        }
    }

    // MARK: - Header rules

    /// Fragmentation rules, checked as soon as byte 0 is in (RFC 6455 §5.4), with the fragment count and
    /// where RSV1 may appear: the parser let it through only with an inflater, and RFC 7692 §6 allows it
    /// only on the first frame of a data message.
    private mutating func checkFragmentation(_ configuration: Configuration) throws(ProtocolViolation) {
        let header = parser.header
        switch header.opcode! {
        case .continuation:
            guard message == .text || message == .binary else {
                throw .protocolError("continuation frame without a message in progress")
            }
            guard header.rsv == 0 else {
                throw .protocolError("RSV1 set on a continuation frame")
            }
            fragments += 1
            if fragments > configuration.maxFragments {
                throw ProtocolViolation(
                    closeCode: CloseCode.messageTooBig,
                    reason: "message has more than \(configuration.maxFragments) fragments")
            }
        case .text, .binary:
            guard message == .none else {
                throw .protocolError("new message while a fragmented message is in progress")
            }
            fragments = 1
        case .close, .ping, .pong:
            guard header.rsv == 0 else {
                throw .protocolError("RSV1 set on a control frame")
            }
        }
    }

    /// Length rules, checked once the length is known and before any payload byte is read.
    private func checkLength(_ configuration: Configuration) throws(ProtocolViolation) {
        let maxMessageSize = configuration.maxMessageSize
        let opcode = parser.header.opcode!
        if opcode == .close && parser.frameLength == 1 {
            throw .protocolError("close frame with a 1-byte payload")
        }
        // Subtracting avoids overflow with lengths near 2^63.
        if !opcode.isControl && parser.frameLength > maxMessageSize - messageSize {
            throw ProtocolViolation(
                closeCode: CloseCode.messageTooBig, reason: "message larger than \(maxMessageSize) bytes")
        }
    }

    private mutating func startFrame() {
        switch parser.header.opcode! {
        case .text:
            message = .text
            compressed = parser.header.rsv != 0
        case .binary:
            message = .binary
            compressed = parser.header.rsv != 0
        default: break
        }
        if !parser.header.opcode!.isControl {
            messageSize += parser.frameLength
        }
    }

    // MARK: - Buffer

    private mutating func storage(reserving hint: Int) -> ReassemblyBuffer {
        if let buffer {
            return buffer
        }
        let created = ReassemblyBuffer(capacity: hint)
        buffer = created
        return created
    }

    /// Called at a frame boundary: drops what the previous event pointed at, keeping only the data of
    /// a message still in progress, and frees a buffer (ours or the inflater's) that a large message
    /// left behind.
    private mutating func recycleBuffer() {
        codecs?.inflater.releaseLargeBuffer()
        guard let buffer else { return }
        let keep = message == .none ? 0 : messageSize
        buffer.count = keep
        if keep == 0 && buffer.capacity > ReassemblyBuffer.retainLimit {
            self.buffer = nil
        }
    }
}
