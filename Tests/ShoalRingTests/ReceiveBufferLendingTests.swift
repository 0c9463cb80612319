// The provided-buffer ring lends the kernel a few buffers and more only when a turn runs out,
// so a quiet worker keeps few receive pages resident while a busy one still gets every byte.
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite(.serialized) struct ReceiveBufferLendingTests {
    /// Buffers the harness's io_uring ring has in circulation, read on its loop thread.
    private func lent(_ server: LoopHarness) -> Int? {
        server.onLoop { ($0.backend as? URingBackend)?.receiveBuffersLent } ?? nil
    }

    @Test func aQuietLoopLendsOnlyItsFirstBuffers() throws {
        let server = try LoopHarness(backend: URingBackend())
        defer { #expect(server.shutDown()) }
        let clients = try (0..<8).map { _ in try TestClient(port: server.port) }
        defer { for client in clients { client.close() } }
        for round in 0..<50 {
            for (index, client) in clients.enumerated() {
                let message = pattern(100, seed: round * 8 + index)
                #expect(client.send(message))
                #expect(client.receive(exactly: message.count) == message)
            }
        }
        #expect(lent(server) == ProvidedBufferRing.initiallyLent)
    }

    @Test func aTurnThatRunsDryLendsMoreAndEveryByteArrives() throws {
        var configuration = URingConfiguration()
        configuration.receiveBufferCount = 1024
        configuration.receiveBufferSize = 64
        let server = try LoopHarness(backend: URingBackend(configuration: configuration))
        defer { #expect(server.shutDown()) }

        #expect(try everyClientEchoesAtOnce(port: server.port, clientCount: 16, size: 256 * 1024))
        let grown = try #require(lent(server))
        #expect(grown > ProvidedBufferRing.initiallyLent)
        #expect(grown <= configuration.receiveBufferCount)
    }
}
