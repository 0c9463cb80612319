// The life of one registered socket as a value-type state machine: the loop feeds it events
// (completions, close and pause requests, the linger timer) and carries out the actions it
// returns. It owns the rules "a chunk the kernel reads lives until its send completes", "the
// descriptor is closed once, when nothing is in flight on it" and "closed(on:) comes once".
// No I/O here, so every rule is tested without sockets (SocketLifecycleTests).

/// The state of a connection's descriptor and of the operations the kernel holds on it.
///
/// Phases: `open` → (`close(.graceful)`) `flushing` → (queue empty) `lingering` → `aborting` →
/// `closed`. `close(.abort)` and a failed send go to `aborting` from any earlier phase, the linger
/// timer from `flushing` or `lingering`. `closed` is reached exactly once, with `.finish`, when
/// neither a receive nor a send is in flight any more.
struct SocketLifecycle: Hashable {
    enum Phase: UInt8 {
        /// Reads and writes.
        case open
        /// `close(.graceful)`: no more writes; what is queued still goes out.
        case flushing
        /// Our FIN is sent (shutdown of our side); waiting for the peer's FIN, discarding its bytes.
        case lingering
        /// Operations on the descriptor are cancelled; it is closed once they are all back.
        case aborting
        /// The descriptor is closed and the delegate was told (the slot is free).
        case closed
    }

    /// What the loop must do after an event (`EventLoop.perform` releases chunks first and
    /// finishes last). A small option set, so an event costs no allocation.
    struct Actions: OptionSet {
        let rawValue: UInt16

        /// Prepare a multishot receive.
        static let armReceive = Actions(rawValue: 1 << 0)
        /// Prepare a send of the queue's next sendable bytes (the head chunk, now in flight).
        static let send = Actions(rawValue: 1 << 1)
        /// Cancel the armed receive only (a pause).
        static let cancelReceive = Actions(rawValue: 1 << 2)
        /// Put the socket on the turn's flush list (a receive to re-arm or bytes to send).
        static let flush = Actions(rawValue: 1 << 3)
        /// Start the linger timer of a graceful close.
        static let armLingerTimer = Actions(rawValue: 1 << 4)
        /// shutdown(SHUT_WR): our FIN.
        static let shutdownWrite = Actions(rawValue: 1 << 5)
        /// shutdown(SHUT_RDWR) and cancel every operation on the descriptor.
        static let cancelAll = Actions(rawValue: 1 << 6)
        /// Release the queued chunks except the head, which an in-flight send is reading.
        static let releaseUnsent = Actions(rawValue: 1 << 7)
        /// Release every queued chunk (no send is in flight).
        static let releaseAll = Actions(rawValue: 1 << 8)
        /// Tell the delegate `readEnded(on:error:)`.
        static let notifyReadEnded = Actions(rawValue: 1 << 9)
        /// After `notifyReadEnded`: abort, unless the delegate already did (`abortRequested`).
        static let abortAfterNotifying = Actions(rawValue: 1 << 10)
        /// Tell the delegate `drained(on:)`.
        static let notifyDrained = Actions(rawValue: 1 << 11)
        /// Close the descriptor, free the slot, tell the delegate `closed(on:)`. Returned once.
        static let finish = Actions(rawValue: 1 << 12)
    }

    /// How a receive completion ended, as far as the lifecycle cares.
    enum ReceiveOutcome {
        /// Bytes were delivered (or discarded while closing).
        case bytes
        /// -ENOBUFS: the provided buffers ran out; receive again after this turn.
        case noBuffers
        /// -ECANCELED.
        case cancelled
        /// End of stream (0) or an error.
        case ended
    }

    /// How a send completion ended.
    enum SendOutcome {
        /// Bytes were sent (the loop consumed them from the queue before the event).
        case sent
        /// -EAGAIN or -EINTR: nothing went out; send again.
        case retry
        /// Any other error (or -ECANCELED).
        case failed
    }

    private(set) var phase = Phase.open
    /// A multishot receive is in the kernel (armed and not yet ended).
    private(set) var receiving = false
    /// A receive is to be armed by the next flush.
    private(set) var needsReceive = true
    /// The delegate asked for no more bytes for now (`pauseReceiving`).
    private(set) var receivePaused = false
    /// A cancel of the armed receive (for a pause) is on its way; its -ECANCELED is ours, not an end.
    private(set) var receiveCancelPending = false
    /// A send is in the kernel; the queue's head chunk must stay alive until its completion.
    private(set) var sending = false

    /// Writes are accepted only while open.
    var acceptsWrites: Bool { phase == .open }

    /// Received bytes go to the delegate while open or flushing (lingering discards them).
    var deliversBytes: Bool { phase == .open || phase == .flushing }

    // MARK: Events from the loop's turn

