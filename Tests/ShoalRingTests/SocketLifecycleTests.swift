// The socket lifecycle without sockets: every state reachable from a new socket under every
// event a kernel and a delegate can produce, explored exhaustively against a model of the kernel
// and the send queue. Checked in every state: the descriptor is closed (`.finish`) at most once
// and only when the kernel holds nothing on it; no chunk is released while a send reads it; no
// second receive or send is started; and from every state, an abort plus the kernel returning
// what it holds ends the socket with exactly one `.finish`.
import Testing

@testable import ShoalRing

@Suite struct SocketLifecycleTests {
    typealias Actions = SocketLifecycle.Actions

    /// The lifecycle plus what the kernel and the send queue hold, as the loop would see them.
    struct State: Hashable {
        var life = SocketLifecycle()
        /// Bytes queued (in flight or not).
        var queued = false
        /// The head chunk is being read by a send.
        var chunkInFlight = false
        /// Bytes were queued behind the in-flight ones.
        var queuedBehind = false
        var kernelReceive = false
        var kernelSend = false
        var lingerTimerArmed = false
        var finishes = 0
    }

    enum Event: CaseIterable {
        case flush, write, pause, resume, closeGracefully, abort, lingerTimer
        case receiveBytesMore, receiveBytesLast, noBuffers, receiveCancelled, receiveEnded
        case sentAll, sentPart, sendRetry, sendFailed
    }

    /// Applies `event` if it can happen in `state`; returns nil when it cannot, else the breaches it caused.
    static func apply(_ event: Event, to state: inout State) -> [String]? {
        guard state.finishes == 0 else { return nil }  // the slot is free: nothing reaches it any more
        var actions: Actions
        switch event {
        case .flush:
            actions = state.life.flushed(hasSendable: state.queued || state.queuedBehind)
        case .write:
            guard state.life.acceptsWrites else { return nil }
            if state.chunkInFlight { state.queuedBehind = true } else { state.queued = true }
            actions = .flush
        case .pause: actions = state.life.pauseRequested()
        case .resume: actions = state.life.resumeRequested()
        case .closeGracefully: actions = state.life.closeRequested(graceful: true, queueIsEmpty: !state.queued && !state.queuedBehind)
        case .abort: actions = state.life.closeRequested(graceful: false, queueIsEmpty: !state.queued && !state.queuedBehind)
        case .lingerTimer:
            guard state.lingerTimerArmed else { return nil }
            state.lingerTimerArmed = false
            actions = state.life.lingerTimerFired()
        case .receiveBytesMore, .receiveBytesLast, .noBuffers, .receiveCancelled, .receiveEnded:
            guard state.kernelReceive else { return nil }
            let more = event == .receiveBytesMore
            state.kernelReceive = more
            let outcome: SocketLifecycle.ReceiveOutcome =
                switch event {
                case .receiveBytesMore, .receiveBytesLast: .bytes
                case .noBuffers: .noBuffers
                case .receiveCancelled: .cancelled
                default: .ended
                }
            actions = state.life.receiveCompleted(outcome, hasMore: more)
        case .sentAll, .sentPart, .sendRetry, .sendFailed:
            guard state.kernelSend else { return nil }
            state.kernelSend = false
            state.chunkInFlight = false
            switch event {
            case .sentAll: state.queued = state.queuedBehind
            case .sentPart, .sendRetry: state.queued = true
            default: break
            }
            if event != .sendFailed { state.queuedBehind = false }
            let outcome: SocketLifecycle.SendOutcome = event == .sendRetry ? .retry : event == .sendFailed ? .failed : .sent
            actions = state.life.sendCompleted(outcome, queueIsEmpty: !state.queued)
        }
        return perform(actions, on: &state)
    }

