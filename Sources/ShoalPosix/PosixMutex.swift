// A value only the holder of a pthread mutex touches (the pthread lock itself is `Lock`, which
// says why it is not Synchronization.Mutex).
/// A value that only the holder of a pthread mutex reads or writes.
public final class PosixMutex<Value>: @unchecked Sendable {
    @usableFromInline let lock = Lock()
    @usableFromInline var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    /// Runs `body` with the value while holding the lock.
    @inlinable
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try lock.withLock { try body(&value) }
    }
}
