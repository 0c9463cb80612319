// The supervisor's slot lifecycle without processes: the reload defects as plain scenarios, the
// progress watchdog, and seeded random sequences of signals, crashes, stops and spawn failures
// checked against the rules in SlotWorld (owner-only clear, one process per slot, one signal per
// pid and kind, a settled cluster serves with exactly one worker per slot).
@testable import ShoalCluster
import ShoalTestSupport
import Testing

@Suite("Worker slots: reload, restarts, stop and the progress watchdog")
struct WorkerSlotsTests {
    /// A started cluster whose workers all accept.
    private func serving(workers: Int = 2, drainTimeout: Double = 5, watchdogTimeout: Double = 10,
                         holdingClients: Bool = false) -> SlotWorld {
        var world = SlotWorld(workers: workers, drainTimeout: drainTimeout, watchdogTimeout: watchdogTimeout)
        world.hangs = { holdingClients }
        world.send(.start)
        world.run(for: 0.5)
        return world
    }

    private func owners(_ world: SlotWorld, _ range: Range<Int>) -> [Int32?] {
        range.map { world.slots.owner(of: $0)?.pid }
    }

    @Test("two reloads in a row: the second waits for the draining worker's exit, which does not clear its successor")
    func twoReloadsInARow() {
        // The 20 clients hold their connections: no drain ends before its deadline.
        var world = serving(holdingClients: true)
        let first = owners(world, 0..<2)
        world.send(.reload)
        world.run(for: 0.5)
        #expect(world.switches == [1])
        #expect(world.slots.activeSet == 1)
        world.run(for: 1.0)
        world.send(.reload)  // 1.5 s after the first
        // The draining first generation is killed; no new worker shares a slot with it.
        for case let pid? in first {
            #expect(world.processes[pid]?.alive == false)
        }
        #expect(owners(world, 0..<2) == first, "slots 0 and 1 still belong to the dying workers until they are reaped")
        world.reapAll()
        let third = owners(world, 0..<2)
        #expect(third.allSatisfy { $0 != nil } && third != first)
        world.run(for: 0.5)
        #expect(world.switches == [1, 0])
        world.run(for: 20)
        #expect(world.settledProblems() == [])
        #expect(owners(world, 0..<2) == third, "the third generation still serves 20 s later")
    }

    @Test("the exit of a killed worker reaped after its successor asked to start leaves the successor alone")
    func lateReapOfKilledDrainer() {
        var world = serving(workers: 1, holdingClients: true)
        let first = world.slots.owner(of: 0)!.pid
        world.send(.reload)
        world.run(for: 0.5)
        world.send(.reload)
        // Many supervisor turns pass before the killed worker (a million sockets to close) is reaped.
        world.observe()
        for _ in 0..<30 { world.send(.tick) }
        #expect(world.slots.owner(of: 0)?.pid == first)
        #expect(world.slots.slots[0].spawning == nil)
        world.reapAll()
        #expect(world.slots.owner(of: 0).map { $0.pid != first } == true)
        world.run(for: 10)
        #expect(world.settledProblems() == [])
    }

    @Test("SIGHUP right after a crash: the crashed slot restarts, the reload completes, every slot serves")
    func reloadDuringCrashRestart() {
        var world = serving()
        let victim = world.slots.owner(of: 0)!.pid
        world.crash(victim)
        world.send(.reload)
        world.reapAll()
        #expect(world.restarts == 1)
        world.run(for: 1)
        #expect(world.switches == [1])
        world.run(for: 10)
        #expect(world.settledProblems() == [])
    }

    @Test("a reload while a crash-looping slot waits out its back-off brings the new set up")
    func reloadDuringBackOff() {
        var world = serving()
        for _ in 0..<5 {
            world.crash(world.slots.owner(of: 1)!.pid)
            world.reapAll()
        }
        #expect(world.logs.last?.hasSuffix("restarting in 1 s") == true)
        #expect(world.slots.owner(of: 1) == nil)
        world.send(.reload)
        world.run(for: 0.5)
        #expect(world.switches == [1], "the new set switched without waiting for the old slot's back-off")
        world.run(for: 10)
        #expect(world.settledProblems() == [])
        #expect(world.unreaped.allSatisfy { $0.slot >= 2 })
    }

