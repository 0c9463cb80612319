// What a worker process holds of the cluster: its role, the shared segment it inherited at fd 4,
// its slot's statistics block and registry partition.
import CShoalSystem
import ShoalPosix
#if canImport(Glibc)
import Glibc
#endif

/// The cluster as one worker process sees it.
public final class WorkerNode: @unchecked Sendable {
    public let role: WorkerRole
    public let segment: SharedSegment

    private init(role: WorkerRole, segment: SharedSegment) {
        self.role = role
        self.segment = segment
    }

    /// Attaches to what the supervisor handed this process. The worker also asks for SIGTERM when
    /// the supervisor dies, so it drains instead of living on orphaned.
    public static func attach(role: WorkerRole) throws -> WorkerNode {
        _ = shoal_set_parent_death_signal(SIGTERM)
        ClusterProcessName.worker(role, program: ClusterProcessName.thisProgram).apply()
        if getppid() == 1 { throw SystemError("worker start: the supervisor is already gone", errno: ESRCH) }
        let segment = try SharedSegment.attach(descriptor: ClusterDescriptors.segment)
        segment.registry.adopt(slot: role.slot)
        return WorkerNode(role: role, segment: segment)
    }

    /// This worker's statistics block.
    public var stats: WorkerStats { segment.stats(slot: role.slot) }

    /// The inherited SO_REUSEPORT listener.
    public var listener: Int32 { ClusterDescriptors.listener }

    /// The inherited operator listener; there only when the supervisor was given an operator address.
    public var operatorListener: Int32 { ClusterDescriptors.operatorListener(slotCount: 2 * role.workers) }
}
