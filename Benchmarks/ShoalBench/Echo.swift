// `echo`: N connections against an echo server, every echoed message timed. Closed model (the
// default): each connection keeps K messages in flight, each echo immediately replaced by a new
// message. Open model (--rate, --stages): messages are due at a fixed rate whatever the server does,
// and latency runs from each message's *intended* send time, so a stalled server shows in the
// percentiles (coordinated-omission correction, as wrk2 does). Send times live in a fixed ring per
// connection (echoes come back in order), so the hot path allocates nothing.
import ArgumentParser
import Histogram
import ShoalRing
import ShoalWire

struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Echo round trips: messages per second and round-trip latency.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var threading: ThreadOptions
    @Option(help: "Connections.") var connections = 100
    @Option(help: "Payload bytes per message.") var size = 16
    @Flag(help: "Binary messages (default: text).") var binary = false
    @Option(help: "Payload: letters (a-z repeated) or json (JSON-like records; compresses like real JSON).")
    var payload = PayloadKind.letters
    @Option(name: .customLong("in-flight"),
            help: "Messages in flight per connection: the pipelining depth (closed model, default 1), or the most a connection may have outstanding before due messages wait (open model, default 64).")
    var inFlight: Int?
    @Option(help: "Seconds per measured run.") var duration = 5.0
    @Option(help: "Seconds of load before the first run, not measured.") var warmup = 2.0
    @Option(help: "Open model: messages per second in total, spread evenly over the connections and over time; latency from each message's intended send time.")
    var rate: Double?
    @Option(help: "Open model with ramps: DURATION:RATE,... (such as 10s:1000,30s:5000,10s:0), each stage ramping linearly from the previous rate (0 at first); one measured run over the whole plan, no warm-up.")
    var stages: String?
    @Option(name: .customLong("source-addresses"),
            help: "Connect from 127.0.0.1 ... 127.0.0.K, connection g from address g mod K (loopback targets only; default: one per 16,000 connections above 16,000, else the kernel's choice).")
    var sourceAddresses: Int?
    @Option(name: .customLong("connect-rate"), help: "Open the connections at this many per second (default: all at once); the measurement starts once all are open.")
    var connectRate: Double?

    /// Above this many connections, connect from several 127.0.0.x source addresses (loopback targets).
    static let connectionsPerSource = 16_000

    func validate() throws {
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1") }
        guard size >= 0 else { throw ValidationError("--size must not be negative") }
        if let inFlight { guard inFlight >= 1 else { throw ValidationError("--in-flight must be at least 1") } }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        if let rate { guard rate > 0, rate.isFinite else { throw ValidationError("--rate must be a positive number of messages per second") } }
        guard rate == nil || stages == nil else { throw ValidationError("--rate and --stages exclude each other (a flat rate is one stage)") }
        if let connectRate { guard connectRate > 0, connectRate.isFinite else { throw ValidationError("--connect-rate must be positive") } }
        if let k = sourceAddresses { guard (1...254).contains(k) else { throw ValidationError("--source-addresses must be 1...254") } }
        _ = try plan()
    }

    /// The open model's plan over the whole invocation (warm-up and every run for --rate), nil in the closed model.
    func plan() throws -> RatePlan? {
        if let stages {
            do throws(RatePlan.ParseError) { return try RatePlan(stages: stages) } catch { throw ValidationError("--stages: \(error)") }
        }
        // A second past the last run: sending stops when it ends, the plan must not stop first.
        return rate.map { RatePlan(rate: $0, seconds: warmup + Double(common.runs) * duration + 1) }
    }

    func run() throws {
        let limit = Connector.raiseDescriptorLimit()
        guard connections + 64 <= limit else {
            throw ValidationError("--connections \(connections) needs more descriptors than RLIMIT_NOFILE allows (\(limit))")
        }
        let options = UncheckedBox(self)
        let plan = try plan()
        try execute(common, threads: threading.count(for: connections), measures: plan == nil ? [.latency, .errors] : [.latency, .errors, .rate],
                    rateTitle: "msgs/s") { setup, share in
            EchoScenario(setup, share, options.value, plan: plan)
        }
    }
}

