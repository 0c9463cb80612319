// wss.publish and ws.subscribe on one worker, through the in-memory harness: who receives what, in which order,
// what a closed or unsubscribed connection misses, the limits, and the members used from other threads.
import Foundation
import Testing
import ShoalTesting
@testable import Shoal

/// Tells each client its connection id first, so the test can find its object in `wss.connections`.
final class IDTellingServer: WebSocketServerHandler, WebSocketConnectionHandler {
    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? { self }
    func onOpen(_ ws: WebSocketConnection, _ event: WebSocketOpenEvent) { ws.send("id \(ws.id)") }
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {}
}

@Suite struct TopicsTests {
    /// A server with `count` clients, each paired with its connection object.
    private func serve(_ count: Int, options: WebSocketServerOptions = .init())
        throws -> (WebSocketTestServer, WebSocketServer, [(client: SimulatedClient, ws: WebSocketConnection)])
    {
        let server = try WebSocketTestServer { web in
            _ = WebSocketServer(on: web, handler: IDTellingServer(), options: options)
        }
        let wss = server.servers[0]
        let pairs = (0..<count).map { _ -> (SimulatedClient, WebSocketConnection) in
            let client = server.connect()
            guard case .text(let hello) = client.takeMessages().first, let id = Int(hello.dropFirst(3)) else {
                preconditionFailure("no id from the server")
            }
            return (client, wss.connections.first { $0.id == id }!)
        }
        return (server, wss, pairs.map { (client: $0.0, ws: $0.1) })
    }

    @Test func aPublishReachesEverySubscriberOnceAndNobodyElse() throws {
        let (server, wss, clients) = try serve(4)
        try clients[0].ws.subscribe("news")
        try clients[1].ws.subscribe("news")
        try clients[2].ws.subscribe("sport")
        try wss.publish("news", "headline")
        try wss.publish("news", [1, 2, 3])
        try wss.publish("news", JSONValue.object(["n": 1]))
        try wss.publish("weather", "nobody listens")
        server.settle()
        let expected: [WebSocketData] = [.text("headline"), .blob([1, 2, 3]), .text(#"{"n":1}"#)]
        #expect(clients[0].client.takeMessages() == expected)
        #expect(clients[1].client.takeMessages() == expected)
        #expect(clients[2].client.takeMessages().isEmpty)
        #expect(clients[3].client.takeMessages().isEmpty)
        #expect(wss.subscriberCount("news") == 2)
        #expect(wss.subscriberCount("weather") == 0)
    }

    @Test func exceptLeavesOutOneSubscriberAndOrderIsPublishOrder() throws {
        let (server, wss, clients) = try serve(2)
        for pair in clients { try pair.ws.subscribe("t") }
        for n in 0..<50 { try wss.publish("t", "\(n)", except: clients[0].ws.id) }
        server.settle()
        #expect(clients[0].client.takeMessages().isEmpty)
        #expect(clients[1].client.takeMessages() == (0..<50).map { .text("\($0)") })
    }

    @Test func unsubscribedAndClosedConnectionsGetNothingAndLeaveTheCount() throws {
        let (server, wss, clients) = try serve(3)
        for pair in clients { try pair.ws.subscribe("t") }
        try clients[0].ws.subscribe("u")
        #expect(clients[1].ws.unsubscribe("t"))
        #expect(!clients[1].ws.unsubscribe("t"))
        clients[2].client.close()
        server.settle()
        #expect(wss.subscriberCount("t") == 1)
        try wss.publish("t", "after")
        server.settle()
        #expect(clients[0].client.takeMessages() == [.text("after")])
        #expect(clients[1].client.takeMessages().isEmpty)
        // The closed one left every topic, and cannot join one again.
        #expect(clients[2].ws.topics.isEmpty)
        #expect(try !clients[2].ws.subscribe("t"))
        #expect(wss.subscriberCount("t") == 1)
        clients[0].client.close()
        server.settle()
        #expect(wss.subscriberCount("u") == 0)
    }

    @Test func topicsAndIsSubscribedFollowTheSubscriptions() throws {
        let (server, _, clients) = try serve(1)
        defer { withExtendedLifetime(server) {} }
        let ws = clients[0].ws
        #expect(try ws.subscribe("b"))
        #expect(try ws.subscribe("a"))
        #expect(try !ws.subscribe("a"))
        #expect(ws.topics == ["a", "b"])
        #expect(ws.isSubscribed("a"))
        ws.unsubscribe("a")
        #expect(!ws.isSubscribed("a"))
        #expect(ws.topics == ["b"])
    }

    @Test func aTooLongNameOrOneTopicTooManyThrowsAndChangesNothing() throws {
        var options = WebSocketServerOptions()
        options.maxTopicsPerConnection = 2
        let (server, wss, clients) = try serve(1, options: options)
        let ws = clients[0].ws
        let tooLong = String(repeating: "x", count: 257)
        #expect(throws: TopicError.nameTooLong(bytes: 257, limit: 256)) { try ws.subscribe(tooLong) }
        #expect(throws: TopicError.nameTooLong(bytes: 257, limit: 256)) { try wss.publish(tooLong, "x") }
        try ws.subscribe("a")
        try ws.subscribe("b")
        #expect(throws: TopicError.tooManyTopics(limit: 2)) { try ws.subscribe("c") }
        #expect(ws.topics == ["a", "b"])
        try wss.publish("c", "no")
        server.settle()
        #expect(clients[0].client.takeMessages().isEmpty)
    }

    @Test func theDefaultLimitIsOneThousandTopics() throws {
        let (server, _, clients) = try serve(1)
        defer { withExtendedLifetime(server) {} }
        for n in 0..<1_000 { try clients[0].ws.subscribe("t\(n)") }
        #expect(throws: TopicError.tooManyTopics(limit: 1_000)) { try clients[0].ws.subscribe("one more") }
    }

    /// The hooks for a bridge to other hosts: the observer sees publishes and broadcasts made through the API,
    /// and what `deliverPublished` / `deliverBroadcast` bring in reaches the clients without echoing back to it.
    @Test func theBridgeHooksSeeLocalPublishesAndDeliverOutsideOnesWithoutEcho() throws {
        let (server, wss, clients) = try serve(2)
        var seen: [String] = []
        wss.publishObserver = { topic, opcode, payload in seen.append("\(topic) \(opcode) \(String(decoding: payload, as: UTF8.self))") }
        wss.broadcastObserver = { opcode, payload in seen.append("all \(opcode) \(String(decoding: payload, as: UTF8.self))") }
        try clients[0].ws.subscribe("t")
        try wss.publish("t", "from here")
        wss.broadcast("to all")
        server.settle()  // the two calls above were handed to the loop; the deliver calls below run here
        "from elsewhere".utf8CString.withUnsafeBytes {
            wss.deliverPublished("t", .text, UnsafeRawBufferPointer(rebasing: $0.dropLast()), toOtherWorkers: true)
        }
        "everyone, from elsewhere".utf8CString.withUnsafeBytes {
            wss.deliverBroadcast(.text, UnsafeRawBufferPointer(rebasing: $0.dropLast()), toOtherWorkers: false)
        }
        server.settle()
        #expect(seen == ["t text from here", "all text to all"])
        #expect(clients[0].client.takeMessages() == [.text("from here"), .text("to all"), .text("from elsewhere"),
                                                     .text("everyone, from elsewhere")])
        #expect(clients[1].client.takeMessages() == [.text("to all"), .text("everyone, from elsewhere")])
    }

