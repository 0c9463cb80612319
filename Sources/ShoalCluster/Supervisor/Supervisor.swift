// The supervisor: creates the shared segment, one SO_REUSEPORT listener per worker index and the
// bus, then turns signals, reaped children, the workers' published progress and the clock into
// events for `WorkerSlots` and carries out its actions (spawn, kill, clear a slot). Signal handlers
// only record; this loop acts (nginx's master cycle).
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
        /// How long a worker may make no progress before it is killed and replaced; 0: never.
        public var watchdogTimeoutSeconds: Double
        /// argv of the workers (argv[0] included); by default the supervisor's own.
        public var arguments: [String]
        /// Asked on SIGHUP before a new generation starts: a message refuses the reload (logged; the
        /// serving workers stay), nil lets it go on. (A configuration file that no longer checks, a
        /// certificate that no longer loads.)
        public var reloadCheck: (@Sendable () -> String?)?
        /// Where workers also answer /metrics and /healthz alone (`--metrics-listen`); nil: nowhere.
        public var operatorAddress: (host: String, port: Int)? = nil
        /// TCP_DEFER_ACCEPT of the public listeners in seconds (`Socket.listen`); 0: off. The
        /// operator listeners keep it off: scrapes are few, and a probe that only connects should
        /// reach a worker at once.
        public var deferAcceptSeconds: Int32 = 0

        public init(workers: Int, host: String, port: Int, registryCapacity: Int = 262_144,
                    drainTimeoutSeconds: Double = 5, watchdogTimeoutSeconds: Double = 10,
                    arguments: [String] = CommandLine.arguments, reloadCheck: (@Sendable () -> String?)? = nil) {
            self.workers = workers
            self.host = host
            self.port = port
            self.registryCapacity = registryCapacity
            self.drainTimeoutSeconds = drainTimeoutSeconds
            self.watchdogTimeoutSeconds = watchdogTimeoutSeconds
            self.arguments = arguments
            self.reloadCheck = reloadCheck
        }
    }

    private let configuration: Configuration
    private let logger: Logger
    private var segment: SharedSegment!
    private var listeners: [Int32] = []
    /// One SO_REUSEPORT operator listener per worker index, when `operatorAddress` is set.
    private var operatorListeners: [Int32] = []
    /// busEnds[a][b]: slot a's end of the channel between slots a and b.
    private var busEnds: [[Int32]] = []
    /// Every decision about the slots; this class only carries them out.
    private var slots: WorkerSlots
    private let doorbell: EventFD

    public init(configuration: Configuration, logger: Logger) throws {
        precondition(configuration.workers >= 1)
        self.configuration = configuration
        self.logger = logger
        slots = WorkerSlots(configuration: .init(workers: configuration.workers,
                                                 drainTimeout: configuration.drainTimeoutSeconds,
                                                 watchdogTimeout: configuration.watchdogTimeoutSeconds))
        doorbell = try EventFD()
    }

    private var slotCount: Int { configuration.workers * 2 }

    /// Runs until every worker has exited after SIGTERM/SIGINT. Returns the exit status (0).
    public func run() throws -> Int32 {
        // Handlers first: the port accepts as soon as the listeners exist, and from then on a
        // SIGTERM must mean a graceful stop, not the signal's default action.
        Signals.install([SIGINT, SIGTERM, SIGHUP, SIGCHLD], wakeFD: doorbell.descriptor)
        ClusterProcessName.supervisor(program: ClusterProcessName.thisProgram).apply()
        try prepare()
        logger.info("supervisor \(getpid()): \(configuration.workers) worker(s) on \(configuration.host):\(configuration.port)")
        handle(.start)
        while !slots.isFinished {
            waitForEvents()
            for signal in Signals.take() {
                switch signal {
                case SIGTERM, SIGINT: handle(.stop)
                case SIGHUP:
                    if let problem = configuration.reloadCheck?() {
                        logger.error("reload refused, the running workers stay: \(problem)")
                    } else {
                        handle(.reload)
                    }
                default: break
                }
            }
            while let (pid, status) = Spawn.reap() {
                handle(.exited(pid: pid, status: Spawn.describe(status: status)))
            }
            observeWorkers()
            handle(.tick)
            publishProgressSeen()
            sampleProcess()
        }
        logger.info("supervisor: every worker stopped")
        return 0
    }

    /// Feeds one event to the slots and carries out what they decide (a spawn reports back).
    private func handle(_ event: WorkerSlots.Event) {
        var pending = [event]
        while !pending.isEmpty {
            for action in slots.handle(pending.removeFirst(), now: Self.now()) {
                if let next = perform(action) { pending.append(next) }
            }
        }
    }

    private func perform(_ action: WorkerSlots.Action) -> WorkerSlots.Event? {
        switch action {
        case .spawn(let slot, let generation):
            return spawn(slot: slot, generation: generation)
        case .kill(let pid, let signal, _):
            Spawn.kill(pid, signal == .kill ? SIGKILL : SIGTERM)
        case .clearSlot(let slot, let owner):
            let stats = segment.stats(slot: slot)
            // The slot's owner just died: nobody else can be writing the block or the partition.
            assert(stats.pid == Int(owner), "slot \(slot) cleared for pid \(owner), held by \(stats.pid)")
            stats.pid = 0
            stats.accepting = false
            segment.registry.sweep(slot: slot)
        case .countRestart(let slot):
            segment.stats(slot: slot).restarts += 1
        case .countWatchdogKill(let slot):
            segment.stats(slot: slot).watchdogKills += 1
        case .switchActiveSet:
            logger.info("reload: new generation serving, old one draining")
        case .log(let level, let message):
            switch level {
            case .info: logger.info("\(message)")
            case .warning: logger.warning("\(message)")
            case .error: logger.error("\(message)")
            }
        }
        return nil
    }

    // MARK: Setup

    private var parkingFloor: Int32 { ClusterDescriptors.parkingFloor(slotCount: slotCount) }

    private func prepare() throws {
        ResourceLimits.raiseOpenFilesToHardLimit()
        let perSlot = max(1, configuration.registryCapacity / slotCount)
        segment = try SharedSegment.create(workerSlots: slotCount, registryCapacity: perSlot)
        segmentDescriptor = try Spawn.moveAbove(segment.descriptor, minimum: parkingFloor)
        for _ in 0..<configuration.workers {
            let fd = try Socket.listen(host: configuration.host, port: configuration.port, reusePort: true,
                                       deferAcceptSeconds: configuration.deferAcceptSeconds)
            listeners.append(try Spawn.moveAbove(fd, minimum: parkingFloor))
            if let address = configuration.operatorAddress {
                let fd = try Socket.listen(host: address.host, port: address.port, reusePort: true)
                operatorListeners.append(try Spawn.moveAbove(fd, minimum: parkingFloor))
            }
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

    private func spawn(slot: Int, generation: Int) -> WorkerSlots.Event {
        let stats = segment.stats(slot: slot)
        stats.reset()
        segment.metrics(slot: slot).resetProcess()
        stats.generation = generation
        stats.progressSeenNanoseconds = Self.monotonicNanoseconds()
        segment.registry.sweep(slot: slot)

        let role = WorkerRole(slot: slot, generation: generation, workers: configuration.workers)
        var descriptors: [(child: Int32, parent: Int32)] = [
            (ClusterDescriptors.listener, listeners[slot % configuration.workers]),
            (ClusterDescriptors.segment, segmentDescriptor),
        ]
        if !operatorListeners.isEmpty {
            descriptors.append((ClusterDescriptors.operatorListener(slotCount: slotCount),
                                operatorListeners[slot % configuration.workers]))
        }
        for peer in 0..<slotCount where peer != slot {
            descriptors.append((ClusterDescriptors.bus(toSlot: peer), busEnds[slot][peer]))
        }
        do {
            let pid = try Spawn.start(path: Spawn.currentExecutable, arguments: configuration.arguments,
                                      environment: role.environment(inheriting: Spawn.currentEnvironment()),
                                      descriptors: descriptors)
            stats.pid = Int(pid)
            logger.info("worker slot \(slot) generation \(generation): pid \(pid)")
            return .spawned(slot: slot, pid: pid)
        } catch {
            return .spawnFailed(slot: slot, error: "\(error)")
        }
    }

    /// Reads what each live worker published: whether it accepts, and its loop's progress.
    private func observeWorkers() {
        for worker in slots.workers.values {
            let stats = segment.stats(slot: worker.slot)
            guard stats.pid == Int(worker.pid) else { continue }
            handle(.observed(pid: worker.pid, accepting: stats.accepting, progress: stats.progress))
        }
    }

    /// Tells /healthz (in any worker) when each worker last made progress.
    private func publishProgressSeen() {
        for worker in slots.workers.values where slots.owner(of: worker.slot)?.pid == worker.pid {
            segment.stats(slot: worker.slot).progressSeenNanoseconds = UInt64(max(0, worker.progressSeen) * 1e9)
        }
    }

    /// When the supervisor last stored its own process figures (monotonic seconds; 0: never).
    private var processSampledAt = 0.0

    /// Stores the supervisor's CPU, memory and descriptor figures for /metrics, once a second.
    private func sampleProcess() {
        let now = Self.now()
        guard processSampledAt == 0 || now - processSampledAt >= 1 else { return }
        processSampledAt = now
        segment.supervisorProcess = ProcessSample.current()
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
