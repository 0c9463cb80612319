// How the io_uring loop waits for its next turn: for one completion (a plain wait, as always), or,
// right after a busy turn, for a batch of them with io_uring's minimum wait (Linux 6.12,
// IORING_FEAT_MIN_TIMEOUT). With DEFER_TASKRUN the kernel then wakes the worker once per batch
// instead of once per completion, and a batch that does not fill in `minimumWaitMicroseconds`
// comes back with what arrived. A quiet turn goes back to the plain wait, so an idle worker wakes
// no more often than before and a lone request after a quiet period is not held back.
//
// Only a wait certain to sleep anyway is batched: one that submits nothing (a send it submits
// mostly completes within the submit), with no completion on the ring and no completion work the
// kernel holds for the loop (IORING_SQ_TASKRUN: receives that arrived while the loop ran). A plain
// wait with any of those returns at once without sleeping; batched, it would sleep out the
// minimum wait for the rest of its batch (echo at 10 connections, one message in flight each,
// lost 40 % of its messages per server CPU-second that way). So a batched wait never adds a
// sleep: it only turns one wake-up per completion into one per batch.
//
// Busy is counted in arrivals (receives and accept readiness: what peers did), not in all
// completions: a lone client's turn has its one request, and the send answering it completes in
// the next submit; counted, that send would make one client look like two, and its next request
// would wait out the minimum. They are counted since the loop last went to a wait certain to
// sleep, not since its last wait: after a busy turn the next wait submits the answers and returns
// with their completions at once, and the wait after that, the one that sleeps, must still see
// the arrivals that made the turn busy (in a connect storm, counting from the last wait left
// almost every sleeping wait plain).
//
// What makes the loop busy is a choice (`Busy`). Every arrival counting helps connect storms but
// costs echo with a few connections (2 or 4 clients, one message in flight each: 0.65-0.93x of
// the messages per server CPU-second): there a batch of two or four only holds one client's
// message until the next client's comes, and wakes the worker about as often. Counting only the
// connections accepted batches the storms (thousands of clients arriving at once, each one
// accept and one request: 11-23 accepted per sleep of a 10,000-client storm's worker) and never
// a steady load of connected clients, whatever their number: the default. Its mark is 16
// connections, not 2: a few clients that reconnect as soon as they are answered (4 of them: at
// most 4 accepted per sleep) never fill a larger batch and would wait out the minimum every
// time (median handshake 330 µs instead of 160 µs at a mark of 2).

/// The choice of the next wait, from the arrivals since the loop last slept and what the kernel has for it.
public struct BatchedWait: Sendable, Equatable {
    /// What counts toward `busyArrivals`.
    public enum Busy: Sendable, Equatable {
        /// Every arrival: bytes received, a listener's readiness.
        case arrivals
        /// Connections accepted: a storm of clients arriving, not the traffic of connected ones.
        case acceptedConnections
    }

    /// What makes the loop busy.
    public var busy: Busy = .arrivals
    /// Arrivals (or accepted connections, by `busy`) since the loop last slept that make it busy:
    /// at least two, so that one client waiting for each answer before it asks again never is.
    public var busyArrivals: Int = 2
    /// The most completions a batched wait asks the kernel for.
    public var batchLimit: UInt32 = 32
    /// How long a batched wait holds the completions that did arrive before it returns with fewer
    /// than it asked for; with none, it goes on waiting for the first.
    public var minimumWaitMicroseconds: UInt32 = 200
    /// The general timeout of a batched wait when the loop has no timer due: the kernel's minimum
    /// wait only holds completions back when a general timeout is set (without one it returns at
    /// the minimum wait, completions or not, which would wake an idle worker). Passing it costs
    /// one extra turn at most, at the end of a burst.
    public static let idleTimeoutNanoseconds: Int64 = 1_000_000_000

    public init() {}

    /// Batches only the wake-ups of connect storms (see `Busy.acceptedConnections`): the default.
    public static let acceptBursts = BatchedWait(busy: .acceptedConnections, busyArrivals: 16)

    public init(busy: Busy = .arrivals, busyArrivals: Int = 2, batchLimit: UInt32 = 32, minimumWaitMicroseconds: UInt32 = 200) {
        self.busy = busy
        self.busyArrivals = busyArrivals
        self.batchLimit = batchLimit
        self.minimumWaitMicroseconds = minimumWaitMicroseconds
    }