    /// With shared compression a publish is compressed once for all subscribers that negotiated it.
    @Test func withSharedCompressionSubscribersGetTheMessageIntact() throws {
        let (server, wss, clients) = try serve(2, options: .init(compression: .shared, compressionThreshold: 0))
        for pair in clients { try pair.ws.subscribe("t") }
        let text = String(repeating: "compress me ", count: 100)
        try wss.publish("t", text)
        server.settle()
        for pair in clients { #expect(pair.client.takeMessages() == [.text(text)]) }
    }
}

/// The members from other threads, against a real loop thread.
@Suite(.serialized) struct TopicsThreadTests {
    @Test func subscribePublishAndCountFromTasksAreSafeAndTrue() async throws {
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: SilentServer())
        }
        defer { server.stop() }
        let wss = server.onLoop { server.web.webSocketServers[0] }
        let clients = try (0..<3).map { _ in try TestClient(port: server.port) }
        #expect(waitUntil { wss.connections.count == 3 })
        let connections = Array(wss.connections)
        await withTaskGroup(of: Void.self) { group in
            for (n, ws) in connections.enumerated() {
                group.addTask {
                    _ = try? ws.subscribe("all")
                    _ = try? ws.subscribe("own \(n)")
                }
            }
        }
        #expect(wss.subscriberCount("all") == 3)
        #expect(connections.allSatisfy { $0.isSubscribed("all") && $0.topics.count == 2 })
        #expect(throws: TopicError.tooManyTopics(limit: 1_000)) {
            for n in 0...1_000 { try connections[0].subscribe("many \(n)") }
        }
        try wss.publish("all", "from a task")
        for client in clients { #expect(client.next() == .text("from a task")) }
        // Each client is on its own topic: three publishes, one message each, all different.
        for n in 0..<3 { try wss.publish("own \(n)", "own \(n)") }
        let got = clients.map { client -> String in
            if case .text(let text) = client.next() { return text }
            return "not a text message"
        }
        #expect(Set(got) == ["own 0", "own 1", "own 2"])
    }
}
