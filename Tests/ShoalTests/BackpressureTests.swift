// Backpressure as a handler sees it: bufferedAmount grows while a client does not read, onDrain
// runs once the queue has emptied, and past maxBackpressure the slow-consumer policy applies.
import Dispatch
import Foundation
import Testing
@testable import Shoal
import ShoalCluster

/// On "flood", sends `count` binary messages of 64 KiB and records bufferedAmount; records onDrain.
final class FloodConnection: WebSocketConnectionHandler {
    let journal: Journal
    let count: Int
    init(_ journal: Journal, count: Int) {
        self.journal = journal
        self.count = count
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        let chunk = [UInt8](repeating: 0x5A, count: 64 * 1024)
        for _ in 0..<count { ws.send(chunk) }
        journal.add("buffered \(ws.bufferedAmount)")
    }

    func onDrain(_ ws: WebSocketConnection, _ event: WebSocketDrainEvent) {
        journal.add("drain \(ws.bufferedAmount) \(event.type)")
    }

    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {
        journal.add("terminate \(event.code)")
    }
}

final class FloodServer: WebSocketServerHandler {
    let journal: Journal
    let count: Int
    init(_ journal: Journal, count: Int) {
        self.journal = journal
        self.count = count
    }

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        FloodConnection(journal, count: count)
    }
}

@Suite(.serialized) struct BackpressureTests {
    @Test func bufferedAmountGrowsAndOnDrainRunsOnceTheClientHasReadEverything() throws {
        let journal = Journal()
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: FloodServer(journal, count: 64))
        }
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        #expect(client.statusCode == 101)
        client.send(text: "flood")
        #expect(journal.wait { $0.hasPrefix("buffered ") })
        let buffered = journal.all.first { $0.hasPrefix("buffered ") }.flatMap { Int($0.dropFirst(9)) } ?? 0
        // 4 MiB were queued in one turn; the kernel cannot have taken them all yet.
        #expect(buffered > 1 << 20, "bufferedAmount was \(buffered)")
        #expect(!journal.all.contains { $0.hasPrefix("drain") }, "onDrain before the client read anything")
        for _ in 0..<64 {
            guard case .binary(let bytes) = client.next(), bytes.count == 64 * 1024 else {
                Issue.record("a flood message did not arrive whole")
                return
            }
        }
        #expect(journal.wait { $0 == "drain 0 drain" })
        #expect(journal.all.filter { $0.hasPrefix("drain") }.count == 1)
    }

    @Test(arguments: [SlowConsumerPolicy.close, .drop])
    func pastMaxBackpressureThePolicyApplies(policy: SlowConsumerPolicy) throws {
        let journal = Journal()
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: FloodServer(journal, count: 64),
                                options: .init(maxBackpressure: 1 << 20, slowConsumerPolicy: policy))
        }
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        client.send(text: "flood")
        #expect(journal.wait { $0.hasPrefix("buffered ") })
        // Queued bytes count frame headers too (4 bytes for 64 KiB): 15 messages fit in 1 MiB.
        let fits = ((1 << 20) - 64 * 1024) / (64 * 1024 + 4) + 1
        var received = 0
        var closeCode: UInt16?
        reading: while true {
            switch client.next() {
            case .binary: received += 1
            case .close(let code, _): closeCode = code; break reading
            case .text, .eof: break reading
            }
            if policy == .drop && received == fits { break }
        }
        switch policy {
        case .close:
            #expect(closeCode == 1008)
            #expect(received == fits)
            #expect(journal.wait { $0 == "terminate 1008" || $0 == "terminate 1006" })
            #expect(server.onLoop { server.web.limits[.slowConsumerClose] } == 1)
        case .drop:
            #expect(received == fits)
            #expect(server.onLoop { server.web.limits[.slowConsumerDrop] } == 64 - fits)
        }
    }
}
