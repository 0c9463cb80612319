// Turns bus messages into length-prefixed frames small enough to be one SOCK_SEQPACKET record each, written
// straight into memory the caller reserves (its send queue), so a broadcast is encoded once with no extra copy.
// The wire layout below is the contract with BusDecoder; change both together.
//
// Every frame: a 12-byte header, then `bodyLength` body bytes. All integers little endian.
//
// | offset | size | field      | meaning                                                              |
// |--------|------|------------|----------------------------------------------------------------------|
// | 0      | 4    | bodyLength | bytes after the header; header + body ≤ BusEncoder.maxFrameSize      |
// | 4      | 1    | kind       | 1 broadcast, 2 send, 3 terminate, 4 terminateServer, 5 sendMany,     |
// |        |      |            | 6 publish, 7 topicCounts, 8 topicSync                                |
// | 5      | 1    | flags      | bit0 first fragment, bit1 last fragment; other bits 0                |
// | 6      | 2    | reserved   | 0                                                                    |
// | 8      | 4    | generation | destination worker's generation; other generations are dropped       |
//
// First-fragment bodies (flags has bit0):
//
// | kind            | body                                                                          |
// |-----------------|-------------------------------------------------------------------------------|
// | broadcast       | u32 server, u64 except, u8 opcode, u32 totalPayloadLength, payload bytes      |
// | send            | u64 connection, u8 opcode, u32 totalPayloadLength, payload bytes              |
// | terminate       | u64 connection, u16 code (0 = none), reason UTF-8 (0...123 bytes); first+last |
// | terminateServer | u32 server; always first+last                                                 |
// | sendMany        | u8 opcode, u32 totalPayloadLength, u16 count (1...1024), count × u64 connection, |
// |                 | payload bytes                                                                 |
// | publish         | u32 server, u64 except, u8 opcode, u32 totalPayloadLength, u16 topicLength    |
// |                 | (0...256), topic UTF-8, payload bytes                                         |
// | topicCounts     | u32 server, u16 entries (1...60), entries × (u16 topicLength, topic UTF-8,    |
// |                 | u32 count); always first+last, the body ends with the last entry              |
// | topicSync       | empty; always first+last                                                      |
//
// Continuation fragments (bit0 clear) repeat the message's kind and carry 1... payload bytes only; the one that
// completes totalPayloadLength has bit1, and a message that fits one frame is a single first+last frame.

