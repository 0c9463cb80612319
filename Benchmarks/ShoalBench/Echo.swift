// `echo`: N connections each keep K messages in flight against an echo server; every echoed
// message is timed (round trip) and immediately replaced by a new one. Send times live in a fixed
// ring per connection (echoes come back in order), so the hot path allocates nothing.
import ArgumentParser
import Histogram
import ShoalRing
import ShoalWire

struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Echo round trips: messages per second and round-trip latency.")

    @OptionGroup var common: CommonOptions
    @Option(help: "Connections.") var connections = 100
    @Option(help: "Payload bytes per message.") var size = 16
    @Flag(help: "Binary messages (default: text).") var binary = false
    @Option(help: "Payload: letters (a-z repeated) or json (JSON-like records; compresses like real JSON).")
    var payload = PayloadKind.letters
    @Option(name: .customLong("in-flight"), help: "Messages in flight per connection (pipelining).") var inFlight = 1
    @Option(help: "Seconds per measured run.") var duration = 5.0
    @Option(help: "Seconds of load before the first run, not measured.") var warmup = 2.0

    func validate() throws {
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1") }
        guard size >= 0 else { throw ValidationError("--size must not be negative") }
        guard inFlight >= 1 else { throw ValidationError("--in-flight must be at least 1") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
    }

    func run() throws {
        let setup = try BenchSetup(common)
        guard connections + 64 <= setup.descriptorLimit else {
            throw ValidationError("--connections \(connections) needs more descriptors than RLIMIT_NOFILE allows (\(setup.descriptorLimit))")
        }
        try execute(EchoScenario(setup, self), rateTitle: "msgs/s")
    }
}

final class EchoScenario: Scenario {
    private let options: Echo
    /// Copies of the options read per message (ArgumentParser's property wrappers are slow to read).
    private let size: Int
    private let inFlight: Int
    private let opcode: Opcode
    /// The payload every message carries, in clear (text: ASCII letters, so valid UTF-8).
    private let template: UnsafeMutableRawBufferPointer
    /// connections × inFlight send times; connection c uses [c*K, (c+1)*K) as a ring.
    private let sentAt: UnsafeMutablePointer<UInt64>
    private let ringHead: UnsafeMutablePointer<Int>
    private let ringCount: UnsafeMutablePointer<Int>
    private var resolved = 0
    private var phasesStarted = false
    private var sending = true
    private var measuring = false
    private var messages = 0
    private var totalMessages = 0
    private var unsolicited = 0
    private var histogram = makeLatencyHistogram()
    private var allLatency = makeLatencyHistogram()

    init(_ setup: BenchSetup, _ options: Echo) {
        self.options = options
        size = options.size
        inFlight = options.inFlight
        opcode = options.binary ? .binary : .text
        template = .allocate(byteCount: max(options.size, 1), alignment: 8)
        if options.binary && options.payload == .letters {
            for i in 0..<options.size { template[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        } else {
            let bytes = options.payload.bytes(options.size)
            for i in 0..<options.size { template[i] = bytes[i] }
        }
        let slots = options.connections * options.inFlight
        sentAt = .allocate(capacity: slots)
        sentAt.initialize(repeating: 0, count: slots)
        ringHead = .allocate(capacity: options.connections)
        ringHead.initialize(repeating: 0, count: options.connections)
        ringCount = .allocate(capacity: options.connections)
        ringCount.initialize(repeating: 0, count: options.connections)
        super.init(setup, scenario: "echo", unit: "messages", parameters: [
            "connections": String(options.connections), "size": String(options.size),
            "type": options.binary ? "binary" : "text", "in_flight": String(options.inFlight),
            "payload": options.payload.rawValue,
            "duration": String(options.duration), "warmup": String(options.warmup),
        ])
    }

    private var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: template.baseAddress, count: size)
    }

    override func start() {
        for tag in 0..<options.connections where connect(tag: tag) == nil { resolved += 1 }
        checkResolved()
        // Connections that never answer do not hold the measurement back for long.
        loop.schedule(after: 10_000_000_000) { [unowned self] in self.beginPhases() }
    }

    override var progressCount: Int { totalMessages }

    override func progressText(rate: Double) -> String {
        let phase = phaseLabel(measuring: measuring, sending: sending)
        return "[echo] \(phase)  \(grouped(rate)) msgs/s  open \(live.count)  errors \(errorTotal)"
    }

    private func checkResolved() {
        if resolved == options.connections { beginPhases() }
    }

    private func beginPhases() {
        guard !phasesStarted else { return }
        phasesStarted = true
        guard report.connectionsOpened > 0 else {
            sending = false
            closeAll { [unowned self] in self.finish() }
            return
        }
        startProgress()
        loop.schedule(after: nanoseconds(options.warmup)) { [unowned self] in self.beginRun() }
    }

    private func beginRun() {
        histogram.reset()
        messages = 0
        measuring = true
        beginWindow()
        loop.schedule(after: nanoseconds(options.duration)) { [unowned self] in self.endRun() }
    }

    private func endRun() {
        measuring = false
        _ = endWindow(count: Double(messages), latency: histogram)
        allLatency.add(histogram)
        if report.runs.count < common.runs {
            beginRun()
        } else {
            sending = false
            report.latency = LatencySummary(allLatency)
            if unsolicited > 0 { report.warnings.append("\(unsolicited) message(s) arrived with nothing in flight (not an echo server?)") }
            closeAll { [unowned self] in self.finish() }
        }
    }

    @inline(__always)
    private func sendOne(_ connection: ClientConnection, at now: UInt64) {
        let tag = connection.tag
        let k = inFlight
        sentAt[tag * k + (ringHead[tag] + ringCount[tag]) % k] = now
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

    override func connectionOpened(_ connection: ClientConnection) {
        super.connectionOpened(connection)
        resolved += 1
        let now = monotonicNanoseconds()
        for _ in 0..<inFlight { sendOne(connection, at: now) }
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
        let sent = sentAt[tag * k + ringHead[tag]]
        ringHead[tag] = (ringHead[tag] + 1) % k
        ringCount[tag] -= 1
        totalMessages += 1
        if measuring {
            messages += 1
            _ = histogram.record(now &- sent)
        }
        if payload.count != size {
            recordError(.unexpectedSize, "echo of \(payload.count) bytes, sent \(size)")
        }
        if sending { sendOne(connection, at: now) }
    }

    override func connectionClosed(_ connection: ClientConnection) {
        super.connectionClosed(connection)
        if !connection.handshakeDone && !phasesStarted {
            resolved += 1
            checkResolved()
        }
    }
}
