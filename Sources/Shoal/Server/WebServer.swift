// A worker's web server: accepts on its listener, answers HTTP, and routes upgrade requests to
// the WebSocket servers registered on it by path (4D: WebSocket servers share the web server's port).
public import Logging
public import ShoalRing

/// The HTTP/1.1 server one worker runs, with its WebSocket servers.
public final class WebServer: ListenerDelegate, @unchecked Sendable {
    public let loop: EventLoop
    public let configuration: WebServerConfiguration
    public let logger: Logger
    let ids: any ConnectionIDSource
    let staticFiles: StaticFiles?
    private var servers: [WebSocketServer] = []
    /// Open WebSocket connections of every server (for drain on shutdown).
    public private(set) var openWebSockets = 0
    private var stopping = false

    public init(loop: EventLoop, configuration: WebServerConfiguration, logger: Logger,
                ids: any ConnectionIDSource = LocalConnectionIDs()) {
        self.loop = loop
        self.configuration = configuration
        self.logger = logger
        self.ids = ids
        let root = configuration.publicDirectory ?? BundledResources.publicDirectory
        staticFiles = root.map(StaticFiles.init(root:))
    }

    /// The WebSocket servers currently registered.
    public var webSocketServers: [WebSocketServer] { servers }

    public func accepted(socket fd: Int32, on loop: EventLoop) -> (any SocketDelegate)? {
        stopping ? nil : HTTPSession(web: self, fd: fd)
    }

    func add(_ server: WebSocketServer) {
        servers.append(server)
    }

    func remove(_ server: WebSocketServer) {
        servers.removeAll { $0 === server }
    }

    /// The server for an upgrade on `path`: the one registered with exactly that path, else one
    /// registered without a path.
    func server(forPath path: String) -> WebSocketServer? {
        servers.first { $0.path == path } ?? servers.first { $0.path == nil }
    }

    func hasWebSocketServer(exactly path: String) -> Bool {
        servers.contains { $0.path == path }
    }

    func connectionStarted(_ connection: WebSocketConnection) {
        openWebSockets += 1
    }

    func connectionEnded(_ connection: WebSocketConnection) {
        openWebSockets -= 1
    }

    /// Graceful stop: no new connections, close 1001 to every client, then `loop.stop()` once they
    /// are gone or the drain timeout passed.
    public func beginShutdown() {
        guard !stopping else { return }
        stopping = true
        logger.info("stopping: closing \(openWebSockets) WebSocket connection(s) with 1001")
        loop.stopAccepting()
        for server in servers { server.terminate() }
        let deadline = loop.now &+ configuration.drainTimeoutNanoseconds
        loop.addTurnEndHook { [unowned self] in
            if self.openWebSockets == 0 || self.loop.now >= deadline { self.loop.stop() }
        }
        if openWebSockets == 0 { loop.stop() }
    }
}