/// Encodes bus messages into frames; see the wire table at the top of BusEncoder.swift.
public enum BusEncoder {
    /// Receives one frame: the caller reserves exactly `frameSize` contiguous bytes and `fill` writes the whole
    /// frame into them before `emit` returns.
    public typealias Emit = (_ frameSize: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> Void

    /// Largest frame (header + body) written in one piece; = one record on the seqpacket socket; must fit the
    /// receiver's 16 KiB buffers (64 bytes below 16 KiB leave room for the receiver's own bookkeeping).
    public static let maxFrameSize = 16 * 1024 - 64

    /// Largest close reason carried by `terminate`: a close frame's 125-byte payload minus its 2-byte code.
    public static let maxReasonLength = 123

    /// Most recipients of one `sendMany`: their ids (8 KiB) and the fields fit the first frame with room for payload.
    public static let maxConnectionsPerMessage = 1024

    /// Longest topic name, in UTF-8 bytes (the public limit of `subscribe` and `publish`).
    public static let maxTopicLength = 256

    /// Most entries of one `topicCounts`: 60 entries of the longest topic (262 bytes each) fit one frame.
    public static let maxTopicCountsPerMessage = 60

    /// Encodes `message` as one or more frames (a payload longer than fits one frame is split into fragments: the
    /// first fragment carries the message's fields and total length, the following ones only payload bytes), each
    /// handed to `emit(frameSize, fill)`: the caller reserves exactly `frameSize` contiguous bytes and `fill` writes
    /// the frame into them (this is how it writes straight into a socket's send queue without an intermediate copy).
    /// `generation` is the destination worker's generation, stamped on every frame so a restarted worker drops
    /// frames meant for its predecessor.
    public static func encode(_ message: BusMessage, generation: UInt32, emit: Emit) {
        switch message {
        case .broadcast(let server, let except, let opcode, let payload):
            payload.withUnsafeBytes {
                encodeBroadcast(
                    server: server, except: except, opcode: opcode, payload: $0, generation: generation, emit: emit)
            }
        case .send(let connection, let opcode, let payload):
            payload.withUnsafeBytes {
                encodeSend(connection: connection, opcode: opcode, payload: $0, generation: generation, emit: emit)
            }
        case .terminate(let connection, let code, var reason):
            reason.withUTF8 { utf8 in
                let reasonBytes = UnsafeRawBufferPointer(utf8)
                let reasonLength = truncatedUTF8Length(reasonBytes)
                let bodyLength = BusWire.terminateFieldsSize + reasonLength
                emit(BusWire.headerSize + bodyLength) { frame in
                    BusWire.writeHeader(
                        into: frame, bodyLength: bodyLength, kind: .terminate,
                        flags: BusWire.firstFlag | BusWire.lastFlag, generation: generation)
                    let h = BusWire.headerSize
                    frame.storeBytes(of: UInt64(bitPattern: connection).littleEndian, toByteOffset: h, as: UInt64.self)
                    frame.storeBytes(of: (code ?? 0).littleEndian, toByteOffset: h + 8, as: UInt16.self)
                    copy(reasonBytes, 0, reasonLength, into: frame, at: h + BusWire.terminateFieldsSize)
                }
            }
        case .sendMany(let connections, let opcode, let payload):
            connections.withUnsafeBufferPointer { ids in
                payload.withUnsafeBytes {
                    encodeSendMany(connections: ids, opcode: opcode, payload: $0, generation: generation, emit: emit)
                }
            }
        case .publish(let server, var topic, let except, let opcode, let payload):
            topic.withUTF8 { name in
                payload.withUnsafeBytes {
                    encodePublish(server: server, topic: UnsafeRawBufferPointer(name), except: except, opcode: opcode,
                                  payload: $0, generation: generation, emit: emit)
                }
            }
        case .topicCounts(let server, let counts):
            encodeTopicCounts(server: server, counts: counts, generation: generation, emit: emit)
        case .topicSync:
            emit(BusWire.headerSize) { frame in
                BusWire.writeHeader(into: frame, bodyLength: 0, kind: .topicSync,
                                    flags: BusWire.firstFlag | BusWire.lastFlag, generation: generation)
            }
        case .terminateServer(let server):
            let bodyLength = BusWire.terminateServerFieldsSize
            emit(BusWire.headerSize + bodyLength) { frame in
                BusWire.writeHeader(
                    into: frame, bodyLength: bodyLength, kind: .terminateServer,
                    flags: BusWire.firstFlag | BusWire.lastFlag, generation: generation)
                frame.storeBytes(of: server.littleEndian, toByteOffset: BusWire.headerSize, as: UInt32.self)
            }
        }
    }

    /// `broadcast` straight from the caller's bytes (for instance a received WebSocket payload), with no [UInt8].
    public static func encodeBroadcast(
        server: UInt32, except: Int64, opcode: UInt8, payload: UnsafeRawBufferPointer, generation: UInt32, emit: Emit
    ) {
        encodeData(
            DataFields(kind: .broadcast, server: server, target: except, opcode: opcode), payload: payload,
            generation: generation, emit: emit)
    }

    /// `send` straight from the caller's bytes, with no [UInt8].
    public static func encodeSend(
        connection: Int64, opcode: UInt8, payload: UnsafeRawBufferPointer, generation: UInt32, emit: Emit
    ) {
        encodeData(
            DataFields(kind: .send, server: 0, target: connection, opcode: opcode), payload: payload,
            generation: generation, emit: emit)
    }

    /// `sendMany` straight from the caller's ids and bytes: the payload crosses once for all `connections`.
    public static func encodeSendMany(
        connections: UnsafeBufferPointer<Int64>, opcode: UInt8, payload: UnsafeRawBufferPointer, generation: UInt32,
        emit: Emit
    ) {
        precondition((1...maxConnectionsPerMessage).contains(connections.count), "sendMany to \(connections.count) connections")
        encodeData(
            DataFields(kind: .sendMany, server: 0, target: 0, opcode: opcode, connections: connections), payload: payload,
            generation: generation, emit: emit)
    }

    /// `publish` straight from the caller's topic and payload bytes: the payload crosses once for all the receiving
    /// worker's subscribers.
    public static func encodePublish(
        server: UInt32, topic: UnsafeRawBufferPointer, except: Int64, opcode: UInt8, payload: UnsafeRawBufferPointer,
        generation: UInt32, emit: Emit
    ) {
        precondition(topic.count <= maxTopicLength, "topic of \(topic.count) bytes")
        encodeData(
            DataFields(kind: .publish, server: server, target: except, opcode: opcode, topic: topic), payload: payload,
            generation: generation, emit: emit)
    }

    private static func encodeTopicCounts(server: UInt32, counts: [TopicCount], generation: UInt32, emit: Emit) {
        precondition((1...maxTopicCountsPerMessage).contains(counts.count), "topicCounts with \(counts.count) entries")
        let bodyLength = topicCountsBodySize(counts)
        emit(BusWire.headerSize + bodyLength) { frame in
            BusWire.writeHeader(into: frame, bodyLength: bodyLength, kind: .topicCounts,
                                flags: BusWire.firstFlag | BusWire.lastFlag, generation: generation)
            var at = BusWire.headerSize
            frame.storeBytes(of: server.littleEndian, toByteOffset: at, as: UInt32.self)
            frame.storeBytes(of: UInt16(counts.count).littleEndian, toByteOffset: at + 4, as: UInt16.self)
            at += BusWire.topicCountsFieldsSize
            for entry in counts {
                var topic = entry.topic
                topic.withUTF8 { name in
                    precondition(name.count <= maxTopicLength, "topic of \(name.count) bytes")
                    frame.storeBytes(of: UInt16(name.count).littleEndian, toByteOffset: at, as: UInt16.self)
                    copy(UnsafeRawBufferPointer(name), 0, name.count, into: frame, at: at + 2)
                    at += 2 + name.count
                }
                frame.storeBytes(of: entry.count.littleEndian, toByteOffset: at, as: UInt32.self)
                at += 4
            }
        }
    }

    private static func topicCountsBodySize(_ counts: [TopicCount]) -> Int {
        counts.reduce(BusWire.topicCountsFieldsSize) { $0 + 2 + $1.topic.utf8.count + 4 }
    }

    /// Total bytes (all frames) `message` encodes to, so a bounded send queue can refuse a whole message up front
    /// instead of queueing half of it.
    public static func encodedSize(of message: BusMessage) -> Int {
        switch message {
        case .broadcast(_, _, _, let payload):
            return encodedSize(broadcastPayloadCount: payload.count)
        case .send(_, _, let payload):
            return encodedSize(sendPayloadCount: payload.count)
        case .sendMany(let connections, _, let payload):
            return dataEncodedSize(fieldsSize: BusWire.sendManyFieldsSize(connections: connections.count), payloadCount: payload.count)
        case .terminate(_, _, var reason):
            let reasonLength = reason.withUTF8 { truncatedUTF8Length(UnsafeRawBufferPointer($0)) }
            return BusWire.headerSize + BusWire.terminateFieldsSize + reasonLength
        case .terminateServer:
            return BusWire.headerSize + BusWire.terminateServerFieldsSize
        case .publish(_, let topic, _, _, let payload):
            return encodedSize(publishTopicLength: topic.utf8.count, payloadCount: payload.count)
        case .topicCounts(_, let counts):
            return BusWire.headerSize + topicCountsBodySize(counts)
        case .topicSync:
            return BusWire.headerSize
        }
    }

    /// Total bytes of a broadcast carrying `broadcastPayloadCount` payload bytes.
    public static func encodedSize(broadcastPayloadCount: Int) -> Int {
        dataEncodedSize(fieldsSize: BusWire.broadcastFieldsSize, payloadCount: broadcastPayloadCount)
    }

    /// Total bytes of a send carrying `sendPayloadCount` payload bytes.
    public static func encodedSize(sendPayloadCount: Int) -> Int {
        dataEncodedSize(fieldsSize: BusWire.sendFieldsSize, payloadCount: sendPayloadCount)
    }

    /// Total bytes of a publish of a topic of `publishTopicLength` bytes carrying `payloadCount` payload bytes.
    public static func encodedSize(publishTopicLength: Int, payloadCount: Int) -> Int {
        dataEncodedSize(fieldsSize: BusWire.publishFieldsSize(topicLength: publishTopicLength), payloadCount: payloadCount)
    }

    // MARK: - Internals

    private static func dataEncodedSize(fieldsSize: Int, payloadCount: Int) -> Int {
        let firstRoom = BusWire.maxBodySize - fieldsSize
        guard payloadCount > firstRoom else { return BusWire.headerSize + fieldsSize + payloadCount }
        let rest = payloadCount - firstRoom
        let continuations = (rest + BusWire.maxBodySize - 1) / BusWire.maxBodySize
        return BusWire.maxFrameSize + continuations * BusWire.headerSize + rest
    }

    /// The fields of a broadcast, send or sendMany first fragment besides the payload length.
    private struct DataFields {
        var kind: BusFrameKind
        var server: UInt32
        /// `except` for a broadcast, `connection` for a send.
        var target: Int64
        var opcode: UInt8
        /// The recipients of a sendMany.
        var connections = UnsafeBufferPointer<Int64>(start: nil, count: 0)
        /// The topic of a publish.
        var topic = UnsafeRawBufferPointer(start: nil, count: 0)

        var size: Int {
            switch kind {
            case .broadcast: BusWire.broadcastFieldsSize
            case .sendMany: BusWire.sendManyFieldsSize(connections: connections.count)
            case .publish: BusWire.publishFieldsSize(topicLength: topic.count)
            default: BusWire.sendFieldsSize
            }
        }

        /// Writes the fields and `total` where the first fragment's body starts.
        func write(into frame: UnsafeMutableRawBufferPointer, at offset: Int, total: Int) {
            if kind == .sendMany {
                frame.storeBytes(of: opcode, toByteOffset: offset, as: UInt8.self)
                frame.storeBytes(of: UInt32(total).littleEndian, toByteOffset: offset + 1, as: UInt32.self)
                frame.storeBytes(of: UInt16(connections.count).littleEndian, toByteOffset: offset + 5, as: UInt16.self)
                for (i, id) in connections.enumerated() {
                    frame.storeBytes(of: UInt64(bitPattern: id).littleEndian, toByteOffset: offset + 7 + 8 * i, as: UInt64.self)
                }
                return
            }
            var at = offset
            if kind == .broadcast || kind == .publish {
                frame.storeBytes(of: server.littleEndian, toByteOffset: at, as: UInt32.self)
                at += 4
            }
            frame.storeBytes(of: UInt64(bitPattern: target).littleEndian, toByteOffset: at, as: UInt64.self)
            frame.storeBytes(of: opcode, toByteOffset: at + 8, as: UInt8.self)
            frame.storeBytes(of: UInt32(total).littleEndian, toByteOffset: at + 9, as: UInt32.self)
            if kind == .publish {
                frame.storeBytes(of: UInt16(topic.count).littleEndian, toByteOffset: at + 13, as: UInt16.self)
                copy(topic, 0, topic.count, into: frame, at: at + 15)
            }
        }
    }

    /// Shared by broadcast, send, sendMany and publish: the first frame carries the fields and as much payload as fits; full
    /// continuation frames follow, the last one shorter.
    private static func encodeData(
        _ fields: DataFields, payload: UnsafeRawBufferPointer, generation: UInt32, emit: Emit
    ) {
        precondition(fields.opcode <= BusWire.maxOpcode, "bus opcode \(fields.opcode) is not a 4-bit WebSocket opcode")
        // The total travels as u32; the server's message limit (16 MiB) is far below.
        precondition(payload.count <= Int(UInt32.max), "bus payload of \(payload.count) bytes does not fit u32")
        let h = BusWire.headerSize
        let kind = fields.kind
        let fieldsSize = fields.size
        let firstChunk = min(payload.count, BusWire.maxBodySize - fieldsSize)
        let firstBody = fieldsSize + firstChunk
        emit(h + firstBody) { frame in
            let flags = BusWire.firstFlag | (firstChunk == payload.count ? BusWire.lastFlag : 0)
            BusWire.writeHeader(into: frame, bodyLength: firstBody, kind: kind, flags: flags, generation: generation)
            fields.write(into: frame, at: h, total: payload.count)
            copy(payload, 0, firstChunk, into: frame, at: h + fieldsSize)
        }
        var sent = firstChunk
        while sent < payload.count {
            let start = sent
            let chunk = min(payload.count - start, BusWire.maxBodySize)
            emit(h + chunk) { frame in
                let flags = start + chunk == payload.count ? BusWire.lastFlag : 0
                BusWire.writeHeader(into: frame, bodyLength: chunk, kind: kind, flags: flags, generation: generation)
                copy(payload, start, chunk, into: frame, at: h)
            }
            sent += chunk
        }
    }

    private static func copy(
        _ source: UnsafeRawBufferPointer, _ start: Int, _ count: Int, into frame: UnsafeMutableRawBufferPointer,
        at offset: Int
    ) {
        guard count > 0 else { return }  // an empty buffer may have no base address
        UnsafeMutableRawBufferPointer(rebasing: frame[offset..<(offset + count)])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<(start + count)]))
    }

    /// Length of the longest prefix of `utf8` that is ≤ maxReasonLength bytes and ends on a scalar boundary
    /// (the same cut DESIGN.md asks of `terminate(code, message)`).
    static func truncatedUTF8Length(_ utf8: UnsafeRawBufferPointer) -> Int {
        guard utf8.count > maxReasonLength else { return utf8.count }
        var cut = maxReasonLength
        // Back off over continuation bytes (10xxxxxx) so the cut does not split a scalar.
        while cut > 0 && utf8[cut] & 0xC0 == 0x80 { cut -= 1 }
        return cut
    }
}

