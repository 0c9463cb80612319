// Pausing reads (inbound backpressure): while a socket is paused the loop delivers nothing more from
// it, whatever the client sends; resuming delivers every byte, in order; closing a paused socket
// still ends it cleanly. The same on io_uring (cancel of the multishot receive) and epoll.
import ShoalTestSupport
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

@Suite(.serialized) struct ReceivePauseTests {
    static let backends: [String] = ["io_uring", "epoll"]

    private func harness(_ backend: String, behaviour: Behaviour = Behaviour()) throws -> LoopHarness {
        backend == "epoll" ? try LoopHarness(backend: EpollBackend(), behaviour: behaviour) : try LoopHarness(behaviour: behaviour)
    }

    @Test(arguments: backends)
    func pausedSocketReceivesNothingUntilResumed(backend: String) throws {
        let paused = Locked(false)
        var behaviour = Behaviour()
        behaviour.received = { connection, _ in
            // Pause after the first delivery, keep the bytes (no echo).
            if !paused.value {
                connection.loop.pauseReceiving(connection.handle)
                paused.withLock { $0 = true }
            }
        }
        let server = try harness(backend, behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }

        #expect(client.send([1, 2, 3]))
        guard let connection = server.connection(1) else { Issue.record("no connection"); return }
        #expect(waitUntil { paused.value })
        #expect(connection.receivedCount.value == 3)
        // Let the cancel reach the kernel, then send while paused.
        usleep(100_000)
        let body = pattern(200_000, seed: 7)
        #expect(client.send(body))
        usleep(300_000)
        #expect(connection.receivedCount.value == 3, "bytes were delivered while paused")

        connection.loop.execute { connection.loop.resumeReceiving(connection.handle) }
        #expect(waitUntil { connection.receivedCount.value == 3 + body.count })
    }

    @Test(arguments: backends)
    func closingAPausedSocketEndsIt(backend: String) throws {
        var behaviour = Behaviour()
        behaviour.received = { connection, _ in connection.loop.pauseReceiving(connection.handle) }
        let server = try harness(backend, behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        #expect(client.send([9]))
        guard let connection = server.connection(1) else { Issue.record("no connection"); return }
        #expect(waitUntil { connection.receivedCount.value == 1 })
        usleep(50_000)
        connection.loop.execute { connection.close(.graceful(lingerNanoseconds: TestTime.nanoseconds(5_000_000_000))) }
        // Graceful close of a paused socket reads again, so the client's FIN ends the linger early.
        usleep(50_000)
        client.shutdownWrite()
        #expect(waitUntil(seconds: 3) { server.closedCount(connection.handle) == 1 })
    }
}