final class EchoScenario: Scenario {
    private let options: Echo
    /// Copies of the options read per message (ArgumentParser's property wrappers are slow to read).
    private let size: Int
    private let inFlight: Int
    private let opcode: Opcode
    /// The global numbers of this thread's connections; local tag i is connection numbers[i].
    private let numbers: [Int]
    private let sources: [UInt32]
    /// The payload every message carries, in clear (text: ASCII letters, so valid UTF-8).
    private let template: UnsafeMutableRawBufferPointer
    /// connections × inFlight send times; connection c uses [c*K, (c+1)*K) as a ring. Open model:
    /// the intended send times; `sentActually` the real ones.
    private let sentAt: UnsafeMutablePointer<UInt64>
    private let sentActually: UnsafeMutablePointer<UInt64>
    private let ringHead: UnsafeMutablePointer<Int>
    private let ringCount: UnsafeMutablePointer<Int>
    /// Open model: this thread's share of the plan, and per connection the messages that came due
    /// while K were outstanding (they go out as echoes return, still timed from when they were due).
    private let plan: RatePlan?
    private let deferred: UnsafeMutablePointer<Int>
    private let firstDeferred: UnsafeMutablePointer<Int>
    private var scheduleStart: UInt64 = 0
    private var nextMessage = 0
    private var launched = 0
    private var resolved = 0
    private var phasesStarted = false
    private var sending = true
    private var measuring = false
    private var messages = 0
    private var totalMessages = 0
    private var unsolicited = 0
    private var histogram = makeLatencyHistogram()
    /// --connect-rate's pace.
    private static let tick: UInt64 = 1_000_000
    /// The open model's shortest wait between two sending turns (ns): bounds the wake-ups at high rates.
    private static let paceFloor: UInt64 = 100_000

    init(_ setup: BenchSetup, _ share: ThreadShare, _ options: Echo, plan: RatePlan?) {
        self.options = options
        numbers = share.numbers(of: options.connections)
        let count = numbers.count
        size = options.size
        inFlight = options.inFlight ?? (plan == nil ? 1 : 64)
        opcode = options.binary ? .binary : .text
        let addresses = options.sourceAddresses
            ?? (options.connections > Echo.connectionsPerSource ? (options.connections + Echo.connectionsPerSource - 1) / Echo.connectionsPerSource : 0)
        sources = setup.target.isLoopbackIPv4 ? Connector.loopbackSources(count: addresses) : []
        self.plan = plan?.scaled(by: share.part(of: options.connections))
        template = .allocate(byteCount: max(options.size, 1), alignment: 8)
        if options.binary && options.payload == .letters {
            for i in 0..<options.size { template[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        } else {
            let bytes = options.payload.bytes(options.size)
            for i in 0..<options.size { template[i] = bytes[i] }
        }
        sentAt = zeroed(count * inFlight)
        sentActually = zeroed(count * inFlight)
        ringHead = zeroed(count)
        ringCount = zeroed(count)
        deferred = zeroed(count)
        firstDeferred = zeroed(count)
        var parameters = [
            "connections": String(options.connections), "size": String(options.size),
            "type": options.binary ? "binary" : "text", "in_flight": String(inFlight),
            "payload": options.payload.rawValue, "model": plan == nil ? "closed" : "open",
            "duration": String(options.duration), "warmup": String(options.warmup),
        ]
        if let rate = options.rate { parameters["rate"] = String(rate) }
        if let plan, options.stages != nil {
            parameters["stages"] = plan.stagesText
            parameters["duration"] = String(plan.seconds)
            parameters["warmup"] = "0"
            parameters["runs"] = "1"
        }
        if let connectRate = options.connectRate { parameters["connect_rate"] = String(connectRate) }
        if !sources.isEmpty { parameters["source_addresses"] = "127.0.0.1-127.0.0.\(sources.count)" }
        super.init(setup, share, scenario: "echo", unit: "messages",
                   seconds: plan.map { options.stages == nil ? $0.seconds - 1 : $0.seconds } ?? options.warmup + Double(options.common.runs) * options.duration,
                   parameters: parameters)
        if plan != nil { uncorrectedLatency = makeLatencyHistogram() }
    }

    private var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: template.baseAddress, count: size)
    }

    /// Measured runs: one over the whole plan with --stages.
    private var runs: Int { options.stages == nil ? common.runs : 1 }
    private var warmup: Double { options.stages == nil ? options.warmup : 0 }
    private var duration: Double { options.stages == nil ? options.duration : plan?.seconds ?? options.duration }