/// Offsets, sizes and flags of the wire table above, shared by the encoder and the decoder.
enum BusWire {
    static let headerSize = 12
    static let maxFrameSize = BusEncoder.maxFrameSize
    static let maxBodySize = maxFrameSize - headerSize
    static let firstFlag: UInt8 = 0b01
    static let lastFlag: UInt8 = 0b10
    /// u32 server, u64 except, u8 opcode, u32 total.
    static let broadcastFieldsSize = 4 + 8 + 1 + 4
    /// u64 connection, u8 opcode, u32 total.
    static let sendFieldsSize = 8 + 1 + 4
    /// u8 opcode, u32 total, u16 count, then `connections` × u64 ids.
    static func sendManyFieldsSize(connections: Int) -> Int { 1 + 4 + 2 + 8 * connections }
    /// u32 server, u64 except, u8 opcode, u32 total, u16 topic length, then the topic.
    static func publishFieldsSize(topicLength: Int) -> Int { broadcastFieldsSize + 2 + topicLength }
    /// u32 server, u16 entries (the entries follow).
    static let topicCountsFieldsSize = 4 + 2
    /// u64 connection, u16 code.
    static let terminateFieldsSize = 8 + 2
    /// u32 server.
    static let terminateServerFieldsSize = 4
    /// WebSocket opcodes are 4 bits; anything wider on the wire is corruption.
    static let maxOpcode: UInt8 = 0x0F

