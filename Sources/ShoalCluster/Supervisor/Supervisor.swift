// The supervisor: creates the shared segment, one SO_REUSEPORT listener per worker index and the
// bus, spawns the workers, restarts the ones that die, and carries out stop (SIGTERM/SIGINT) and
// zero-downtime reload (SIGHUP). Signal handlers only record; this loop acts (nginx's master cycle).
import CShoalSystem
import Logging
import ShoalPosix
#if canImport(Glibc)
import Glibc
#endif

/// Runs a cluster of worker processes of the current executable.
public final class Supervisor {
    /// What the supervisor needs to know.
    public struct Configuration: Sendable {
        /// Worker processes serving at once (the default of `shoal serve` is one per CPU).
        public var workers: Int
        public var host: String
        public var port: Int
        /// Registry entries in all, split evenly between the 2 × workers slots (two generations
        /// overlap during a reload): a worker whose share is full refuses new clients with 503.
        public var registryCapacity: Int
        /// How long workers get to close their clients on stop or reload before they are killed.
        public var drainTimeoutSeconds: Double
        /// argv of the workers (argv[0] included); by default the supervisor's own.
        public var arguments: [String]

        public init(workers: Int, host: String, port: Int, registryCapacity: Int = 262_144,
                    drainTimeoutSeconds: Double = 5, arguments: [String] = CommandLine.arguments) {
            self.workers = workers
            self.host = host
            self.port = port
            self.registryCapacity = registryCapacity
            self.drainTimeoutSeconds = drainTimeoutSeconds
            self.arguments = arguments
        }
    }

    private struct Worker {
        var pid: pid_t
        var slot: Int
        var draining = false
    }

    private let configuration: Configuration
    private let logger: Logger
    private var segment: SharedSegment!
    private var listeners: [Int32] = []
    /// busEnds[a][b]: slot a's end of the channel between slots a and b.
    private var busEnds: [[Int32]] = []
    private var workers: [pid_t: Worker] = [:]
    private var activeSet = 0
    private var nextGeneration = 1
    private var recentStarts: [Int: [Double]] = [:]
    private var pendingRestarts: [(slot: Int, at: Double)] = []
    private var pendingSwitch: (set: Int, deadline: Double)?
    private var stopDeadline: Double?
    private let doorbell: EventFD

    public init(configuration: Configuration, logger: Logger) throws {
        precondition(configuration.workers >= 1)
        self.configuration = configuration
        self.logger = logger
        doorbell = try EventFD()
    }

    private var slotCount: Int { configuration.workers * 2 }

    /// Runs until every worker has exited after SIGTERM/SIGINT. Returns the exit status (0).
    public func run() throws -> Int32 {
        // Handlers first: the port accepts as soon as the listeners exist, and from then on a
        // SIGTERM must mean a graceful stop, not the signal's default action.
        Signals.install([SIGINT, SIGTERM, SIGHUP, SIGCHLD], wakeFD: doorbell.descriptor)
        try prepare()
        for index in 0..<configuration.workers { spawn(slot: index) }
        logger.info("supervisor \(getpid()): \(configuration.workers) worker(s) on \(configuration.host):\(configuration.port)")

        while true {
            waitForEvents()
            for signal in Signals.take() {
                switch signal {
                case SIGTERM, SIGINT: beginStop()
                case SIGHUP: beginReload()
                default: break
                }
            }
            reapWorkers()
            let now = Self.now()
            if let deadline = stopDeadline {
                if workers.isEmpty { break }
                if now >= deadline {
                    logger.warning("drain timeout: killing \(workers.count) worker(s)")
                    for pid in workers.keys { Spawn.kill(pid, SIGKILL) }
                    stopDeadline = now + 5
                }
                continue
            }
            runPendingRestarts(now: now)
            finishReloadIfReady(now: now)
            checkHeartbeats(now: now)
        }
        logger.info("supervisor: every worker stopped")
        return 0
    }

    // MARK: Setup

    private var parkingFloor: Int32 { ClusterDescriptors.parkingFloor(slotCount: slotCount) }

    private func prepare() throws {
        ResourceLimits.raiseOpenFilesToHardLimit()
        let perSlot = max(1, configuration.registryCapacity / slotCount)
        segment = try SharedSegment.create(workerSlots: slotCount, registryCapacity: perSlot)
        segmentDescriptor = try Spawn.moveAbove(segment.descriptor, minimum: parkingFloor)
        for _ in 0..<configuration.workers {
            let fd = try Socket.listen(host: configuration.host, port: configuration.port, reusePort: true)
            listeners.append(try Spawn.moveAbove(fd, minimum: parkingFloor))
        }
        busEnds = Array(repeating: Array(repeating: -1, count: slotCount), count: slotCount)
        for a in 0..<slotCount {
            for b in (a + 1)..<slotCount {
                let (x, y) = try UnixSocket.seqpacketPair()
                busEnds[a][b] = try Spawn.moveAbove(x, minimum: parkingFloor)
                busEnds[b][a] = try Spawn.moveAbove(y, minimum: parkingFloor)
            }
        }
    }

    /// The segment's descriptor after it was parked above the fixed numbers.
    private var segmentDescriptor: Int32 = -1

    // MARK: Workers