    @Test("a worker of the new set that crashes before the switch is restarted, not forgotten")
    func crashInTheNewSetBeforeTheSwitch() {
        var world = serving()
        world.setupTime = { 2 }
        world.send(.reload)
        world.run(for: 0.2)
        world.crash(world.slots.owner(of: 3)!.pid)
        world.run(for: 15)
        #expect(world.switches == [1])
        #expect(world.settledProblems() == [])
    }

    @Test("SIGTERM during a reload stops every worker of both sets, and the supervisor returns")
    func stopDuringReload() {
        var world = serving()
        world.send(.reload)
        world.turn()
        world.send(.stop)
        #expect(world.unreaped.allSatisfy { world.processes[$0.pid]!.terminated })
        world.run(for: 1)
        #expect(world.slots.isFinished)
        #expect(world.settledProblems() == [])
    }

    @Test("workers that ignore SIGTERM are killed once, after the drain time plus grace")
    func stopEscalatesOnce() {
        var world = serving(drainTimeout: 3)
        world.hangs = { true }
        world.send(.reload)
        world.run(for: 0.3)  // the new set, whose workers hang on SIGTERM
        world.send(.stop)
        world.run(for: 4.9)
        #expect(!world.slots.isFinished)
        world.run(for: 0.2)
        world.run(for: 10)
        #expect(world.slots.isFinished)
        #expect(world.logs.filter { $0.contains("still draining") }.count == 2, "\(world.logs)")
        #expect(world.settledProblems() == [])
    }

    @Test("three SIGHUPs within a second: one reload switches, one more follows, both complete")
    func threeReloads() {
        var world = serving()
        world.setupTime = { 0.5 }  // all three come while the first reload waits for its new set
        world.send(.reload)
        world.run(for: 0.05)
        world.send(.reload)
        world.run(for: 0.05)
        world.send(.reload)
        world.run(for: 15)
        #expect(world.switches == [1, 0])
        #expect(world.settledProblems() == [])
    }

    @Test("a stopped worker is killed once when it made no progress for the watchdog time, then replaced")
    func watchdogKillsAStoppedWorkerOnce() {
        var world = serving(watchdogTimeout: 2)
        let victim = world.stopOwner(of: 1)
        world.run(for: 1.9)
        #expect(world.processes[victim]!.alive)
        world.advance(by: 0.2)
        world.observe()
        world.send(.tick)
        #expect(world.processes[victim]!.alive == false)
        // A million sockets to close: the kernel takes a while; the supervisor keeps turning.
        for _ in 0..<50 { world.observe(); world.send(.tick) }
        world.reapAll()
        world.run(for: 5)
        #expect(world.watchdogKills == 1 && world.restarts == 1)
        #expect(world.logs.filter { $0.contains("made no progress") } == ["worker slot 1 pid \(victim) made no progress for 2.1 s: killing it"])
        #expect(world.slots.owner(of: 1).map { $0.pid != victim } == true)
        #expect(world.settledProblems() == [])
    }

    @Test("a worker whose counter moves is not killed, however rarely the supervisor sees it move")
    func progressingWorkerLives() {
        // Its loop moves once per 1.9 s (one very long turn each time): never 2 s without progress.
        var world = serving(watchdogTimeout: 2)
        let steady = world.stopOwner(of: 0)
        for _ in 0..<10 {
            world.run(for: 1.9)
            world.resume(steady)
            world.advance(by: 0)
            world.run(for: 0.05)
            world.stop(steady)
        }
        #expect(world.processes[steady]!.alive && world.watchdogKills == 0)
    }

    @Test("time the supervisor itself did not run is not held against the workers")
    func supervisorGapIsForgiven() {
        var world = serving(watchdogTimeout: 2)
        let pid = world.stopOwner(of: 0)
        world.advance(by: 30)  // the whole machine was suspended
        world.turn()
        #expect(world.processes[pid]!.alive && world.watchdogKills == 0)
        world.run(for: 2.1)
        #expect(!world.processes[pid]!.alive && world.watchdogKills == 1)
    }

