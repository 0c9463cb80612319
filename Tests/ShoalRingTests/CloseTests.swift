// Ending sockets on the real io_uring loop: graceful and abortive closes, exactly one `closed(on:)`,
// dead handles after slot reuse, peer EOF and peer reset.
import ShoalTestSupport
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

@Suite(.serialized) struct CloseTests {
    @Test func gracefulCloseDeliversQueuedBytesThenTheClientSeesEndOfFile() throws {
        let size = 1 << 20
        let reply = pattern(size, seed: 21)
        var behaviour = Behaviour()
        behaviour.received = { connection, _ in
            connection.write(reply)
            connection.close(.graceful(lingerNanoseconds: 60_000_000_000))
        }
        let server = try LoopHarness(behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        #expect(client.send([1]))
        let (bytes, end) = client.readToEnd()
        #expect(end == .endOfFile)
        #expect(bytes == reply)
        let handle = try #require(server.connection(1)).handle
        #expect(server.onLoop { $0.isWritable(handle) } == false)
        // Our FIN ends the linger long before its 60 s.
        client.close()
        #expect(waitUntil { server.closedCount(handle) == 1 })
        #expect(server.onLoop { $0.openSockets } == 0)
    }

    @Test func gracefulCloseGivesUpAfterTheLingerTimeWhenThePeerNeverCloses() throws {
        var behaviour = Behaviour()
        behaviour.received = { connection, _ in
            connection.write([9, 9, 9])
            connection.close(.graceful(lingerNanoseconds: 50_000_000))
        }
        let server = try LoopHarness(behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        #expect(client.send([1]))
        #expect(client.receive(exactly: 3) == [9, 9, 9])
        let handle = try #require(server.connection(1)).handle
        #expect(waitUntil { server.closedCount(handle) == 1 })
        let (_, end) = client.readToEnd()
        #expect(end == .endOfFile || end == .reset)
    }

    @Test func abortDropsQueuedBytesAndTheClientSeesTheEndAtOnce() throws {
        let size = 4 << 20
        var behaviour = Behaviour()
        behaviour.received = { connection, _ in
            connection.write(pattern(size, seed: 22))
            connection.close(.abort)
        }
        let server = try LoopHarness(behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        #expect(client.send([1]))
        let (bytes, end) = client.readToEnd()
        #expect(end == .endOfFile || end == .reset)
        #expect(bytes.count < size)
        let handle = try #require(server.connection(1)).handle
        #expect(waitUntil { server.closedCount(handle) == 1 })
    }

    @Test func abortWithASendInFlightEndsTheSocketOnce() throws {
        var behaviour = Behaviour()
        behaviour.received = { connection, _ in connection.write(pattern(8 << 20, seed: 23)) }
        let server = try LoopHarness(behaviour: behaviour) { fd in
            try? Socket.setOption(fd, SOL_SOCKET, SO_SNDBUF, 64 * 1024, "SO_SNDBUF")
        }
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port, receiveBufferSize: 16 * 1024)
        defer { client.close() }
        #expect(client.send([1]))
        #expect(client.receive(exactly: 32 * 1024) == pattern(32 * 1024, seed: 23))
        let handle = try #require(server.connection(1)).handle
        // The kernel still holds a send (the client stopped reading): abort must cancel it.
        #expect(server.onLoop { loop in loop.bufferedAmount(handle) > 0 } == true)
        server.onLoop { $0.close(handle, mode: .abort) }
        let (bytes, end) = client.readToEnd()
        #expect(end == .endOfFile || end == .reset)
        #expect(bytes.count < 8 << 20)
        #expect(waitUntil { server.closedCount(handle) == 1 })
        // Closing again, in either mode, is a no-op.
        server.onLoop { loop in
            loop.close(handle, mode: .abort)
            loop.close(handle, mode: .graceful(lingerNanoseconds: 0))
        }
        #expect(server.onLoop { $0.openSockets } == 0)
        #expect(server.closedCount(handle) == 1)
    }

    @Test func closedIsCalledExactlyOncePerSocket() throws {
        var behaviour = Behaviour()
        behaviour.received = { connection, bytes in
            switch bytes.first {
            case 1: connection.close(.abort)
            case 2: connection.close(.graceful(lingerNanoseconds: 20_000_000))
            default:
                // Both, and twice: only the first close counts.
                connection.close(.graceful(lingerNanoseconds: 20_000_000))
                connection.close(.abort)
                connection.close(.abort)
            }
        }
        let server = try LoopHarness(behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let clients = try (0..<9).map { _ in try TestClient(port: server.port) }
        defer { for client in clients { client.close() } }
        for (i, client) in clients.enumerated() {
            #expect(client.send([UInt8(i % 3 + 1)]))
        }
        for client in clients {
            let (_, end) = client.readToEnd()
            #expect(end == .endOfFile || end == .reset)
            client.close()
        }
        #expect(waitUntil { server.log.filter { if case .closed = $0 { true } else { false } }.count == 9 })
        #expect(server.onLoop { $0.openSockets } == 0)
        let opened = server.log.compactMap { if case .opened(let h) = $0 { h } else { nil } }
        #expect(opened.count == 9)
        for handle in opened {
            #expect(server.closedCount(handle) == 1)
        }
    }

    @Test func aHandleKeptAfterCloseStaysDeadWhenItsSlotIsReused() throws {
        let server = try LoopHarness()
        defer { #expect(server.shutDown()) }
        let first = try TestClient(port: server.port)
        defer { first.close() }
        #expect(first.send([1]) && first.receive(exactly: 1) == [1])
        let old = try #require(server.connection(1)).handle
        server.onLoop { $0.close(old, mode: .abort) }
        #expect(waitUntil { server.closedCount(old) == 1 })
        #expect(first.readToEnd().end != .timedOut)

        let second = try TestClient(port: server.port)
        defer { second.close() }
        #expect(second.send([2]) && second.receive(exactly: 1) == [2])
        let new = try #require(server.connection(2)).handle
        #expect(new.index == old.index)
        #expect(new.generation != old.generation)

        let dead = server.onLoop { loop -> [Bool] in
            var reserveCalled = false
            [7, 7, 7].withUnsafeBytes { loop.write(old, $0) }
            let reserved = loop.write(old, reserving: 4) { _ in reserveCalled = true }
            loop.setTimer(old, after: 0, kind: 5)
            loop.close(old, mode: .abort)
            return [loop.isWritable(old), loop.bufferedAmount(old) == 0, reserved, reserveCalled, loop.isWritable(new)]
        }
        #expect(dead == [false, true, false, false, true])
        // The new connection got none of it and still echoes.
        #expect(second.send([3]) && second.receive(exactly: 1) == [3])
        #expect(!server.log.contains(.timerFired(old, kind: 5)))
        #expect(!server.log.contains(.timerFired(new, kind: 5)))
        #expect(server.closedCount(new) == 0)
        #expect(server.onLoop { $0.openSockets } == 1)
    }

    @Test func peerEndOfFileCallsReadEndedAndTheSocketCanStillReply() throws {
        var behaviour = Behaviour()
        behaviour.readEnded = { connection, _ in
            connection.write(Array("bye".utf8))
            connection.close(.graceful(lingerNanoseconds: 60_000_000_000))
        }
        let server = try LoopHarness(behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        #expect(client.send([1, 2]) && client.receive(exactly: 2) == [1, 2])
        client.shutdownWrite()
        let (bytes, end) = client.readToEnd()
        #expect(bytes == Array("bye".utf8))
        #expect(end == .endOfFile)
        let handle = try #require(server.connection(1)).handle
        #expect(server.log.contains(.readEnded(handle, error: nil)))
        // Both directions are finished: the socket must not sit out its 60 s linger.
        #expect(waitUntil { server.closedCount(handle) == 1 })
    }

    @Test func aClientResetEndsOnlyThatSocketAndTheLoopKeepsServingOthers() throws {
        let server = try LoopHarness()
        defer { #expect(server.shutDown()) }
        let survivor = try TestClient(port: server.port)
        defer { survivor.close() }
        #expect(survivor.send([1]) && survivor.receive(exactly: 1) == [1])
        let victim = try TestClient(port: server.port)
        #expect(victim.send([2]) && victim.receive(exactly: 1) == [2])
        let handle = try #require(server.connection(2)).handle
        victim.reset()
        #expect(waitUntil { server.closedCount(handle) == 1 })
        let ended = server.log.contains { if case .readEnded(handle, _) = $0 { true } else { false } }
        #expect(ended)
        let message = pattern(100_000, seed: 24)
        #expect(survivor.send(message) && survivor.receive(exactly: message.count) == message)
        let late = try TestClient(port: server.port)
        defer { late.close() }
        #expect(late.send([3]) && late.receive(exactly: 1) == [3])
    }
}
