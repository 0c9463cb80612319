// The supervisor's worker slots as a value-type state machine: which slots must hold a worker,
// which process owns each slot, restarts with back-off, reload across the two slot sets, stop,
// drain deadlines and the progress watchdog. Events in, actions out; time is an input and nothing
// here touches a process, so every interleaving of signals, exits and deadlines is testable.
//
// Rules that keep the slots sound (each one fixes a way the old supervisor broke):
// - One process per slot: a slot gets a new worker only after its previous process was reaped,
//   so a slot is cleared (pid 0, registry swept) only by the exit of the process that owns it.
// - A slot is wanted when it belongs to the serving set, or to the set a reload is bringing up;
//   a wanted slot without a worker is (re)spawned, after the crash-loop back-off if one runs.
// - Each signal is sent at most once per process and reason; the deadline that escalates a drain
//   to SIGKILL is per process.

/// Every worker slot of a supervisor and what to do about it.
struct WorkerSlots {
    struct Configuration {
        /// Worker processes serving at once; there are twice as many slots (two sets).
        var workers: Int
        /// Seconds workers get to close their clients on stop or reload; they exit on their own.
        var drainTimeout: Double
        /// Seconds without progress before a worker is killed; 0 turns the watchdog off.
        var watchdogTimeout: Double

        /// A draining worker exits on its own after `drainTimeout`; this much later it is killed.
        static let drainGrace = 2.0
        /// A reload switches to the new set once all of it accepts, or after this long anyway.
        static let switchTimeout = 10.0
        /// A slot started this many times within `crashLoopWindow` seconds waits `backOff` seconds.
        static let crashLoopStarts = 5
        static let crashLoopWindow = 10.0
        static let backOff = 1.0
    }

    enum Event: Equatable {
        /// The supervisor is ready: start the first set.
        case start
        /// A `spawn` action succeeded (the process runs) or failed.
        case spawned(slot: Int, pid: Int32)
        case spawnFailed(slot: Int, error: String)
        /// A child was reaped; `status` says how it ended (for the log).
        case exited(pid: Int32, status: String)
        /// SIGHUP.
        case reload
        /// SIGTERM or SIGINT.
        case stop
        /// What a live worker published in its statistics block: whether it accepts, and its loop's
        /// progress counter (completions handled plus timers run).
        case observed(pid: Int32, accepting: Bool, progress: UInt64)
        /// Time passed (deadlines: back-off, drain, reload switch, watchdog).
        case tick
    }

    enum Signal: Equatable {
        /// Drain: stop accepting, close the clients with 1001, exit.
        case terminate
        /// SIGKILL.
        case kill
    }

    /// Why a process was sent a signal; each (process, reason) happens at most once.
    enum KillReason: Equatable {
        /// Its set stopped serving (reload) or the supervisor stops: drain.
        case drain
        /// Still there after its drain time plus grace.
        case drainTimeout
        /// A reload needs its slot back while it still drains.
        case slotNeeded
        /// No progress for the watchdog time.
        case watchdog
    }

    enum LogLevel: Equatable { case info, warning, error }

    enum Action: Equatable {
        /// Start a worker of `generation` in `slot`, then report `spawned` or `spawnFailed`.
        case spawn(slot: Int, generation: Int)
        case kill(pid: Int32, Signal, KillReason)
        /// The owner of the slot was reaped: pid 0, not accepting, registry partition swept.
        case clearSlot(slot: Int, owner: Int32)
        /// A worker of a serving slot died unexpectedly (metric `shoal_worker_restarts_total`).
        case countRestart(slot: Int)
        /// The watchdog killed the worker of the slot (metric `shoal_watchdog_kills_total`).
        case countWatchdogKill(slot: Int)
        /// Set `set` serves from now on; the other one drains.
        case switchActiveSet(Int)
        case log(LogLevel, String)
    }

    /// A worker process, from its spawn until it is reaped.
    struct Worker: Equatable {
        let pid: Int32
        let slot: Int
        let generation: Int
        var accepting = false
        var progress: UInt64 = 0
        /// When `progress` last moved (or the spawn): what the watchdog and /healthz measure from.
        var progressSeen: Double
        /// The watchdog looks at a worker once it has shown life (accepting or progress), so a slow
        /// program setup is not taken for a hang.
        var watched = false
        /// Signals sent, each at most once.
        var terminated = false
        var killed: KillReason?
        /// When a draining worker is killed if it has not exited.
        var drainDeadline: Double?
    }

