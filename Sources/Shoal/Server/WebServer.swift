// A worker's web server: accepts on its listener, answers HTTP, and routes upgrade requests to
// the WebSocket servers registered on it by path (4D: WebSocket servers share the web server's port).
public import Logging
public import ShoalRing
public import ShoalTLS
public import ShoalPosix
import ShoalCluster

/// The HTTP/1.1 server one worker runs, with its WebSocket servers.
public final class WebServer: ListenerDelegate, @unchecked Sendable {
    public let loop: EventLoop
    public let configuration: WebServerConfiguration
    public let logger: Logger
    /// The TLS context every connection's handshake uses (`configuration.tls`); nil: plain.
    let tlsContext: TLSContext?
    private(set) var ids: any ConnectionIDSource = LocalConnectionIDs()
    let staticFiles: StaticFiles
    /// The client address of an accepted socket whose accept did not report it (`PeerAddress.unknown`);
    /// ShoalTesting's simulated clients, which have no socket, set their own.
    package var peerAddress: (Int32) -> String = Socket.peerAddress
    /// Set when this worker is part of a cluster.
    private(set) var cluster: ClusterLink?
    /// Every server ever created here, by index (terminated ones included, so indexes stay stable).
    private var createdServers: [WebSocketServer] = []
    /// The servers that take upgrades.
    private var servers: [WebSocketServer] = []
    private var localConnections = ConnectionsByID()
    /// Open WebSocket connections per client address (for `maxConnectionsPerAddress`).
    private var connectionsPerAddress = AddressCounts()
    /// Handshake and keep-alive deadlines of this worker's HTTP sessions.
    private(set) lazy var requestDeadlines = RequestDeadlines(web: self, timeout: configuration.requestTimeout.clampedNanoseconds)
    /// The effective `maxConnections` of this worker.
    let maxConnections: Int
    /// Open WebSocket connections of every server (for drain on shutdown).
    public private(set) var openWebSockets = 0
    private(set) var stopping = false
    /// Client input that waits while the bus is backed up (set by the cluster link; never holds alone).
    private(set) lazy var inputHold = InputHold(loop: loop)
    /// Accept failures heard of once every 10 s at most (EMFILE repeats at every retry).
    private var acceptFailures = RepeatedFailureReport()
    /// What the heap-trim timer holds instead of this object (no side table here: see TimerTarget).
    private lazy var timerTarget = TimerTarget(self)
    /// Keeps `loop` the one a WebSocket client made in a handler runs on (ClientLoops).
    private var clientLoopRegistration: ClientLoops.Registration?

    /// One plain counter per `WorkerStats.LimitEvent` (rare events: an array is fine here).
    struct LimitCounts {
        private(set) var values = [Int](repeating: 0, count: WorkerStats.LimitEvent.allCases.count)
        subscript(_ event: WorkerStats.LimitEvent) -> Int { values[event.rawValue] }
        mutating func count(_ event: WorkerStats.LimitEvent) { values[event.rawValue] += 1 }
    }
    /// What the production limits did in this worker; published to the shared segment once per
    /// turn by the cluster link, with `traffic`.
    var limits = LimitCounts()

    /// Closes by code, HTTP refusals and the latency and size histograms: recorded where each
    /// event happens, straight into this worker's block of the shared segment (a private block
    /// until `join`, which comes before any WebSocket server exists).
    private(set) var metrics: WorkerMetrics
    /// The swift-metrics series this worker's handlers record (`SegmentMetricsFactory`).
    private(set) var handlerSeries: HandlerSeriesTable
    /// Own the private block and table while there is no cluster.
    private var detachedMetrics: [AnyObject] = []

    /// What every WebSocket server of this worker moved, terminated ones included.
    var traffic: TrafficCounters {
        createdServers.reduce(TrafficCounters()) { $0 + $1.traffic }
    }