    @Test("with the watchdog off, a stopped worker is left alone")
    func watchdogOff() {
        var world = serving(watchdogTimeout: 0)
        let pid = world.stopOwner(of: 0)
        world.run(for: 60)
        #expect(world.processes[pid]!.alive && world.watchdogKills == 0)
    }

    @Test("a worker still in its setup (no sign of life yet) is not taken for a hung one")
    func slowSetupIsNotAHang() {
        var world = SlotWorld(workers: 1, watchdogTimeout: 2)
        world.setupTime = { 5 }
        world.send(.start)
        let pid = world.slots.owner(of: 0)!.pid
        world.stop(pid)  // the loop has not started: no progress, not accepting
        world.run(for: 6)
        #expect(world.processes[pid]!.alive && world.watchdogKills == 0)
    }

    @Test("a spawn that fails is retried a second later")
    func spawnFailureRetries() {
        var world = SlotWorld(workers: 2)
        world.spawnsFail = true
        world.send(.start)
        #expect(world.slots.owner(of: 0) == nil)
        world.spawnsFail = false
        world.run(for: 0.9)
        #expect(world.slots.owner(of: 0) == nil)
        world.run(for: 0.2)
        #expect(world.settledProblems() == [])
    }

    // MARK: Random sequences

    @Test("random signals, crashes, hangs and spawn failures: the rules hold and the cluster settles", arguments: [0, 1, 2, 3])
    func randomSequences(batch: UInt64) {
        for run in 0..<1000 {
            let seed = batch * 1000 + UInt64(run)
            let (problems, world) = Self.randomRun(seed: seed)
            #expect(problems == [], "seed \(seed); last events:\n\(world.recentHistory(30))")
            if !problems.isEmpty { return }
        }
    }

    /// One reproducible run: random events, then quiet time; returns what went wrong.
    static func randomRun(seed: UInt64) -> (problems: [String], world: SlotWorld) {
        var random = SplitMix64(seed: seed)
        let workers = Int.random(in: 1...3, using: &random)
        let watchdog = [0, 2, 10][Int.random(in: 0..<3, using: &random)]
        var world = SlotWorld(workers: workers, drainTimeout: Double.random(in: 0...3, using: &random),
                              watchdogTimeout: Double(watchdog))
        let drainSeed = random.next()
        var behaviour = SplitMix64(seed: drainSeed)
        world.drainDelay = { Double.random(in: 0...8, using: &behaviour) }
        world.hangs = { Int.random(in: 0..<4, using: &behaviour) == 0 }
        world.setupTime = { Double.random(in: 0...1.5, using: &behaviour) }
        world.send(.start)
        let steps = Int.random(in: 5...80, using: &random)
        for _ in 0..<steps {
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<15:
                world.send(.reload)
            case 15..<17:
                world.send(.stop)
            case 17..<32:
                if let victim = world.live.randomElement(using: &random) { world.crash(victim.pid) }
            case 32..<38:
                if let victim = world.live.randomElement(using: &random) { world.stop(victim.pid) }
            case 38..<44:
                if let sleeper = world.live.filter(\.stopped).randomElement(using: &random) { world.resume(sleeper.pid) }
            case 44..<50:
                world.spawnsFail.toggle()
            case 50..<53:
                world.advance(by: Double.random(in: 1...4, using: &random))  // the supervisor did not run
            case 53..<70:
                // Reaps arrive in any order, some much later than the death.
                if let dead = world.unreaped.filter({ !$0.alive }).randomElement(using: &random) { world.reap(dead.pid) }
            default:
                world.advance(by: Double.random(in: 0.01...0.6, using: &random))
                world.observe()
                world.send(.tick)
            }
        }
        // Quiet: spawns work again; time passes in supervisor turns; every death is reaped.
        world.spawnsFail = false
        world.run(for: 60, step: 0.25)
        if world.slots.stopping { return (world.settledProblems(), world) }
        // And a stop at the end always brings the supervisor home.
        var problems = world.settledProblems()
        world.send(.stop)
        world.run(for: 20, step: 0.25)
        problems += world.settledProblems().filter { !problems.contains($0) }
        return (problems, world)
    }
}
