// Timers and cross-thread entry points of the real io_uring loop: socket timers and their kinds,
// timers of closed sockets, scheduled closures in deadline order, `execute` waking an idle loop,
// `inEventLoop`, and `stop()` from another thread.
import ShoalTestSupport
import Dispatch
import Foundation
import Glibc
import Testing

@testable import ShoalRing

@Suite(.serialized) struct TimerAndThreadTests {
    private static let millisecond: UInt64 = 1_000_000

    @Test func socketTimersFireWithTheirKindInDeadlineOrder() throws {
        let server = try LoopHarness()
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        let handle = try #require(server.connection(1)).handle
        server.onLoop { loop in
            loop.setTimer(handle, after: 40 * Self.millisecond, kind: 7)
            loop.setTimer(handle, after: 10 * Self.millisecond, kind: 3)
            loop.setTimer(handle, after: 25 * Self.millisecond, kind: 0)
        }
        let fired = { server.log.compactMap { if case .timerFired(handle, let kind) = $0 { kind } else { nil } } }
        #expect(waitUntil { fired().count == 3 })
        #expect(fired() == [3, 0, 7])
        // The socket is untouched by its timers.
        #expect(client.send([5]) && client.receive(exactly: 1) == [5])
    }

    @Test func aTimerOfAClosedSocketDoesNotFire() throws {
        let server = try LoopHarness()
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        let handle = try #require(server.connection(1)).handle
        let sentinel = Locked(false)
        server.onLoop { loop in
            loop.setTimer(handle, after: 10 * Self.millisecond, kind: 1)
            loop.close(handle, mode: .abort)
            // Due after the socket timer: once it ran, the socket timer was popped (and dropped).
            loop.schedule(after: 30 * Self.millisecond) { sentinel.withLock { $0 = true } }
        }
        #expect(waitUntil { sentinel.value })
        #expect(server.closedCount(handle) == 1)
        #expect(!server.log.contains { if case .timerFired = $0 { true } else { false } })
    }

    /// A duration from code may be any UInt64: the deadline saturates (never) instead of wrapping
    /// into the past (firing at once) or trapping when the wait is converted to Int64.
    @Test func aHugeDelayMeansNeverAndTheLoopKeepsRunning() throws {
        #expect(EventLoop.deadline(after: .max, from: 5) == .max)
        #expect(EventLoop.deadline(after: 1 << 63, from: 1 << 63) == .max)
        #expect(EventLoop.deadline(after: 10, from: 5) == 15)
        let server = try LoopHarness(listening: false)
        defer { #expect(server.shutDown()) }
        let fired = Locked<[String]>([])
        server.onLoop { loop in
            loop.schedule(after: .max) { fired.withLock { $0.append("max") } }
            loop.schedule(after: (1 << 63) + 1) { fired.withLock { $0.append("beyond Int64") } }
            loop.schedule(after: 20 * Self.millisecond) { fired.withLock { $0.append("20ms") } }
        }
        #expect(waitUntil { fired.value.count == 1 })
        Thread.sleep(forTimeInterval: 0.1)
        #expect(fired.value == ["20ms"])
    }

    @Test func scheduledClosuresRunInDeadlineOrderAndTiesInSchedulingOrder() throws {
        let server = try LoopHarness(listening: false)
        defer { #expect(server.shutDown()) }
        let order = Locked<[String]>([])
        let onLoopThread = Locked(true)
        server.onLoop { loop in
            let note = { (name: String) in
                { @Sendable in
                    order.withLock { $0.append(name) }
                    if !loop.inEventLoop { onLoopThread.withLock { $0 = false } }
                }
            }
            loop.schedule(after: 30 * Self.millisecond, note("30ms"))
            loop.schedule(after: 10 * Self.millisecond, note("10ms a"))
            loop.schedule(after: 0, note("now"))
            loop.schedule(after: 20 * Self.millisecond, note("20ms"))
            loop.schedule(after: 10 * Self.millisecond, note("10ms b"))
            loop.schedule(after: 10 * Self.millisecond) {
                // Scheduled from inside a timer, relative to that turn: runs, after the closure that made it.
                loop.schedule(after: 0, note("nested"))
            }
        }
        #expect(waitUntil { order.value.count == 6 })
        let ran = order.value
        #expect(ran.filter { $0 != "nested" } == ["now", "10ms a", "10ms b", "20ms", "30ms"])
        #expect(ran.firstIndex(of: "nested").map { $0 > 2 } == true)
        #expect(onLoopThread.value)
    }

    @Test func executeRunsOnTheLoopThreadAndWakesALoopBlockedWithoutTimers() throws {
        let server = try LoopHarness(listening: false)
        defer { #expect(server.shutDown()) }
        #expect(!server.loop.inEventLoop)
        // Let the loop reach its wait with nothing armed but the wakeup read.
        usleep(50_000)
        let ran = DispatchSemaphore(value: 0)
        let inLoop = Locked<Bool?>(nil)
        let loop = Unchecked(value: server.loop)
        Thread {
            loop.value.execute {
                inLoop.withLock { $0 = loop.value.inEventLoop }
                ran.signal()
            }
        }.start()
        #expect(ran.wait(timeout: .now() + TestTime.seconds(10)) == .success)
        #expect(inLoop.value == true)
        // Again, from many threads at once: every task runs.
        let count = Locked(0)
        let all = DispatchGroup()
        for _ in 0..<8 {
            all.enter()
            Thread {
                for _ in 0..<100 { loop.value.execute { count.withLock { $0 += 1 } } }
                all.leave()
            }.start()
        }
        #expect(all.wait(timeout: .now() + TestTime.seconds(10)) == .success)
        #expect(waitUntil { count.value == 800 })
    }

    @Test func anIdleLoopWaitsInTheKernelInsteadOfSpinning() throws {
        let server = try LoopHarness(listening: false)
        defer { #expect(server.shutDown()) }
        let turns = Locked(0)
        server.onLoop { loop in loop.addTurnEndHook { turns.withLock { $0 += 1 } } }
        let before = turns.value
        usleep(200_000)
        // Nothing happened, so hardly any turn ran (a spinning loop would run thousands).
        #expect(turns.value - before < 10)
    }

    @Test func stopFromAnotherThreadEndsRun() throws {
        let server = try LoopHarness()
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        #expect(client.send([1]) && client.receive(exactly: 1) == [1])
        let loop = Unchecked(value: server.loop)
        Thread { loop.value.stop() }.start()
        #expect(server.waitUntilRunReturned())
    }
}
