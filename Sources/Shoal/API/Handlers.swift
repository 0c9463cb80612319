// The two handler protocols of the 4D API. Only onConnection and onMessage are required;
// the extensions give the others empty defaults, as 4D treats them as optional.

/// 4D's WSSHandler: server-level callbacks. Called on the worker's loop thread.
public protocol WebSocketServerHandler: AnyObject {
    /// A client finished its opening handshake (before the 101 is sent). Return a connection
    /// handler to accept it, or nil to refuse it with 403.
    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)?
    /// The server started.
    func onOpen(_ wss: WebSocketServer, _ event: WebSocketServerEvent)
    /// The server was terminated (or the web server under it stopped).
    func onTerminate(_ wss: WebSocketServer, _ event: WebSocketServerEvent)
    /// An error happened at server level (a refused handshake, for instance).
    func onError(_ wss: WebSocketServer, _ event: WebSocketServerErrorEvent)
}

extension WebSocketServerHandler {
    public func onOpen(_ wss: WebSocketServer, _ event: WebSocketServerEvent) {}
    public func onTerminate(_ wss: WebSocketServer, _ event: WebSocketServerEvent) {}
    public func onError(_ wss: WebSocketServer, _ event: WebSocketServerErrorEvent) {}
}

/// 4D's connectionHandler: per-connection callbacks. Called on the worker's loop thread,
/// never concurrently for one worker.
public protocol WebSocketConnectionHandler: AnyObject {
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent)
    /// Every received message first arrives here as bytes in place (valid only during the call). The
    /// default calls `ws.deliver(message, to: self)`: onMessage with the message in the server's
    /// `dataType`. A handler that forwards or inspects bytes overrides it and saves the copy into a
    /// String or [UInt8] (an allocation per message beyond 15 bytes of text). Shoal's addition to 4D.
    func onMessageView(_ ws: WebSocketConnection, _ message: WebSocketMessageView)
    func onOpen(_ ws: WebSocketConnection, _ event: WebSocketOpenEvent)
    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent)
    func onError(_ ws: WebSocketConnection, _ event: WebSocketErrorEvent)
    /// The connection's send queue, which had grown large (64 KiB or more, see `bufferedAmount`),
    /// is empty again: a producer that paused on backpressure can resume. Shoal's addition to 4D.
    func onDrain(_ ws: WebSocketConnection, _ event: WebSocketDrainEvent)
}

extension WebSocketConnectionHandler {
    public func onMessageView(_ ws: WebSocketConnection, _ message: WebSocketMessageView) {
        ws.deliver(message, to: self)
    }
    public func onOpen(_ ws: WebSocketConnection, _ event: WebSocketOpenEvent) {}
    public func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {}
    public func onError(_ ws: WebSocketConnection, _ event: WebSocketErrorEvent) {}
    public func onDrain(_ ws: WebSocketConnection, _ event: WebSocketDrainEvent) {}
}
