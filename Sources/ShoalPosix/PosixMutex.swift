// A lock ThreadSanitizer can see through. Swift's `Synchronization.Mutex` on Linux hands a
// contended lock from one thread to the next inside the kernel (a priority-inheritance futex, from
// the standard library, which is not instrumented), so TSan sees no ordering between the two
// holders and reports what the lock guards as a race. glibc's pthread mutex is intercepted by TSan;
// uncontended, it too is one atomic instruction to lock and one to unlock, in user space.
#if canImport(Glibc)
import Glibc
#endif

/// A value that only the holder of a pthread mutex reads or writes.
public final class PosixMutex<Value>: @unchecked Sendable {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    public init(_ value: Value) {
        // On the heap, never moved: a pthread mutex must keep its address.
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock.
    @inlinable
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
