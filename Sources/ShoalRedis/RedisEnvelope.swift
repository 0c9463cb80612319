// What one Shoal instance puts on the cluster's Redis channel: a versioned, length-checked frame
// around a broadcast (or a topic publish). Pure: no I/O. Anything else found on the channel (not
// ours, another version, truncated, oversized, bad UTF-8 in a text message) is refused with a
// reason, counted by the caller and never delivered.
//
// Layout (integers little-endian):
//
//   offset  size  field
//   0       4     magic "SHRB"
//   4       1     version (1)
//   5       1     kind: 1 broadcast, 2 topic publish
//   6       1     opcode: 1 text, 2 binary (the WebSocket opcode the clients receive)
//   7       1     reserved, 0
//   8       8     instance id of the sender (a receiver skips its own)
//   16      4     server index (the WebSocketServer, same on every instance running the same setup)
//   20      2     topic length T (0 for a broadcast)
//   22      T     topic, UTF-8
//   22+T    4     payload length P; the frame ends exactly after the payload
//   26+T    P     payload
import ShoalWire

public struct RedisEnvelope: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case broadcast = 1
        case publish = 2
    }

    public var kind: Kind
    /// 1 (text) or 2 (binary).
    public var opcode: UInt8
    public var instance: UInt64
    public var server: UInt32
    public var topic: String
    public var payload: [UInt8]

    public init(kind: Kind, opcode: UInt8, instance: UInt64, server: UInt32, topic: String = "", payload: [UInt8]) {
        self.kind = kind
        self.opcode = opcode
        self.instance = instance
        self.server = server
        self.topic = topic
        self.payload = payload
    }

    static let magic: [UInt8] = Array("SHRB".utf8)
    public static let version: UInt8 = 1
    static let headerSize = 26
    /// Largest payload carried: Shoal's own largest message (--max-message-size's default). A bigger
    /// one is not sent (counted as dropped) and a bigger one received is refused.
    public static let maxPayload = 16 * 1024 * 1024
    /// Topic names are at most 256 bytes (issue 14's topics API).
    public static let maxTopic = 256

    /// Why bytes from the channel were refused.
    public enum DecodeError: Error, Equatable, Sendable {
        case notOurs
        case unsupportedVersion(UInt8)
        case truncated
        case oversized
        case malformed(String)
    }

    /// Whether a payload of `payloadCount` bytes under `topic` fits what a receiver accepts.
    public static func fits(topic: String, payloadCount: Int) -> Bool {
        payloadCount <= maxPayload && topic.utf8.count <= maxTopic
    }

    /// The frame's bytes, or nil when the payload or topic is beyond what a receiver accepts.
    public static func encode(kind: Kind, opcode: UInt8, instance: UInt64, server: UInt32, topic: String = "",
                              payload: UnsafeRawBufferPointer) -> [UInt8]? {
        var out: [UInt8] = []
        return encode(kind: kind, opcode: opcode, instance: instance, server: server, topic: topic, payload: payload,
                      into: &out) ? out : nil
    }

    /// Replaces `out`'s bytes with the frame (its capacity is kept: a sender reuses one buffer, so a
    /// message costs no allocation); false, `out` untouched, when it does not `fits`.
    public static func encode(kind: Kind, opcode: UInt8, instance: UInt64, server: UInt32, topic: String = "",
                              payload: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        guard fits(topic: topic, payloadCount: payload.count) else { return false }
        let topicCount = topic.utf8.count
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(headerSize + topicCount + payload.count)
        out += magic
        out.append(version)
        out.append(kind.rawValue)
        out.append(opcode)
        out.append(0)
        append(&out, instance, bytes: 8)
        append(&out, UInt64(server), bytes: 4)
        append(&out, UInt64(topicCount), bytes: 2)
        out += topic.utf8
        append(&out, UInt64(payload.count), bytes: 4)
        out += payload
        return true
    }

    private static func append(_ out: inout [UInt8], _ value: UInt64, bytes: Int) {
        for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }

    private static func read(_ bytes: UnsafeRawBufferPointer, at offset: Int, bytes count: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<count { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    /// Decodes one message from the channel.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(DecodeError) -> RedisEnvelope {
        guard bytes.count <= headerSize + maxTopic + maxPayload else { throw .oversized }
        guard bytes.count >= 5, bytes[0] == magic[0], bytes[1] == magic[1], bytes[2] == magic[2], bytes[3] == magic[3] else {
            // Fewer than 5 bytes that start like our magic are a truncated frame, anything else is not ours.
            if bytes.count < 5, bytes.count > 0, bytes.elementsEqual(magic.prefix(bytes.count)) { throw .truncated }
            throw .notOurs
        }
        guard bytes[4] == version else { throw .unsupportedVersion(bytes[4]) }
        guard bytes.count >= headerSize else { throw .truncated }
        guard let kind = Kind(rawValue: bytes[5]) else { throw .malformed("kind \(bytes[5])") }
        let opcode = bytes[6]
        guard opcode == 1 || opcode == 2 else { throw .malformed("opcode \(opcode)") }
        guard bytes[7] == 0 else { throw .malformed("reserved byte \(bytes[7])") }
        let instance = read(bytes, at: 8, bytes: 8)
        let server = UInt32(read(bytes, at: 16, bytes: 4))
        let topicLength = Int(read(bytes, at: 20, bytes: 2))
        guard topicLength <= maxTopic else { throw .oversized }
        guard kind == .publish || topicLength == 0 else { throw .malformed("a broadcast with a topic") }
        guard bytes.count >= headerSize + topicLength else { throw .truncated }
        let topicBytes = UnsafeRawBufferPointer(rebasing: bytes[22..<(22 + topicLength)])
        var topicCheck = UTF8Validator()
        guard topicCheck.feed(topicBytes), topicCheck.isAtBoundary else { throw .malformed("topic is not UTF-8") }
        if kind == .publish && topicLength == 0 { throw .malformed("a publish without a topic") }
        let lengthOffset = 22 + topicLength
        let payloadLength = Int(read(bytes, at: lengthOffset, bytes: 4))
        guard payloadLength <= maxPayload else { throw .oversized }
        let payloadStart = lengthOffset + 4
        guard bytes.count >= payloadStart + payloadLength else { throw .truncated }
        guard bytes.count == payloadStart + payloadLength else { throw .malformed("bytes after the payload") }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadStart...])
        if opcode == 1 {
            var text = UTF8Validator()
            guard text.feed(payload), text.isAtBoundary else { throw .malformed("text payload is not UTF-8") }
        }
        return RedisEnvelope(kind: kind, opcode: opcode, instance: instance, server: server,
                             topic: String(decoding: topicBytes, as: UTF8.self), payload: Array(payload))
    }
}
