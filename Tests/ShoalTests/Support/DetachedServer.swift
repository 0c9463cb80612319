// A WebSocket server on a loop that never runs, in no cluster: enough to make connection objects
// without sockets (proxies, the lightest ones) for tests of what holds or lists them.
import Logging
@testable import Shoal
import ShoalRing

final class DetachedServer {
    let loop: EventLoop
    /// Kept: the server holds it unowned, and a proxy looks up the cluster through it.
    let web: WebServer
    let wss: WebSocketServer

    init() throws {
        loop = try EventLoop(backend: EpollBackend())
        web = WebServer(loop: loop, configuration: WebServerConfiguration(host: "127.0.0.1", port: 0),
                        logger: Logger(label: "test"))
        wss = WebSocketServer(on: web, handler: RecordingServer("t", Journal()))
    }

    /// A connection object for `id`, owned (as far as it knows) by the worker in `ownerSlot`.
    func connection(_ id: Int, ownerSlot: Int = 1) -> RemoteConnection {
        RemoteConnection(id: id, ownerSlot: ownerSlot, wss: wss)
    }

    deinit { loop.shutdown() }
}
