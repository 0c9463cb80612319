// The entry point a program calls to serve. Started by hand it becomes the supervisor, which
// spawns workers by re-running the same executable; started by the supervisor it is a worker:
// it builds its loop on the inherited listener, lets the program create its WebSocket servers,
// and runs until SIGINT/SIGTERM.
import CoreMetrics
public import Logging
import ShoalCluster
import ShoalPosix
import ShoalRing
import ShoalTLS
#if canImport(Glibc)
import Glibc
#endif

/// Running Shoal from a program.
public enum Shoal {
    /// Serves until SIGINT or SIGTERM with `configuration.workers` worker processes (one per CPU by
    /// default). `setup` runs in every worker and creates the WebSocket servers on the worker's web
    /// server, as a 4D program calls `4D.WebSocketServer.new` once the web server runs; it must
    /// create the same servers in the same order in every worker.
    ///
    /// Returns when the cluster has stopped (in the supervisor) and when this worker has drained
    /// (in a worker): the caller simply exits.
    public static func run(_ configuration: WebServerConfiguration, logger: Logger,
                           setup: (WebServer) throws -> Void) throws {
        if let role = WorkerRole.fromEnvironment(environment()) {
            var workerLogger = logger
            workerLogger[metadataKey: "worker"] = "\(role.slot)"
            try runWorker(role: role, configuration, logger: workerLogger, setup: setup)
        } else {
            let sizing = WorkerSizing(
                cpus: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), openFilesLimit: ResourceLimits.raiseOpenFilesToHardLimit(),
                registryCapacity: configuration.registryCapacity, maxConnectionsPerWorker: configuration.maxConnections,
                clusterConnections: configuration.clusterConnections)
            let workers = configuration.workers ?? sizing.automaticWorkers
            logger.info("supervisor: \(workers) workers, each holding up to \(sizing.capacityPerWorker(workers: workers)) connections")
            for warning in sizing.warnings(workers: workers) { logger.warning("supervisor: \(warning)") }
            var supervision = Supervisor.Configuration(
                workers: workers, host: configuration.host, port: configuration.port,
                registryCapacity: configuration.registryCapacity,
                drainTimeoutSeconds: Double(configuration.drainTimeout.clampedNanoseconds) / 1e9,
                watchdogTimeoutSeconds: Double(configuration.watchdogTimeout.clampedNanoseconds) / 1e9,
                reloadCheck: configuration.reloadCheck)
            if let tls = configuration.tls {
                // Here, not in each worker: a file that does not load stops the start once,
                // instead of workers that fail and are restarted.
                _ = try tls.makeContext()
                WebServerTLS.publishTicketSecret()
                // A renewed certificate that does not load must not replace workers that serve.
                let configurationCheck = configuration.reloadCheck
                supervision.reloadCheck = {
                    if let problem = configurationCheck?() { return problem }
                    do throws(TLSError) {
                        _ = try tls.makeContext()
                        return nil
                    } catch {
                        return "\(error)"
                    }
                }
            }
            supervision.operatorAddress = configuration.metricsListen.map { ($0.host, $0.port) }
            // The kernel counts whole seconds: a fraction rounds up, so a deferral asked for is never off.
            let (seconds, attoseconds) = configuration.deferAccept.components
            let whole = max(0, Int32(clamping: seconds))
            supervision.deferAcceptSeconds = attoseconds > 0 && whole < .max ? whole + 1 : whole
            let supervisor = try Supervisor(configuration: supervision, logger: logger)
            _ = try supervisor.run()
        }
    }

    private static func runWorker(role: WorkerRole, _ configuration: WebServerConfiguration, logger: Logger,
                                  setup: (WebServer) throws -> Void) throws {
        let node = try WorkerNode.attach(role: role)
        var tlsContext: TLSContext?
        if let tls = configuration.tls {
            do throws(TLSError) {
                tlsContext = try tls.makeContext(tickets: try tls.ticketKeys(environment: environment()))
            } catch {
                logger.critical("TLS: \(error)")
                throw error
            }
            logger.info("\(KernelTLS.probe())")
        }
        try serve(listener: node.listener, configuration, logger: logger, node: node, tlsContext: tlsContext, setup: setup)
    }

    private static func serve(listener: Int32, _ configuration: WebServerConfiguration, logger: Logger,
                              node: WorkerNode?, tlsContext: TLSContext?, setup: (WebServer) throws -> Void) throws {
        let backend = try BackendProbe.makeBackend(receiveBuffers: configuration.receiveBuffers) { logger.notice("\($0)") }
        let loop = try EventLoop(backend: backend)
        let web = WebServer(loop: loop, configuration: configuration, logger: logger, tlsContext: tlsContext)
        if let node {
            web.join(node)
            if configuration.bootstrapsMetrics {
                web.handlerSeries.resetGauges()
                MetricsSystem.bootstrap(SegmentMetricsFactory(table: web.handlerSeries, metrics: web.metrics))
            }
        }
        Signals.install([SIGINT, SIGTERM], wakeFD: loop.wakeupDescriptor)
        loop.addTurnEndHook {
            if !Signals.take().isEmpty { web.beginShutdown() }
        }
        try setup(web)
        do {
            try web.checkSetup()
        } catch {
            logger.critical("setup refused: \(error)")
            throw error
        }
        loop.listen(socket: listener, delegate: web)
        if let node, let address = configuration.metricsListen {
            loop.listen(socket: node.operatorListener, delegate: OperatorListener(web: web))
            logger.info("/metrics and /healthz also on http://\(address)")
        }
        node?.stats.accepting = true
        logger.info("listening on \(tlsContext == nil ? "http" : "https")://\(configuration.host):\(Socket.localPort(listener)) (\(backend.name) loop, pid \(getpid()))")
        try loop.run()
        loop.shutdown()
        logger.info("stopped")
    }

    /// The event loop backend a worker would run on this host, and why: the line `serve` logs at
    /// start ("event loop backend: io_uring", or epoll with the reason io_uring was refused). Sets
    /// up a small backend and shuts it down again.
    public static func probeLoopBackend() -> String {
        var line = ""
        do {
            let backend = try BackendProbe.makeBackend(receiveBuffers: 16) { line = $0 }
            backend.shutdown()
        } catch {
            return "event loop backend: none: \(error)"
        }
        return line
    }

    private static func environment() -> [String: String] {
        var result: [String: String] = [:]
        for entry in Spawn.currentEnvironment() {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            result[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        return result
    }
}
