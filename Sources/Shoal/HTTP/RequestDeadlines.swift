// When each HTTP session's current request must be complete (the handshake deadline, and the
// keep-alive idle time between requests): one FIFO of sessions per worker and one loop timer.
//
// Every session has the same timeout, so appending at the tail keeps the list in deadline order
// and only the head's deadline needs a timer. A session leaves the list the moment it upgrades or
// closes, so a WebSocket connection holds nothing here; a timer-heap entry per request would stay
// behind, for the whole timeout, in every connection that upgraded within it.
import ShoalRing

/// The sessions waiting for a request, oldest deadline first.
final class RequestDeadlines {
    private unowned let web: WebServer
    private let timeout: UInt64
    private var head: HTTPSession?
    // `unowned(unsafe)`: the list owns its sessions through `head` and each `next`, so the tail and
    // the back links always point at live sessions; weak references would allocate a side table per
    // session for nothing.
    private unowned(unsafe) var tail: HTTPSession?
    /// A loop timer is pending (for the head's deadline at the time it was set, or earlier).
    private var timerArmed = false

    init(web: WebServer, timeout: UInt64) {
        self.web = web
        self.timeout = timeout
    }

    /// No session is waiting for a request.
    var isEmpty: Bool { head == nil }

    /// Gives `session` a new deadline `timeout` from now (its first, or the next request's).
    func restart(_ session: HTTPSession) {
        remove(session)
        session.deadline = web.loop.deadline(after: timeout)
        session.deadlineLink.inList = true
        session.deadlineLink.previous = tail
        if let last = tail { last.deadlineLink.next = session } else { head = session }
        tail = session
        armTimer()
    }

    /// Takes `session` out of the list (it upgraded, closed, or its deadline passed); no effect if it is not in.
    func remove(_ session: HTTPSession) {
        guard session.deadlineLink.inList else { return }
        let previous = session.deadlineLink.previous
        let next = session.deadlineLink.next
        if let previous { previous.deadlineLink.next = next } else { head = next }
        if let next { next.deadlineLink.previous = previous } else { tail = previous }
        session.deadlineLink = HTTPSession.DeadlineLink()
    }

    private func armTimer() {
        guard !timerArmed, let first = head else { return }
        timerArmed = true
        let now = web.loop.now
        web.loop.schedule(after: first.deadline > now ? first.deadline - now : 0) { [unowned self] in
            self.timerArmed = false
            self.expire()
        }
    }

    /// Tells every session whose deadline passed, then waits for the next one.
    private func expire() {
        let now = web.loop.now
        while let first = head, first.deadline <= now {
            remove(first)
            first.deadlinePassed()
        }
        armTimer()
    }
}

extension HTTPSession {
    /// A session's place in `RequestDeadlines`.
    struct DeadlineLink {
        var inList = false
        var next: HTTPSession?
        unowned(unsafe) var previous: HTTPSession?
    }
}
