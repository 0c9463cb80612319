// What every scenario shares: the loop and the target, opening connections, error bookkeeping,
// measurement windows (wall clock, bench CPU, server CPU), the progress line, closing everything.
// A scenario subclass opens its connections in `start()`, drives them from the ConnectionOwner
// callbacks and loop timers, appends one RunFigures per run, and calls `finish()`. With --threads
// there is one scenario per thread (its `share`), each on its own loop; ReportMerge adds them up.
import Histogram
import ShoalPosix
import ShoalRing

/// Built once per invocation: the parsed target, the loop, the handshake keys.
struct BenchSetup {
    let common: CommonOptions
    let target: Target
    let loop: EventLoop
    let keys: HandshakeKeys
    let descriptorLimit: Int
    /// Compression state and tallies with --deflate, else nil.
    let deflate: DeflateSupport?

    init(_ common: CommonOptions) throws {
        self.common = common
        descriptorLimit = Connector.raiseDescriptorLimit()
        target = try Target(url: common.url)
        var chosen = ""
        let backend = try BackendProbe.makeBackend { line in chosen = line }
        if backend.name != "io_uring" { writeStandardError("shoal-bench: \(chosen)\n") }
        loop = try EventLoop(backend: backend)
        keys = HandshakeKeys(target: target, deflate: common.deflate)
        deflate = common.deflate ? DeflateSupport() : nil
    }
}

class Scenario: ConnectionOwner {
    let loop: EventLoop
    let target: Target
    let keys: HandshakeKeys
    let common: CommonOptions
    let descriptorLimit: Int
    let deflate: DeflateSupport?
    let progress: ProgressLine
    /// Which thread this scenario runs on, and what the threads share.
    let share: ThreadShare
    var report: Report
    /// Each run's latency histogram (nil for a run without latency), for the merge over threads.
    private(set) var runLatencies: [Histogram<UInt64>?] = []
    /// Open model: latency from the actual send, next to the corrected one (nil otherwise).
    var uncorrectedLatency: Histogram<UInt64>?
    /// Completions, errors and latency per interval from the start line (the report's plots).
    var timeline: Timeline
    /// Every connection not yet closed.
    var live: [ObjectIdentifier: ClientConnection] = [:]
    private var errorCounts: [String: Int] = [:]
    private var samples: [String] = []
    /// Start of the window being measured.
    private var window: Snapshot?
    private var closeAllDone: (() -> Void)?
    private var progressLast: (wall: UInt64, count: Int)?

    /// `seconds`: how long the whole invocation should load the server (for the timeline's interval).
    init(_ setup: BenchSetup, _ share: ThreadShare, scenario: String, unit: String, seconds: Double, parameters: [String: String]) {
        self.share = share
        timeline = Timeline(start: share.epoch, seconds: seconds)
        loop = setup.loop
        target = setup.target
        keys = setup.keys
        common = setup.common
        descriptorLimit = setup.descriptorLimit
        deflate = setup.deflate
        progress = ProgressLine(forced: setup.common.progress, shown: share.index == 0)
        var parameters = parameters
        if parameters["runs"] == nil { parameters["runs"] = String(setup.common.runs) }
        parameters["threads"] = String(share.count)
        if setup.common.deflate { parameters["deflate"] = "offered" }
        report = Report(scenario: scenario, url: setup.target.url, backend: setup.loop.backend.name, unit: unit,
                        parameters: parameters, serverPids: setup.common.serverPIDs, connectionsOpened: 0, runs: [],
                        summary: [:], latency: nil, errors: [:], errorSamples: [], warnings: [])
    }

    /// Opens the scenario's connections and schedules its phases. Called before the loop runs.
    func start() {}

    /// A total that only grows (messages, deliveries, handshakes), for the progress line's rate.
    var progressCount: Int { 0 }
    /// The progress line's text, given the rate of `progressCount` over the last second and the
    /// totals over all threads.
    func progressText(rate: Double, open: Int, errors: Int) -> String { "" }

