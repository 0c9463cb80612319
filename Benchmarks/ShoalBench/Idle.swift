// `idle`: hold N connections open and idle, spread over several 127.0.0.x source addresses (so N
// is not bounded by one address's ephemeral ports), and with --server-pid report the server's
// resident memory (VmRSS summed over its process tree) before and after, per connection.
// Kernel socket buffers are not in VmRSS: the figure is what the server process itself holds.
// The "before" reading is taken once, before the first run; start a fresh server for a fair figure.
// --warmup-message SIZE has every connection send one message and wait for the answer (an echo
// server's) before holding: state a server allocates on first use (compression's zlib streams) counts.
import ArgumentParser
import Glibc
import ShoalRing
import ShoalWire

struct Idle: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Idle connections: server memory per connection.")

    @OptionGroup var common: CommonOptions
    @Option(help: "Connections to hold.") var connections = 1000
    @Option(name: .customLong("source-addresses"),
            help: "Connect from 127.0.0.1 ... 127.0.0.K, round robin (loopback targets only; default: one per 16,000 connections, at least 4).")
    var sourceAddresses: Int?
    @Option(help: "Handshakes in flight while opening.") var concurrency = 200
    @Option(help: "Seconds to hold the connections open, idle, before the second reading.") var duration = 3.0
    @Option(name: .customLong("warmup-message"),
            help: "Each connection sends one text message of this many bytes (JSON-like; compressed with --deflate when negotiated) and waits for a reply (an echo server's) before the connections are held idle.")
    var warmupMessage: Int?

    func validate() throws {
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1") }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        if let k = sourceAddresses { guard (1...254).contains(k) else { throw ValidationError("--source-addresses must be 1...254") } }
        if let size = warmupMessage { guard size >= 0 else { throw ValidationError("--warmup-message must not be negative") } }
    }

    func run() throws {
        let limit = Connector.raiseDescriptorLimit()
        let needed = connections + 64
        guard needed <= limit else {
            throw ValidationError("--connections \(connections) needs about \(needed) file descriptors, but this process may open "
                + "only \(limit) (RLIMIT_NOFILE hard limit); raise it (ulimit -Hn, limits.conf) or lower --connections")
        }
        let k = sourceAddresses ?? max(4, (connections + 15_999) / 16_000)
        let options = UncheckedBox(self)
        // One thread: the figure is memory, read before and after a hold in which nothing happens.
        try execute(common, threads: 1, measures: [.errors], rateTitle: "", extraColumns: [
                        ("open_seconds", "open s", { fixed($0, 2) }),
                        ("server_rss_before", "server RSS before", bytesText),
                        ("server_rss_after", "server RSS after", bytesText),
                        ("server_rss_per_connection", "server RSS/conn", bytesText),
                        ("client_rss_per_connection", "bench RSS/conn", bytesText),
                    ] + (warmupMessage == nil ? [] : [("warmup_replies", "warm-up replies", grouped)])
                      + (common.deflate ? [("bench_zlib_bytes", "bench zlib", bytesText)] : [])) { setup, share in
            IdleScenario(setup, share, options.value,
                         sources: setup.target.isLoopbackIPv4 ? Connector.loopbackSources(count: k) : [])
        }
    }
}

final class IdleScenario: Scenario {
    private let options: Idle
    private let sources: [UInt32]
    private var launched = 0
    private var resolved = 0
    private var handshaking = 0
    private var openedThisRun = 0
    private var holding = false
    /// Between the start of a run and the moment every attempt has resolved.
    private var opening = false
    private var openStarted: UInt64 = 0
    private var openSeconds = 0.0
    private var serverBefore = 0
    private var clientBefore = 0
    /// The warm-up message in clear (empty without --warmup-message).
    private let warmup: [UInt8]
    /// Per tag (1...connections): a warm-up message is out and its reply not yet in.
    private var awaitingReply: [Bool]
    private var pendingReplies = 0
    private var repliesThisRun = 0
    private var run = 0
    /// Replies that did not come in time, over all runs.
    private var missingReplies = 0
    /// How long the warm-up replies may take once every connection is open.
    private static let replyTimeout: UInt64 = 10_000_000_000

    init(_ setup: BenchSetup, _ share: ThreadShare, _ options: Idle, sources: [UInt32]) {
        self.options = options
        self.sources = sources
        warmup = options.warmupMessage.map { PayloadKind.json.bytes($0) } ?? []
        awaitingReply = [Bool](repeating: false, count: options.connections + 1)
        var parameters = [
            "connections": String(options.connections), "concurrency": String(options.concurrency),
            "duration": String(options.duration),
            "source_addresses": sources.isEmpty ? "default (target is not 127.x)" : "127.0.0.1-127.0.0.\(sources.count)",
        ]
        if let size = options.warmupMessage { parameters["warmup_message"] = String(size) }
        super.init(setup, share, scenario: "idle", unit: "connections", seconds: Double(options.common.runs) * (options.duration + 1),
                   parameters: parameters)
    }

    override func start() {
        startProgress()
        beginRun()
    }