    override func start() {
        if options.connectRate == nil {
            launch()
        } else {
            launchPaced()
        }
    }

    /// Opens connections while `due(number)` says so; once all were launched, waits for them a while at most.
    private func launch(while due: (Int) -> Bool = { _ in true }) {
        while launched < numbers.count && due(numbers[launched]) {
            let number = numbers[launched]
            if connect(tag: launched, source: sources.isEmpty ? nil : sources[number % sources.count]) == nil { resolved += 1 }
            launched += 1
        }
        guard launched == numbers.count else { return }
        checkResolved()
        // Connections that never answer do not hold the measurement back for long.
        loop.schedule(after: 10_000_000_000) { [unowned self] in self.beginPhases() }
    }

    /// --connect-rate R: connection g (over all threads) opens g/R seconds after the common epoch;
    /// checked every millisecond.
    private func launchPaced() {
        let elapsed = Double(monotonicNanoseconds() &- share.epoch) / 1e9
        let rate = options.connectRate ?? 1
        launch { Double($0) / rate <= elapsed }
        if launched < numbers.count { loop.schedule(after: Self.tick) { [unowned self] in self.launchPaced() } }
    }

    override var progressCount: Int { totalMessages }

    override func progressText(rate: Double, open: Int, errors: Int) -> String {
        let phase = phaseLabel(measuring: measuring, sending: sending)
        return "[echo] \(phase)  \(grouped(rate)) msgs/s  open \(open)  errors \(errors)"
    }

    private func checkResolved() {
        if resolved == numbers.count { beginPhases() }
    }

    private func beginPhases() {
        guard !phasesStarted else { return }
        phasesStarted = true
        // Every thread starts its load at the same moment, so the threads' windows line up.
        let start = arriveAtStartLine()
        guard report.connectionsOpened > 0 else {
            sending = false
            closeAll { [unowned self] in self.finish() }
            return
        }
        startProgress()
        if plan != nil {
            scheduleStart = start
            schedule(at: start, paceAgain)
        } else {
            let now = monotonicNanoseconds()
            for case let connection? in connections where connection.isOpen {
                for _ in 0..<inFlight { sendOne(connection, intended: now, at: now) }
            }
        }
        // From the common start: every thread's windows begin and end together.
        schedule(at: start + nanoseconds(warmup)) { [unowned self] in self.beginRun() }
    }

    /// Open connections by local tag (closed ones and those not yet open are nil).
    private var connections: [ClientConnection?] = []

    private func beginRun() {
        histogram.reset()
        messages = 0
        measuring = true
        beginWindow(for: duration) { [unowned self] in self.endRun() }
    }

    private func endRun() {
        measuring = false
        let target = plan.map { plan in
            { [scheduleStart] (from: UInt64, to: UInt64) in
                plan.messages(at: Double(to &- scheduleStart) / 1e9) - plan.messages(at: Double(from &- scheduleStart) / 1e9)
            }
        }
        _ = endWindow(count: Double(messages), latency: histogram, target: target)
        if report.runs.count < runs {
            beginRun()
        } else {
            sending = false
            if unsolicited > 0 { report.warnings.append("\(unsolicited) message(s) arrived with nothing in flight (not an echo server?)") }
            closeAll { [unowned self] in self.finish() }
        }
    }

    // MARK: Sending

    @inline(__always)
    private func sendOne(_ connection: ClientConnection, intended: UInt64, at now: UInt64) {
        let tag = connection.tag
        let k = inFlight
        let slot = tag * k + (ringHead[tag] + ringCount[tag]) % k
        sentAt[slot] = intended
        sentActually[slot] = now
        ringCount[tag] += 1
        if let agreement = connection.agreement, let deflate {
            // The same message every time: compressed once per client window size.
            deflate.precompressed(payload, windowBits: agreement.clientMaxWindowBits).withUnsafeBytes {
                connection.send(opcode, compressed: $0)
            }
        } else {
            connection.send(opcode, copying: payload)
        }
    }

