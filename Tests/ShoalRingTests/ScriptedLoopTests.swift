// The loop against a scripted kernel: completions in the order the test chooses, short sends,
// -EAGAIN, -ECANCELED, -ENOBUFS, a full submission queue, timers on a manual clock. Deterministic,
// and no socket is involved.
import Glibc
import Testing

@testable import ShoalRing

@Suite struct ScriptedLoopTests {
    private static let second: UInt64 = 1_000_000_000

    @Test func anAbortKeepsTheChunkOfASendInFlightAliveUntilTheSendCompletes() throws {
        let script = try ScriptedLoop()
        script.backend.cancelsCompleteAtOnce = false
        let a = try script.open(), b = try script.open()
        script.write(a, pattern(100, seed: 1))
        try script.turn()
        #expect(script.backend.inFlight(.send, on: a.fd).count == 1)
        script.loop.close(a.handle, mode: .abort)
        // B's first chunk comes from the same pool: it must not be the one A's send is reading.
        script.write(b, pattern(100, seed: 2))
        try script.turn()
        // The kernel finishes reading A's bytes before the cancel reaches the send.
        #expect(script.backend.completeSend(on: a.fd) == pattern(100, seed: 1))
        #expect(script.backend.completeSend(on: b.fd) == pattern(100, seed: 2))
        try script.turn()
        #expect(a.closedCount == 0)  // the receive is still in flight
        let receive = try #require(script.backend.inFlight.firstIndex(where: { $0.fd == a.fd }))
        script.backend.completeCancelled(at: receive)
        try script.turn()
        #expect(a.closedCount == 1)
        #expect(script.backend.closed == [a.fd])
        #expect(script.backend.violations == [])
    }

    @Test func aSendCancelledByAnAbortReleasesItsChunkOnItsCompletion() throws {
        let script = try ScriptedLoop()
        script.backend.cancelsCompleteAtOnce = false
        let a = try script.open()
        script.write(a, pattern(3000, seed: 3))
        try script.turn()
        script.loop.close(a.handle, mode: .abort)
        try script.turn()
        #expect(script.loop.chunksOutstanding == 1)  // the one the kernel reads
        for _ in 0..<2 { script.backend.completeCancelled(at: 0) }
        try script.turn()
        #expect(script.loop.chunksOutstanding == 0)
        #expect(a.closedCount == 1)
        #expect(script.backend.violations == [])
    }

    @Test func anAbortCancelsTheReceiveAndTheSendByTheirTagsAndClosesOnceBothAreBack() throws {
        // By tag, not by descriptor: io_uring serves a cancel by descriptor by walking every
        // operation the ring has armed, which made a reload's drain of 16,600 clients quadratic.
        let script = try ScriptedLoop()
        let a = try script.open(), b = try script.open()
        script.write(a, pattern(3000, seed: 9))
        script.write(b, pattern(3000, seed: 10))
        try script.turn()
        #expect(script.backend.inFlight(.send, on: a.fd).count == 1)
        #expect(script.backend.inFlight(.receive, on: a.fd).count == 1)
        script.loop.close(a.handle, mode: .abort)
        try script.turns(2)
        #expect(script.backend.inFlight.allSatisfy { $0.fd != a.fd })
        #expect(a.closedCount == 1)
        #expect(script.backend.closed == [a.fd])
        #expect(script.backend.cancelsByDescriptor == 0)
        // The other socket's operations were not touched.
        #expect(script.backend.inFlight(.send, on: b.fd).count == 1)
        #expect(script.backend.inFlight(.receive, on: b.fd).count == 1)
        #expect(script.backend.violations == [])
    }

    @Test func shortSendsResumeWhereTheKernelStopped() throws {
        let script = try ScriptedLoop()
        let a = try script.open()
        let message = pattern(900, seed: 4)
        script.write(a, message)
        try script.turn()
        var out: [UInt8] = []
        // Each completion is drained in one turn; the rest is sent by the next turn's flush.
        out += try #require(script.backend.completeSend(on: a.fd, sent: 100))
        try script.turns(2)
        out += try #require(script.backend.completeSend(on: a.fd, sent: 1))
        try script.turns(2)
        script.backend.completeSend(on: a.fd, error: EAGAIN)  // nothing went out: sent again
        try script.turns(2)
        out += try #require(script.backend.completeSend(on: a.fd))
        try script.turn()
        #expect(out == message)
        #expect(a.events.last == .drained(a.handle))
        #expect(script.backend.inFlight(.send, on: a.fd).isEmpty)
    }

    @Test func aFailedSendEndsTheSocketOnce() throws {
        let script = try ScriptedLoop()
        let a = try script.open()
        script.write(a, [1, 2, 3])
        try script.turn()
        script.backend.completeSend(on: a.fd, error: EPIPE)
        try script.settle()
        #expect(a.events.contains(.readEnded(a.handle, error: EPIPE)))
        #expect(a.closedCount == 1)
        #expect(script.backend.closed == [a.fd])
        #expect(script.loop.openSockets == 0)
        #expect(script.backend.violations == [])
    }

