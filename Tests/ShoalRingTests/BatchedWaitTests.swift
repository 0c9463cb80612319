// The loop's wait after a busy turn: a batch with io_uring's minimum wait; after a quiet one, a
// wait for one completion as before. The choice alone, then on a real ring (kernel 6.18).
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

@Suite struct BatchedWaitChoiceTests {
    let policy = BatchedWait(busyTurnCompletions: 8, batch: 16, minimumWaitMicroseconds: 50)

    @Test func aBusyTurnIsFollowedByABatchedWait() {
        #expect(policy.wait(afterTurnReaping: 8, timeoutNanoseconds: nil)
                == .batched(count: 16, minimumWaitMicroseconds: 50, timeoutNanoseconds: BatchedWait.idleTimeoutNanoseconds))
        #expect(policy.wait(afterTurnReaping: 500, timeoutNanoseconds: 2_000_000)
                == .batched(count: 16, minimumWaitMicroseconds: 50, timeoutNanoseconds: 2_000_000))
    }

    @Test func aQuietTurnIsFollowedByThePlainWait() {
        #expect(policy.wait(afterTurnReaping: 0, timeoutNanoseconds: nil) == .plain(timeoutNanoseconds: nil))
        #expect(policy.wait(afterTurnReaping: 7, timeoutNanoseconds: 3_000) == .plain(timeoutNanoseconds: 3_000))
    }

    @Test func aTimerDueWithinTheMinimumWaitKeepsThePlainWait() {
        // The kernel ends a minimum wait at its own end only: the timer would fire late.
        #expect(policy.wait(afterTurnReaping: 100, timeoutNanoseconds: 0) == .plain(timeoutNanoseconds: 0))
        #expect(policy.wait(afterTurnReaping: 100, timeoutNanoseconds: 50_000) == .plain(timeoutNanoseconds: 50_000))
    }

    @Test func theEnvironmentSettingIsOnOffOrThreeFigures() {
        #expect(BatchedWait.parse("off") == .off)
        #expect(BatchedWait.parse("ON") == .on(BatchedWait()))
        #expect(BatchedWait.parse("4,32,100") == .on(BatchedWait(busyTurnCompletions: 4, batch: 32, minimumWaitMicroseconds: 100)))
        for bad in ["", "fast", "4,32", "4,1,100", "4,32,0", "-1,8,50", "4,32,100,7"] {
            #expect(BatchedWait.parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite(.serialized) struct BatchedWaitRingTests {
    /// Reads of `count` signalled eventfds, then waits and drains; returns the results.
    private func readSignalled(_ count: Int, on backend: URingBackend, timeout: Int64?) throws -> [Int32] {
        var events: [EventFD] = []
        defer { events.forEach { $0.close() } }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 * count, alignment: 8)
        defer { buffer.deallocate() }
        for i in 0..<count {
            let event = try EventFD()
            event.signal()
            events.append(event)
            backend.prepareRead(descriptor: event.descriptor, into: UnsafeMutableRawBufferPointer(rebasing: buffer[(8 * i)..<(8 * i + 8)]),
                                userData: UInt64(i))
        }
        try backend.submitAndWait(timeoutNanoseconds: timeout)
        var results: [Int32] = []
        backend.drainCompletions(limit: .max) { results.append($0.result) }
        return results
    }

    @Test func aBatchThatDoesNotFillComesBackAfterTheMinimumWaitNotTheTimeout() throws {
        var configuration = URingConfiguration()
        configuration.batchedWait = BatchedWait(busyTurnCompletions: 8, batch: 64, minimumWaitMicroseconds: 50)
        let backend = try URingBackend(configuration: configuration)
        defer { backend.shutdown() }
        try #require(backend.batchedWait != nil, "kernel without IORING_FEAT_MIN_TIMEOUT")
        #expect(backend.features.hasSuffix("BATCH_WAIT"))

        // A quiet start: the plain wait.
        #expect(try readSignalled(10, on: backend, timeout: nil).count == 10)
        #expect(backend.batchedWaits == 0)
        // Ten completions reaped: busy. The next wait asks for 64, one arrives; with no timer the
        // general timeout is a second, and the minimum wait must end it long before.
        let start = now()
        #expect(try readSignalled(1, on: backend, timeout: nil) == [8])
        #expect(backend.batchedWaits == 1)
        #expect(now() - start < 500_000_000)
        // One completion reaped: quiet again, so the plain wait.
        #expect(try readSignalled(1, on: backend, timeout: nil) == [8])
        #expect(backend.batchedWaits == 1)
    }

    @Test func withoutTheSettingEveryWaitIsPlain() throws {
        let backend = try URingBackend()
        defer { backend.shutdown() }
        #expect(backend.batchedWait == nil)
        #expect(try readSignalled(10, on: backend, timeout: nil).count == 10)
        #expect(try readSignalled(1, on: backend, timeout: nil) == [8])
        #expect(backend.batchedWaits == 0)
    }

    private func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
