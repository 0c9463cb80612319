// A pretend machine for WorkerSlots: processes with fresh pids that run, hang, get stopped, die
// and are reaped when the test says; it carries out the slots' actions and records every rule an
// action breaks (a slot cleared by a non-owner, two processes in one slot, a signal sent twice or
// to a reaped pid, a watchdog kill of a worker that was progressing).
@testable import ShoalCluster

struct SlotWorld {
    struct Process {
        let pid: Int32
        let slot: Int
        /// Runs until it dies (crash, SIGKILL, end of its drain); a dead process awaits its reap.
        var alive = true
        var reaped = false
        /// SIGSTOP: no progress; a SIGTERM stays pending until SIGCONT.
        var stopped = false
        var progress: UInt64 = 0
        /// Its setup ends at `readyAt` (if it is running then): from then on it accepts, until SIGTERM.
        var readyAt: Double
        var accepting = false
        /// SIGTERM received (and not pending): it exits at `exitsAt`, or never when it hangs.
        var terminated = false
        var terminatePending = false
        var exitsAt: Double?
        var hangsOnTerminate: Bool
    }

    var slots: WorkerSlots
    var now = 0.0
    private(set) var processes: [Int32: Process] = [:]
    private var nextPid: Int32 = 1000
    /// The process last spawned in each slot: the only one allowed to clear it.
    private var spawnedLast: [Int: Int32] = [:]
    private var signalsSent: Set<String> = []
    private(set) var violations: [String] = []
    private(set) var logs: [String] = []
    /// Every event with the actions it produced, to read when a random run fails (formatted only then).
    private var history: [(now: Double, event: WorkerSlots.Event, actions: [WorkerSlots.Action])] = []
    private(set) var switches: [Int] = []
    private(set) var restarts = 0
    private(set) var watchdogKills = 0
    /// The next spawns fail (the machine is out of processes).
    var spawnsFail = false
    /// How a process spawned from now on behaves on SIGTERM.
    var drainDelay: () -> Double = { 0.5 }
    var hangs: () -> Bool = { false }
    var setupTime: () -> Double = { 0.1 }

    init(workers: Int, drainTimeout: Double = 5, watchdogTimeout: Double = 10) {
        slots = WorkerSlots(configuration: .init(workers: workers, drainTimeout: drainTimeout,
                                                 watchdogTimeout: watchdogTimeout))
    }

    // MARK: Feeding events

    mutating func send(_ event: WorkerSlots.Event) {
        var pending = [event]
        while !pending.isEmpty {
            let event = pending.removeFirst()
            let actions = slots.handle(event, now: now)
            history.append((now, event, actions))
            for action in actions {
                if let next = perform(action) { pending.append(next) }
            }
        }
    }

    /// One turn of the supervisor's loop: reap what died, read what the workers published, tick.
    mutating func turn() {
        reapAll()
        observe()
        send(.tick)
    }

    /// Lets time pass in supervisor turns of at most `step` seconds.
    mutating func run(for seconds: Double, step: Double = 0.1) {
        let end = now + seconds
        while now < end {
            advance(by: min(step, end - now))
            turn()
        }
    }

    mutating func advance(by seconds: Double) {
        now += seconds
        for pid in processes.keys {
            guard var process = processes[pid], process.alive else { continue }
            if let exitsAt = process.exitsAt, now >= exitsAt, !process.stopped { process.alive = false }
            if !process.stopped {
                process.progress += 1
                if now >= process.readyAt && !process.terminated { process.accepting = true }
            }
            processes[pid] = process
        }
    }

    mutating func reapAll() {
        for pid in processes.keys.sorted() { reap(pid) }
    }

    mutating func reap(_ pid: Int32) {
        guard let process = processes[pid], !process.alive, !process.reaped else { return }
        processes[pid]!.reaped = true
        send(.exited(pid: pid, status: "exited"))
    }

    mutating func observe() {
        for pid in processes.keys.sorted() {
            guard let process = processes[pid], process.alive else { continue }
            send(.observed(pid: pid, accepting: process.accepting, progress: process.progress))
        }
    }

    /// The last `count` events that did something (observations and idle ticks left out).
    func recentHistory(_ count: Int) -> String {
        let telling = history.filter { entry in
            switch entry.event {
            case .tick, .observed: return !entry.actions.isEmpty
            default: return true
            }
        }
        return telling.suffix(count).map { "t=\($0.now): \($0.event) -> \($0.actions)" }.joined(separator: "\n")
    }

    // MARK: Things that happen to processes

