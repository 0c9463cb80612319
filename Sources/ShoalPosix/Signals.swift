// Signal handling the nginx way: handlers only record the signal and ring a doorbell;
// the loop that owns the process acts on it at the next turn.
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Process-wide record of stop signals, written from a signal handler.
public enum Signals {
    /// Bit per signal number received since the last `take()`.
    private static let pending = Atomic<UInt64>(0)
    /// Eventfd to ring when a signal arrives; -1 until `install` is called.
    private static let doorbell = Atomic<Int32>(-1)

    /// Installs handlers for `signals` that record them and write to `wakeFD`. SIGPIPE is ignored
    /// (a peer that vanishes mid-send must give EPIPE, not kill the worker).
    public static func install(_ signals: [Int32], wakeFD: Int32) {
        doorbell.store(wakeFD, ordering: .relaxed)
        signal(SIGPIPE, SIG_IGN)
        for number in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                Signals.pending.bitwiseOr(1 << UInt64(number), ordering: .relaxed)
                let fd = Signals.doorbell.load(ordering: .relaxed)
                if fd >= 0 {
                    var one: UInt64 = 1
                    _ = write(fd, &one, 8)
                }
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
    }

    /// The signals received since the last call, as numbers; clears them.
    public static func take() -> [Int32] {
        let bits = pending.exchange(0, ordering: .relaxed)
        guard bits != 0 else { return [] }
        return (1..<64).filter { bits & (1 << UInt64($0)) != 0 }.map { Int32($0) }
    }
}
