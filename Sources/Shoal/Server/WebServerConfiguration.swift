// Settings of the web server a worker runs: where it listens, what it serves, and the limits
// that keep one client from costing the others. Each default says why it is what it is.

/// Configuration of one worker's web server.
public struct WebServerConfiguration: Sendable {
    /// Address to listen on. "0.0.0.0" serves every interface, as nginx does by default.
    public var host: String
    /// TCP port; every worker listens on it with SO_REUSEPORT.
    public var port: Int
    /// Folder of static files; nil serves the bundled demo page.
    public var publicDirectory: String?
    /// Largest request head: 16 KiB, like nginx's large_client_header_buffers; no browser sends more.
    public var maxHeadSize: Int
    /// Most header fields in one request: 100, as Node caps them (ws CVE-2024-37890 came from no cap).
    public var maxHeaderCount: Int
    /// Time for a request head to arrive, and for an idle keep-alive connection to send its next
    /// request: 10 s, long enough for slow mobile links, short enough against slow-header attacks.
    public var requestTimeout: Duration
    /// After our last bytes, how long we wait for the peer to close before dropping the socket: 2 s.
    public var linger: Duration
    /// On SIGTERM/SIGINT, how long clients get to answer the 1001 close before the worker exits: 5 s.
    public var drainTimeout: Duration
    /// A worker whose loop handles no completion and runs no timer for this long is killed and
    /// replaced by the supervisor; zero turns the watchdog off. 10 s: far above any loop turn of a
    /// live worker (an idle one runs a timer every second), short enough that a hung worker's
    /// clients are not stranded for long.
    public var watchdogTimeout: Duration
    /// Worker processes; nil: automatic, one per CPU as nginx's `worker_processes auto`, or more
    /// when `clusterConnections` needs them (`WorkerSizing`).
    public var workers: Int?
    /// WebSocket connections the whole cluster is meant to hold; nil: not said. Automatic
    /// `workers` start enough workers for them, and the supervisor warns when the workers cannot.
    public var clusterConnections: Int? = nil
    /// Links this instance to others through Redis pub/sub (broadcasts reach every instance's
    /// clients); nil: this host alone. Each worker holds its own two connections (docs/cluster.md).
    public var redis: RedisOptions? = nil
    /// What /metrics names this build as (`shoal_build_info`); the program sets it.
    public var build = BuildLabels()
    /// Where every worker also answers /metrics and /healthz, and nothing else (plain HTTP, no
    /// PROXY header); nil: only on the public port.
    public var metricsListen: ListenAddress? = nil
    /// `Shoal.run` bootstraps swift-metrics in each worker so that handlers' Counters, Meters,
    /// Recorders and Timers appear in /metrics (at most `HandlerSeriesTable.capacity` series per
    /// worker). False: the program bootstraps its own factory (swift-metrics takes one per process).
    public var bootstrapsMetrics = true
    /// The most 16 KiB receive buffers each worker lends the kernel (a power of two): how many
    /// sockets can deliver data in one loop turn before some wait a turn (`-ENOBUFS`, then re-armed).
    /// Buffers are lent as bursts need them (io_uring: 64 at first, doubled when a turn runs out),
    /// so resident memory follows the busiest turn, up to 16 MiB at 1,024.
    public var receiveBuffers: Int
    /// Registry entries for the whole cluster, split evenly between 2 × workers slots (two
    /// generations overlap during a reload). 262,144 by default: 16 bytes each, 4 MiB of shared
    /// memory, only touched as connections arrive. A worker whose share is full answers 503.
    public var registryCapacity: Int
    /// WebSocket connections one worker holds at most; beyond it upgrades get 503 with Retry-After
    /// (before the 101, so the client can retry elsewhere). nil: the worker's open-files limit minus
    /// 256 for listeners, the bus and HTTP requests, so the limit answers before accept fails.
    public var maxConnections: Int?
    /// WebSocket connections one client address may hold on one worker; beyond it upgrades get
    /// 429. 8,192: far above any NAT or office gateway in practice, while one host alone cannot
    /// take a worker's descriptors (load tests from one machine spread over 127.0.0.x addresses).
    public var maxConnectionsPerAddress: Int
    /// Reverse proxies whose forwarding headers (Forwarded, X-Forwarded-For, X-Real-IP) name the
    /// client. None by default: a client could otherwise pick the address it is counted and refused as.
    public var trustedProxies: TrustedProxies
    /// Every connection starts with a PROXY protocol header (v1 or v2) naming the client; one
    /// without it is closed. Off by default: only a listener that proxies alone can reach may expect it.
    public var proxyProtocol: Bool
    /// How long the kernel keeps a new connection that has sent nothing from the workers
    /// (TCP_DEFER_ACCEPT, nginx's `listen ... deferred`); zero hands every connection over at once.
    /// 1 s by default: every client of this server speaks first (HTTP, TLS, PROXY), so a worker
    /// wakes once per connection, with its request, instead of once to accept and again to read;
    /// a silent connection holds no descriptor until then. Whole seconds (the kernel's unit).
    public var deferAccept: Duration = .seconds(1)
    /// Asked by the supervisor on SIGHUP before it starts a new generation: nil lets the reload
    /// go on, a message refuses it (logged; the running workers stay). New workers read their
    /// configuration again (`shoal serve --config`), so one that would refuse to start is caught here.
    public var reloadCheck: (@Sendable () -> String?)? = nil
    /// Serve TLS (https:// and wss://) on the listener, after the PROXY header when `proxyProtocol`
    /// is on. nil: plain http:// and ws://.
    public var tls: WebServerTLS? = nil

    public init(host: String = "0.0.0.0", port: Int = 8080, publicDirectory: String? = nil,
                maxHeadSize: Int = 16 * 1024, maxHeaderCount: Int = 100,
                requestTimeout: Duration = .seconds(10), linger: Duration = .seconds(2),
                drainTimeout: Duration = .seconds(5), watchdogTimeout: Duration = .seconds(10),
                workers: Int? = nil, registryCapacity: Int = 262_144, receiveBuffers: Int = 1024,
                maxConnections: Int? = nil, maxConnectionsPerAddress: Int = 8192,
                trustedProxies: TrustedProxies = TrustedProxies(), proxyProtocol: Bool = false) {
        self.host = host
        self.port = port
        self.publicDirectory = publicDirectory
        self.maxHeadSize = maxHeadSize
        self.maxHeaderCount = maxHeaderCount
        self.requestTimeout = requestTimeout
        self.linger = linger
        self.drainTimeout = drainTimeout
        self.watchdogTimeout = watchdogTimeout
        self.workers = workers
        self.receiveBuffers = receiveBuffers
        self.registryCapacity = registryCapacity
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.trustedProxies = trustedProxies
        self.proxyProtocol = proxyProtocol
    }

    @available(*, deprecated, renamed: "requestTimeout")
    public var requestTimeoutNanoseconds: UInt64 {
        get { requestTimeout.clampedNanoseconds } set { requestTimeout = .nanoseconds(newValue) }
    }

    @available(*, deprecated, renamed: "drainTimeout")
    public var drainTimeoutNanoseconds: UInt64 {
        get { drainTimeout.clampedNanoseconds } set { drainTimeout = .nanoseconds(newValue) }
    }
}

/// What is wrong with the WebSocket servers a setup created (`WebServer.checkSetup()`).
public struct SetupError: Error, Sendable, CustomStringConvertible {
    public let description: String
}