    /// A web server; alone (connection ids from a local counter) until `join` makes it a cluster worker.
    /// `tlsContext`: made from `configuration.tls` (`WebServerTLS.makeContext`), where a bad
    /// certificate stops the start.
    public init(loop: EventLoop, configuration: WebServerConfiguration, logger: Logger, tlsContext: TLSContext? = nil) {
        self.loop = loop
        self.configuration = configuration
        self.logger = logger
        let (metrics, metricsOwner) = WorkerMetrics.detached()
        let (handlerSeries, seriesOwner) = HandlerSeriesTable.detached()
        self.metrics = metrics
        self.handlerSeries = handlerSeries
        detachedMetrics = [metricsOwner, seriesOwner]
        self.tlsContext = tlsContext
        if let root = configuration.publicDirectory {
            staticFiles = StaticFiles(root: root)
            Self.report(staticFiles, folder: root, to: logger)
        } else {
            staticFiles = StaticFiles(builtIn: DemoPage.files)
        }
        // What is open already (in a worker: the bus channels to every other slot, 105 at 53 workers)
        // is not there for clients; the reserve keeps room for listeners and HTTP requests.
        maxConnections = configuration.maxConnections
            ?? max(1, ResourceLimits.openFilesLimit() - WorkerSizing.reservedDescriptors
                   - Int(ProcessSample.countOpenDescriptors()))
        scheduleHeapTrim()
        clientLoopRegistration = ClientLoops.register(loop)
    }

    /// Once a second: after a storm of clients has gone, or a burst of activity has settled, hand
    /// the memory they used back to the kernel (see HeapTrim; the loop's pooled send chunks and
    /// idle receive buffers too), so the worker's RSS returns near where it was before the storm.
    private func scheduleHeapTrim(policy: HeapTrimPolicy = HeapTrimPolicy()) {
        var policy = policy
        loop.schedule(after: 1_000_000_000) { [weak timerTarget] in
            guard let self = timerTarget?.owner else { return }
            let stormLeft = policy.sample(openSockets: self.loop.openSockets)
            if policy.sample(progress: self.loop.progress) || stormLeft {
                self.loop.releasePooledMemory()
                HeapTrim.returnFreePages()
                self.logger.debug("heap trimmed: \(self.loop.openSockets) socket(s) open, \(HeapTrim.bytesInUse >> 10) KiB in use")
            }
            self.scheduleHeapTrim(policy: policy)
        }
    }

    /// Says at start which files of the public folder will not be served, and why.
    private static func report(_ files: StaticFiles, folder: String, to logger: Logger) {
        if FileTree.resolvedFolder(folder) == nil { logger.warning("public folder \(folder) is not a readable folder: every file is 404") }
        for skipped in files.skipped {
            switch skipped.reason {
            case .fileTooLarge: logger.warning("not served (above the per-file limit): \(skipped.path)")
            case .totalTooLarge: logger.warning("not served (the public folder's byte limit is reached): \(skipped.path)")
            case .unreadable: logger.warning("not served (could not be read): \(skipped.path)")
            }
        }
        if files.truncated { logger.warning("public folder \(folder) has too many files: only the first ones are served") }
        logger.debug("public folder \(folder): \(files.totalBytes) bytes in memory")
    }

    /// Makes this web server a worker of a cluster: shared ids, registry, statistics and the bus.
    func join(_ node: WorkerNode) {
        let link = ClusterLink(node: node, web: self)
        cluster = link
        metrics = node.segment.metrics(slot: node.role.slot)
        handlerSeries = node.segment.handlerSeries(slot: node.role.slot)
        detachedMetrics = []
        ids = link
        link.start()
    }

    /// The WebSocket servers currently taking upgrades.
    public var webSocketServers: [WebSocketServer] { servers }

    public func accepted(socket fd: Int32, peer: PeerAddress, on loop: EventLoop) -> (any SocketDelegate)? {
        HTTPSession(web: self, fd: fd, peer: peer)
    }

    /// The index the next server created here gets.
    var nextServerIndex: Int { createdServers.count }

    /// Registers a new server, unless another one already takes its path: then the new one never
    /// gets a client, and `checkSetup()` says so.
    func add(_ server: WebSocketServer) {
        createdServers.append(server)
        cluster?.serverAdded(server)
        if let first = servers.first(where: { $0.path == server.path }) {
            setupProblems.append(
                "WebSocket servers \(first.index) and \(server.index) both take \(server.path.map { "path \($0)" } ?? "every path"):"
                    + " the second would never get a client")
            return
        }
        servers.append(server)
    }

    /// What is wrong with the servers the setup created (`checkSetup()`).
    private var setupProblems: [String] = []
    /// `checkSetup()` passed: the cluster's terminated flags are those of this worker's servers.
    private(set) var setupChecked = false

