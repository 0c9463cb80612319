// When the io_uring backend may hand its receive buffers' pages back to the kernel. Pure, so the
// rule is tested without a ring.
//
// A buffer in the provided-buffer ring belongs to the kernel, which may copy a socket's bytes into
// it at any moment it runs the ring's completion work. Discarding its pages (MADV_DONTNEED) while
// that happens would lose those bytes. With IORING_SETUP_DEFER_TASKRUN the kernel fills a buffer
// only inside io_uring_enter called by the loop thread (completion work runs there, with
// GETEVENTS, and so does a receive issued at submission), so between two entries no buffer in the
// ring is written; with COOP_TASKRUN completion work also runs on the return from any other
// syscall (the madvise itself), so the release is never done there. Buffers the loop holds are
// the other hazard: a completion taken off the ring, still in the completion queue, or held back
// by the kernel while that queue was full (IORING_SQ_CQ_OVERFLOW) names a buffer whose bytes were
// not consumed yet. The loop recycles each buffer right after its completion was handled, so once
// no completion is waiting every lent buffer is back in the ring, empty. (An io-wq worker thread
// could write one too if a receive were punted there; sockets support non-blocking issue and
// poll, so io_uring does not punt Shoal's multishot receives.)

/// Decides, before each entry into the kernel, whether the receive buffers' pages go back now.
struct ReceiveBufferRelease {
    /// The ring runs its completion work only inside the loop's io_uring_enter (DEFER_TASKRUN).
    let kernelWritesOnlyWhenEntered: Bool
    /// A release was asked for and not done yet.
    private(set) var pending = false
    /// Releases done.
    private(set) var releases = 0

    init(kernelWritesOnlyWhenEntered: Bool) {
        self.kernelWritesOnlyWhenEntered = kernelWritesOnlyWhenEntered
    }

    /// Asks for a release at the next safe moment (the web server's heap-trim policy does, once a
    /// burst is over). Ignored where no moment is safe.
    mutating func request() {
        if kernelWritesOnlyWhenEntered { pending = true }
    }

    /// Called just before the loop enters the kernel. True when the pages may go back now: one was
    /// asked for and no completion is waiting (taken off the ring or still in it). Otherwise the
    /// request stays for a later turn.
    mutating func releaseNow(completionsWaiting: Bool) -> Bool {
        guard pending, !completionsWaiting else { return false }
        pending = false
        releases += 1
        return true
    }
}