    /// The flush at the end of a turn: arm a receive and a send if they are due.
    mutating func flushed(hasSendable: Bool) -> Actions {
        var actions: Actions = []
        if needsReceive && !receiving && !receivePaused && phase.hasDescriptorOperations {
            needsReceive = false
            receiving = true
            actions.insert(.armReceive)
        }
        if hasSendable && !sending && phase.hasDescriptorOperations {
            sending = true
            actions.insert(.send)
        }
        return actions
    }

    // MARK: Events from the delegate

    mutating func pauseRequested() -> Actions {
        guard !receivePaused, phase == .open else { return [] }
        receivePaused = true
        guard receiving && !receiveCancelPending else { return [] }
        receiveCancelPending = true
        return .cancelReceive
    }

    mutating func resumeRequested() -> Actions {
        guard receivePaused else { return [] }
        receivePaused = false
        return .flush
    }

    /// `close(_:mode:)`. `queueIsEmpty`: nothing is waiting to be sent.
    mutating func closeRequested(graceful: Bool, queueIsEmpty: Bool) -> Actions {
        var actions: Actions = []
        if receivePaused {
            // A closing socket reads again: the peer's close frame or FIN is what ends it.
            receivePaused = false
            actions.insert(.flush)
        }
        guard phase.hasDescriptorOperations else { return actions }
        guard graceful else { return actions.union(abort()) }
        if phase == .open {
            phase = .flushing
            actions.insert(.armLingerTimer)
            if queueIsEmpty && !sending { actions.formUnion(beginLinger()) }
        }
        return actions
    }

    /// The linger timer of a graceful close fired.
    mutating func lingerTimerFired() -> Actions {
        phase == .flushing || phase == .lingering ? abort() : []
    }

    // MARK: Completions

    /// A receive completion. For `.bytes` the loop delivers them first (when `deliversBytes`),
    /// then reports the event, so a delegate that closes during delivery sees `closed(on:)` after.
    mutating func receiveCompleted(_ outcome: ReceiveOutcome, hasMore: Bool) -> Actions {
        if hasMore && (outcome == .bytes || outcome == .noBuffers) { return [] }  // the hot path
        var actions: Actions = []
        switch outcome {
        case .bytes:
            receiving = false
            receiveCancelPending = false  // it ended before the cancel reached it
            needsReceive = phase != .aborting
            actions = .flush
        case .noBuffers:
            // Every provided buffer was in use; receive again once this turn has recycled them.
            receiving = false
            receiveCancelPending = false
            if phase != .aborting {
                needsReceive = true
                actions = .flush
            }
        case .cancelled where receiveCancelPending && phase != .aborting:
            // Our own pause: armed again by the next flush once reading is resumed (or the socket closes).
            receiveCancelPending = false
            receiving = hasMore
            if !hasMore {
                needsReceive = true
                actions = .flush
            }
        case .cancelled, .ended:
            if !hasMore { receiving = false }
            switch phase {
            case .open, .flushing:
                // A flushing socket still ends once its sends complete or its linger timer fires.
                actions = .notifyReadEnded
            case .lingering:
                actions = abort()
            case .aborting, .closed:
                break
            }
        }
        return actions.union(finishIfIdle())
    }

    /// A send completion. On `.sent` the loop has already consumed the bytes; `queueIsEmpty` says
    /// whether anything is left.
    mutating func sendCompleted(_ outcome: SendOutcome, queueIsEmpty: Bool) -> Actions {
        sending = false
        if phase == .aborting {
            // The chunk the kernel was reading is free to go now, with the rest of the queue.
            return Actions.releaseAll.union(finishIfIdle())
        }
        switch outcome {
        case .retry:
            return .flush
        case .failed:
            return [.releaseAll, .notifyReadEnded, .abortAfterNotifying]
        case .sent:
            if !queueIsEmpty { return .flush }
            switch phase {
            case .open: return .notifyDrained
            case .flushing: return beginLinger()
            case .lingering, .aborting, .closed: return []
            }
        }
    }

    // MARK: Transitions

    private mutating func beginLinger() -> Actions {
        phase = .lingering
        // The peer's FIN already came (its receive ended and was not re-armed): nothing is left to
        // wait for, and no receive completion would ever end the linger before its timer.
        if !receiving && !needsReceive { return Actions.shutdownWrite.union(abort()) }
        return .shutdownWrite
    }

    private mutating func abort() -> Actions {
        phase = .aborting
        needsReceive = false
        var actions: Actions = sending ? .releaseUnsent : .releaseAll
        if receiving || sending {
            // The kernel still holds operations on this socket; cancel them and finish on their completions.
            actions.insert(.cancelAll)
        }
        return actions.union(finishIfIdle())
    }

    private mutating func finishIfIdle() -> Actions {
        guard phase == .aborting, !receiving, !sending else { return [] }
        phase = .closed
        return .finish
    }
}

extension SocketLifecycle.Phase {
    /// New receives and sends may be started on the descriptor.
    fileprivate var hasDescriptorOperations: Bool { self != .aborting && self != .closed }
}