    struct Slot: Equatable {
        /// The process in the slot, from its spawn until it is reaped.
        var owner: Int32?
        /// The generation of a spawn asked for and not answered yet.
        var spawning: Int?
        /// Restart back-off: no spawn before this time.
        var notBefore = 0.0
        /// Recent start times, for the crash-loop back-off.
        var starts: [Double] = []
    }

    let configuration: Configuration
    private(set) var slots: [Slot]
    private(set) var workers: [Int32: Worker] = [:]
    /// The set of slots that serves (0 or 1).
    private(set) var activeSet = 0
    /// The set a reload brings up, and when it switches even if not all of it accepts.
    private(set) var pendingSet: Int?
    private var switchDeadline = 0.0
    /// A SIGHUP that came while a reload was switching: it runs once that one has switched.
    private(set) var reloadQueued = false
    private(set) var started = false
    private(set) var stopping = false
    private var nextGeneration = 1
    /// Time of the previous event: a longer gap means the supervisor itself did not run, and time
    /// it could not watch is not held against the workers.
    private var lastEvent: Double?

    init(configuration: Configuration) {
        precondition(configuration.workers >= 1)
        self.configuration = configuration
        slots = Array(repeating: Slot(), count: configuration.workers * 2)
    }

    /// Stopped: every worker has been reaped after SIGTERM/SIGINT.
    var isFinished: Bool { stopping && workers.isEmpty && !slots.contains { $0.spawning != nil } }

    func set(of slot: Int) -> Int { slot / configuration.workers }

    /// The slots that must hold a worker now.
    func isWanted(_ slot: Int) -> Bool {
        started && !stopping && (set(of: slot) == activeSet || set(of: slot) == pendingSet)
    }

    /// The worker that owns `slot`, if any.
    func owner(of slot: Int) -> Worker? { slots[slot].owner.flatMap { workers[$0] } }

    /// The longest gap between events that still counts as watched time.
    private var blindGap: Double { max(1, configuration.watchdogTimeout / 2) }

    mutating func handle(_ event: Event, now: Double) -> [Action] {
        var actions: [Action] = []
        if let last = lastEvent, now - last > blindGap {
            for pid in workers.keys { workers[pid]!.progressSeen = max(workers[pid]!.progressSeen, now) }
        }
        lastEvent = max(lastEvent ?? now, now)
        switch event {
        case .start:
            guard !started else { return [] }
            started = true
        case .spawned(let slot, let pid):
            guard let generation = slots[slot].spawning, slots[slot].owner == nil else {
                preconditionFailure("spawn answered for slot \(slot), which asked for none")
            }
            slots[slot].spawning = nil
            slots[slot].owner = pid
            slots[slot].starts.append(now)
            workers[pid] = Worker(pid: pid, slot: slot, generation: generation, progressSeen: now)
        case .spawnFailed(let slot, let error):
            slots[slot].spawning = nil
            slots[slot].notBefore = now + Configuration.backOff
            actions.append(.log(.error, "could not start worker slot \(slot): \(error); retrying in 1 s"))
        case .exited(let pid, let status):
            exited(pid: pid, status: status, now: now, into: &actions)
        case .reload:
            reload(now: now, into: &actions)
        case .stop:
            guard !stopping else { return [] }
            stopping = true
            pendingSet = nil
            reloadQueued = false
            actions.append(.log(.info, "supervisor: stopping \(workers.count) worker(s)"))
        case .observed(let pid, let accepting, let progress):
            guard var worker = workers[pid] else { return [] }
            let moved = progress != worker.progress
            // Watched from its first sign of life: the watchdog time counts from there.
            if moved || (accepting && !worker.watched) {
                worker.watched = true
                worker.progressSeen = now
            }
            worker.accepting = accepting
            worker.progress = progress
            workers[pid] = worker
            return []
        case .tick:
            deadlines(now: now, into: &actions)
        }
        reconcile(now: now, into: &actions)
        return actions
    }

    // MARK: Events

