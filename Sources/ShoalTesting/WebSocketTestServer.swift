// A web server with its WebSocket servers on a loop whose "kernel" is in memory (MemoryBackend):
// handlers run exactly as in a worker, on the test's thread, with no socket and no process.
// In the spirit of SwiftNIO's EmbeddedChannel: the test acts, `settle()` runs the loop until
// nothing is left to do, then the test looks at what each simulated client received.
public import Logging
public import Shoal
import ShoalPosix
import ShoalRing

/// Runs a `WebServer` for tests: create servers in `setup`, open `SimulatedClient`s, act, `settle()`.
///
/// Everything happens on the calling thread, inside `settle()` (and `connect`, which settles). A
/// handler that sends from a `Task` hands the send to the loop: it runs at the next `settle()`.
/// Time is the real clock: timeouts (idle, close handshake) behave as in production, so tests of
/// them wait for real; simulated clients answer close frames and pings at once, as browsers do.
public final class WebSocketTestServer {
    public let web: WebServer
    public let loop: EventLoop
    let backend: MemoryBackend
    private var clients: [SimulatedClient] = []
    private var stopRequested = false

    /// A web server whose `setup` creates the WebSocket servers (as `Shoal.run`'s setup does);
    /// throws what `setup` or `web.checkSetup()` throws.
    public init(configuration: WebServerConfiguration = WebServerConfiguration(host: "127.0.0.1", port: 0),
                setup: (WebServer) throws -> Void) throws {
        backend = MemoryBackend()
        loop = try EventLoop(backend: backend)
        web = WebServer(loop: loop, configuration: configuration, logger: Logger(label: "shoal-testing"))
        backend.whenIdle = { [unowned self] in
            guard !self.stopRequested else { return }
            self.stopRequested = true
            self.loop.stop()
        }
        try setup(web)
        try web.checkSetup()
        settle()
    }

    deinit {
        loop.shutdown()
    }

    /// The WebSocket servers taking upgrades, in creation order.
    public var servers: [WebSocketServer] { web.webSocketServers }

    /// Opens a simulated client: its upgrade request for `path` (with `headers` added, from
    /// `remoteAddress`) is answered before this returns; see `SimulatedClient.status`.
    public func connect(_ path: String = "/", headers: [(String, String)] = [],
                        remoteAddress: String = "127.0.0.1") -> SimulatedClient {
        let socket = backend.makeSocket()
        let client = SimulatedClient(socket: socket, server: self)
        clients.append(client)
        let addresses = web.peerAddress
        web.peerAddress = { $0 == socket ? remoteAddress : addresses($0) }
        if let delegate = web.accepted(socket: socket, peer: .unknown, on: loop) {
            loop.register(socket: socket, delegate: delegate)
        }
        client.sendRaw(SimulatedClient.upgradeRequest(path: path, headers: headers))
        settle()
        return client
    }

    /// Runs the loop until nothing is left to do: every byte delivered, every send taken, every task
    /// handed to the loop run, and each client's automatic answers (close, pong) exchanged.
    public func settle() {
        for _ in 0..<100_000 {
            backend.resetActivity()
            stopRequested = false
            try? loop.run()
            var clientsActed = false
            for client in clients where client.takeIncoming() { clientsActed = true }
            if backend.activity == 0 && !clientsActed { return }
        }
        preconditionFailure("WebSocketTestServer.settle(): the loop never went idle")
    }

    func deliver(_ bytes: [UInt8], from socket: Int32) { backend.peerSent(bytes, on: socket) }
    func end(_ socket: Int32) { backend.peerClosed(socket) }
    func sent(on socket: Int32) -> [UInt8] { backend.takeSent(on: socket) }
}
