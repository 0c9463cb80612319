// The 101 answer to a valid upgrade request (RFC 6455 §4.2.2), written straight into the socket's
// send memory: every handshake sends one, and building it as a header list, an accept String and a
// byte array first cost three allocations each time.

/// The head of a 101 Switching Protocols answer.
public struct SwitchingProtocols {
    /// The client's Sec-WebSocket-Key.
    public var key: WebSocketKey
    /// The Sec-WebSocket-Extensions answer, if an extension was agreed.
    public var extensions: String?
    /// The Sec-WebSocket-Protocol answer, if the server chose one.
    public var subprotocol: String?

    /// Creates the answer to the request that sent `key`.
    public init(key: WebSocketKey, extensions: String? = nil, subprotocol: String? = nil) {
        self.key = key
        self.extensions = extensions
        self.subprotocol = subprotocol
    }

    private static let statusAndFixedHeaders = Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".utf8)
    private static let extensionsName = Array("\r\nSec-WebSocket-Extensions: ".utf8)
    private static let protocolName = Array("\r\nSec-WebSocket-Protocol: ".utf8)

    /// Length of the head in bytes.
    public var byteCount: Int {
        Self.statusAndFixedHeaders.count + WebSocketUpgrade.acceptValueCount
            + (extensions.map { Self.extensionsName.count + $0.utf8.count } ?? 0)
            + (subprotocol.map { Self.protocolName.count + $0.utf8.count } ?? 0) + 4
    }

    /// Writes the head into `output`, which is `byteCount` long.
    public func write(into output: UnsafeMutableRawBufferPointer) {
        let bytes = output.bindMemory(to: UInt8.self)
        var count = 0
        func append(_ part: some Collection<UInt8>) {
            count += UnsafeMutableBufferPointer(rebasing: bytes[count...]).initialize(from: part).1
        }
        append(Self.statusAndFixedHeaders)
        count += WebSocketUpgrade.writeAcceptValue(forKey: key, into: UnsafeMutableBufferPointer(rebasing: bytes[count...]))
        if let extensions {
            append(Self.extensionsName)
            append(extensions.utf8)
        }
        if let subprotocol {
            append(Self.protocolName)
            append(subprotocol.utf8)
        }
        append("\r\n\r\n".utf8)
        precondition(count == output.count, "the 101 head is byteCount long")
    }
}