    override var progressCount: Int { report.connectionsOpened }

    override func progressText(rate: Double, open: Int, errors: Int) -> String {
        let phase = "run \(report.runs.count + 1)/\(common.runs) " + (holding ? "holding" : opening ? (pendingReplies > 0 ? "warming up" : "opening") : "closing")
        return "[idle] \(phase)  open \(live.count)/\(options.connections)  \(grouped(rate)) handshakes/s  errors \(errorTotal)"
    }

    private func serverRSS() -> Int {
        common.serverPIDs.isEmpty ? 0 : ProcessStats.residentBytes(ProcessStats.tree(common.serverPIDs))
    }

    private func beginRun() {
        launched = 0
        resolved = 0
        handshaking = 0
        openedThisRun = 0
        holding = false
        pendingReplies = 0
        repliesThisRun = 0
        run += 1
        for i in awaitingReply.indices { awaitingReply[i] = false }
        // The baseline is read once, before the first run: a server keeps some of what the previous
        // run's connections used, so every run is compared with the server as it was before any.
        if report.runs.isEmpty {
            serverBefore = serverRSS()
            clientBefore = ProcessStats.residentBytes(of: getpid())
        }
        openStarted = monotonicNanoseconds()
        opening = true
        launch()
    }

    private func launch() {
        while launched < options.connections && handshaking < options.concurrency {
            let source = sources.isEmpty ? nil : sources[launched % sources.count]
            launched += 1
            if connect(tag: launched, source: source) != nil {
                handshaking += 1
            } else {
                resolved += 1
            }
        }
        if opening && resolved == options.connections {
            if pendingReplies == 0 {
                allOpen()
            } else if !replyTimerSet {
                // Every connection is open; give the warm-up replies a while, then hold anyway.
                replyTimerSet = true
                let this = run
                loop.schedule(after: Self.replyTimeout) { [unowned self] in
                    guard self.run == this, self.opening else { return }
                    self.missingReplies += self.pendingReplies
                    self.allOpen()
                }
            }
        }
    }

    private var replyTimerSet = false

    private func allOpen() {
        replyTimerSet = false
        opening = false
        holding = true
        openSeconds = Double(monotonicNanoseconds() - openStarted) / 1e9
        beginWindow(for: options.duration) { [unowned self] in self.endRun() }
    }

    private func endRun() {
        let held = live.values.filter(\.isOpen).count
        let serverAfter = serverRSS()
        let clientAfter = ProcessStats.residentBytes(of: getpid())
        var extra = ["open_seconds": openSeconds, "client_rss_per_connection": held > 0 ? Double(clientAfter - clientBefore) / Double(held) : 0]
        if options.warmupMessage != nil { extra["warmup_replies"] = Double(repliesThisRun) }
        if !common.serverPIDs.isEmpty {
            extra["server_rss_before"] = Double(serverBefore)
            extra["server_rss_after"] = Double(serverAfter)
            extra["server_rss_per_connection"] = held > 0 ? Double(serverAfter - serverBefore) / Double(held) : 0
        }
        _ = endWindow(count: Double(held), rated: false, extra: extra)
        if held < options.connections {
            report.warnings.append("run \(report.runs.count): only \(held) of \(options.connections) connections were open at the end")
        }
        holding = false
        closeAll { [unowned self] in
            if self.report.runs.count < self.common.runs {
                // Give the server a moment to release what the closed connections held.
                self.loop.schedule(after: 500_000_000) { [unowned self] in self.beginRun() }
            } else {
                if self.missingReplies > 0 {
                    self.report.warnings.append("\(self.missingReplies) warm-up message(s) got no reply within "
                        + "\(Self.replyTimeout / 1_000_000_000) s (is the server an echo server?)")
                }
                self.finish()
            }
        }
    }

    override func connectionOpened(_ connection: ClientConnection) {
        super.connectionOpened(connection)
        handshaking -= 1
        resolved += 1
        openedThisRun += 1
        if options.warmupMessage != nil, connection.tag < awaitingReply.count {
            awaitingReply[connection.tag] = true
            pendingReplies += 1
            warmup.withUnsafeBytes { connection.send(.text, message: $0) }
        }
        launch()
    }

    override func connectionReceived(_ connection: ClientConnection, _ payload: UnsafeRawBufferPointer, binary: Bool) {
        replied(connection)
    }

    /// The warm-up message of `connection` was answered (or will never be: it closed).
    private func replied(_ connection: ClientConnection, answered: Bool = true) {
        let tag = connection.tag
        guard tag < awaitingReply.count, awaitingReply[tag] else { return }
        awaitingReply[tag] = false
        pendingReplies -= 1
        if answered { repliesThisRun += 1 }
        if opening && resolved == options.connections && pendingReplies == 0 { allOpen() }
    }

    override func connectionClosed(_ connection: ClientConnection) {
        replied(connection, answered: false)
        if !connection.handshakeDone {
            handshaking -= 1
            resolved += 1
        }
        super.connectionClosed(connection)
        if opening { launch() }
    }
}
