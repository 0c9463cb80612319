// `run FILE.yaml`: virtual users from a scenario file (ScenarioFile.swift). Each user is one
// connection running its scenario's steps again and again until the duration is over: an
// iteration is one pass through the steps. Latency is each expect's wait: from the user's last send
// to the message that met (or failed) it. One measured run covers the whole duration.
import ArgumentParser
import Foundation
import Histogram
import ShoalRing
import ShoalWire

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Virtual users from a scenario file (YAML): connect, send, expect, sleep, close; weighted mixes.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var threading: ThreadOptions
    @Argument(help: "The scenario file (YAML, described in docs/shoal-bench.md).") var file: String

    func validate() throws { _ = try load() }

    func load() throws -> ScenarioFile {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("\(file): cannot read the file") }
        do throws(ScenarioFile.Problem) { return try ScenarioFile(yaml: text, path: file) } catch { throw ValidationError(error.description) }
    }

    func run() throws {
        let plan = UncheckedBox(try load())
        let limit = Connector.raiseDescriptorLimit()
        guard plan.value.users + 64 <= limit else {
            throw ValidationError("\(plan.value.users) users need more descriptors than RLIMIT_NOFILE allows (\(limit))")
        }
        let columns: [(String, String, (Double) -> String)] = plan.value.mixes.map { ("iterations.\($0.name)", "\($0.name) iterations", grouped) }
        try execute(common, threads: threading.count(for: plan.value.users), rateTitle: "iterations/s", extraColumns: columns) { setup, share in
            RunScenario(setup, share, plan.value, file: file)
        }
    }
}

final class RunScenario: Scenario {
    private let plan: ScenarioFile
    /// Per mix: its handshake (path, headers, subprotocol, offer).
    private let mixKeys: [HandshakeKeys]
    /// Compression state for the mixes that offer it (nil when none does).
    private let mixDeflate: DeflateSupport?

    /// One virtual user: a connection and where it is in its steps.
    private struct User {
        var number: Int
        var mix: Int
        var connection: ClientConnection?
        var step = 0
        var sequence = 0
        var awaiting = false
        /// Bumped whenever the user moves on, so a stale expect or sleep timer does nothing.
        var token = 0
        var lastSend: UInt64 = 0
        var done = false
    }

    private var users: [User]
    private var random = SystemRandomNumberGenerator()
    private var resolved = 0
    private var phasesStarted = false
    private var running = false
    private var measuring = false
    private var iterations = 0
    private var totalIterations = 0
    private var mixIterations: [Int]
    private var histogram = makeLatencyHistogram()

    init(_ setup: BenchSetup, _ share: ThreadShare, _ plan: ScenarioFile, file: String) {
        self.plan = plan
        mixKeys = plan.mixes.map {
            HandshakeKeys(target: setup.target, deflate: $0.deflate, path: $0.path, headers: $0.headers, subprotocol: $0.subprotocol)
        }
        mixDeflate = plan.mixes.contains { $0.deflate } ? (setup.deflate ?? DeflateSupport()) : nil
        let assignments = plan.assignments
        users = share.numbers(of: plan.users).map { User(number: $0, mix: assignments[$0]) }
        mixIterations = [Int](repeating: 0, count: plan.mixes.count)
        var parameters = ["file": file, "users": String(plan.users), "duration": String(plan.seconds), "runs": "1"]
        for mix in plan.mixes { parameters["scenario.\(mix.name)"] = "weight \(mix.weight), \(mix.steps.count) step(s)" }
        super.init(setup, share, scenario: "run", unit: "iterations", seconds: plan.seconds, parameters: parameters)
    }

    override func start() {
        for i in users.indices {
            let mix = plan.mixes[users[i].mix]
            users[i].connection = connect(tag: i, keys: mixKeys[users[i].mix], deflate: mix.deflate ? mixDeflate : nil)
            if users[i].connection == nil { resolved += 1 }
        }
        checkResolved()
        loop.schedule(after: 10_000_000_000) { [unowned self] in self.beginPhases() }
    }

    override var progressCount: Int { totalIterations }

    override func progressText(rate: Double, open: Int, errors: Int) -> String {
        "[run] \(measuring ? "running" : "closing")  \(grouped(rate)) iterations/s  open \(open)  errors \(errors)"
    }

    private func checkResolved() {
        if resolved == users.count { beginPhases() }
    }

