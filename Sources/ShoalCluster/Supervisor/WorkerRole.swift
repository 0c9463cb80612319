// How a worker process learns who it is: its slot, generation and the cluster size come in the
// environment, its descriptors at fixed numbers (nginx passes listeners the same way).
//
//   fd 3        the SO_REUSEPORT listener of the worker's listener index (slot % workers)
//   fd 4        the shared segment (memfd)
//   fd 5 + k    the bus channel to worker slot k (every k but the worker's own slot)
//   fd 5 + 2W   the operator listener (`--metrics-listen`) of the worker's listener index, when
//               there is one (W = workers, so 2W slots)
//
// Slots 0..<workers and workers..<2*workers are the two generations that overlap during a
// SIGHUP reload; both use the same listeners, so no queued connection is lost.

/// Fixed descriptor numbers in a worker.
public enum ClusterDescriptors {
    public static let listener: Int32 = 3
    public static let segment: Int32 = 4
    public static let busBase: Int32 = 5

    /// The descriptor of the bus channel to `slot`.
    public static func bus(toSlot slot: Int) -> Int32 { busBase + Int32(slot) }

    /// The operator listener (/metrics and /healthz only), just past the bus channels.
    public static func operatorListener(slotCount: Int) -> Int32 { busBase + Int32(slotCount) }

    /// Descriptors handed to children are first moved to this number or above, just past the
    /// highest fixed number a child uses, so that placing them at the fixed numbers never collides
    /// (and the supervisor needs no more descriptors than it holds).
    public static func parkingFloor(slotCount: Int) -> Int32 { operatorListener(slotCount: slotCount) + 1 }
}

/// The identity of a worker process.
public struct WorkerRole: Sendable, Equatable {
    public var slot: Int
    public var generation: Int
    public var workers: Int

    public init(slot: Int, generation: Int, workers: Int) {
        self.slot = slot
        self.generation = generation
        self.workers = workers
    }

    /// Total slots: two generations of `workers`.
    public var slotCount: Int { workers * 2 }

    static let slotVariable = "SHOAL_WORKER_SLOT"
    static let generationVariable = "SHOAL_WORKER_GENERATION"
    // Not SHOAL_WORKERS: that is the environment's form of `serve --workers`.
    static let workersVariable = "SHOAL_CLUSTER_WORKERS"

    /// The role given to this process by a supervisor, or nil when it was started by hand.
    public static func fromEnvironment(_ environment: [String: String]) -> WorkerRole? {
        guard let slot = environment[slotVariable].flatMap(Int.init),
              let generation = environment[generationVariable].flatMap(Int.init),
              let workers = environment[workersVariable].flatMap(Int.init),
              workers > 0, slot >= 0, slot < workers * 2 else { return nil }
        return WorkerRole(slot: slot, generation: generation, workers: workers)
    }

    /// The environment of a child with this role: the parent's, minus any previous role, plus ours.
    func environment(inheriting parent: [String]) -> [String] {
        let ours = [Self.slotVariable, Self.generationVariable, Self.workersVariable]
        let kept = parent.filter { entry in !ours.contains { entry.hasPrefix($0 + "=") } }
        return kept + ["\(Self.slotVariable)=\(slot)", "\(Self.generationVariable)=\(generation)", "\(Self.workersVariable)=\(workers)"]
    }
}
