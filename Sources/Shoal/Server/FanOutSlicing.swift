// How much of a large fan-out (a broadcast or publish to thousands of clients) one loop turn does:
// a slice ends after a number of recipients or a span of time, whichever comes first, and the rest
// waits for the next turn, so the loop reads and answers its other clients in between. Pure: the
// caller feeds it the clock and carries out what it returns (FanOutQueue.swift).

/// The decisions of a worker's fan-out queue, for one server: deliver now or queue, when a slice
/// ends, when to come back.
struct FanOutSlicing {
    struct Limits {
        /// Deliveries per slice, counted in plain ones (a frame written once, shared). The kernel's
        /// part of a delivery (loopback TCP and the reader's wake-up, ~10-15 µs here) happens when
        /// the turn's sends are submitted, so this bounds the submit that follows a slice: 2,048
        /// sends ≈ 25 ms, in one batch. A plain fan-out to no more recipients than this, with
        /// nothing waiting, is delivered at once, whole, as it always was (FanOutQueue), so the
        /// many small fan-outs of a busy turn still share one send per socket.
        var deliveriesPerSlice = 2048
        /// What one delivery compressed for its recipient alone counts (`.dedicated` mode): 8, so a
        /// slice compresses for at most 256 recipients.
        var compressedDeliveryCost = 8
        /// Time per slice once it compressed for a recipient (per-recipient compression: ~70 µs for
        /// 1 KiB at level 1, 15/8), checked after every delivery.
        var nanosecondsPerSlice: UInt64 = 2_000_000
        /// Messages waiting at most. A newer one waits behind them (per connection, messages keep
        /// their order); beyond this the oldest is finished at once, whatever it costs, so a
        /// worker that fans out faster than it can deliver stays bounded in memory.
        var maxQueued = 64
    }

    /// What to do with a new message.
    enum Arrival: Equatable {
        /// Nothing waits: deliver now, in this turn's slice, until `shouldContinue` says stop.
        case deliverNow
        /// Others wait: queue it behind them.
        case queue
        /// Queue it, but first finish the oldest waiting message (the queue is full).
        case finishOldestThenQueue
    }

    /// What to do at the end of a slice.
    enum Next: Equatable {
        /// Run a slice at the next turn, which then does not wait for the kernel.
        case scheduleSlice
        /// A slice is scheduled already, or nothing waits.
        case none
    }

    let limits: Limits
    /// Messages waiting (delivered in part or not at all).
    private(set) var queued = 0
    /// A slice is scheduled for a coming turn.
    private(set) var sliceScheduled = false
    /// The turn (the loop's time at its start, the same all through one turn) of the current slice.
    private var sliceTurn: UInt64?
    private var sliceStart: UInt64 = 0
    /// Deliveries made in the slice, in plain ones.
    private var spentInSlice = 0
    /// The current slice's budget is spent: the rest of its turn delivers nothing more.
    private var budgetSpent = false

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// A message to fan out, in turn `turn` at `now`. Several messages in one turn share its slice.
    mutating func messageArrived(turn: UInt64, now: UInt64) -> Arrival {
        if sliceTurn != turn { beginSlice(turn: turn, now: now) }
        if queued == 0 && !budgetSpent { return .deliverNow }
        return queued >= limits.maxQueued ? .finishOldestThenQueue : .queue
    }

    /// One recipient was served at `now`, with a frame compressed for it alone or not: true while
    /// the slice may go on.
    mutating func shouldContinue(now: UInt64, compressed: Bool = false) -> Bool {
        spentInSlice += compressed ? limits.compressedDeliveryCost : 1
        if spentInSlice >= limits.deliveriesPerSlice || (compressed && now &- sliceStart >= limits.nanosecondsPerSlice) {
            budgetSpent = true
        }
        return !budgetSpent
    }

    /// A message delivered now (`deliverNow`) has recipients left: it is queued first in line.
    mutating func leftOver() -> Next {
        queued += 1
        return scheduleIfNeeded()
    }

    /// A message was queued (`queue`, `finishOldestThenQueue`).
    mutating func queuedMessage() -> Next {
        queued += 1
        return scheduleIfNeeded()
    }

    /// The oldest waiting message was delivered to its last recipient (in a slice, or at once).
    mutating func finishedOldest() {
        precondition(queued > 0, "no message was waiting")
        queued -= 1
    }

    /// The scheduled slice runs, in turn `turn` at `now`: a fresh budget.
    mutating func sliceStarted(turn: UInt64, now: UInt64) {
        sliceScheduled = false
        beginSlice(turn: turn, now: now)
    }

    /// The scheduled slice ended (its budget spent, or nothing left to deliver).
    mutating func sliceEnded() -> Next {
        scheduleIfNeeded()
    }

    private mutating func beginSlice(turn: UInt64, now: UInt64) {
        sliceTurn = turn
        sliceStart = now
        spentInSlice = 0
        budgetSpent = false
    }

    private mutating func scheduleIfNeeded() -> Next {
        guard queued > 0, !sliceScheduled else { return .none }
        sliceScheduled = true
        return .scheduleSlice
    }
}
