// The life of one connection to Redis (the publishing one or the subscribing one), as a value:
// events in (start, connected, failed, lost, timers), actions out (connect, abandon the attempt,
// arm a timer, subscribe). Time is a number the caller passes, so `RedisLinkStateTests` play every
// path without sockets. `RedisConnection` carries the actions out on the worker's loop.

public struct RedisLinkState: Equatable, Sendable {
    public enum Phase: Equatable, Sendable {
        /// Not started, or stopped.
        case idle
        /// A connection attempt is in flight (started at `since`, nanoseconds).
        case connecting(since: UInt64)
        /// Connected (and, for the subscriber, SUBSCRIBE sent).
        case up
        /// Waiting until `until` before the next attempt.
        case backingOff(until: UInt64)
        case stopped
    }

    public enum Event: Equatable, Sendable {
        case start
        case connected
        /// The attempt failed (refused, unreachable, hiredis error).
        case connectFailed
        /// An established connection ended (Redis went away, a protocol error).
        case lost
        /// A timer the state machine asked for fired (`now` is the caller's clock).
        case timer
        case stop
    }

    public enum Action: Equatable, Sendable {
        /// Open a new connection (asynchronously).
        case connect
        /// Free the connection in flight or established (its callbacks must not run our logic again).
        case abandon
        /// Call back with `.timer` after this many nanoseconds.
        case armTimer(nanoseconds: UInt64)
        /// The link is usable: the subscriber sends SUBSCRIBE, the publisher may publish.
        case becameUp
        /// The link is not usable any more (logged once per outage, counted by /healthz).
        case becameDown
    }

    /// First retry delay; doubles per failed attempt up to `maximumBackoff`.
    public static let initialBackoff: UInt64 = 50_000_000
    /// 1 s: a Redis restart is noticed within about a second (the tests ask for 5 s), and a Redis
    /// that stays down costs each worker one connect attempt per second.
    public static let maximumBackoff: UInt64 = 1_000_000_000
    /// An attempt not answered within 2 s is abandoned (a dropped SYN would otherwise wait for the
    /// kernel's own connect timeout, minutes).
    public static let connectTimeout: UInt64 = 2_000_000_000

    public private(set) var phase: Phase = .idle
    /// Failed attempts since the link was last up (sets the back-off).
    public private(set) var failures = 0
    /// Whether the link was up before this outage (so `becameDown` is said once per outage).
    private var reportedUp = false

    public init() {}

    public var isUp: Bool { phase == .up }

    /// The back-off before attempt number `failures + 1`.
    public static func backoff(afterFailures failures: Int) -> UInt64 {
        let shift = UInt64(min(max(failures - 1, 0), 20))
        return min(initialBackoff << shift, maximumBackoff)
    }

    public mutating func handle(_ event: Event, now: UInt64) -> [Action] {
        switch (phase, event) {
        case (_, .stop):
            let wasActive = phase == .up || { if case .connecting = phase { return true } else { return false } }()
            let wasUp = reportedUp
            phase = .stopped
            reportedUp = false
            return (wasActive ? [.abandon] : []) + (wasUp ? [.becameDown] : [])
        case (.stopped, _):
            return []
        case (.idle, .start):
            phase = .connecting(since: now)
            return [.connect, .armTimer(nanoseconds: Self.connectTimeout)]
        case (.connecting, .connected):
            phase = .up
            failures = 0
            reportedUp = true
            return [.becameUp]
        case (.connecting, .connectFailed):
            return backOff(now: now, abandon: false)
        case (.connecting(let since), .timer):
            guard now >= since &+ Self.connectTimeout else { return [] }
            return backOff(now: now, abandon: true)
        case (.up, .lost):
            return backOff(now: now, abandon: false)
        case (.backingOff(let until), .timer):
            guard now >= until else { return [] }
            phase = .connecting(since: now)
            return [.connect, .armTimer(nanoseconds: Self.connectTimeout)]
        default:
            // A late callback or a timer of a state already left: nothing to do.
            return []
        }
    }

    private mutating func backOff(now: UInt64, abandon: Bool) -> [Action] {
        failures += 1
        let delay = Self.backoff(afterFailures: failures)
        phase = .backingOff(until: now &+ delay)
        var actions: [Action] = abandon ? [.abandon] : []
        if reportedUp {
            reportedUp = false
            actions.append(.becameDown)
        }
        actions.append(.armTimer(nanoseconds: delay))
        return actions
    }
}