    /// "run 2/3", "warm-up" or "closing", for the progress line of a scenario that sends.
    func phaseLabel(measuring: Bool, sending: Bool) -> String {
        measuring ? "run \(report.runs.count + 1)/\(common.runs)" : (sending ? "warm-up" : "closing")
    }

    // MARK: Connections

    /// Connects (blocking, microseconds on loopback) and registers a new connection; nil when
    /// connect failed, which is counted as an error.
    /// `keys` and `deflate` replace the scenario's (a scenario file's own path, headers, offer).
    func connect(tag: Int, source: UInt32? = nil, keys: HandshakeKeys? = nil, deflate: DeflateSupport?? = nil) -> ClientConnection? {
        let started = monotonicNanoseconds()
        do {
            let fd = try Connector.connect(to: target, source: source)
            let connection = ClientConnection(fd: fd, owner: self, loop: loop, tag: tag, keys: keys ?? self.keys, startedAt: started,
                                              deflate: deflate ?? self.deflate)
            live[ObjectIdentifier(connection)] = connection
            return connection
        } catch {
            recordError(.connect, error.description)
            return nil
        }
    }

    func recordError(_ kind: FailureKind, _ detail: String) {
        errorCounts[kind.rawValue, default: 0] += 1
        timeline.recordError(at: monotonicNanoseconds())
        let sample = "\(kind.rawValue): \(detail)"
        if samples.count < 5 && !samples.contains(sample) { samples.append(sample) }
    }

    var errorTotal: Int { errorCounts.values.reduce(0, +) }

    func connectionOpened(_ connection: ClientConnection) {
        report.connectionsOpened += 1
    }

    func connectionReceived(_ connection: ClientConnection, _ payload: UnsafeRawBufferPointer, binary: Bool) {}

    func connectionFailed(_ connection: ClientConnection, _ kind: FailureKind, _ detail: String) {
        recordError(kind, detail)
    }

    func connectionClosed(_ connection: ClientConnection) {
        live.removeValue(forKey: ObjectIdentifier(connection))
        if live.isEmpty, let done = closeAllDone {
            closeAllDone = nil
            done()
        }
    }

    /// Closes every connection (closing handshake), then calls `done` once all are closed, or after
    /// a grace period in which case the rest are dropped.
    func closeAll(then done: @escaping () -> Void) {
        closeAllDone = done
        if live.isEmpty {
            closeAllDone = nil
            done()
            return
        }
        for connection in Array(live.values) { connection.close() }
        loop.schedule(after: ClientConnection.closeTimeout + 1_000_000_000) { [unowned self] in
            guard let done = self.closeAllDone else { return }
            self.closeAllDone = nil
            for connection in Array(self.live.values) { connection.abort() }
            done()
        }
    }

    // MARK: Windows

    /// Waits for the other threads at the start line (their connections resolved too) and returns
    /// the common start, from which the timeline counts.
    func arriveAtStartLine() -> UInt64 {
        let start = share.startLine.arrive()
        timeline.start = start
        return start
    }

    /// Starts a measured window and calls `end` when it is `seconds` long.
    func beginWindow(for seconds: Double, then end: @escaping () -> Void) {
        let start = Snapshot.take(serverPIDs: common.serverPIDs)
        window = start
        schedule(at: start.wall + nanoseconds(seconds), end)
    }

    /// Runs `body` at monotonic time `deadline`, not before. The loop counts a timer from the time
    /// its turn started, which a long callback (a wait at the start line) leaves behind: such a
    /// timer can fire early, or the loop sleep too long. Counted from now and checked on firing,
    /// it fires on time.
    func schedule(at deadline: UInt64, _ body: @escaping () -> Void) {
        let now = monotonicNanoseconds()
        guard now < deadline else {
            loop.schedule(after: 0, body)
            return
        }
        loop.schedule(after: deadline - now) { [unowned self] in
            if monotonicNanoseconds() < deadline { self.schedule(at: deadline, body) } else { body() }
        }
    }

