// Bytes through the real io_uring loop over loopback: echo of every size class, coalescing of
// many small writes, a send queue far larger than the socket buffer, and a provided-buffer ring
// so small that multishot receive keeps running out of buffers.
import ShoalTestSupport
import Dispatch
import Foundation
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

@Suite(.serialized) struct DataPathTests {
    @Test func echoesMessagesFromOneByteToOneMebibyteExactly() throws {
        let server = try LoopHarness()
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        let sizes = [1, 2, 7, 100, 1000, 4096, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 65536, 100_000, 1 << 20]
        for (seed, size) in sizes.enumerated() {
            let message = pattern(size, seed: seed)
            #expect(client.send(message))
            let echoed = client.receive(exactly: size)
            #expect(echoed == message, "message of \(size) bytes")
        }
        // The same bytes back to back in one burst, read back as one stream.
        let burst = sizes.enumerated().flatMap { pattern($0.element, seed: $0.offset + 100) }
        #expect(client.send(burst))
        #expect(client.receive(exactly: burst.count) == burst)
        #expect(server.connections.count == 1)
    }

    @Test func manySmallWritesInOneTurnLeaveInFewSendsAndInOrder() throws {
        let backend = try CountingBackend()
        var behaviour = Behaviour()
        behaviour.received = { connection, bytes in
            for byte in bytes {
                for piece in 0..<1000 {
                    connection.write([byte, UInt8(piece >> 8), UInt8(piece & 0xFF), 0xA5])
                }
            }
        }
        let server = try LoopHarness(backend: backend, behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        let rounds = 20
        for round in 0..<rounds {
            let byte = UInt8(round + 1)
            #expect(client.send([byte]))
            guard let reply = client.receive(exactly: 4000) else {
                Issue.record("no reply to byte \(byte)")
                return
            }
            let expected = (0..<1000).flatMap { (piece: Int) -> [UInt8] in [byte, UInt8(piece >> 8), UInt8(piece & 0xFF), 0xA5] }
            #expect(reply == expected)
        }
        // 20 000 writes; one send per socket and turn, so only a few sends per reply.
        let sends = backend.counts.value.sends
        #expect(sends >= rounds)
        #expect(sends <= rounds * 4)
    }

    @Test func aSendQueueLargerThanTheSocketBuffersArrivesCompleteAndInOrder() throws {
        let total = 8 << 20
        // Every 4-byte word holds its own index, so a lost, repeated or reordered piece shows.
        let payload = [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            for word in 0..<(total / 4) {
                withUnsafeBytes(of: UInt32(word).littleEndian) { bytes in
                    for k in 0..<4 { buffer[word * 4 + k] = bytes[k] }
                }
            }
            count = total
        }
        let queuedAfterWrite = Locked(-1)
        var behaviour = Behaviour()
        behaviour.received = { connection, _ in
            payload.withUnsafeBytes { all in
                var offset = 0
                while offset < all.count {
                    let end = min(offset + 65536, all.count)
                    connection.write(UnsafeRawBufferPointer(rebasing: all[offset..<end]))
                    offset = end
                }
            }
            let queued = connection.loop.bufferedAmount(connection.handle)
            queuedAfterWrite.withLock { $0 = queued }
        }
        // A 64 KiB server send buffer and a 16 KiB client window: the kernel can hold only a sliver of 8 MiB.
        let server = try LoopHarness(behaviour: behaviour) { fd in
            try? Socket.setOption(fd, SOL_SOCKET, SO_SNDBUF, 64 * 1024, "SO_SNDBUF")
        }
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port, receiveBufferSize: 16 * 1024)
        defer { client.close() }
        #expect(client.send([1]))
        let head = client.receive(exactly: 64 * 1024, piece: 16 * 1024, pauseMicroseconds: 500)
        #expect(head.map { $0[...] } == payload[0..<(64 * 1024)])
        #expect(queuedAfterWrite.value == total)
        let connection = try #require(server.connection(1))
        let handle = connection.handle
        let stillQueued = server.onLoop { $0.bufferedAmount(handle) } ?? 0
        #expect(stillQueued > 0)
        #expect(!server.log.contains(.drained(handle)))

        let rest = client.receive(exactly: total - 64 * 1024, piece: 16 * 1024, pauseMicroseconds: 20)
        #expect(rest.map { $0[...] } == payload[(64 * 1024)...])
        #expect(waitUntil { server.log.contains(.drained(handle)) })
        #expect(server.onLoop { $0.bufferedAmount(handle) } == 0)
        #expect(server.log.filter { $0 == .drained(handle) }.count == 1)
    }

    @Test func everyByteArrivesWhenTheProvidedBufferRingRunsDry() throws {
        var configuration = URingConfiguration()
        configuration.receiveBufferCount = 2
        configuration.receiveBufferSize = 64
        let backend = try CountingBackend(configuration: configuration)
        let server = try LoopHarness(backend: backend)
        defer { #expect(server.shutDown()) }

        let clientCount = 6
        #expect(try everyClientEchoesAtOnce(port: server.port, clientCount: clientCount, size: 128 * 1024))
        // The ring did run dry, and receive was armed again each time.
        let counts = backend.counts.value
        #expect(counts.noBufferCompletions > 0)
        #expect(counts.receives > clientCount + counts.noBufferCompletions / 2)
    }
}