    private func beginPhases() {
        guard !phasesStarted else { return }
        phasesStarted = true
        _ = arriveAtStartLine()
        guard report.connectionsOpened > 0 else {
            closeAll { [unowned self] in self.finish() }
            return
        }
        startProgress()
        running = true
        measuring = true
        beginWindow(for: plan.seconds) { [unowned self] in self.end() }
        for i in users.indices where users[i].connection?.isOpen == true { advance(i) }
    }

    private func end() {
        measuring = false
        running = false
        var extra: [String: Double] = [:]
        for (j, mix) in plan.mixes.enumerated() {
            extra["iterations.\(mix.name)"] = Double(mixIterations[j])
            extra["users.\(mix.name)"] = Double(users.filter { $0.mix == j }.count)
        }
        _ = endWindow(count: Double(iterations), latency: histogram, extra: extra)
        closeAll { [unowned self] in self.finish() }
    }

    /// Runs user i's steps until one waits (expect, sleep) or the user closed.
    private func advance(_ i: Int) {
        var passes = 0
        while running, !users[i].done, !users[i].awaiting, let connection = users[i].connection, connection.isOpen {
            let mix = plan.mixes[users[i].mix]
            if users[i].step == mix.steps.count {
                completeIteration(i)
                passes += 1
                if passes > 1 {
                    // An iteration that never waits: the next one on the next turn, so one user cannot hold the loop.
                    let token = users[i].token
                    loop.schedule(after: 0) { [unowned self] in if self.users[i].token == token { self.advance(i) } }
                    return
                }
                continue
            }
            switch mix.steps[users[i].step] {
            case .send(let template, let binary):
                users[i].sequence += 1
                let bytes = template.render(sequence: users[i].sequence, user: users[i].number, random: &random)
                bytes.withUnsafeBytes { connection.send(binary ? .binary : .text, message: $0) }
                users[i].lastSend = monotonicNanoseconds()
                users[i].step += 1
            case .expect(_, let timeout):
                users[i].awaiting = true
                users[i].token += 1
                let token = users[i].token
                loop.schedule(after: timeout) { [unowned self] in
                    guard self.users[i].token == token, self.users[i].awaiting else { return }
                    self.recordError(.expectTimeout, "\(mix.name) step \(self.users[i].step + 1): no message within \(fixed(Double(timeout) / 1e9, 3)) s")
                    self.met(i, at: monotonicNanoseconds())
                }
                return
            case .sleep(let duration):
                users[i].token += 1
                let token = users[i].token
                users[i].step += 1
                loop.schedule(after: duration) { [unowned self] in if self.users[i].token == token { self.advance(i) } }
                return
            case .close:
                users[i].done = true
                completeIteration(i)
                connection.close()
                return
            }
        }
    }

    private func completeIteration(_ i: Int) {
        users[i].step = 0
        totalIterations += 1
        if measuring {
            iterations += 1
            mixIterations[users[i].mix] += 1
        }
    }

    /// The expect user i waited on is settled (met, failed or timed out): on to the next step.
    private func met(_ i: Int, at now: UInt64) {
        let latency = now &- users[i].lastSend
        timeline.record(latency: latency, at: now)
        if measuring { _ = histogram.record(latency) }
        users[i].awaiting = false
        users[i].token += 1
        users[i].step += 1
        advance(i)
    }

    override func connectionOpened(_ connection: ClientConnection) {
        super.connectionOpened(connection)
        resolved += 1
        if phasesStarted { advance(connection.tag) }
        checkResolved()
    }

    override func connectionReceived(_ connection: ClientConnection, _ payload: UnsafeRawBufferPointer, binary: Bool) {
        let i = connection.tag
        guard users[i].awaiting, case .expect(let expectation, _) = plan.mixes[users[i].mix].steps[users[i].step] else { return }
        let now = monotonicNanoseconds()
        let message = String(decoding: payload, as: UTF8.self)
        if !expectation.matches(message) {
            recordError(.expectMismatch, "\(plan.mixes[users[i].mix].name) step \(users[i].step + 1): got \(message.prefix(80).debugDescription)")
        }
        met(i, at: now)
    }

    override func connectionClosed(_ connection: ClientConnection) {
        super.connectionClosed(connection)
        let i = connection.tag
        if users[i].connection === connection {
            users[i].connection = nil
            users[i].token += 1
        }
        if !connection.handshakeDone && !phasesStarted {
            resolved += 1
            checkResolved()
        }
    }
}