    /// Open model: sends every message that came due since the last tick, each on its connection
    /// (message m on local connection m mod n, so each connection's messages are evenly spaced), or
    /// leaves it waiting there when that connection has K outstanding or is not open.
    private func pace() {
        guard sending, let plan else { return }
        let now = monotonicNanoseconds()
        let elapsed = Double(now &- scheduleStart) / 1e9
        let n = numbers.count
        while let due = plan.time(ofMessage: Double(nextMessage)), due <= elapsed {
            let tag = nextMessage % n
            if deferred[tag] == 0, let connection = connections[tag], connection.isOpen, ringCount[tag] < inFlight {
                sendOne(connection, intended: scheduleStart &+ UInt64(due * 1e9), at: now)
            } else {
                if deferred[tag] == 0 { firstDeferred[tag] = nextMessage }
                deferred[tag] += 1
            }
            nextMessage += 1
        }
        // Back when the next message is due: a late send would count as server latency. At high
        // rates, a turn per `paceFloor` at most sends what came due meanwhile. Counted from now, not
        // from the turn's start; a wake-up a little early finds nothing due and comes back.
        guard let next = plan.time(ofMessage: Double(nextMessage)) else { return }
        let due = scheduleStart &+ UInt64(next * 1e9)
        loop.schedule(after: max(due > now ? due - now : 0, Self.paceFloor), paceAgain)
    }

    /// `pace()` as a timer body made once: a closure per wake-up would be an allocation per wake-up.
    private lazy var paceAgain: () -> Void = { [unowned self] in self.pace() }

    /// Open model: sends what waited on `connection`, oldest first, while it has room.
    private func sendDeferred(_ connection: ClientConnection, at now: UInt64) {
        guard let plan else { return }
        let tag = connection.tag
        while deferred[tag] > 0 && ringCount[tag] < inFlight && connection.isOpen {
            let due = plan.time(ofMessage: Double(firstDeferred[tag])) ?? 0
            sendOne(connection, intended: scheduleStart &+ UInt64(due * 1e9), at: now)
            firstDeferred[tag] += numbers.count
            deferred[tag] -= 1
        }
    }

    // MARK: Connections

    override func connectionOpened(_ connection: ClientConnection) {
        super.connectionOpened(connection)
        resolved += 1
        while connections.count <= connection.tag { connections.append(nil) }
        connections[connection.tag] = connection
        let now = monotonicNanoseconds()
        if phasesStarted {
            // Late: the closed loop starts on it now; the open model sends what came due meanwhile.
            if plan == nil { for _ in 0..<inFlight { sendOne(connection, intended: now, at: now) } } else { sendDeferred(connection, at: now) }
        }
        checkResolved()
    }

    override func connectionReceived(_ connection: ClientConnection, _ payload: UnsafeRawBufferPointer, binary: Bool) {
        let tag = connection.tag
        guard ringCount[tag] > 0 else {
            unsolicited += 1
            return
        }
        let now = monotonicNanoseconds()
        let k = inFlight
        let slot = tag * k + ringHead[tag]
        ringHead[tag] = (ringHead[tag] + 1) % k
        ringCount[tag] -= 1
        totalMessages += 1
        let latency = now > sentAt[slot] ? now - sentAt[slot] : 0
        timeline.record(latency: latency, at: now)
        if measuring {
            messages += 1
            _ = histogram.record(latency)
            if uncorrectedLatency != nil { _ = uncorrectedLatency?.record(now &- sentActually[slot]) }
        }
        if payload.count != size {
            recordError(.unexpectedSize, "echo of \(payload.count) bytes, sent \(size)")
        }
        guard sending else { return }
        if plan == nil { sendOne(connection, intended: now, at: now) } else if deferred[tag] > 0 { sendDeferred(connection, at: now) }
    }

    override func connectionClosed(_ connection: ClientConnection) {
        super.connectionClosed(connection)
        if connection.tag < connections.count { connections[connection.tag] = nil }
        if !connection.handshakeDone && !phasesStarted {
            resolved += 1
            checkResolved()
        }
    }
}

/// `count` zeroes, allocated once for the scenario's lifetime (per-connection state read per message).
private func zeroed<T: FixedWidthInteger>(_ count: Int) -> UnsafeMutablePointer<T> {
    let pointer = UnsafeMutablePointer<T>.allocate(capacity: count)
    pointer.initialize(repeating: 0, count: count)
    return pointer
}