    static func writeHeader(
        into frame: UnsafeMutableRawBufferPointer, bodyLength: Int, kind: BusFrameKind, flags: UInt8,
        generation: UInt32
    ) {
        frame.storeBytes(of: UInt32(bodyLength).littleEndian, toByteOffset: 0, as: UInt32.self)
        frame.storeBytes(of: kind.rawValue, toByteOffset: 4, as: UInt8.self)
        frame.storeBytes(of: flags, toByteOffset: 5, as: UInt8.self)
        frame.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        frame.storeBytes(of: generation.littleEndian, toByteOffset: 8, as: UInt32.self)
    }
}

/// A frame header that passed every structural check, so its length can be trusted to find the next frame.
struct BusFrameHeader {
    var bodyLength: Int
    var kind: BusFrameKind
    var flags: UInt8
    var generation: UInt32

    var isFirst: Bool { flags & BusWire.firstFlag != 0 }
    var isLast: Bool { flags & BusWire.lastFlag != 0 }

    /// Reads the first `BusWire.headerSize` bytes of `bytes`; nil when any field is impossible (length beyond the
    /// frame limit, unknown kind, unknown flag bits, reserved bytes set): the header is then corrupt and so is
    /// everything after it.
    init?(parsing bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= BusWire.headerSize)
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        guard length <= BusWire.maxBodySize,
            let kind = BusFrameKind(rawValue: bytes[4]),
            bytes[5] & ~(BusWire.firstFlag | BusWire.lastFlag) == 0,
            bytes[6] == 0, bytes[7] == 0
        else { return nil }
        self.bodyLength = length
        self.kind = kind
        self.flags = bytes[5]
        self.generation = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
    }
}
