// 4D's connectionHandler of the client class (`4D.WebSocket.new(url; connectionHandler)`): the
// callbacks, each optional as in 4D, plus the request headers and the data type it may declare.

/// The callbacks and settings of a `WebSocket` client. Called on the client's loop thread.
public protocol WebSocketHandler: AnyObject {
    /// The form of `event.data` in onMessage for text messages (4D: `dataType`, "text" by default):
    /// `.text` gives a String, `.blob` the bytes, `.object` the parsed JSON. Binary messages are `.blob`.
    var dataType: WebSocketDataType { get }
    /// Extra headers of the opening request (4D: `headers`), such as a cookie or an authorization
    /// token. Sec-WebSocket-Protocol offers subprotocols; the handshake's own headers may not be set.
    var headers: [String: String] { get }
    /// For wss:// URLs: a PEM file of the certificates to trust instead of the system's (a private
    /// CA, a test certificate). Shoal's addition; nil (the default) uses the system's trust store.
    var trustedCertificatesPath: String? { get }
    /// The connection is open (the server accepted the handshake).
    func onOpen(_ ws: WebSocket, _ event: WebSocketOpenEvent)
    /// A message arrived.
    func onMessage(_ ws: WebSocket, _ event: WebSocketMessageEvent)
    /// Something failed: a bad URL, a connection that could not be made, a refused handshake, a
    /// protocol error of the server (`event.errors[0].errCode`: `WebSocketClientErrorCode` or the close code).
    func onError(_ ws: WebSocket, _ event: WebSocketErrorEvent)
    /// The connection ended: `event.code` is the server's close code (1005 without one, 1006 when
    /// the connection failed or never opened). The last callback.
    func onTerminate(_ ws: WebSocket, _ event: WebSocketTerminateEvent)
}

extension WebSocketHandler {
    public var dataType: WebSocketDataType { .text }
    public var headers: [String: String] { [:] }
    public var trustedCertificatesPath: String? { nil }
    public func onOpen(_ ws: WebSocket, _ event: WebSocketOpenEvent) {}
    public func onMessage(_ ws: WebSocket, _ event: WebSocketMessageEvent) {}
    public func onError(_ ws: WebSocket, _ event: WebSocketErrorEvent) {}
    public func onTerminate(_ ws: WebSocket, _ event: WebSocketTerminateEvent) {}
}
