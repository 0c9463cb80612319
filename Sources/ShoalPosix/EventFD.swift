// eventfd(2): the cross-thread (and signal-handler) doorbell of an event loop.
#if canImport(Glibc)
import Glibc
#endif
import CShoalSystem

/// An eventfd used to wake a loop blocked in the kernel. Writing is async-signal-safe.
public struct EventFD: Sendable {
    public let descriptor: Int32

    public init() throws(SystemError) {
        let fd = shoal_eventfd(0, shoal_efd_nonblock() | shoal_efd_cloexec())
        guard fd >= 0 else { throw SystemError.last("eventfd") }
        descriptor = fd
    }

    /// Adds one to the counter, waking whoever waits on it. Never blocks.
    public func signal() {
        var one: UInt64 = 1
        _ = write(descriptor, &one, 8)
    }

    public func close() { Glibc.close(descriptor) }
}