    /// One wait of the loop.
    public enum Wait: Sendable, Equatable {
        /// For one completion, or until `timeoutNanoseconds` (nil: no timeout).
        case plain(timeoutNanoseconds: Int64?)
        /// For `count` completions; after `minimumWaitMicroseconds` for at least one; until
        /// `timeoutNanoseconds` for none.
        case batched(count: UInt32, minimumWaitMicroseconds: UInt32, timeoutNanoseconds: Int64)
    }

    /// What the loop hands the kernel and what the kernel already has for it, as it is about to wait.
    public struct Outlook: Sendable, Equatable {
        /// Operations the wait submits.
        public var submitting: Int
        /// Completions on the ring (or held back for want of room in it).
        public var completionsReady: Bool
        /// Completion work the kernel queued for the loop (it runs when the loop enters to wait).
        public var workPending: Bool

        public init(submitting: Int, completionsReady: Bool, workPending: Bool) {
            self.submitting = submitting
            self.completionsReady = completionsReady
            self.workPending = workPending
        }

        /// A plain wait would sleep: nothing to submit (whose completion could end it at once),
        /// nothing ready, nothing for the kernel to run first.
        public var certainToSleep: Bool { submitting == 0 && !completionsReady && !workPending }
    }

    /// The wait after turns that took `arrivals` off the ring and accepted `accepted` connections
    /// since the loop last slept, given what the kernel has for the loop (`outlook`), with the
    /// loop's own timeout (its earliest timer; nil when none).
    ///
    /// The batch asked for is as many completions as arrivals (or accepted connections, when
    /// more): a batch fills once about as many peers came back as last time (fewer peers, a
    /// smaller batch, which a closed loop of a few clients can still fill), and grows while they
    /// come faster, up to `batchLimit`.
    public func wait(afterArrivals arrivals: Int, accepted: Int, outlook: Outlook, timeoutNanoseconds: Int64?) -> Wait {
        let busyCount = busy == .arrivals ? arrivals : accepted
        guard busyCount >= busyArrivals, minimumWaitMicroseconds > 0, outlook.certainToSleep else {
            return .plain(timeoutNanoseconds: timeoutNanoseconds)
        }
        // A listener's readiness is one arrival for all the connections it brought.
        let count = UInt32(clamping: min(Int(batchLimit), max(arrivals, accepted)))
        let minimum = Int64(minimumWaitMicroseconds) * 1_000
        if let timeout = timeoutNanoseconds {
            // A timer due before the minimum wait ends: the kernel would hold the completions past
            // it (it ends a minimum wait only at its own end), so wait plainly for the timer.
            guard timeout > minimum else { return .plain(timeoutNanoseconds: timeout) }
            return .batched(count: count, minimumWaitMicroseconds: minimumWaitMicroseconds, timeoutNanoseconds: timeout)
        }
        return .batched(count: count, minimumWaitMicroseconds: minimumWaitMicroseconds,
                        timeoutNanoseconds: Self.idleTimeoutNanoseconds)
    }

    /// The setting of `SHOAL_URING_BATCH_WAIT`: `off`, `accepts` (`acceptBursts`, the default),
    /// `on` (every arrival counts, the figures above), `BUSY,LIMIT,MICROSECONDS` ("2,32,200",
    /// every arrival counts) or `accepts,BUSY,LIMIT,MICROSECONDS` (accepted connections count);
    /// nil for anything else (the caller says so).
    public static func parse(_ text: String) -> Setting? {
        switch text.lowercased() {
        case "off", "0", "no": return .off
        case "accepts": return .on(.acceptBursts)
        case "on", "1", "yes": return .on(BatchedWait())
        default:
            var parts = text.lowercased().split(separator: ",", omittingEmptySubsequences: false)
            let counted: Busy = parts.first == "accepts" ? .acceptedConnections : .arrivals
            if counted == .acceptedConnections { parts.removeFirst() }
            guard parts.count == 3, let busy = Int(parts[0]), let batch = UInt32(parts[1]),
                  let micros = UInt32(parts[2]), busy > 1, batch > 1, micros > 0 else { return nil }
            return .on(BatchedWait(busy: counted, busyArrivals: busy, batchLimit: batch, minimumWaitMicroseconds: micros))
        }
    }

    /// What the environment asked for.
    public enum Setting: Sendable, Equatable {
        case off
        case on(BatchedWait)
    }
}