    private func spawn(slot: Int) {
        let generation = nextGeneration
        nextGeneration += 1
        let stats = segment.stats(slot: slot)
        let restarts = stats.restarts
        stats.reset()
        stats.restarts = restarts
        stats.generation = generation
        segment.registry.sweep(slot: slot)

        let role = WorkerRole(slot: slot, generation: generation, workers: configuration.workers)
        var descriptors: [(child: Int32, parent: Int32)] = [
            (ClusterDescriptors.listener, listeners[slot % configuration.workers]),
            (ClusterDescriptors.segment, segmentDescriptor),
        ]
        for peer in 0..<slotCount where peer != slot {
            descriptors.append((ClusterDescriptors.bus(toSlot: peer), busEnds[slot][peer]))
        }
        do {
            let pid = try Spawn.start(path: Spawn.currentExecutable, arguments: configuration.arguments,
                                      environment: role.environment(inheriting: Spawn.currentEnvironment()),
                                      descriptors: descriptors)
            stats.pid = Int(pid)
            workers[pid] = Worker(pid: pid, slot: slot)
            recentStarts[slot, default: []].append(Self.now())
            logger.info("worker slot \(slot) generation \(generation): pid \(pid)")
        } catch {
            logger.error("could not start worker slot \(slot): \(error); retrying in 1 s")
            pendingRestarts.append((slot, Self.now() + 1))
        }
    }

    private func reapWorkers() {
        while let (pid, status) = Spawn.reap() {
            guard let worker = workers.removeValue(forKey: pid) else { continue }
            let stats = segment.stats(slot: worker.slot)
            stats.pid = 0
            stats.accepting = false
            segment.registry.sweep(slot: worker.slot)
            let how = Spawn.describe(status: status)
            if stopDeadline != nil || worker.draining || !isActive(slot: worker.slot) {
                logger.info("worker slot \(worker.slot) pid \(pid) \(how)")
                continue
            }
            stats.restarts += 1
            // Restart at once; a slot that keeps dying is restarted at most every second.
            let now = Self.now()
            let recent = (recentStarts[worker.slot] ?? []).filter { now - $0 < 10 }
            recentStarts[worker.slot] = recent
            let delay = recent.count >= 5 ? 1.0 : 0
            logger.warning("worker slot \(worker.slot) pid \(pid) \(how); restarting\(delay > 0 ? " in 1 s" : "")")
            pendingRestarts.append((worker.slot, now + delay))
        }
    }

    private func runPendingRestarts(now: Double) {
        let due = pendingRestarts.filter { $0.at <= now }
        pendingRestarts.removeAll { $0.at <= now }
        for item in due where isActive(slot: item.slot) && !workers.values.contains(where: { $0.slot == item.slot }) {
            spawn(slot: item.slot)
        }
    }

    private func isActive(slot: Int) -> Bool {
        slot / configuration.workers == activeSet
    }

    /// A worker whose loop has not turned for 10 s is stuck: kill it, the restart follows.
    private func checkHeartbeats(now: Double) {
        let monotonic = Self.monotonicNanoseconds()
        for worker in workers.values where !worker.draining {
            let beat = segment.stats(slot: worker.slot).heartbeatNanoseconds
            if beat != 0 && monotonic > beat && monotonic - beat > 10_000_000_000 {
                logger.error("worker slot \(worker.slot) pid \(worker.pid) stuck for 10 s: killing it")
                Spawn.kill(worker.pid, SIGKILL)
            }
        }
    }

    // MARK: Stop and reload

    private func beginStop() {
        guard stopDeadline == nil else { return }
        logger.info("supervisor: stopping \(workers.count) worker(s)")
        pendingRestarts.removeAll()
        for pid in workers.keys { Spawn.kill(pid, SIGTERM) }
        stopDeadline = Self.now() + configuration.drainTimeoutSeconds + 2
    }

    private func beginReload() {
        guard stopDeadline == nil else { return }
        guard pendingSwitch == nil else {
            logger.warning("reload already in progress; SIGHUP ignored")
            return
        }
        let newSet = 1 - activeSet
        logger.info("reload: starting a new generation of \(configuration.workers) worker(s)")
        for index in 0..<configuration.workers {
            let slot = newSet * configuration.workers + index
            // A worker of the generation before last may still be draining in this slot: end it.
            for (pid, worker) in workers where worker.slot == slot {
                Spawn.kill(pid, SIGKILL)
                workers[pid]?.draining = true
            }
            spawn(slot: slot)
        }
        pendingSwitch = (newSet, Self.now() + 10)
    }

    /// Once every new worker accepts (or after 10 s), the old generation stops accepting and drains.
    private func finishReloadIfReady(now: Double) {
        guard let (newSet, deadline) = pendingSwitch else { return }
        let newSlots = (0..<configuration.workers).map { newSet * configuration.workers + $0 }
        let ready = newSlots.allSatisfy { segment.stats(slot: $0).accepting }
        guard ready || now >= deadline else { return }
        if !ready { logger.warning("reload: new workers not all ready after 10 s; switching anyway") }
        activeSet = newSet
        pendingSwitch = nil
        for (pid, worker) in workers where !isActive(slot: worker.slot) && !worker.draining {
            workers[pid]?.draining = true
            Spawn.kill(pid, SIGTERM)
        }
        logger.info("reload: new generation serving, old one draining")
    }

    // MARK: Waiting

    private func waitForEvents() {
        var poller = pollfd(fd: doorbell.descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, 100)
        if ready > 0 {
            var value: UInt64 = 0
            _ = read(doorbell.descriptor, &value, 8)
        }
    }

    static func now() -> Double {
        Double(monotonicNanoseconds()) / 1e9
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
