// Reads the frames one peer worker sends (layout: BusEncoder.swift) back into bus messages. A peer may die
// mid-message or, through a bug, send garbage: the decoder must never crash its worker, so every field is
// checked and anything wrong is counted and skipped instead of thrown.

/// Incremental decoder of the frames one peer sends: input may be split at ANY byte (stream semantics), although the
/// transport delivers whole frames. Reassembles fragmented messages up to `maxMessageSize` (16 MiB + slack default);
/// a new first fragment while a message is incomplete discards the incomplete one (its sender died mid-message) and
/// counts it.
///
/// Resynchronisation: a frame whose header is sound but whose body breaks a rule (bad field, fragment out of order,
/// total beyond `maxMessageSize`) is skipped alone, since its length still tells where the next frame starts. A corrupt
/// header (length beyond `BusEncoder.maxFrameSize`, unknown kind or flag bits, reserved bytes set) means no later
/// length in this input can be trusted: the rest of the current `feed` and everything buffered is dropped, and
/// decoding restarts with the next `feed`, which on the seqpacket transport begins a new record and so a new frame.
/// Either way an incomplete message is discarded too (counted in `discardedMessages`), since bytes of it may be gone.
public struct BusDecoder {
    /// The receiving worker's own generation; frames with another generation are skipped (counted in `staleFrames`).
    public var generation: UInt32
    /// Largest reassembled payload accepted; a first fragment announcing more is malformed.
    public let maxMessageSize: Int
    /// Frames skipped because they were stamped for another generation of this worker.
    public private(set) var staleFrames = 0
    /// Incomplete fragmented messages thrown away (a new first fragment, a malformed frame or a corrupt header
    /// arrived before their last fragment).
    public private(set) var discardedMessages = 0
    /// Frames (or corrupt headers) that broke the wire rules.
    public private(set) var malformedFrames = 0

    /// Bytes of one frame cut by a `feed` boundary; only stream-style callers ever leave something here.
    private var partialFrame: [UInt8] = []
    /// The fragmented message being reassembled.
    private var assembly: Assembly?

    /// Fields of a fragmented broadcast, send, sendMany or publish whose first fragment arrived, and its payload so far.
    private struct Assembly {
        var kind: BusFrameKind
        var server: UInt32
        /// `except` for a broadcast, `connection` for a send.
        var target: Int64
        var opcode: UInt8
        var total: Int
        var payload: [UInt8]
        /// The recipients of a sendMany.
        var connections: [Int64] = []
        /// The topic of a publish.
        var topic = ""

        /// The complete message; only called once `payload` holds `total` bytes.
        var finished: BusMessage {
            switch kind {
            case .broadcast:
                return .broadcast(server: server, except: target, opcode: opcode, payload: payload)
            case .send:
                return .send(connection: target, opcode: opcode, payload: payload)
            case .sendMany:
                return .sendMany(connections: connections, opcode: opcode, payload: payload)
            case .publish:
                return .publish(server: server, topic: topic, except: target, opcode: opcode, payload: payload)
            case .terminate, .terminateServer, .topicCounts, .topicSync:
                preconditionFailure("only broadcast, send, sendMany and publish are reassembled")
            }
        }
    }

    /// `maxMessageSize` defaults to the server's 16 MiB message limit plus slack, so any message a client may send
    /// crosses the bus.
    public init(generation: UInt32, maxMessageSize: Int = 16 * 1024 * 1024 + 1024) {
        self.generation = generation
        self.maxMessageSize = maxMessageSize
    }


