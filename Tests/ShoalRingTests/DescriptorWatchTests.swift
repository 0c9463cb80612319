// Watching a descriptor a library reads and writes itself (hiredis): one-shot polls re-armed while
// the interest holds, no callback once the interest is cleared or the watch stopped, and the loop's
// duplicate closed only once no poll holds it. On the scripted kernel, then on both real backends.
import Glibc
import ShoalPosix
import Testing
@testable import ShoalRing

@Suite(.serialized) struct DescriptorWatchTests {
    /// A connected pair of stream sockets (non-blocking).
    private func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        precondition(rc == 0, "socketpair")
        return (fds[0], fds[1])
    }

    private func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

    /// Operations of `kind` on `fd` the kernel holds or will get at the next submit.
    private func pending(_ kind: ScriptedBackend.Kind, on fd: Int32, _ backend: ScriptedBackend) -> Int {
        backend.inFlight(kind, on: fd).count + backend.submissionQueue.filter { $0.kind == kind && $0.fd == fd }.count
    }

    @Test func pollsAreReArmedWhileWantedAndTheDuplicateClosesAfterTheCancel() throws {
        let script = try ScriptedLoop()
        script.backend.cancelsCompleteAtOnce = false
        let (mine, _) = socketPair()
        var calls: [(Bool, Bool)] = []
        let watch = try script.loop.watch(descriptor: mine) { calls.append(($0, $1)) }
        #expect(watch.descriptor != mine)
        watch.wantsRead = true
        try script.turn()
        #expect(script.backend.inFlight(.poll, on: watch.descriptor).count == 1)
        script.backend.pollReady(on: watch.descriptor, writable: false)
        try script.turn()
        #expect(calls.count == 1 && calls[0] == (true, false))
        #expect(pending(.poll, on: watch.descriptor, script.backend) == 1, "re-armed: still wanted")
        watch.wantsWrite = true
        try script.turn()
        #expect(pending(.poll, on: watch.descriptor, script.backend) == 2, "one poll per direction")
        watch.wantsRead = false
        script.backend.pollReady(on: watch.descriptor, writable: false)
        try script.turn()
        #expect(calls.count == 1, "a read no longer wanted is not reported")
        watch.stop()
        try script.turn()  // the cancel reaches the kernel and completes; the write poll it names is still in flight
        let poll = try #require(script.backend.inFlight.firstIndex { $0.kind == .poll })
        #expect(script.backend.inFlight[poll].cancelRequested)
        #expect(!script.backend.closed.contains(watch.descriptor), "the write poll still holds the duplicate")
        script.backend.completeCancelled(at: poll)
        try script.turn()
        #expect(calls.count == 1, "nothing after stop()")
        #expect(script.backend.closed == [watch.descriptor])
        #expect(script.loop.watchCount == 0)
        #expect(script.backend.violations == [])
        Glibc.close(watch.descriptor)  // the scripted kernel only records closes
        Glibc.close(mine)
    }

    @Test func aWatchStoppedWithNoPollInFlightClosesAtOnce() throws {
        let script = try ScriptedLoop()
        let (mine, _) = socketPair()
        let watch = try script.loop.watch(descriptor: mine) { _, _ in }
        watch.stop()
        #expect(script.backend.closed == [watch.descriptor])
        #expect(script.loop.watchCount == 0)
        Glibc.close(watch.descriptor)
        Glibc.close(mine)
    }

    @Test(arguments: ["io_uring", "epoll"])
    func realBackendsReportReadinessOfTheWatchedSocket(_ backendName: String) throws {
        let backend: any LoopBackend = backendName == "epoll" ? try EpollBackend() : try URingBackend()
        let loop = try EventLoop(backend: backend)
        defer { loop.shutdown() }
        let (mine, peer) = socketPair()
        defer { Glibc.close(mine); Glibc.close(peer) }
        var readable = 0
        var writable = 0
        var watch: DescriptorWatch!
        watch = try loop.watch(descriptor: mine) { r, w in
            if r {
                readable += 1
                var byte: UInt8 = 0
                _ = Glibc.read(mine, &byte, 1)  // the library reads the socket itself
                watch.wantsRead = false
            }
            if w {
                writable += 1
                watch.wantsWrite = false
            }
        }
        watch.wantsWrite = true
        try loop.runTurn()
        #expect(writable == 1 && readable == 0, "a fresh socket is writable, not readable")
        watch.wantsRead = true
        try loop.runTurns(atMost: 1) { readable == 0 }  // nothing to read: a timer ends the turn
        #expect(readable == 0)
        var byte: UInt8 = 7
        #expect(Glibc.write(peer, &byte, 1) == 1)
        try loop.runTurns(atMost: 50) { readable == 0 }
        #expect(readable == 1)
        let duplicate = watch.descriptor
        watch.wantsRead = true
        try loop.runTurns(atMost: 1) { true }  // arms the read poll
        watch.stop()
        try loop.runTurns(atMost: 50) { loop.watchCount > 0 }
        #expect(loop.watchCount == 0)
        #expect(!isOpen(duplicate), "the loop closed its duplicate")
        #expect(isOpen(mine), "the library's own descriptor stays the library's")
    }
}

extension EventLoop {
    /// Runs turns, each woken by a 20 ms timer at the latest, while `condition` holds (at most `turns`).
    fileprivate func runTurns(atMost turns: Int, while condition: () -> Bool) throws {
        for _ in 0..<turns where condition() {
            schedule(after: 20_000_000) {}
            try runTurn()
        }
    }
}
