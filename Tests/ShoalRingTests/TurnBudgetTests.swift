// Bounded work per loop turn: a turn handles at most `EventLoop.completionsPerTurn` completions
// before it runs timers, tasks and turn-end hooks, so a flood the kernel keeps feeding (accepts,
// closes, messages) cannot starve them. The rest waits in the backend for the next turn.
import Glibc
import ShoalPosix
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite struct TurnBudgetTests {
    /// A completion the loop has nothing to do for (a cancel of a closing socket coming back).
    static let flood = Completion(userData: UserData(.cancel, index: 0).raw, result: 0, hasMore: false, bufferID: nil)

    @Test func timersAndTurnEndHooksRunWhileAFloodIsPending() throws {
        let script = try ScriptedLoop()
        let total = 50 * EventLoop.completionsPerTurn
        var delivered = 0
        // The kernel posts the next completion as soon as one is taken: the queue never runs dry.
        script.backend.inject(Self.flood)
        // Unowned: the backend keeps this closure, and a strong capture would keep them both alive.
        script.backend.onDelivered = { [unowned backend = script.backend] in
            delivered += 1
            if delivered < total { backend.inject(Self.flood) }
        }
        var timerRanAfter: [Int] = []
        var hookRanAfter: [Int] = []
        script.loop.schedule(after: 0) { timerRanAfter.append(delivered) }
        script.loop.addTurnEndHook { hookRanAfter.append(delivered) }
        try script.turn()
        #expect(timerRanAfter == [EventLoop.completionsPerTurn])
        #expect(hookRanAfter == [EventLoop.completionsPerTurn])
        // The rest is handled by later turns, none of which waits for the kernel.
        for _ in 0..<60 where delivered < total { try script.turn() }
        #expect(delivered == total)
        #expect(hookRanAfter.count == 50)
        #expect(hookRanAfter.allSatisfy { $0 % EventLoop.completionsPerTurn == 0 })
    }

    @Test(arguments: ["io_uring", "epoll"])
    func aBackendKeepsWhatALimitedDrainLeftAndDoesNotWaitWhileItIsThere(backendName: String) throws {
        let backend: any LoopBackend = backendName == "epoll" ? try EpollBackend() : try URingBackend()
        defer { backend.shutdown() }
        let (a, b) = try URingSubmissionTests.socketPair()
        defer { Glibc.close(a); Glibc.close(b) }
        let byte: [UInt8] = [1]
        try byte.withUnsafeBytes { bytes in
            for i in 0..<3 { backend.prepareSend(socket: a, bytes: bytes, userData: UInt64(i)) }
            try backend.submitAndWait(timeoutNanoseconds: 1_000_000_000)
        }
        var tags: [UInt64] = []
        // The epoll backend runs one send per descriptor at a time: let the rest through first.
        for _ in 0..<10 {
            backend.drainCompletions(limit: 1) { tags.append($0.userData) }
            let start = EventLoop.monotonicNanoseconds()
            try backend.submitAndWait(timeoutNanoseconds: 5_000_000_000)
            #expect(EventLoop.monotonicNanoseconds() - start < 2_000_000_000, "waited with completions left")
            if tags.count == 2 { break }
        }
        backend.drainCompletions(limit: .max) { tags.append($0.userData) }
        #expect(tags == [0, 1, 2])
    }

    @Test func oneCallbackThatWritesToManySocketsShowsProgressWhileItRuns() throws {
        // A broadcast's fan-out is one callback: the watchdog must see it move, not one step.
        let script = try ScriptedLoop()
        let sockets = try (0..<300).map { _ in try script.open() }
        try script.turn()
        var reported: [UInt64] = []
        script.loop.progressObserver = { reported.append($0) }
        let before = script.loop.progress
        var duringCallback = 0
        script.loop.schedule(after: 0) {
            for socket in sockets { [UInt8](repeating: 0x61, count: 8).withUnsafeBytes { script.loop.write(socket.handle, $0) } }
            duringCallback = reported.count
        }
        try script.turn()
        #expect(duringCallback >= 300 / Int(EventLoop.progressReportInterval))
        // and preparing their sends is work too (a full submission ring is submitted on the way)
        let afterCallback = script.loop.progress
        try script.turn()
        #expect(afterCallback - before >= 300)
        #expect(script.loop.progress - afterCallback >= 300)
    }

    @Test(arguments: ["io_uring", "epoll"])
    func aBacklogLargerThanOneWakeupsBudgetIsAllAcceptedWithoutNewArrivals(backendName: String) throws {
        // 300 clients already queued when accepting starts, and nobody connects after them (the
        // end of a storm): io_uring's listener poll reports a wake-up, not a level, and its accept
        // loop takes 256 a wake-up, so 44 stayed in the queue for good before.
        let backend: any LoopBackend = backendName == "epoll" ? try EpollBackend() : try URingBackend()
        defer { backend.shutdown() }
        let listener = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false)
        defer { Glibc.close(listener) }
        let clients = try (0..<300).map { _ in try TestClient(port: Socket.localPort(listener)) }
        backend.prepareAccept(listener: listener, userData: 9)
        var accepted: [Int32] = []
        for _ in 0..<50 where accepted.count < clients.count {
            try backend.submitAndWait(timeoutNanoseconds: 200_000_000)
            backend.drainCompletions(limit: EventLoop.completionsPerTurn) { completion in
                if completion.result >= 0 { accepted.append(completion.result) }
            }
        }
        #expect(accepted.count == clients.count)
        for fd in accepted { Glibc.close(fd) }
    }

    @Test func completionsLeftForTheNextTurnKeepTheirOrder() throws {
        let script = try ScriptedLoop()
        let a = try script.open()
        // More completions than one turn handles, then the peer's FIN: the FIN must come last.
        for _ in 0..<(EventLoop.completionsPerTurn + 10) { script.backend.inject(Self.flood) }
        script.backend.endReceive(on: a.fd, result: 0)
        try script.turn()
        #expect(a.readEndedCount == 0)
        try script.turn()
        #expect(a.readEndedCount == 1)
    }
}