    /// Feeds bytes; calls `deliver` for every complete message. Malformed input (bad kind, length beyond limits,
    /// fragment out of order) never crashes or throws: the decoder resynchronises by resetting at the next frame
    /// boundary it can trust — since frames are length-prefixed, on a corrupt header it drops everything buffered
    /// (and the rest of this feed) and counts `malformedFrames`.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, deliver: (BusMessage) -> Void) {
        var offset = 0
        if !partialFrame.isEmpty {
            guard let consumed = completePartialFrame(bytes, deliver: deliver) else { return }
            offset = consumed
        }
        // Fast path: whole frames straight from the caller's buffer, no copy into ours.
        let h = BusWire.headerSize
        while bytes.count - offset >= h {
            guard let header = BusFrameHeader(parsing: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + h)]))
            else {
                resetAfterCorruptHeader()
                return
            }
            let frameEnd = offset + h + header.bodyLength
            guard frameEnd <= bytes.count else { break }
            process(header, body: UnsafeRawBufferPointer(rebasing: bytes[(offset + h)..<frameEnd]), deliver: deliver)
            offset = frameEnd
        }
        if offset < bytes.count {
            partialFrame.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        }
    }

    /// Moves bytes from `bytes` into `partialFrame` until it holds a whole frame, then processes it. Returns how many
    /// bytes it took, or nil when it took them all (frame still incomplete) or dropped them (corrupt header).
    private mutating func completePartialFrame(_ bytes: UnsafeRawBufferPointer, deliver: (BusMessage) -> Void) -> Int? {
        let h = BusWire.headerSize
        var offset = 0
        if partialFrame.count < h {
            offset = min(h - partialFrame.count, bytes.count)
            partialFrame.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<offset]))
            if partialFrame.count < h { return nil }
        }
        guard let header = partialFrame.withUnsafeBytes({ BusFrameHeader(parsing: $0) }) else {
            resetAfterCorruptHeader()
            return nil
        }
        let frameSize = h + header.bodyLength
        let take = min(frameSize - partialFrame.count, bytes.count - offset)
        partialFrame.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
        offset += take
        if partialFrame.count < frameSize { return nil }
        // Swap the buffer out so `process` may mutate self while reading it, and back in to keep its capacity.
        var frame: [UInt8] = []
        swap(&frame, &partialFrame)
        frame.withUnsafeBytes { process(header, body: UnsafeRawBufferPointer(rebasing: $0[h...]), deliver: deliver) }
        frame.removeAll(keepingCapacity: true)
        swap(&frame, &partialFrame)
        return offset
    }

    private mutating func resetAfterCorruptHeader() {
        malformedFrames += 1
        partialFrame.removeAll(keepingCapacity: true)
        discardIncompleteMessage()
    }

    /// A frame body broke a rule; its header was sound, so only this frame (and any message it was part of) goes.
    private mutating func rejectFrame() {
        malformedFrames += 1
        discardIncompleteMessage()
    }

    private mutating func discardIncompleteMessage() {
        if assembly != nil {
            assembly = nil
            discardedMessages += 1
        }
    }

    /// Applies one whole frame whose header passed `BusFrameHeader(parsing:)`.
    private mutating func process(
        _ header: BusFrameHeader, body: UnsafeRawBufferPointer, deliver: (BusMessage) -> Void
    ) {
        guard header.generation == generation else {
            // Meant for this worker's predecessor; whatever it is part of is stale too, so the current
            // message (if any) is left alone.
            staleFrames += 1
            return
        }
        guard header.isFirst else {
            continueMessage(header, body: body, deliver: deliver)
            return
        }
        // A new message while one is incomplete: the sender gave up on (or died during) the old one.
        discardIncompleteMessage()
        switch header.kind {
        case .broadcast:
            guard body.count >= BusWire.broadcastFieldsSize else { return rejectFrame() }
            let server = UInt32(littleEndian: body.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
            let except = Int64(littleEndian: body.loadUnaligned(fromByteOffset: 4, as: Int64.self))
            let opcode = body[12]
            let total = Int(UInt32(littleEndian: body.loadUnaligned(fromByteOffset: 13, as: UInt32.self)))
            startMessage(
                Assembly(kind: .broadcast, server: server, target: except, opcode: opcode, total: total, payload: []),
                last: header.isLast, chunk: UnsafeRawBufferPointer(rebasing: body[BusWire.broadcastFieldsSize...]),
                deliver: deliver)
        case .send:
            guard body.count >= BusWire.sendFieldsSize else { return rejectFrame() }
            let connection = Int64(littleEndian: body.loadUnaligned(fromByteOffset: 0, as: Int64.self))
            let opcode = body[8]
            let total = Int(UInt32(littleEndian: body.loadUnaligned(fromByteOffset: 9, as: UInt32.self)))
            startMessage(
                Assembly(kind: .send, server: 0, target: connection, opcode: opcode, total: total, payload: []),
                last: header.isLast, chunk: UnsafeRawBufferPointer(rebasing: body[BusWire.sendFieldsSize...]),
                deliver: deliver)
        case .sendMany:
            guard body.count >= BusWire.sendManyFieldsSize(connections: 0) else { return rejectFrame() }
            let opcode = body[0]
            let total = Int(UInt32(littleEndian: body.loadUnaligned(fromByteOffset: 1, as: UInt32.self)))
            let count = Int(UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 5, as: UInt16.self)))
            let fieldsSize = BusWire.sendManyFieldsSize(connections: count)
            guard (1...BusEncoder.maxConnectionsPerMessage).contains(count), body.count >= fieldsSize else {
                return rejectFrame()
            }
            let connections = (0..<count).map {
                Int64(littleEndian: body.loadUnaligned(fromByteOffset: 7 + 8 * $0, as: Int64.self))
            }
            startMessage(
                Assembly(kind: .sendMany, server: 0, target: 0, opcode: opcode, total: total, payload: [],
                         connections: connections),
                last: header.isLast, chunk: UnsafeRawBufferPointer(rebasing: body[fieldsSize...]), deliver: deliver)
        case .publish:
            guard body.count >= BusWire.publishFieldsSize(topicLength: 0) else { return rejectFrame() }
            let topicLength = Int(UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 17, as: UInt16.self)))
            let fieldsSize = BusWire.publishFieldsSize(topicLength: topicLength)
            guard topicLength <= BusEncoder.maxTopicLength, body.count >= fieldsSize,
                let topic = String(validating: UnsafeRawBufferPointer(rebasing: body[19..<fieldsSize]), as: UTF8.self)
            else { return rejectFrame() }
            let server = UInt32(littleEndian: body.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
            let except = Int64(littleEndian: body.loadUnaligned(fromByteOffset: 4, as: Int64.self))
            let opcode = body[12]
            let total = Int(UInt32(littleEndian: body.loadUnaligned(fromByteOffset: 13, as: UInt32.self)))
            startMessage(
                Assembly(kind: .publish, server: server, target: except, opcode: opcode, total: total, payload: [],
                         topic: topic),
                last: header.isLast, chunk: UnsafeRawBufferPointer(rebasing: body[fieldsSize...]), deliver: deliver)
        case .topicCounts:
            guard header.isLast, let message = Self.topicCounts(body) else { return rejectFrame() }
            deliver(message)
        case .topicSync:
            guard header.isLast, body.isEmpty else { return rejectFrame() }
            deliver(.topicSync)
        case .terminate:
            let fields = BusWire.terminateFieldsSize
            guard header.isLast, body.count >= fields, body.count - fields <= BusEncoder.maxReasonLength,
                let reason = String(validating: UnsafeRawBufferPointer(rebasing: body[fields...]), as: UTF8.self)
            else { return rejectFrame() }
            let connection = Int64(littleEndian: body.loadUnaligned(fromByteOffset: 0, as: Int64.self))
            let code = UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
            deliver(.terminate(connection: connection, code: code == 0 ? nil : code, reason: reason))
        case .terminateServer:
            guard header.isLast, body.count == BusWire.terminateServerFieldsSize else { return rejectFrame() }
            deliver(.terminateServer(server: UInt32(littleEndian: body.loadUnaligned(as: UInt32.self))))
        }
    }

    /// A `topicCounts` body, or nil when any entry breaks the layout (count out of range, a topic too long or not
    /// UTF-8, bytes left over or missing).
    private static func topicCounts(_ body: UnsafeRawBufferPointer) -> BusMessage? {
        guard body.count >= BusWire.topicCountsFieldsSize else { return nil }
        let server = UInt32(littleEndian: body.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        let entries = Int(UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        guard (1...BusEncoder.maxTopicCountsPerMessage).contains(entries) else { return nil }
        var at = BusWire.topicCountsFieldsSize
        var counts: [TopicCount] = []
        counts.reserveCapacity(entries)
        for _ in 0..<entries {
            guard body.count - at >= 2 else { return nil }
            let length = Int(UInt16(littleEndian: body.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
            guard length <= BusEncoder.maxTopicLength, body.count - at - 2 >= length + 4,
                let topic = String(validating: UnsafeRawBufferPointer(rebasing: body[(at + 2)..<(at + 2 + length)]),
                                   as: UTF8.self)
            else { return nil }
            at += 2 + length
            let count = UInt32(littleEndian: body.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            at += 4
            counts.append(TopicCount(topic: topic, count: count))
        }
        guard at == body.count else { return nil }
        return .topicCounts(server: server, counts: counts)
    }

    /// First fragment of a broadcast, send, sendMany or publish: `chunk` is the payload it carries.
    private mutating func startMessage(
        _ message: Assembly, last: Bool, chunk: UnsafeRawBufferPointer, deliver: (BusMessage) -> Void
    ) {
        // A first fragment that is also last holds the whole payload; otherwise it must leave some for continuations.
        guard message.opcode <= BusWire.maxOpcode, message.total <= maxMessageSize,
            last ? chunk.count == message.total : chunk.count < message.total
        else { return rejectFrame() }
        var message = message
        if last {
            message.payload = Array(chunk)
            deliver(message.finished)
        } else {
            // Reserving the announced total is bounded by maxMessageSize and saves regrowth over ~1,000 fragments.
            message.payload.reserveCapacity(message.total)
            message.payload.append(contentsOf: chunk)
            assembly = message
        }
    }

    /// A continuation fragment: must follow a first fragment of the same kind and stay within its total.
    private mutating func continueMessage(
        _ header: BusFrameHeader, body: UnsafeRawBufferPointer, deliver: (BusMessage) -> Void
    ) {
        // Read fields one by one: binding a copy of the assembly would make the append below copy the payload.
        guard assembly?.kind == header.kind, let total = assembly?.total, let received = assembly?.payload.count,
            !body.isEmpty
        else { return rejectFrame() }
        let remaining = total - received
        // Only the fragment that completes the total may say "last", and it must.
        guard body.count <= remaining, header.isLast == (body.count == remaining) else { return rejectFrame() }
        assembly!.payload.append(contentsOf: body)
        if header.isLast, let done = assembly.take() {
            deliver(done.finished)
        }
    }
}
