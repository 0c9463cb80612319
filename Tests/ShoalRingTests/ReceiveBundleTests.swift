// Receive bundles on this kernel (6.18): one multishot-receive completion fills several provided
// buffers (IORING_RECVSEND_BUNDLE), and the loop still gets every byte in order, on the right
// socket, while the buffers are recycled and lent more as it goes. Small buffers make a bundle of
// nearly every receive.
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite(.serialized) struct ReceiveBundleTests {
    private func smallBuffers(bundles: Bool) -> URingConfiguration {
        var configuration = URingConfiguration()
        configuration.receiveBufferSize = 64
        configuration.receiveBufferCount = 1024
        configuration.receiveBundles = bundles
        return configuration
    }

    /// (bundled completions, bundles enabled), read on the loop thread.
    private func bundles(_ server: LoopHarness) -> (completions: Int, enabled: Bool)? {
        server.onLoop { loop in
            (loop.backend as? URingBackend).map { ($0.receiveBundleCompletions, $0.receiveBundles) }
        } ?? nil
    }

    @Test func aMessageLargerThanABufferArrivesWholeThroughBundles() throws {
        let server = try LoopHarness(backend: URingBackend(configuration: smallBuffers(bundles: true)))
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        for round in 0..<20 {
            let message = pattern(100_000 + round * 997, seed: round)
            #expect(client.send(message))
            #expect(client.receive(exactly: message.count) == message, "round \(round)")
        }
        let seen = try #require(bundles(server))
        #expect(seen.enabled)
        #expect(seen.completions > 0)
    }

    @Test func manyClientsAtOnceEachGetTheirOwnBytesBack() throws {
        // Bundles for different sockets interleave in the one buffer ring; each socket's bytes
        // must come from its own buffers, in order.
        let server = try LoopHarness(backend: URingBackend(configuration: smallBuffers(bundles: true)))
        defer { #expect(server.shutDown()) }
        #expect(try everyClientEchoesAtOnce(port: server.port, clientCount: 24, size: 300_000))
        #expect((bundles(server)?.completions ?? 0) > 0)
    }

    @Test func theSwitchKeepsOneBufferPerCompletion() throws {
        let server = try LoopHarness(backend: URingBackend(configuration: smallBuffers(bundles: false)))
        defer { #expect(server.shutDown()) }
        #expect(try everyClientEchoesAtOnce(port: server.port, clientCount: 4, size: 100_000))
        let seen = try #require(bundles(server))
        #expect(!seen.enabled)
        #expect(seen.completions == 0)
    }
}
