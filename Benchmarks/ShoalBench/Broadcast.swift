// `broadcast`: P publishers each send R messages per second, S subscribers (and the publishers)
// receive what the server fans out. Every payload starts with 16 ASCII hex digits: 12 for the send
// time (CLOCK_MONOTONIC ns since the bench started) and 4 for the publisher id, so deliveries are
// timed end to end and a sender can recognise its own message. Works against `shoal serve --handler
// chat` (relays to every other client) and against servers that echo to all, the sender included
// (those deliveries count too, and are reported as "own"). Other messages (a welcome text) are ignored.
// With --threads, connection g (publishers first) runs on thread g mod N and the stamp carries the
// publisher's global number, so deliveries across threads are timed and recognised the same way.
import ArgumentParser
import Histogram
import ShoalRing
import ShoalWire

struct Broadcast: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fan-out: deliveries per second and end-to-end latency.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var threading: ThreadOptions
    @Option(help: "Connections that only receive.") var subscribers = 100
    @Option(help: "Connections that send (they receive too).") var publishers = 1
    @Option(help: "Messages per second per publisher.") var rate = 100.0
    @Option(help: "Payload bytes per message (at least 16: send time and publisher id).") var size = 32
    @Flag(help: "Binary messages (default: text).") var binary = false
    @Option(help: "Payload after the 16-digit stamp: letters (a-z repeated, the same every time) or json (JSON-like records, different in every message).")
    var payload = PayloadKind.letters
    @Option(help: "Seconds per measured run.") var duration = 5.0
    @Option(help: "Seconds of load before the first run, not measured.") var warmup = 1.0

    func validate() throws {
        guard subscribers >= 0, publishers >= 1 else { throw ValidationError("need at least one publisher") }
        guard publishers <= 0xFFFF else { throw ValidationError("at most 65535 publishers") }
        guard size >= 16 else { throw ValidationError("--size must be at least 16 (the payload carries a timestamp and the publisher id)") }
        guard rate > 0 else { throw ValidationError("--rate must be positive") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
    }

    func run() throws {
        let plan = FanOutPlan(subscribers: subscribers, publishers: publishers, rate: rate, size: size, binary: binary,
                              payload: payload, duration: duration, warmup: warmup, runs: common.runs, topics: nil)
        try plan.measure(common, threading)
    }
}

/// What a fan-out load is made of: `broadcast` (every client receives every message) or `topics` (publishes to
/// topics of the Shoal `topics` handler's protocol, each subscriber receiving its topic's messages).
struct FanOutPlan {
    var subscribers: Int
    var publishers: Int
    var rate: Double
    var size: Int
    var binary: Bool
    var payload: PayloadKind
    var duration: Double
    var warmup: Double
    var runs: Int
    /// Number of topics, subscriber g (after the publishers) on topic g mod `topics`; nil for broadcast.
    var topics: Int?

    func measure(_ common: CommonOptions, _ threading: ThreadOptions) throws {
        let limit = Connector.raiseDescriptorLimit()
        guard subscribers + publishers + 64 <= limit else {
            throw ValidationError("\(subscribers + publishers) connections need more descriptors than RLIMIT_NOFILE allows (\(limit))")
        }
        let plan = self
        try execute(common, threads: threading.count(for: subscribers + publishers), rateTitle: "deliveries/s", extraColumns: [
            ("sent_per_second", "sent/s", grouped),
            ("fanout", "fan-out", { fixed($0, 1) }),
            ("own_deliveries", "own", grouped),
        ]) { setup, share in
            BroadcastScenario(setup, share, plan)
        }
    }
}

