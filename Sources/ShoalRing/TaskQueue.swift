// Work handed to the loop by other threads (a Task sending after a database call, a signal).
// A locked list plus the eventfd doorbell; the loop drains it once per turn. The lock is
// ShoalPosix's pthread mutex, which ThreadSanitizer sees (see Lock.swift).
import ShoalPosix

/// A multi-producer queue of closures run on the loop thread.
final class TaskQueue: @unchecked Sendable {
    private let lock = Lock()
    private var tasks: [@Sendable () -> Void] = []

    /// Appends a task; returns true when the queue was empty (the caller rings the doorbell then).
    func push(_ task: @escaping @Sendable () -> Void) -> Bool {
        lock.withLock {
            tasks.append(task)
            return tasks.count == 1
        }
    }

    /// Takes every queued task.
    func takeAll() -> [@Sendable () -> Void] {
        lock.withLock {
            if tasks.isEmpty { return [] }
            let all = tasks
            tasks.removeAll(keepingCapacity: true)
            return all
        }
    }
}
