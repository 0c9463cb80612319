// Client input held while the bus holds this worker's producers (BusFlowControl): a channel to another
// worker is backed up, so what could send more over the bus waits instead of being dropped there. What
// waits: an upgrade request (its onOpen), a connection's received bytes (its onMessage), a closed
// connection's onTerminate. Each waiting party paused its own socket; here they queue, in arrival
// order, and run again once the bus drains, until the bus holds again: a bounded number per turn, as
// the loop bounds its completions (each may be a join into thousands of clients, and a turn that runs
// for seconds in handler code shows no progress to the watchdog).
import ShoalRing

/// Something that stopped at the hold and can go on.
protocol HeldInput: AnyObject {
    /// Runs what was held (and resumes reading); may stop at the hold again.
    func resumeHeldInput()
}

/// The worker's hold on client input.
final class InputHold {
    private unowned let loop: EventLoop
    /// True while producers must not run.
    private(set) var isHolding = false
    /// Parties in arrival order; those before `next` have run.
    private var waiting: [any HeldInput] = []
    private var next = 0
    /// Set while waiting ones run: a release from inside one of them is only noted.
    private var resuming = false
    private var continuationScheduled = false
    /// Parties run per turn once released: a join costs about one completion's handler work, and the
    /// loop takes 1,024 completions per turn; fewer here, since the hold is what makes them pile up.
    static let resumedPerTurn = 64

    init(loop: EventLoop) {
        self.loop = loop
    }

    /// `party` stopped at the hold; it runs again after the ones before it.
    func wait(_ party: any HeldInput) {
        waiting.append(party)
    }

    /// The bus holds (true) or released (false) producers.
    func changed(holding: Bool) {
        isHolding = holding
        if !holding { resumeSome() }
    }

    private func resumeSome() {
        guard !resuming else { return }
        resuming = true
        var count = 0
        while next < waiting.count && !isHolding && count < Self.resumedPerTurn {
            let party = waiting[next]
            next += 1
            count += 1
            party.resumeHeldInput()
        }
        if next == waiting.count {
            waiting = []  // a storm's list is not kept
            next = 0
        } else if next >= 1024 && next * 2 >= waiting.count {
            waiting.removeFirst(next)
            next = 0
        }
        resuming = false
        if !isHolding && next < waiting.count && !continuationScheduled {
            continuationScheduled = true
            // 1 ns, not 0: a timer due now would run in this turn's timer pass, and the turn (whose end
            // reports progress) would not end between two batches.
            loop.schedule(after: 1) { [weak self] in  // the loop may outlive its web server (tests)
                guard let self else { return }
                self.continuationScheduled = false
                if !self.isHolding { self.resumeSome() }
            }
        }
    }

    /// Parties waiting, for tests.
    var waitingCount: Int { waiting.count - next }
}
