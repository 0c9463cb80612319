// The Redis link's life without sockets: events in, actions out, time as a number.
import Testing
@testable import ShoalRedis

@Suite struct RedisLinkStateTests {
    typealias State = RedisLinkState

    @Test func startConnectsAndArmsTheConnectTimeout() {
        var state = State()
        #expect(state.handle(.start, now: 0) == [.connect, .armTimer(nanoseconds: State.connectTimeout)])
        #expect(state.handle(.connected, now: 10) == [.becameUp])
        #expect(state.isUp)
    }

    @Test func refusedAttemptsBackOffDoublingUpToTheMaximum() {
        var state = State()
        _ = state.handle(.start, now: 0)
        var now: UInt64 = 0
        var delays: [UInt64] = []
        for _ in 0..<8 {
            let actions = state.handle(.connectFailed, now: now)
            guard case .armTimer(let delay)? = actions.last else { Issue.record("no timer in \(actions)"); return }
            #expect(!actions.contains(.becameDown), "never up, so never reported down")
            delays.append(delay)
            now += delay
            #expect(state.handle(.timer, now: now) == [.connect, .armTimer(nanoseconds: State.connectTimeout)])
        }
        #expect(delays == [50, 100, 200, 400, 800, 1000, 1000, 1000].map { UInt64($0) * 1_000_000 })
    }

    @Test func lossIsReportedOnceAndReconnectResetsTheBackoff() {
        var state = State()
        _ = state.handle(.start, now: 0)
        _ = state.handle(.connected, now: 1)
        #expect(state.handle(.lost, now: 100) == [.becameDown, .armTimer(nanoseconds: 50_000_000)])
        #expect(state.handle(.timer, now: 100 + 50_000_000).first == .connect)
        // Redis still down: the next failure backs off longer and is not reported again.
        #expect(state.handle(.connectFailed, now: 200_000_000) == [.armTimer(nanoseconds: 100_000_000)])
        _ = state.handle(.timer, now: 300_000_000)
        #expect(state.handle(.connected, now: 300_000_001) == [.becameUp])
        #expect(state.failures == 0)
        #expect(state.handle(.lost, now: 400_000_000) == [.becameDown, .armTimer(nanoseconds: 50_000_000)])
    }

    @Test func anUnansweredAttemptIsAbandonedAfterTheConnectTimeout() {
        var state = State()
        _ = state.handle(.start, now: 0)
        #expect(state.handle(.timer, now: State.connectTimeout - 1) == [], "early timer: still waiting")
        #expect(state.handle(.timer, now: State.connectTimeout) == [.abandon, .armTimer(nanoseconds: 50_000_000)])
    }

    @Test func aStaleTimerOfAnEarlierAttemptChangesNothing() {
        var state = State()
        _ = state.handle(.start, now: 0)
        _ = state.handle(.connectFailed, now: 10)
        _ = state.handle(.timer, now: 60_000_000)  // second attempt starts at 60 ms
        // The first attempt's connect timer fires at 2 s: the second attempt is younger than that.
        #expect(state.handle(.timer, now: State.connectTimeout) == [])
        #expect(state.phase == .connecting(since: 60_000_000))
    }

    @Test func lateCallbacksAfterAStateWasLeftAreIgnored() {
        var state = State()
        _ = state.handle(.start, now: 0)
        _ = state.handle(.timer, now: State.connectTimeout)  // abandoned
        #expect(state.handle(.connected, now: State.connectTimeout + 1) == [], "the abandoned attempt's callback")
        #expect(state.handle(.lost, now: State.connectTimeout + 2) == [])
        #expect(!state.isUp)
    }

    @Test func stopAbandonsTheConnectionAndNothingRunsAfterIt() {
        var state = State()
        _ = state.handle(.start, now: 0)
        _ = state.handle(.connected, now: 1)
        #expect(state.handle(.stop, now: 2) == [.abandon, .becameDown])
        #expect(state.handle(.timer, now: 10_000_000_000) == [])
        #expect(state.handle(.start, now: 10_000_000_001) == [])
        var backingOff = State()
        _ = backingOff.handle(.start, now: 0)
        _ = backingOff.handle(.connectFailed, now: 1)
        #expect(backingOff.handle(.stop, now: 2) == [], "no connection to abandon, never up")
    }
}
