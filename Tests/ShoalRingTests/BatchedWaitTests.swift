// The loop's wait after a busy turn: a batch with io_uring's minimum wait; after a quiet one, a
// wait for one completion as before. The choice alone, then on a real ring (kernel 6.18).
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

@Suite struct BatchedWaitChoiceTests {
    let policy = BatchedWait(busyArrivals: 2, batchLimit: 32, minimumWaitMicroseconds: 200)

    @Test func aBusyTurnIsFollowedByABatchedWait() {
        // The batch: the sends about to complete plus as many arrivals again, up to the limit.
        #expect(policy.wait(afterArrivals: 2, submitting: 3, timeoutNanoseconds: nil)
                == .batched(count: 5, minimumWaitMicroseconds: 200, timeoutNanoseconds: BatchedWait.idleTimeoutNanoseconds))
        #expect(policy.wait(afterArrivals: 500, submitting: 500, timeoutNanoseconds: 2_000_000)
                == .batched(count: 32, minimumWaitMicroseconds: 200, timeoutNanoseconds: 2_000_000))
    }

    @Test func aQuietTurnIsFollowedByThePlainWait() {
        #expect(policy.wait(afterArrivals: 0, submitting: 0, timeoutNanoseconds: nil) == .plain(timeoutNanoseconds: nil))
        // One client that asks again only once answered: one arrival per turn, however many sends.
        #expect(policy.wait(afterArrivals: 1, submitting: 30, timeoutNanoseconds: 3_000) == .plain(timeoutNanoseconds: 3_000))
    }

    @Test func aTimerDueWithinTheMinimumWaitKeepsThePlainWait() {
        // The kernel ends a minimum wait at its own end only: the timer would fire late.
        #expect(policy.wait(afterArrivals: 100, submitting: 0, timeoutNanoseconds: 0) == .plain(timeoutNanoseconds: 0))
        #expect(policy.wait(afterArrivals: 100, submitting: 0, timeoutNanoseconds: 200_000) == .plain(timeoutNanoseconds: 200_000))
    }

    @Test func theEnvironmentSettingIsOnOffOrThreeFigures() {
        #expect(BatchedWait.parse("off") == .off)
        #expect(BatchedWait.parse("ON") == .on(BatchedWait()))
        #expect(BatchedWait.parse("4,64,100") == .on(BatchedWait(busyArrivals: 4, batchLimit: 64, minimumWaitMicroseconds: 100)))
        for bad in ["", "fast", "4,32", "1,32,100", "4,1,100", "4,32,0", "-1,8,50", "4,32,100,7"] {
            #expect(BatchedWait.parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite(.serialized) struct BatchedWaitRingTests {
    /// `count` socket pairs, a multishot receive armed on the first socket of each.
    private func receivingPairs(_ count: Int, on backend: URingBackend) throws -> [(Int32, Int32)] {
        let pairs = try (0..<count).map { _ in try URingSubmissionTests.socketPair() }
        for (i, pair) in pairs.enumerated() { backend.prepareReceive(socket: pair.0, userData: UInt64(i)) }
        return pairs
    }

    /// Writes one byte to the peer of each of `receivers`, waits, and returns the receive results
    /// drained (their buffers recycled).
    private func arrive(at receivers: ArraySlice<(Int32, Int32)>, on backend: URingBackend) throws -> [Int32] {
        var byte: UInt8 = 1
        for pair in receivers { #expect(write(pair.1, &byte, 1) == 1) }
        try backend.submitAndWait(timeoutNanoseconds: nil)
        var results: [Int32] = []
        backend.drainCompletions(limit: .max) { completion in
            results.append(completion.result)
            if let id = completion.bufferID { backend.recycle(bufferID: id) }
        }
        return results
    }

    @Test func afterABusyTurnABatchThatDoesNotFillComesBackAtTheMinimumWait() throws {
        var configuration = URingConfiguration()
        configuration.batchedWait = BatchedWait(busyArrivals: 8, batchLimit: 64, minimumWaitMicroseconds: 50)
        let backend = try URingBackend(configuration: configuration)
        defer { backend.shutdown() }
        try #require(backend.batchedWait != nil, "kernel without IORING_FEAT_MIN_TIMEOUT")
        #expect(backend.features.hasSuffix("BATCH_WAIT"))
        let pairs = try receivingPairs(10, on: backend)
        defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }

        // A quiet start (nothing reaped yet): the plain wait.
        #expect(try arrive(at: pairs[...], on: backend) == Array(repeating: 1, count: 10))
        #expect(backend.batchedWaits == 0)
        // Ten arrivals reaped: busy. The next wait asks for ten and one arrives; with no timer due
        // its general timeout is a second, and the minimum wait must end it long before.
        let start = now()
        #expect(try arrive(at: pairs[0..<1], on: backend) == [1])
        #expect(backend.batchedWaits == 1)
        #expect(now() - start < 500_000_000)
        // One arrival reaped: quiet again, so the plain wait.
        #expect(try arrive(at: pairs[1..<2], on: backend) == [1])
        #expect(backend.batchedWaits == 1)
    }

    @Test func sendCompletionsDoNotMakeATurnBusy() throws {
        // A lone client's turn: its request's receive, and the sends answering earlier ones.
        var configuration = URingConfiguration()
        configuration.batchedWait = BatchedWait(busyArrivals: 2, batchLimit: 64, minimumWaitMicroseconds: 50)
        let backend = try URingBackend(configuration: configuration)
        defer { backend.shutdown() }
        let pairs = try receivingPairs(1, on: backend)
        defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }
        let bytes: [UInt8] = [1, 2, 3]
        try bytes.withUnsafeBytes { raw in
            for i in 0..<5 { backend.prepareSend(socket: pairs[0].0, bytes: raw, userData: UInt64(100 + i)) }
            try backend.submitAndWait(timeoutNanoseconds: nil)
        }
        var sends = 0
        backend.drainCompletions(limit: .max) { if $0.userData >= 100 { sends += 1 } }
        #expect(sends == 5)
        #expect(try arrive(at: pairs[...], on: backend) == [1])
        #expect(backend.batchedWaits == 0)
    }

    @Test func byDefaultEveryWaitIsPlain() throws {
        let backend = try URingBackend()
        defer { backend.shutdown() }
        #expect(backend.batchedWait == nil)
        #expect(!backend.features.contains("BATCH_WAIT"))
        let pairs = try receivingPairs(10, on: backend)
        defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }
        #expect(try arrive(at: pairs[...], on: backend).count == 10)
        #expect(try arrive(at: pairs[0..<1], on: backend) == [1])
        #expect(backend.batchedWaits == 0)
    }

    private func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
