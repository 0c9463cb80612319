// What `EventLoop.shutdown()` lets go of: a loop that has run, served a connection and holds closures
// that capture it (a turn-end hook, a timer not yet due) is freed once it is shut down and its owner
// drops it. Before, the loop kept its delegates and closures, which held it in turn, and
// LeakSanitizer reported every loop the tests started.
import Glibc
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite struct LoopShutdownTests {
    @Test func aShutDownLoopIsFreedWithItsListenerDelegateAndClosuresThatCaptureIt() throws {
        weak var freedLoop: EventLoop?
        weak var freedHarness: LoopHarness?
        do {
            let server = try LoopHarness()
            freedLoop = server.loop
            freedHarness = server
            // Closures the loop keeps that hold the loop itself.
            _ = server.onLoop { loop in
                loop.addTurnEndHook { _ = loop.openSockets }
                loop.schedule(after: 3_600_000_000_000) { _ = loop.openSockets }
            }
            let client = try TestClient(port: server.port)
            #expect(client.send([1, 2, 3]))
            #expect(client.receive(exactly: 3) == [1, 2, 3])
            client.close()
            #expect(waitUntil { server.closedTotal == 1 })
            #expect(server.shutDown())
        }
        // The loop thread lets go of the harness once its `run()` has returned.
        #expect(waitUntil { freedHarness == nil })
        #expect(freedLoop == nil)
    }
}