    /// What the loop does with `actions`, checked against the kernel and queue model.
    static func perform(_ actions: Actions, on state: inout State) -> [String] {
        var breaches: [String] = []
        if actions.contains(.releaseAll) {
            if state.chunkInFlight { breaches.append("chunk released while a send reads it") }
            state.queued = false
            state.queuedBehind = false
        }
        if actions.contains(.releaseUnsent) {
            state.queuedBehind = false
            if !state.chunkInFlight { state.queued = false }
        }
        if actions.contains(.armLingerTimer) { state.lingerTimerArmed = true }
        if actions.contains(.armReceive) {
            if state.kernelReceive { breaches.append("second receive armed") }
            state.kernelReceive = true
        }
        if actions.contains(.send) {
            if state.kernelSend { breaches.append("second send started") }
            if !(state.queued || state.queuedBehind) { breaches.append("send with nothing queued") }
            state.kernelSend = true
            state.chunkInFlight = true
            state.queued = true
            state.queuedBehind = false
        }
        if actions.contains(.abortAfterNotifying) {
            breaches += perform(state.life.closeRequested(graceful: false, queueIsEmpty: !state.queued), on: &state)
        }
        if actions.contains(.finish) {
            state.finishes += 1
            if state.finishes > 1 { breaches.append("finished twice") }
            if state.kernelReceive || state.kernelSend { breaches.append("descriptor closed with an operation in flight") }
            if state.queued || state.queuedBehind { breaches.append("finished with chunks still queued") }
        }
        return breaches
    }

    /// Every state reachable from a new socket.
    static func reachableStates() -> (states: Set<State>, breaches: [String]) {
        var seen: Set<State> = [State()]
        var frontier = [State()]
        var breaches: [String] = []
        while let state = frontier.popLast() {
            for event in Event.allCases {
                var next = state
                guard let found = apply(event, to: &next) else { continue }
                breaches += found.map { "\($0) after \(event) in \(state)" }
                if seen.insert(next).inserted { frontier.append(next) }
            }
        }
        return (seen, breaches)
    }

    @Test func noReachableStateBreaksTheKernelContract() {
        let (states, breaches) = Self.reachableStates()
        #expect(breaches.isEmpty, "\(breaches.prefix(5))")
        // Every phase is reached, and the model is not trivially small.
        let phases = Set(states.map(\.life.phase))
        #expect(phases == [.open, .flushing, .lingering, .aborting, .closed])
        #expect(states.count > 50)
    }

    @Test func fromEveryStateAnAbortEndsTheSocketExactlyOnce() {
        for start in Self.reachableStates().states {
            var state = start
            var breaches = Self.apply(.abort, to: &state) ?? []
            // The kernel gives back what it holds: the cancel reaches each operation.
            for _ in 0..<4 where state.finishes == 0 {
                if state.kernelReceive { breaches += Self.apply(.receiveCancelled, to: &state) ?? [] }
                if state.kernelSend { breaches += Self.apply(.sendFailed, to: &state) ?? [] }
            }
            #expect(breaches.isEmpty, "\(breaches) from \(start)")
            #expect(state.finishes == 1, "no end from \(start)")
            #expect(state.life.phase == .closed)
        }
    }

    @Test func aGracefulCloseOfAnIdleSocketLingersUntilThePeersFin() {
        var state = State()
        _ = Self.apply(.flush, to: &state)
        let actions = state.life.closeRequested(graceful: true, queueIsEmpty: true)
        #expect(actions == [.armLingerTimer, .shutdownWrite])
        #expect(state.life.phase == .lingering)
        #expect(state.life.receiveCompleted(.ended, hasMore: false) == [.releaseAll, .finish])
        #expect(state.life.phase == .closed)
    }

    @Test func anAbortWithASendInFlightKeepsItsChunkUntilTheSendCompletes() {
        var life = SocketLifecycle()
        _ = life.flushed(hasSendable: true)
        #expect(life.closeRequested(graceful: false, queueIsEmpty: false) == [.releaseUnsent, .cancelAll])
        #expect(life.receiveCompleted(.cancelled, hasMore: false) == [])
        #expect(life.sendCompleted(.failed, queueIsEmpty: false) == [.releaseAll, .finish])
    }

    @Test func receivingMoreBytesOnAnOpenSocketAsksForNothing() {
        var life = SocketLifecycle()
        _ = life.flushed(hasSendable: false)
        #expect(life.receiveCompleted(.bytes, hasMore: true) == [])
        #expect(life.sendCompleted(.sent, queueIsEmpty: true) == .notifyDrained)
    }
}
