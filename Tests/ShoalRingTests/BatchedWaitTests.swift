// The loop's wait after a busy turn: a batch with io_uring's minimum wait, when a plain wait would
// sleep anyway; otherwise a wait for one completion as before. The choice alone, then on a real ring (kernel 6.18).
import Dispatch
import Foundation
import Glibc
import ShoalPosix
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite struct BatchedWaitChoiceTests {
    let policy = BatchedWait(busyArrivals: 2, batchLimit: 32, minimumWaitMicroseconds: 200)
    /// Nothing to submit, nothing ready, no work queued: a plain wait would sleep.
    let sleeping = BatchedWait.Outlook(submitting: 0, completionsReady: false, workPending: false)

    @Test func aBusyTurnIsFollowedByABatchedWait() {
        // The batch: as many completions as arrivals, up to the limit.
        #expect(policy.wait(afterArrivals: 5, accepted: 0, outlook: sleeping, timeoutNanoseconds: nil)
                == .batched(count: 5, minimumWaitMicroseconds: 200, timeoutNanoseconds: BatchedWait.idleTimeoutNanoseconds))
        #expect(policy.wait(afterArrivals: 500, accepted: 0, outlook: sleeping, timeoutNanoseconds: 2_000_000)
                == .batched(count: 32, minimumWaitMicroseconds: 200, timeoutNanoseconds: 2_000_000))
    }

    @Test func aQuietTurnIsFollowedByThePlainWait() {
        #expect(policy.wait(afterArrivals: 0, accepted: 0, outlook: sleeping, timeoutNanoseconds: nil) == .plain(timeoutNanoseconds: nil))
        // One client that asks again only once answered: one arrival per turn.
        #expect(policy.wait(afterArrivals: 1, accepted: 0, outlook: sleeping, timeoutNanoseconds: 3_000) == .plain(timeoutNanoseconds: 3_000))
    }

    @Test func aWaitThatWouldNotSleepStaysPlainHoweverBusy() {
        // Each of these ends a plain wait at once; a batch would sleep out the minimum wait instead.
        let awake = [
            BatchedWait.Outlook(submitting: 10, completionsReady: false, workPending: false),  // sends complete inline
            BatchedWait.Outlook(submitting: 0, completionsReady: true, workPending: false),
            BatchedWait.Outlook(submitting: 0, completionsReady: false, workPending: true),   // receives queued as task work
        ]
        for outlook in awake {
            #expect(!outlook.certainToSleep)
            #expect(policy.wait(afterArrivals: 100, accepted: 0, outlook: outlook, timeoutNanoseconds: nil) == .plain(timeoutNanoseconds: nil))
            #expect(policy.wait(afterArrivals: 100, accepted: 0, outlook: outlook, timeoutNanoseconds: 5_000_000) == .plain(timeoutNanoseconds: 5_000_000))
        }
        #expect(sleeping.certainToSleep)
    }

    @Test func aTimerDueWithinTheMinimumWaitKeepsThePlainWait() {
        // The kernel ends a minimum wait at its own end only: the timer would fire late.
        #expect(policy.wait(afterArrivals: 100, accepted: 0, outlook: sleeping, timeoutNanoseconds: 0) == .plain(timeoutNanoseconds: 0))
        #expect(policy.wait(afterArrivals: 100, accepted: 0, outlook: sleeping, timeoutNanoseconds: 200_000) == .plain(timeoutNanoseconds: 200_000))
    }

    @Test func byDefaultOnlyAcceptedConnectionsMakeTheLoopBusy() {
        let storms = BatchedWait.acceptBursts
        // Connected clients' traffic, however much of it: the plain wait.
        #expect(storms.wait(afterArrivals: 500, accepted: 0, outlook: sleeping, timeoutNanoseconds: nil) == .plain(timeoutNanoseconds: nil))
        #expect(storms.wait(afterArrivals: 500, accepted: 1, outlook: sleeping, timeoutNanoseconds: nil) == .plain(timeoutNanoseconds: nil))
        // A few clients reconnecting as soon as answered: they could not fill a batch.
        #expect(storms.wait(afterArrivals: 30, accepted: 15, outlook: sleeping, timeoutNanoseconds: nil) == .plain(timeoutNanoseconds: nil))
        // Clients arriving: a batch of their requests. A listener's readiness is one arrival for
        // every connection it brought, so the batch follows the connections when they are more.
        #expect(storms.wait(afterArrivals: 1, accepted: 16, outlook: sleeping, timeoutNanoseconds: nil)
                == .batched(count: 16, minimumWaitMicroseconds: 200, timeoutNanoseconds: BatchedWait.idleTimeoutNanoseconds))
        #expect(storms.wait(afterArrivals: 20, accepted: 16, outlook: sleeping, timeoutNanoseconds: nil)
                == .batched(count: 20, minimumWaitMicroseconds: 200, timeoutNanoseconds: BatchedWait.idleTimeoutNanoseconds))
        // And never a wait that would not sleep.
        #expect(storms.wait(afterArrivals: 20, accepted: 16, outlook: .init(submitting: 16, completionsReady: false, workPending: false),
                            timeoutNanoseconds: nil) == .plain(timeoutNanoseconds: nil))
    }

    @Test func theEnvironmentSettingIsOnOffOrThreeFigures() {
        #expect(BatchedWait.parse("off") == .off)
        #expect(BatchedWait.parse("accepts") == .on(.acceptBursts))
        #expect(BatchedWait.parse("accepts,8,64,100")
                == .on(BatchedWait(busy: .acceptedConnections, busyArrivals: 8, batchLimit: 64, minimumWaitMicroseconds: 100)))
        #expect(BatchedWait.parse("ON") == .on(BatchedWait()))
        #expect(BatchedWait.parse("4,64,100") == .on(BatchedWait(busyArrivals: 4, batchLimit: 64, minimumWaitMicroseconds: 100)))
        for bad in ["", "fast", "4,32", "1,32,100", "4,1,100", "4,32,0", "-1,8,50", "4,32,100,7", "accepts,4,32", "accepts,1,32,100"] {
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

    /// A backend that batches with `policy`; the test needs the kernel's minimum wait.
    private func batchingBackend(_ policy: BatchedWait) throws -> URingBackend {
        var configuration = URingConfiguration()
        configuration.batchedWait = policy
        let backend = try URingBackend(configuration: configuration)
        if backend.batchedWait == nil { backend.shutdown() }
        try #require(backend.batchedWait != nil, "kernel without IORING_FEAT_MIN_TIMEOUT")
        return backend
    }

    /// Sends a byte on each of `sockets` (the loop's answers), submits and waits, and returns how
    /// many send completions were drained.
    private func answer(on sockets: [Int32], with backend: URingBackend) throws -> Int {
        let bytes: [UInt8] = [7]
        try bytes.withUnsafeBytes { raw in
            for (i, socket) in sockets.enumerated() { backend.prepareSend(socket: socket, bytes: raw, userData: UInt64(100 + i)) }
            try backend.submitAndWait(timeoutNanoseconds: nil)
        }
        var sends = 0
        backend.drainCompletions(limit: .max) { if $0.userData >= 100 { sends += 1 } }
        return sends
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

    /// As `arrive`, but the bytes are written from another thread 5 ms into the wait, so the wait
    /// finds nothing queued and would sleep.
    private func arriveWhileWaiting(at receivers: ArraySlice<(Int32, Int32)>, on backend: URingBackend) throws -> [Int32] {
        let peers = receivers.map(\.1)
        let written = DispatchSemaphore(value: 0)
        // A thread of its own, not a shared queue: a pool busy with other suites could delay it.
        Thread {
            usleep(5_000)
            var byte: UInt8 = 1
            for peer in peers { _ = write(peer, &byte, 1) }
            written.signal()
        }.start()
        try backend.submitAndWait(timeoutNanoseconds: nil)
        written.wait()
        var results: [Int32] = []
        backend.drainCompletions(limit: .max) { completion in
            results.append(completion.result)
            if let id = completion.bufferID { backend.recycle(bufferID: id) }
        }
        return results
    }

    @Test func afterABusyTurnABatchThatDoesNotFillComesBackAtTheMinimumWait() throws {
        let backend = try batchingBackend(BatchedWait(busyArrivals: 8, batchLimit: 64, minimumWaitMicroseconds: 50))
        defer { backend.shutdown() }
        #expect(backend.features.hasSuffix("BATCH_WAIT"))
        let pairs = try receivingPairs(10, on: backend)
        defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }

        // A quiet start (nothing reaped yet): the plain wait.
        #expect(try arrive(at: pairs[...], on: backend) == Array(repeating: 1, count: 10))
        #expect(backend.batchedWaits == 0)
        // Ten arrivals reaped: busy, and nothing queued: the next wait asks for ten and one
        // arrives; with no timer due its general timeout is a second, and the minimum wait must
        // end it long before.
        let start = now()
        #expect(try arriveWhileWaiting(at: pairs[0..<1], on: backend) == [1])
        #expect(backend.batchedWaits == 1)
        #expect(now() - start < 500_000_000)
        // One arrival reaped: quiet again, so the plain wait.
        #expect(try arriveWhileWaiting(at: pairs[1..<2], on: backend) == [1])
        #expect(backend.batchedWaits == 1)
    }

    @Test func sendCompletionsDoNotMakeATurnBusy() throws {
        // A lone client's turn: its request's receive, and the sends answering earlier ones.
        let backend = try batchingBackend(BatchedWait(busyArrivals: 2, batchLimit: 64, minimumWaitMicroseconds: 50))
        defer { backend.shutdown() }
        let pairs = try receivingPairs(1, on: backend)
        defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }
        #expect(try answer(on: Array(repeating: pairs[0].0, count: 5), with: backend) == 5)
        #expect(try arrive(at: pairs[...], on: backend) == [1])
        #expect(backend.batchedWaits == 0)
    }

    @Test func aBusyTurnWithReceivesAlreadyQueuedWaitsPlainly() throws {
        // Echo with a few clients: their next messages are in by the time the loop waits, queued
        // as completion work; a plain wait returns with them at once, so no batch is asked for.
        let backend = try batchingBackend(BatchedWait(busyArrivals: 2, batchLimit: 64, minimumWaitMicroseconds: 50_000))
        defer { backend.shutdown() }
        let pairs = try receivingPairs(4, on: backend)
        defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }
        #expect(try arrive(at: pairs[...], on: backend) == [1, 1, 1, 1])  // busy now
        let start = now()
        #expect(try arrive(at: pairs[0..<2], on: backend) == [1, 1])
        #expect(backend.batchedWaits == 0)
        #expect(now() - start < 40_000_000)  // not held for the 50 ms minimum wait
    }

    @Test func theArrivalsOfABusyTurnStillCountAfterTheWaitThatSubmitsTheAnswers() throws {
        // A storm's rhythm: a turn takes arrivals, the next wait submits the answers and returns
        // with their completions at once, and the wait after that is the one that sleeps.
        let backend = try batchingBackend(BatchedWait(busyArrivals: 2, batchLimit: 64, minimumWaitMicroseconds: 50))
        defer { backend.shutdown() }
        let pairs = try receivingPairs(4, on: backend)
        defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }
        #expect(try arrive(at: pairs[...], on: backend) == [1, 1, 1, 1])
        #expect(try answer(on: pairs.map(\.0), with: backend) == 4)
        #expect(backend.batchedWaits == 0)
        #expect(try arriveWhileWaiting(at: pairs[0..<1], on: backend) == [1])
        #expect(backend.batchedWaits == 1)
    }

    @Test func theKernelFlagsQueuedCompletionWorkUntilTheLoopWaits() throws {
        // IORING_SQ_TASKRUN (TASKRUN_FLAG): set when a receive's data arrives under DEFER_TASKRUN,
        // cleared once the loop's wait has run the work.
        let backend = try URingBackend()
        defer { backend.shutdown() }
        #expect(backend.setupFlags.contains(.taskRunFlag))
        let pairs = try receivingPairs(1, on: backend)
        defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }
        try backend.submitAndWait(timeoutNanoseconds: 0)  // arms the receive
        #expect(!backend.completionWorkPending)
        var byte: UInt8 = 1
        #expect(write(pairs[0].1, &byte, 1) == 1)
        #expect(backend.completionWorkPending)
        try backend.submitAndWait(timeoutNanoseconds: nil)
        #expect(!backend.completionWorkPending)
        var results: [Int32] = []
        backend.drainCompletions(limit: .max) { completion in
            results.append(completion.result)
            if let id = completion.bufferID { backend.recycle(bufferID: id) }
        }
        #expect(results == [1])
    }

    @Test func byDefaultConnectedClientsNeverGetABatchedWait() throws {
        let backend = try batchingBackend(URingConfiguration().batchedWait ?? BatchedWait())
        defer { backend.shutdown() }
        #expect(backend.batchedWait == .acceptBursts)
        #expect(backend.features.hasSuffix("|ACCEPT_BATCH_WAIT"))
        let pairs = try receivingPairs(10, on: backend)
        defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }
        #expect(try arrive(at: pairs[...], on: backend).count == 10)
        #expect(try arriveWhileWaiting(at: pairs[0..<1], on: backend) == [1])
        #expect(backend.batchedWaits == 0)
    }

    @Test func byDefaultABurstOfAcceptedConnectionsIsFollowedByABatchedWait() throws {
        let backend = try batchingBackend(URingConfiguration().batchedWait ?? BatchedWait())
        defer { backend.shutdown() }
        let listener = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false)
        defer { Glibc.close(listener) }
        backend.prepareAccept(listener: listener, userData: 1)
        try backend.submitAndWait(timeoutNanoseconds: 0)  // arms the listener's poll
        backend.drainCompletions(limit: .max) { _ in }
        let clients = try (0..<20).map { _ in try connectedClient(to: listener) }
        defer { clients.forEach { Glibc.close($0) } }
        // The turn that accepts them.
        try backend.submitAndWait(timeoutNanoseconds: nil)
        var accepted: [Int32] = []
        backend.drainCompletions(limit: .max) { if $0.result >= 0 { accepted.append($0.result) } }
        defer { accepted.forEach { Glibc.close($0) } }
        #expect(accepted.count == 20)
        #expect(backend.batchedWaits == 0)
        // Nothing more comes: the next wait, certain to sleep, asks for a batch and returns at
        // its timeout.
        try backend.submitAndWait(timeoutNanoseconds: 20_000_000)
        #expect(backend.batchedWaits == 1)
    }

    /// A client socket connected to `listener`'s port on 127.0.0.1.
    private func connectedClient(to listener: Int32) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        try #require(connectToLoopback(fd, port: Socket.localPort(listener)) == 0)
        return fd
    }

    @Test func whenTurnedOffOrOnTheCooperativeSetUpEveryWaitIsPlain() throws {
        var off = URingConfiguration()
        off.batchedWait = nil
        var cooperative = URingConfiguration()
        cooperative.batchedWait = BatchedWait()
        cooperative.deferTaskRun = false  // no TASKRUN_FLAG: a wait cannot be known to sleep
        for configuration in [off, cooperative] {
            let backend = try URingBackend(configuration: configuration)
            defer { backend.shutdown() }
            #expect(backend.batchedWait == nil)
            #expect(!backend.features.contains("BATCH_WAIT"))
            let pairs = try receivingPairs(10, on: backend)
            defer { pairs.forEach { Glibc.close($0.0); Glibc.close($0.1) } }
            #expect(try arrive(at: pairs[...], on: backend).count == 10)
            #expect(try arrive(at: pairs[0..<1], on: backend) == [1])
            #expect(backend.batchedWaits == 0)
        }
    }

    private func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
