// A client's Sec-WebSocket-Key once checked (RFC 6455 §4.2.1: the Base64 of 16 bytes, so always 24
// characters), kept inline: as a String its 24 bytes are past the 15-byte small-string limit and cost
// a heap allocation on every handshake, for a value that only goes into the accept hash.

/// The 24 characters of a valid Sec-WebSocket-Key.
public struct WebSocketKey: Sendable, Equatable, CustomStringConvertible {
    /// Characters in every valid key: the Base64 of 16 bytes, two of them padding.
    static let length = 24

    /// The characters in the order received (a homogeneous tuple is laid out contiguously).
    private var characters: (UInt64, UInt64, UInt64) = (0, 0, 0)

    /// The key in `text` (without surrounding whitespace), or nil when it is not the Base64 of
    /// 16 bytes under `Base64.decode`'s strict rules.
    public init?(_ text: some Collection<UInt8>) {
        let bytes = Array(text)
        guard let key = bytes.withUnsafeBufferPointer({ Self.checked($0[...]) }) else { return nil }
        self = key
    }

    /// The key in `text` (without surrounding whitespace), or nil when it is not valid.
    public init?(_ text: String) {
        self.init(text.utf8)
    }

    /// The key in a header value in place (the parser trims the whitespace already, a hand-made
    /// header may not): no String, no array.
    init?(_ value: Slice<UnsafeBufferPointer<UInt8>>) {
        guard let key = Self.checked(value) else { return nil }
        self = key
    }

    private init() {}

    private static func checked(_ value: Slice<UnsafeBufferPointer<UInt8>>) -> WebSocketKey? {
        let bytes = UnsafeBufferPointer(rebasing: trimmingOWS(value))
        guard isBase64Of16Bytes(bytes) else { return nil }
        var key = WebSocketKey()
        withUnsafeMutableBytes(of: &key.characters) { $0.copyMemory(from: UnsafeRawBufferPointer(bytes)) }
        return key
    }

    /// Whether `Base64.decode` takes `bytes` to 16 bytes, spelled out for the one shape that does (the
    /// general decoder, with a call per decoded byte, cost more than the rest of the validation): 22
    /// characters of the alphabet, then "==", and the last character's 4 unused bits zero.
    static func isBase64Of16Bytes(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count == length, bytes[22] == UInt8(ascii: "="), bytes[23] == UInt8(ascii: "=") else { return false }
        for index in 0..<21 where Base64.value(bytes[index]) == nil { return false }
        guard let last = Base64.value(bytes[21]) else { return false }
        return last & 0x0F == 0
    }

    /// Calls `body` with the key's characters.
    func withBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        withUnsafeBytes(of: characters) { $0.withMemoryRebound(to: UInt8.self, body) }
    }

    public static func == (a: WebSocketKey, b: WebSocketKey) -> Bool {
        a.characters == b.characters
    }

    /// The key as text.
    public var description: String {
        withBytes { String(decoding: $0, as: UTF8.self) }
    }
}