final class BroadcastScenario: Scenario {
    private let options: FanOutPlan
    /// Copies of the options read per message (ArgumentParser's property wrappers are slow to read).
    private let size: Int
    private let rate: Double
    /// Local publishers: the first `publishers` of this thread's connections.
    private let publishers: Int
    /// The global numbers of this thread's connections (publishers are 0..<--publishers).
    private let numbers: [Int]
    private let opcode: Opcode
    /// Payload source: `size` bytes (letters), or a long JSON-like text that successive messages walk
    /// through (json), so no message repeats within a 32 KiB window and a compressor that keeps its
    /// context (per-recipient compression) gets no easier input than a real feed would give it.
    private let template: UnsafeMutableRawBufferPointer
    private var templateOffset = 0
    /// A stamped payload in clear, compressed from here when the publisher negotiated compression.
    private let scratch: UnsafeMutableRawBufferPointer
    private var clients: [ClientConnection?] = []
    /// Time zero of the payload clock (12 hex digits of ns: 78 hours), the same on every thread.
    private let epoch: UInt64
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)
    private var resolved = 0
    private var phasesStarted = false
    private var sending = false
    private var measuring = false
    private var paceStart: UInt64 = 0
    /// Messages each publisher has sent since paceStart (all publishers keep the same pace).
    private var sentPerPublisher = 0
    private var sent = 0
    private var deliveries = 0
    private var own = 0
    private var totalDeliveries = 0
    private var foreign = 0
    private var pacingSkips = 0
    private var histogram = makeLatencyHistogram()
    private static let tick: UInt64 = 1_000_000

    /// Topics mode: per topic, the command text before the stamped data and the one after it.
    private let publishPrefixes: [[UInt8]]
    private static let publishSuffix: [UInt8] = Array("\"}".utf8)
    /// Topics mode: the topic each publisher sends its next message to (round robin from its own number).
    private var nextTopic: [Int] = []

    init(_ setup: BenchSetup, _ share: ThreadShare, _ options: FanOutPlan) {
        self.options = options
        size = options.size
        rate = options.rate
        numbers = share.numbers(of: options.publishers + options.subscribers)
        publishers = numbers.filter { $0 < options.publishers }.count
        epoch = share.epoch
        opcode = options.binary ? .binary : .text
        let length = options.payload == .json ? max(1 << 20, 64 * options.size) : options.size
        template = .allocate(byteCount: length, alignment: 8)
        let bytes = options.payload.bytes(length)
        // Topics carry the payload inside a JSON string: its quotes become apostrophes there.
        let quote = UInt8(ascii: "\""), inString = options.topics != nil
        for i in 0..<length { template[i] = inString && bytes[i] == quote ? UInt8(ascii: "'") : bytes[i] }
        publishPrefixes = (0..<(options.topics ?? 0)).map { Array(#"{"publish":"\#(Self.topicName($0))","data":""#.utf8) }
        let longestPrefix = publishPrefixes.map(\.count).max() ?? 0
        scratch = .allocate(byteCount: options.size + longestPrefix + Self.publishSuffix.count, alignment: 8)
        var parameters = [
            "subscribers": String(options.subscribers), "publishers": String(options.publishers),
            "rate": String(options.rate), "size": String(options.size), "type": options.binary ? "binary" : "text",
            "payload": options.payload.rawValue,
            "duration": String(options.duration), "warmup": String(options.warmup),
        ]
        if let topics = options.topics { parameters["topics"] = String(topics) }
        super.init(setup, share, scenario: options.topics == nil ? "broadcast" : "topics", unit: "deliveries",
                   seconds: options.warmup + Double(options.runs) * options.duration, parameters: parameters)
        nextTopic = numbers.prefix(publishers).map { $0 % max(1, options.topics ?? 1) }
    }

    /// The name of topic `index` in topics mode.
    static func topicName(_ index: Int) -> String { "t\(index)" }

    /// Topics mode: the topic subscriber connection `tag` joins, nil for a publisher (or in broadcast mode).
    private func topic(ofConnection tag: Int) -> Int? {
        guard let topics = options.topics, numbers[tag] >= options.publishers else { return nil }
        return (numbers[tag] - options.publishers) % topics
    }

    /// This thread's connections.
    private var total: Int { numbers.count }

    override func start() {
        for tag in 0..<total {
            let connection = connect(tag: tag)
            clients.append(connection)
            if connection == nil { resolved += 1 }
        }
        checkResolved()
        loop.schedule(after: 10_000_000_000) { [unowned self] in self.beginPhases() }
    }

    override var progressCount: Int { totalDeliveries }

    override func progressText(rate: Double, open: Int, errors: Int) -> String {
        let phase = phaseLabel(measuring: measuring, sending: sending)
        return "[\(options.topics == nil ? "broadcast" : "topics")] \(phase)  \(grouped(rate)) deliveries/s  open \(open)  errors \(errors)"
    }

    private func checkResolved() {
        if resolved == total { beginPhases() }
    }

    private func beginPhases() {
        guard !phasesStarted else { return }
        phasesStarted = true
        // Every thread starts publishing at the same moment, so the threads' windows line up.
        let start = arriveAtStartLine()
        guard report.connectionsOpened > 0 else {
            closeAll { [unowned self] in self.finish() }
            return
        }
        startProgress()
        sending = true
        paceStart = start
        publish()
        schedule(at: start + nanoseconds(options.warmup)) { [unowned self] in self.beginRun() }
    }

    /// Sends what the pace says is due, then comes back next millisecond.
    private func publish() {
        guard sending else { return }
        let now = monotonicNanoseconds()
        var due = Int(Double(now &- paceStart) * rate / 1e9) - sentPerPublisher
        let oneSecond = max(1, Int(rate))
        if due > oneSecond {
            // More than a second behind (the bench stalled): skip instead of bursting.
            pacingSkips += due - oneSecond
            sentPerPublisher += due - oneSecond
            due = oneSecond
        }
        if due > 0 {
            for p in 0..<publishers {
                guard let publisher = clients[p], publisher.isOpen else { continue }
                for _ in 0..<due { send(from: publisher) }
            }
            sentPerPublisher += due
        }
        loop.schedule(after: Self.tick) { [unowned self] in self.publish() }
    }

    @inline(__always)
    private func send(from publisher: ClientConnection) {
        let stamp = monotonicNanoseconds() &- epoch
        let id = UInt64(numbers[publisher.tag])
        let start = templateOffset
        templateOffset += size
        if templateOffset + size > self.template.count { templateOffset = 0 }
        let template = UnsafeRawBufferPointer(rebasing: self.template[start..<start + size])
        // Topics mode wraps the stamped data in a publish command to the publisher's next topic.
        var prefix: [UInt8] = []
        var suffix: [UInt8] = []
        if !publishPrefixes.isEmpty {
            let slot = publisher.tag
            prefix = publishPrefixes[nextTopic[slot]]
            suffix = Self.publishSuffix
            nextTopic[slot] = (nextTopic[slot] + 1) % publishPrefixes.count
        }
        let length = prefix.count + size + suffix.count
        @inline(__always) func stamped(_ whole: UnsafeMutableRawBufferPointer) {
            prefix.withUnsafeBytes { whole.copyMemory(from: $0) }
            suffix.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: whole[(length - suffix.count)...]).copyMemory(from: $0) }
            let out = UnsafeMutableRawBufferPointer(rebasing: whole[prefix.count..<(prefix.count + size)])
            out.copyMemory(from: template)
            for i in 0..<12 { out[i] = Self.hex[Int(truncatingIfNeeded: (stamp >> UInt64(4 * (11 - i))) & 0xF)] }
            for i in 0..<4 { out[12 + i] = Self.hex[Int(truncatingIfNeeded: (id >> UInt64(4 * (3 - i))) & 0xF)] }
        }
        if publisher.deflater != nil {
            // Every message differs (its stamp), so each is compressed as it is sent.
            let message = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<length])
            stamped(message)
            publisher.send(opcode, message: UnsafeRawBufferPointer(message))
        } else {
            publisher.send(opcode, payloadLength: length, stamped)
        }
        if measuring { sent += 1 }
    }

    private func beginRun() {
        histogram.reset()
        sent = 0
        deliveries = 0
        own = 0
        measuring = true
        beginWindow(for: options.duration) { [unowned self] in self.endRun() }
    }

    private func endRun() {
        measuring = false
        _ = endWindow(count: Double(deliveries), latency: histogram, extra: [
            "sent_per_second": 0, "own_deliveries": Double(own), "sent": Double(sent),
            "fanout": sent > 0 ? Double(deliveries) / Double(sent) : 0,
        ])
        let seconds = report.runs[report.runs.count - 1].seconds
        report.runs[report.runs.count - 1].extra["sent_per_second"] = Double(sent) / seconds
        if report.runs.count < common.runs {
            beginRun()
        } else {
            sending = false
            let everyone = options.publishers + options.subscribers
            if let topics = options.topics {
                report.parameters["expected_fanout"] = fixed(Double(options.subscribers) / Double(topics), 1) + " (subscribers per topic)"
            } else {
                report.parameters["expected_fanout"] = "\(everyone - 1) (relay to others) or \(everyone) (echo to all)"
            }
            if pacingSkips > 0 { report.warnings.append("the bench fell behind its pace and skipped \(pacingSkips) message(s) per publisher") }
            if foreign > 0 { report.parameters["other_messages_ignored"] = String(foreign) }
            // Let the last deliveries arrive before closing, so the server sees no error.
            loop.schedule(after: 200_000_000) { [unowned self] in self.closeAll { [unowned self] in self.finish() } }
        }
    }

    /// Fan-out over threads: a thread's subscribers receive other threads' publishers, so only the
    /// totals make a ratio.
    override func mergedExtra(_ parts: [RunFigures]) -> [String: Double] {
        var merged = super.mergedExtra(parts)
        let sent = merged["sent"] ?? 0
        merged["fanout"] = sent > 0 ? parts.reduce(0) { $0 + $1.count } / sent : 0
        return merged
    }

    override func connectionOpened(_ connection: ClientConnection) {
        super.connectionOpened(connection)
        if let topic = topic(ofConnection: connection.tag) {
            // Resolved when the server confirms the subscription.
            var command = #"{"subscribe":"\#(Self.topicName(topic))"}"#
            command.withUTF8 { connection.send(.text, message: UnsafeRawBufferPointer($0)) }
            return
        }
        resolved += 1
        checkResolved()
    }

    private static let subscribedAnswer: [UInt8] = Array(#"{"subscribed":"#.utf8)

    override func connectionReceived(_ connection: ClientConnection, _ payload: UnsafeRawBufferPointer, binary: Bool) {
        // Topics mode: the data arrives as a JSON string, the stamped text between quotes.
        let quoted = options.topics != nil
        let expected = quoted ? size + 2 : size
        guard payload.count == expected,
            let (stamp, publisher) = Self.decode(quoted ? UnsafeRawBufferPointer(rebasing: payload[1...]) : payload)
        else {
            if quoted && !phasesStarted && payload.starts(with: Self.subscribedAnswer) {
                resolved += 1
                checkResolved()
            } else {
                foreign += 1
            }
            return
        }
        totalDeliveries += 1
        let now = monotonicNanoseconds()
        let latency = now &- epoch > stamp ? now &- epoch - stamp : 0
        timeline.record(latency: latency, at: now)
        guard measuring else { return }
        deliveries += 1
        if publisher == numbers[connection.tag] { own += 1 }
        _ = histogram.record(latency)
    }

    /// The send time and publisher id of a bench payload, nil when it is not one.
    @inline(__always)
    private static func decode(_ payload: UnsafeRawBufferPointer) -> (UInt64, Int)? {
        var value: UInt64 = 0
        for i in 0..<16 {
            let c = payload[i]
            let digit: UInt8
            switch c {
            case 48...57: digit = c - 48
            case 97...102: digit = c - 87
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return (value >> 16, Int(value & 0xFFFF))
    }

    override func connectionClosed(_ connection: ClientConnection) {
        super.connectionClosed(connection)
        if !connection.handshakeDone && !phasesStarted {
            resolved += 1
            checkResolved()
        }
    }
}