    /// Ends the window begun last and turns it into a run's figures. `target` (open model) gives
    /// the messages due between the window's start and end (monotonic ns).
    func endWindow(count: Double, rated: Bool = true, latency: Histogram<UInt64>? = nil, target: ((UInt64, UInt64) -> Double)? = nil,
                   extra: [String: Double] = [:]) -> RunFigures {
        let end = Snapshot.take(serverPIDs: common.serverPIDs)
        let start = window ?? end
        var extra = extra
        if let deflate {
            // What compression costs the bench in memory: the shared codecs and every open
            // connection's own inflater (servers with context takeover).
            let held = live.values.reduce(deflate.sharedMemoryHeld) { $0 + $1.ownInflaterMemory }
            deflate.peakMemoryHeld = max(deflate.peakMemoryHeld, held)
            extra["bench_zlib_bytes"] = Double(held)
        }
        let seconds = max(Double(end.wall &- start.wall) / 1e9, 1e-9)
        let clientCPU = end.clientCPU - start.clientCPU
        let clientShare = clientCPU / seconds
        let threadCPU = end.threadCPU - start.threadCPU
        let serverCPU = end.serverCPU.flatMap { e in start.serverCPU.map { e - $0 } }
        let clientBound = rated && threadCPU / seconds >= Self.boundShare
        var figures = RunFigures(
            run: report.runs.count + 1, seconds: seconds, count: count, perSecond: rated ? count / seconds : nil,
            serverCPUSeconds: serverCPU, serverCPUShare: serverCPU.map { $0 / seconds }, perServerCPUSecond: nil,
            clientCPUSeconds: clientCPU, clientCPUShare: clientShare, clientBound: clientBound,
            latency: latency.flatMap(LatencySummary.init), extra: extra,
            perThread: [], target: target?(start.wall, end.wall), startSeconds: Double(Int64(bitPattern: start.wall &- timeline.start)) / 1e9)
        figures.perThread = [ThreadFigures(thread: share.index + 1, count: count, cpuSeconds: threadCPU, cpuShare: threadCPU / seconds,
                                           startSeconds: figures.startSeconds, seconds: seconds, target: figures.target)]
        if rated, !clientBound, let serverCPU, serverCPU > 0 { figures.perServerCPUSecond = count / serverCPU }
        report.runs.append(figures)
        runLatencies.append(latency)
        return figures
    }

    /// A thread (or the whole generator, over all threads) at this share of a core or more was the limit.
    static let boundShare = 0.9

    /// What to add up over threads in a run's `extra`: by default every figure is a sum.
    func mergedExtra(_ parts: [RunFigures]) -> [String: Double] {
        var merged: [String: Double] = [:]
        for part in parts { merged.merge(part.extra, uniquingKeysWith: +) }
        return merged
    }

    // MARK: Progress and the end

    /// Posts this thread's progress once a second until the loop stops; thread 0 prints the line.
    func startProgress() {
        guard progress.enabled else { return }
        loop.schedule(after: 1_000_000_000) { [unowned self] in
            self.share.board.post(self.share.index, .init(count: self.progressCount, open: self.live.count, errors: self.errorTotal))
            if self.progress.shown {
                let now = monotonicNanoseconds()
                let total = self.share.board.total
                var rate = 0.0
                if let last = self.progressLast, now > last.wall { rate = Double(total.count - last.count) / (Double(now - last.wall) / 1e9) }
                self.progressLast = (now, total.count)
                self.progress.show(self.progressText(rate: rate, open: total.open, errors: total.errors))
            }
            self.startProgress()
        }
    }

    /// Stops the loop; `run()` then returns and the report is printed.
    func finish() {
        report.errors = errorCounts
        report.errorSamples = samples
        if let deflate {
            report.deflate = deflate.report
            if deflate.negotiated == 0 && report.connectionsOpened > 0 {
                report.warnings.append("--deflate: the server declined permessage-deflate on every connection (none negotiated)")
            }
        }
        loop.stop()
    }
}