    /// Checks the servers the program's setup created: no two on one path, and in a cluster the same
    /// servers in the same order as the other workers of this generation (each worker runs the setup;
    /// the bus and the registry name a server by its creation index). `Shoal.run` calls it after
    /// setup and stops the worker with this error.
    public func checkSetup() throws(SetupError) {
        if let problem = setupProblems.first { throw SetupError(description: problem) }
        guard let cluster else {
            setupChecked = true
            return
        }
        let list = createdServers.map { "\($0.index) \($0.path ?? "*") \($0.dataType.rawValue)" }
        guard cluster.node.segment.servers.agreesOnSetup(ServerTable.signature(of: list), generation: cluster.node.role.generation) else {
            throw SetupError(description: "this worker created other WebSocket servers, or in another order, than the"
                             + " first worker (\(list.joined(separator: ", "))): the setup closure must create the same"
                             + " servers in the same order in every worker")
        }
        setupChecked = true
        for server in createdServers { server.terminateIfTerminatedElsewhere() }
    }

    func remove(_ server: WebSocketServer) {
        servers.removeAll { $0 === server }
    }

    func server(index: Int) -> WebSocketServer? {
        index >= 0 && index < createdServers.count ? createdServers[index] : nil
    }

    /// The server for an upgrade on `path`: the one registered with exactly that path, else one
    /// registered without a path.
    func server(forPath path: String) -> WebSocketServer? {
        servers.first { $0.path == path } ?? servers.first { $0.path == nil }
    }

    /// A server for `path` that was terminated (routing of upgrades that arrive during a stop).
    func stoppedServer(forPath path: String) -> WebSocketServer? {
        createdServers.first { $0.terminated && ($0.path == path || $0.path == nil) }
    }

    func hasWebSocketServer(exactly path: String) -> Bool {
        servers.contains { $0.path == path }
    }

    func localConnection(id: Int) -> WebSocketConnection? {
        localConnections.connection(id: id)
    }

    /// Why a new WebSocket from `address` must be refused before its upgrade, or nil to admit it.
    func admissionRefusal(address: String)
        -> (status: Int, event: WorkerStats.LimitEvent, code: WebSocketErrorCode, reason: String)? {
        if openWebSockets >= maxConnections {
            return (503, .rejectedCapacity, .workerFull, "This worker holds its maximum of \(maxConnections) connections")
        }
        if connectionsPerAddress.connections(from: address) >= configuration.maxConnectionsPerAddress {
            return (429, .rejectedPerAddress, .tooManyFromAddress,
                    "Too many connections from \(address) (at most \(configuration.maxConnectionsPerAddress) per worker)")
        }
        return nil
    }

    /// Counts a new WebSocket connection from client address `address`.
    func connectionStarted(_ connection: WebSocketConnection, address: String) {
        openWebSockets += 1
        localConnections.insert(connection)
        connection.addressIndex = connectionsPerAddress.add(address)
    }

    func connectionEnded(_ connection: WebSocketConnection) {
        openWebSockets -= 1
        localConnections.remove(id: connection.id)
        connectionsPerAddress.remove(connection.addressIndex)
    }

    /// A web-server-level error (no server of its own: a 404 upgrade, a 408, a listener failure)
    /// reaches the onError of every server taking upgrades.
    func reportToEveryServer(_ code: WebSocketErrorCode, status: Int?, message: String) {
        for server in servers { server.reportError(code, status: status, message: message) }
    }

    public func acceptFailed(error: Int32, on loop: EventLoop) {
        guard let unreported = acceptFailures.failed(now: loop.now) else { return }
        var message = SystemError("accept", errno: error).description
        if unreported > 0 { message += " (and \(unreported) more times since the last report)" }
        logger.error("\(message)")
        reportToEveryServer(.listenerFailed, status: nil, message: message)
    }

    /// Graceful stop: no new connections, close 1001 to every client, then `loop.stop()` once they
    /// are gone or the drain timeout passed.
    public func beginShutdown() {
        guard !stopping else { return }
        stopping = true
        cluster?.node.stats.accepting = false
        logger.info("stopping: closing \(openWebSockets) WebSocket connection(s) with 1001")
        loop.stopAccepting()
        // Local only: on stop or reload every worker drains its own clients; terminating the servers
        // cluster-wide would also close the clients of a new generation during a reload.
        for server in servers { server.terminateLocally() }
        let deadline = loop.deadline(after: configuration.drainTimeout.clampedNanoseconds)
        loop.addTurnEndHook { [unowned self] in
            if self.openWebSockets == 0 || self.loop.now >= deadline { self.loop.stop() }
        }
        if openWebSockets == 0 { loop.stop() }
    }
}
