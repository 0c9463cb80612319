// The entry point a program calls to serve: build the loop, listen, let the caller create its
// WebSocket servers, run until SIGINT/SIGTERM, drain, return.
public import Logging
import ShoalPosix
import ShoalRing
#if canImport(Glibc)
import Glibc
#endif

/// Running Shoal from a program.
public enum Shoal {
    /// Serves until SIGINT or SIGTERM, then closes every WebSocket with 1001 and returns once they
    /// are gone (or the drain timeout passed). `setup` creates the WebSocket servers on the worker's
    /// web server, as a 4D program calls `4D.WebSocketServer.new` once the web server runs.
    public static func run(_ configuration: WebServerConfiguration, logger: Logger,
                           setup: (WebServer) throws -> Void) throws {
        let backend: any LoopBackend
        do {
            backend = try URingBackend()
        } catch {
            logger.critical("io_uring is not available (\(error)); check kernel.io_uring_disabled and the container's seccomp profile")
            throw error
        }
        let loop = try EventLoop(backend: backend)
        let listener = try Socket.listen(host: configuration.host, port: configuration.port, reusePort: true)
        let web = WebServer(loop: loop, configuration: configuration, logger: logger)
        loop.listen(socket: listener, delegate: web)
        try setup(web)

        Signals.install([SIGINT, SIGTERM], wakeFD: loop.wakeupDescriptor)
        loop.addTurnEndHook {
            if !Signals.take().isEmpty { web.beginShutdown() }
        }
        logger.info("listening on http://\(configuration.host):\(Socket.localPort(listener)) (\(backend.name) loop)")
        try loop.run()
        Socket.close(listener)
        loop.shutdown()
        logger.info("stopped")
    }
}
