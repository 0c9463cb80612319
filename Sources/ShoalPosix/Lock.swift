// A mutex on pthread_mutex_t, for state shared between the loop and other threads. Chosen over
// Synchronization.Mutex because ThreadSanitizer understands it (it intercepts the pthread calls):
// Mutex on Linux hands a contended lock over inside the kernel (a futex, from the uninstrumented
// standard library), so TSan saw no ordering between two holders and reported what the lock
// guards as a race. Uncontended, a pthread mutex is one atomic instruction to lock and one to
// unlock, in user space, as Mutex is.
#if canImport(Glibc)
import Glibc
#endif

/// A non-recursive lock. The mutex lives in its own allocation so it never moves.
public final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` holding the lock.
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