    mutating func crash(_ pid: Int32) { processes[pid]?.alive = false }

    mutating func stop(_ pid: Int32) { processes[pid]?.stopped = true }

    /// SIGSTOPs the worker that owns `slot`; returns its pid.
    mutating func stopOwner(of slot: Int) -> Int32 {
        let pid = slots.owner(of: slot)!.pid
        stop(pid)
        return pid
    }

    mutating func resume(_ pid: Int32) {
        guard processes[pid]?.stopped == true else { return }
        processes[pid]!.stopped = false
        if processes[pid]!.terminatePending { beginDrain(pid) }
    }

    /// Processes not reaped yet (alive, or dead and waiting for the supervisor).
    var unreaped: [Process] { processes.values.filter { !$0.reaped }.sorted { $0.pid < $1.pid } }
    var live: [Process] { processes.values.filter { $0.alive }.sorted { $0.pid < $1.pid } }

    // MARK: Carrying out actions

    private mutating func perform(_ action: WorkerSlots.Action) -> WorkerSlots.Event? {
        switch action {
        case .spawn(let slot, _):
            if let other = unreaped.first(where: { $0.slot == slot }) {
                violations.append("t=\(now): spawn in slot \(slot) while pid \(other.pid) still holds it")
            }
            if spawnsFail { return .spawnFailed(slot: slot, error: "EAGAIN") }
            let pid = nextPid
            nextPid += 1
            processes[pid] = Process(pid: pid, slot: slot, readyAt: now + setupTime(), hangsOnTerminate: hangs())
            spawnedLast[slot] = pid
            return .spawned(slot: slot, pid: pid)
        case .kill(let pid, let signal, let reason):
            let key = "\(pid) \(signal)"
            if !signalsSent.insert(key).inserted { violations.append("t=\(now): \(signal) sent twice to \(pid) (\(reason))") }
            guard let process = processes[pid], !process.reaped else {
                violations.append("t=\(now): \(signal) to pid \(pid), which was reaped (its number may be reused)")
                return nil
            }
            switch signal {
            case .kill:
                // A dead process awaiting its reap makes no progress either.
                if reason == .watchdog && process.alive && !process.stopped {
                    violations.append("t=\(now): watchdog killed pid \(pid), which was making progress")
                }
                processes[pid]!.alive = false
            case .terminate:
                processes[pid]!.terminatePending = true
                if !process.stopped { beginDrain(pid) }
            }
        case .clearSlot(let slot, let owner):
            if spawnedLast[slot] != owner || processes[owner]?.reaped != true {
                violations.append("t=\(now): slot \(slot) cleared for pid \(owner); its owner is \(spawnedLast[slot].map(String.init) ?? "none")")
            }
        case .countRestart:
            restarts += 1
        case .countWatchdogKill:
            watchdogKills += 1
        case .switchActiveSet(let set):
            switches.append(set)
        case .log(_, let line):
            logs.append(line)
        }
        return nil
    }

    private mutating func beginDrain(_ pid: Int32) {
        guard var process = processes[pid], !process.terminated else { return }
        process.terminated = true
        process.accepting = false
        process.terminatePending = false
        if !process.hangsOnTerminate { process.exitsAt = now + drainDelay() }
        processes[pid] = process
    }

    // MARK: What must hold once things settle

    /// The rules for a cluster left alone: every slot of the serving set holds exactly one process,
    /// the slots' owner; the other set holds none; after a stop, nothing at all.
    func settledProblems() -> [String] {
        var problems = violations
        let workers = slots.configuration.workers
        if slots.stopping {
            if !unreaped.isEmpty { problems.append("stopped, yet pids \(unreaped.map(\.pid)) remain") }
            if !slots.isFinished { problems.append("stopped and empty, yet the supervisor would not return") }
            return problems
        }
        if slots.pendingSet != nil { problems.append("a reload never switched") }
        for slot in 0..<workers * 2 {
            let here = unreaped.filter { $0.slot == slot }
            if slots.set(of: slot) == slots.activeSet {
                if here.count != 1 || !here[0].alive {
                    problems.append("serving slot \(slot) holds \(here.map { "\($0.pid)\($0.alive ? "" : " (dead)")" })")
                } else if slots.owner(of: slot)?.pid != here[0].pid {
                    problems.append("serving slot \(slot): process \(here[0].pid), owner \(String(describing: slots.owner(of: slot)?.pid))")
                }
            } else if !here.isEmpty {
                problems.append("slot \(slot) of the idle set holds \(here.map(\.pid))")
            }
        }
        return problems
    }
}
