// Work handed to the loop by other threads (a Task sending after a database call, a signal).
// A mutex-protected list plus the eventfd doorbell; the loop drains it once per turn.
// The mutex is a pthread mutex (`PosixMutex`), not `Synchronization.Mutex`: ThreadSanitizer cannot
// see how the latter hands a contended lock over and reported push/takeAll as a race.
import ShoalPosix

/// A multi-producer queue of closures run on the loop thread.
final class TaskQueue: Sendable {
    private let tasks = PosixMutex<[@Sendable () -> Void]>([])

    /// Appends a task; returns true when the queue was empty (the caller rings the doorbell then).
    func push(_ task: @escaping @Sendable () -> Void) -> Bool {
        tasks.withLock { list in
            list.append(task)
            return list.count == 1
        }
    }

    /// Takes every queued task.
    func takeAll() -> [@Sendable () -> Void] {
        tasks.withLock { list in
            if list.isEmpty { return [] }
            let all = list
            list.removeAll(keepingCapacity: true)
            return all
        }
    }
}