    @Test func noBuffersRearmsTheReceiveAfterTheTurn() throws {
        let script = try ScriptedLoop(backend: ScriptedBackend(receiveBuffers: 1))
        let a = try script.open(), b = try script.open()
        // A's bytes hold the only buffer until the drain recycles it; B finds none.
        script.backend.receive([1], on: a.fd)
        script.backend.receive([2], on: b.fd)
        #expect(script.backend.inFlight(.receive, on: b.fd).isEmpty)
        try script.turn()
        try script.turn()
        #expect(script.backend.inFlight(.receive, on: b.fd).count == 1)
        script.backend.receive([3], on: b.fd)
        try script.turn()
        #expect(a.received == [1] && b.received == [3])
        #expect(b.readEndedCount == 0)
        #expect(script.backend.buffersLent == 0)
    }

    @Test func thePausesOwnCancelIsNotAnEndButAPeerCancelIs() throws {
        let script = try ScriptedLoop()
        let a = try script.open()
        script.loop.pauseReceiving(a.handle)
        try script.turn()
        #expect(script.backend.inFlight(.receive, on: a.fd).isEmpty)
        #expect(a.readEndedCount == 0)
        script.loop.resumeReceiving(a.handle)
        try script.turn()
        #expect(script.backend.inFlight(.receive, on: a.fd).count == 1)
        // A -ECANCELED nobody asked for ends the read.
        script.backend.endReceive(on: a.fd, result: -ECANCELED)
        try script.turn()
        #expect(a.events.last == .readEnded(a.handle, error: nil))
    }

    @Test func completionsOfAClosedSocketDoNotReachTheSocketThatReusesItsSlot() throws {
        let script = try ScriptedLoop()
        script.backend.cancelsCompleteAtOnce = false
        let a = try script.open()
        script.loop.close(a.handle, mode: .abort)
        try script.turn()
        let staleReceive = try #require(script.backend.inFlight(.receive, on: a.fd).first)
        script.backend.completeCancelled(at: 0)
        try script.turn()
        #expect(a.closedCount == 1)
        let b = try script.open()
        #expect(b.handle.index == a.handle.index && b.handle != a.handle)
        // A late completion carrying A's tag.
        script.backend.inject(Completion(userData: staleReceive.userData, result: 0, hasMore: false, bufferID: nil))
        try script.turn()
        #expect(b.readEndedCount == 0)
        #expect(script.loop.isWritable(b.handle))
    }

    @Test func aFullSubmissionQueueLosesNoOperation() throws {
        let backend = ScriptedBackend()
        backend.submissionCapacity = 3
        let script = try ScriptedLoop(backend: backend)
        let sockets = try (0..<10).map { _ in try script.open() }
        for (i, socket) in sockets.enumerated() { script.write(socket, pattern(10, seed: i)) }
        try script.turn()
        #expect(backend.earlySubmissions > 0)
        for (i, socket) in sockets.enumerated() {
            #expect(backend.inFlight(.receive, on: socket.fd).count == 1)
            #expect(backend.completeSend(on: socket.fd) == pattern(10, seed: i))
        }
        try script.turn()
        #expect(sockets.allSatisfy { $0.events.last == .drained($0.handle) })
    }

    @Test func timersFarInTheFutureSaturateInsteadOfFiringAtOnce() throws {
        let script = try ScriptedLoop()
        let a = try script.open()
        var ran = false
        script.loop.setTimer(a.handle, after: .max, kind: 1)
        script.loop.setTimer(a.handle, after: .max - 10, kind: 2)
        script.loop.schedule(after: .max) { ran = true }
        script.loop.setTimer(a.handle, after: Self.second, kind: 3)
        script.clock.now += 2 * Self.second
        try script.turn()
        try script.turn()
        #expect(a.timersFired == [3])
        #expect(!ran)
        // The loop still waits (a bounded, non-negative timeout), and the socket lives on.
        #expect(script.backend.waits.last! != nil && script.backend.waits.last!! > 0)
        #expect(script.loop.isWritable(a.handle))
    }

    @Test func aGracefulCloseWithAnEndlessLingerWaitsForThePeer() throws {
        let script = try ScriptedLoop()
        let a = try script.open()
        script.loop.close(a.handle, mode: .graceful(lingerNanoseconds: .max))
        script.clock.now += Self.second
        try script.turns(3)
        #expect(a.closedCount == 0)
        #expect(script.backend.inFlight(.receive, on: a.fd).count == 1, "the linger timer fired")
        #expect(script.backend.shutdowns.map(\.fd) == [a.fd])
        script.backend.endReceive(on: a.fd, result: 0)  // the peer's FIN
        try script.settle()
        #expect(a.closedCount == 1)
    }
}
