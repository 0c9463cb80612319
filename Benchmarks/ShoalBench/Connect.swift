// `connect`: opening handshakes per second. C attempts are kept in flight; each one is a TCP
// connect (blocking, on the loop thread: microseconds on loopback), the upgrade request, and the
// validated 101. With --close-immediately every connection then runs the closing handshake at once;
// without it connections are held until the end of the run (or until --max-open), so the run also
// measures how the server copes with a growing number of clients.
import ArgumentParser
import Histogram
import ShoalRing

struct Connect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Handshakes per second and handshake latency.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var threading: ThreadOptions
    @Option(help: "Handshakes in flight at once (over all threads).") var concurrency = 50
    @Flag(name: .customLong("close-immediately"), help: "Close each connection (closing handshake) as soon as it opened.")
    var closeImmediately = false
    @Option(name: .customLong("max-open"), help: "Without --close-immediately: stop a run once this many are open, over all threads (default: the descriptor limit less 64).")
    var maxOpen: Int?
    @Option(help: "Seconds per measured run.") var duration = 5.0
    @Option(help: "Seconds of load before the first run, not measured (with --close-immediately only).") var warmup = 1.0

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
    }

    func run() throws {
        let limit = Connector.raiseDescriptorLimit()
        let cap = min(maxOpen ?? Int.max, limit - 64)
        guard cap >= concurrency else {
            throw ValidationError("--concurrency \(concurrency) exceeds what RLIMIT_NOFILE (\(limit)) or --max-open allows")
        }
        let options = UncheckedBox(self)
        try execute(common, threads: threading.count(for: concurrency), rateTitle: "handshakes/s",
                    extraColumns: closeImmediately ? [] : [("held_open", "held open", grouped)]) { setup, share in
            ConnectScenario(setup, share, options.value, cap: cap)
        }
    }
}

final class ConnectScenario: Scenario {
    private let options: Connect
    /// This thread's shares of --concurrency and of the cap on open connections.
    private let concurrency: Int
    private let cap: Int
    private var nextTag = 0
    /// Connections whose handshake is not finished.
    private var handshaking = 0
    private var launching = false
    private var measuring = false
    private var run = 0
    private var handshakes = 0
    private var totalHandshakes = 0
    private var consecutiveConnectFailures = 0
    private var retryScheduled = false
    private var histogram = makeLatencyHistogram()

    init(_ setup: BenchSetup, _ share: ThreadShare, _ options: Connect, cap: Int) {
        self.options = options
        concurrency = share.numbers(of: options.concurrency).count
        self.cap = share.numbers(of: cap).count
        var parameters = [
            "concurrency": String(options.concurrency), "close_immediately": String(options.closeImmediately),
            "duration": String(options.duration),
        ]
        if options.closeImmediately { parameters["warmup"] = String(options.warmup) } else { parameters["max_open"] = String(cap) }
        super.init(setup, share, scenario: "connect", unit: "handshakes",
                   seconds: (options.closeImmediately ? options.warmup : 0) + Double(options.common.runs) * options.duration, parameters: parameters)
    }

    override func start() {
        _ = arriveAtStartLine()
        startProgress()
        if options.closeImmediately && options.warmup > 0 {
            launching = true
            launch()
            schedule(at: monotonicNanoseconds() + nanoseconds(options.warmup)) { [unowned self] in self.beginRun() }
        } else {
            beginRun()
        }
    }

    override var progressCount: Int { totalHandshakes }

    override func progressText(rate: Double, open: Int, errors: Int) -> String {
        let phase = measuring ? "run \(report.runs.count + 1)/\(common.runs)" : (launching ? "warm-up" : "closing")
        return "[connect] \(phase)  \(grouped(rate)) handshakes/s  open \(open)  errors \(errors)"
    }

    /// Starts attempts until `concurrency` are in flight (and, holding connections, until the cap).
    private func launch() {
        while launching && handshaking < concurrency && (options.closeImmediately || live.count < cap) {
            if connect(tag: nextTag) != nil {
                nextTag &+= 1
                handshaking += 1
                consecutiveConnectFailures = 0
            } else {
                // Refused or out of ports: try again shortly rather than spin.
                consecutiveConnectFailures += 1
                if !retryScheduled {
                    retryScheduled = true
                    loop.schedule(after: 10_000_000) { [unowned self] in
                        self.retryScheduled = false
                        self.launch()
                    }
                }
                return
            }
        }
        if launching && !options.closeImmediately && live.count >= cap && measuring {
            report.warnings.append("run \(report.runs.count + 1) ended early: \(cap) connections open on a thread (its share of --max-open / the descriptor limit)")
            endRun(run)
        }
    }

    private func beginRun() {
        run += 1
        histogram.reset()
        handshakes = 0
        measuring = true
        launching = true
        let this = run
        beginWindow(for: options.duration) { [unowned self] in self.endRun(this) }
        launch()
    }

    private func endRun(_ which: Int) {
        guard measuring, which == run else { return }
        measuring = false
        _ = endWindow(count: Double(handshakes), latency: histogram,
                      extra: options.closeImmediately ? [:] : ["held_open": Double(live.count)])
        let more = report.runs.count < common.runs
        if options.closeImmediately && more {
            beginRun()
            return
        }
        launching = false
        closeAll { [unowned self] in
            if more {
                self.beginRun()
            } else {
                self.finish()
            }
        }
    }

    override func connectionOpened(_ connection: ClientConnection) {
        super.connectionOpened(connection)
        handshaking -= 1
        totalHandshakes += 1
        let now = monotonicNanoseconds()
        timeline.record(latency: now &- connection.startedAt, at: now)
        if measuring {
            handshakes += 1
            _ = histogram.record(now &- connection.startedAt)
        }
        if options.closeImmediately || !launching { connection.close() }
        launch()
    }

    override func connectionClosed(_ connection: ClientConnection) {
        if !connection.handshakeDone { handshaking -= 1 }
        super.connectionClosed(connection)
        launch()
    }
}