    private mutating func exited(pid: Int32, status: String, now: Double, into actions: inout [Action]) {
        guard let worker = workers.removeValue(forKey: pid) else { return }
        let slot = worker.slot
        if slots[slot].owner == pid {
            slots[slot].owner = nil
            actions.append(.clearSlot(slot: slot, owner: pid))
        }
        let meant = worker.terminated || (worker.killed != nil && worker.killed != .watchdog)
        guard isWanted(slot) && !meant else {
            actions.append(.log(.info, "worker slot \(slot) pid \(pid) \(status)"))
            return
        }
        actions.append(.countRestart(slot: slot))
        // Restart at once; a slot that keeps dying is restarted at most every second.
        let recent = slots[slot].starts.filter { now - $0 < Configuration.crashLoopWindow }
        slots[slot].starts = recent
        let backingOff = recent.count >= Configuration.crashLoopStarts
        slots[slot].notBefore = backingOff ? now + Configuration.backOff : now
        actions.append(.log(.warning, "worker slot \(slot) pid \(pid) \(status); restarting\(backingOff ? " in 1 s" : "")"))
    }

    private mutating func reload(now: Double, into actions: inout [Action]) {
        guard started, !stopping else {
            actions.append(.log(.warning, "reload: SIGHUP ignored while \(stopping ? "stopping" : "starting")"))
            return
        }
        guard pendingSet == nil else {
            if !reloadQueued {
                actions.append(.log(.info, "reload: one is switching; another follows once it has"))
            }
            reloadQueued = true
            return
        }
        pendingSet = 1 - activeSet
        switchDeadline = now + Configuration.switchTimeout
        actions.append(.log(.info, "reload: starting a new generation of \(configuration.workers) worker(s)"))
    }

    // MARK: Deadlines

    private mutating func deadlines(now: Double, into actions: inout [Action]) {
        for pid in workers.keys.sorted() {
            let worker = workers[pid]!
            guard worker.killed == nil else { continue }
            if let deadline = worker.drainDeadline, now >= deadline {
                actions.append(.log(.warning, "worker slot \(worker.slot) pid \(pid) still draining after \(format(configuration.drainTimeout + Configuration.drainGrace)) s: killing it"))
                kill(pid, .kill, .drainTimeout, into: &actions)
            } else if watches(worker), now - worker.progressSeen >= configuration.watchdogTimeout {
                actions.append(.log(.error, "worker slot \(worker.slot) pid \(pid) made no progress for \(format(now - worker.progressSeen)) s: killing it"))
                actions.append(.countWatchdogKill(slot: worker.slot))
                kill(pid, .kill, .watchdog, into: &actions)
            }
        }
        if let newSet = pendingSet {
            let ready = slots(of: newSet).allSatisfy { owner(of: $0)?.accepting == true }
            if ready || now >= switchDeadline {
                if !ready { actions.append(.log(.warning, "reload: new workers not all ready after 10 s; switching anyway")) }
                activeSet = newSet
                pendingSet = nil
                actions.append(.switchActiveSet(newSet))
                if reloadQueued {
                    reloadQueued = false
                    reload(now: now, into: &actions)
                }
            }
        }
    }

    /// Serving workers of wanted slots that have shown life are watched, while the watchdog is on.
    private func watches(_ worker: Worker) -> Bool {
        configuration.watchdogTimeout > 0 && worker.watched && !worker.terminated && isWanted(worker.slot)
    }

    // MARK: Bringing the slots to what is wanted

    private mutating func reconcile(now: Double, into actions: inout [Action]) {
        for slot in slots.indices {
            if isWanted(slot) {
                if let worker = owner(of: slot) {
                    // The generation before last still drains here: the slot is needed now. Its
                    // replacement starts once it has been reaped (one process per slot).
                    if worker.terminated && worker.killed == nil { kill(worker.pid, .kill, .slotNeeded, into: &actions) }
                } else if slots[slot].spawning == nil && now >= slots[slot].notBefore {
                    slots[slot].spawning = nextGeneration
                    actions.append(.spawn(slot: slot, generation: nextGeneration))
                    nextGeneration += 1
                }
            } else if let worker = owner(of: slot), !worker.terminated, worker.killed == nil {
                kill(worker.pid, .terminate, .drain, into: &actions)
                workers[worker.pid]!.drainDeadline = now + configuration.drainTimeout + Configuration.drainGrace
            }
        }
    }

    private mutating func kill(_ pid: Int32, _ signal: Signal, _ reason: KillReason, into actions: inout [Action]) {
        switch signal {
        case .terminate: workers[pid]!.terminated = true
        case .kill: workers[pid]!.killed = reason
        }
        actions.append(.kill(pid: pid, signal, reason))
    }

    private func slots(of set: Int) -> Range<Int> {
        set * configuration.workers..<(set + 1) * configuration.workers
    }

    private func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String((seconds * 10).rounded() / 10)
    }
}
