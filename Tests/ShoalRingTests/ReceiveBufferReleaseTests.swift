// Idle receive buffers go back to the kernel only when no byte can be lost: on a ring whose
// completion work runs only inside the loop's own io_uring_enter (DEFER_TASKRUN), and only when
// no completion naming a buffer is waiting. The rule alone, then on a real ring under traffic.
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite struct ReceiveBufferReleaseRuleTests {
    /// What `releaseNow` answers at each turn; `request` is called before turn i when `asks` holds i.
    private func releases(kernelWritesOnlyWhenEntered: Bool = true, asks: Set<Int>, waiting: [Bool]) -> [Int] {
        var rule = ReceiveBufferRelease(kernelWritesOnlyWhenEntered: kernelWritesOnlyWhenEntered)
        var done: [Int] = []
        for (turn, completionsWaiting) in waiting.enumerated() {
            if asks.contains(turn) { rule.request() }
            if rule.releaseNow(completionsWaiting: completionsWaiting) { done.append(turn) }
        }
        #expect(rule.releases == done.count)
        return done
    }

    @Test func aRequestIsCarriedOutAtTheFirstTurnWithNoCompletionWaiting() {
        // Turn 0: nobody asked. Turns 1-2: a completion may still name a buffer holding bytes.
        #expect(releases(asks: [1], waiting: [false, true, true, false, false]) == [3])
    }

    @Test func requestsBeforeTheReleaseCollapseIntoOne() {
        #expect(releases(asks: [0, 1, 2], waiting: [true, true, false, false]) == [2])
        #expect(releases(asks: [0, 2], waiting: [false, false, false]) == [0, 2])
    }

    @Test func aRingWhoseKernelWritesAtAnyTimeNeverReleases() {
        // COOP_TASKRUN runs completion work on the return from any syscall, the madvise's own.
        #expect(releases(kernelWritesOnlyWhenEntered: false, asks: [0, 1], waiting: [false, false, false]) == [])
    }
}

@Suite(.serialized) struct ReceiveBufferReleaseTests {
    @Test func aBurstsReceivePagesGoBackAndLaterBytesStillArriveIntact() throws {
        let server = try LoopHarness(backend: URingBackend())
        defer { #expect(server.shutDown()) }
        // A burst that cycles through every lent buffer (the ring is a FIFO): 16 clients, 64 KiB each.
        #expect(try everyClientEchoesAtOnce(port: server.port, clientCount: 16, size: 64 * 1024))
        let before = try #require(server.onLoop { ($0.backend as? URingBackend)?.receiveBufferResidentBytes } ?? nil)
        #expect(before >= ProvidedBufferRing.initiallyLent * 4096)

        #expect(server.onLoop { $0.releasePooledMemory() } != nil)
        // Carried out before the loop next waits; this round trip is one more turn.
        let after = try #require(server.onLoop { ($0.backend as? URingBackend)?.receiveBufferResidentBytes } ?? nil)
        #expect(server.onLoop { ($0.backend as? URingBackend)?.receiveBufferReleases } == 1)
        #expect(after < before / 8)

        // The discarded pages read as zeros and are backed again: every byte still arrives.
        #expect(try everyClientEchoesAtOnce(port: server.port, clientCount: 16, size: 64 * 1024))
    }
}
