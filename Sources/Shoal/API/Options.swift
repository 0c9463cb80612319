// Options of a WebSocketServer, as in 4D's `WebSocketServer.new(handler; options)`.

/// The form received text messages take in `onMessage`, and what `send` sends by default.
public enum WebSocketDataType: String, Sendable, CaseIterable {
    /// Text frames arrive as `String`.
    case text
    /// Text frames arrive as bytes (4D's Blob).
    case blob
    /// Text frames are parsed as JSON and arrive as `JSONValue`; invalid JSON calls onError.
    case object
}

/// Options of one WebSocket server.
public struct WebSocketServerOptions: Sendable {
    /// The path clients connect to ("/chat"). nil: this server takes every upgrade request
    /// that no server with a path claimed.
    public var path: String?
    /// See `WebSocketDataType`. Default "text", as in 4D.
    public var dataType: WebSocketDataType
    /// Largest message accepted, summed over its fragments; larger ones close with 1009.
    /// 16 MiB by default: big enough for any chat or JSON payload, small enough that one client
    /// cannot make a worker hold gigabytes.
    public var maxMessageSize: Int
    /// How long a close handshake may take before the TCP connection is dropped (nanoseconds).
    /// 2 s: a peer that is alive answers a close frame within a round trip.
    public var closeTimeoutNanoseconds: UInt64

    public init(path: String? = nil, dataType: WebSocketDataType = .text,
                maxMessageSize: Int = 16 * 1024 * 1024, closeTimeoutNanoseconds: UInt64 = 2_000_000_000) {
        self.path = path
        self.dataType = dataType
        self.maxMessageSize = maxMessageSize
        self.closeTimeoutNanoseconds = closeTimeoutNanoseconds
    }
}
