// The 4D API from inside the process: things only a handler can see or do (send from another
// thread, wss.connections, several servers on one port, server terminate).
import Dispatch
import Foundation
import Testing
import ShoalTestSupport
@testable import Shoal

/// Records what a handler saw, readable from the test thread.
final class Journal: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String] = []
    private let changed = DispatchSemaphore(value: 0)

    func add(_ entry: String) {
        lock.withLock { entries.append(entry) }
        changed.signal()
    }

    var all: [String] { lock.withLock { entries } }

    /// Waits (bounded: 10 s, scaled) until an entry satisfies `predicate`.
    func wait(for predicate: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(TestTime.seconds(10))
        while Date() < deadline {
            if all.contains(where: predicate) { return true }
            _ = changed.wait(timeout: .now() + 0.1)
        }
        return false
    }
}

final class RecordingServer: WebSocketServerHandler {
    let journal: Journal
    let name: String
    init(_ name: String, _ journal: Journal) {
        self.name = name
        self.journal = journal
    }

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        journal.add("\(name) connection \(event.request.url)")
        return RecordingConnection(name, journal)
    }

    func onOpen(_ wss: WebSocketServer, _ event: WebSocketServerEvent) { journal.add("\(name) server \(event.type)") }
    func onTerminate(_ wss: WebSocketServer, _ event: WebSocketServerEvent) { journal.add("\(name) server \(event.type)") }
}

final class RecordingConnection: WebSocketConnectionHandler {
    let journal: Journal
    let name: String
    init(_ name: String, _ journal: Journal) {
        self.name = name
        self.journal = journal
    }

    func onOpen(_ ws: WebSocketConnection, _ event: WebSocketOpenEvent) { journal.add("\(name) open \(ws.id)") }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        let text = event.data.text ?? ""
        if text == "burst-from-thread" {
            // 4D code may send from a Task after a database call: order must hold per sender thread.
            Thread.detachNewThread {
                for i in 0..<500 { ws.send("n\(i)") }
                ws.send("end")
            }
        } else {
            ws.send("\(name):\(text)")
        }
    }

    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {
        journal.add("\(name) terminate \(ws.id) \(event.code) \(event.reason ?? "-") \(ws.status)")
    }
}

@Suite(.serialized) struct WebSocketServerTests {
    @Test func sendsFromAnotherThreadArriveCompleteAndInOrder() throws {
        let journal = Journal()
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: RecordingServer("a", journal))
        }
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        #expect(client.statusCode == 101)
        client.send(text: "burst-from-thread")
        for i in 0..<500 { #expect(client.next() == .text("n\(i)")) }
        #expect(client.next() == .text("end"))
    }

    @Test func serversOnOnePortAreToldApartByPath() throws {
        let journal = Journal()
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: RecordingServer("upper", journal), options: .init(path: "/upper"))
            _ = WebSocketServer(on: web, handler: RecordingServer("chat", journal), options: .init(path: "/chat"))
        }
        defer { server.stop() }
        let chat = try TestClient(port: server.port, path: "/chat?room=1")
        let upper = try TestClient(port: server.port, path: "/upper")
        let nowhere = try TestClient(port: server.port, path: "/nowhere")
        chat.send(text: "hi")
        upper.send(text: "hi")
        #expect(chat.next() == .text("chat:hi"))
        #expect(upper.next() == .text("upper:hi"))
        #expect(nowhere.statusCode == 404)
        #expect(journal.all.contains("chat connection /chat?room=1"))
    }

    /// Durations from code may be as long as `Duration` allows: they mean "never", not a trap or a
    /// timeout in the past (nanoseconds and the loop's deadlines saturate).
    @Test func theLongestDurationsMeanNever() throws {
        let journal = Journal()
        let never = Duration.seconds(Int64.max)
        let server = try InProcessServer(configure: {
            $0.requestTimeout = never
            $0.linger = never
            $0.drainTimeout = never
        }) { web in
            _ = WebSocketServer(on: web, handler: RecordingServer("s", journal),
                                options: .init(closeTimeout: never, idleTimeout: never, pongTimeout: never))
        }
        defer { server.stop() }
        var client: TestClient? = try TestClient(port: server.port)
        #expect(journal.wait { $0.hasPrefix("s open") })
        Thread.sleep(forTimeInterval: 0.3)
        client?.send(text: "still here")
        #expect(client?.next() == .text("s:still here"))
        client?.sendClose(code: 1000, reason: "done")
        #expect(client?.next() == .close(code: 1000, reason: ""))
        // The server waits for the client to close TCP for as long as the close timeout: for ever.
        Thread.sleep(forTimeInterval: 0.3)
        #expect(!journal.all.contains { $0.hasSuffix("1000 done Closed") })
        client = nil
        #expect(journal.wait { $0.hasSuffix("1000 done Closed") })
    }

    @Test func connectionsGrowAndShrinkAndStatusEndsClosed() throws {
        let journal = Journal()
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: RecordingServer("s", journal))
        }
        defer { server.stop() }
        let wss = server.onLoop { server.web.webSocketServers[0] }
        var clients = try (0..<3).map { _ in try TestClient(port: server.port) }
        #expect(journal.wait { $0.hasPrefix("s open") })
        #expect(journal.wait { _ in server.onLoop { wss.connections.count } == 3 })
        let ids = server.onLoop { wss.connections.map(\.id) }
        #expect(Set(ids).count == 3)

        clients[0].sendClose(code: 1000, reason: "done")
        #expect(clients[0].next() == .close(code: 1000, reason: ""))
        #expect(journal.wait { $0.hasSuffix("1000 done Closed") })
        #expect(server.onLoop { wss.connections.count } == 2)
        clients.removeAll()
        #expect(journal.wait { _ in server.onLoop { wss.connections.count } == 0 })
    }

    @Test func terminatingTheServerClosesEveryClientWith1001() throws {
        let journal = Journal()
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: RecordingServer("t", journal))
        }
        defer { server.stop() }
        let wss = server.onLoop { server.web.webSocketServers[0] }
        let a = try TestClient(port: server.port)
        let b = try TestClient(port: server.port)
        #expect(journal.wait { _ in server.onLoop { wss.connections.count } == 2 })
        server.onLoop { wss.terminate() }
        for client in [a, b] {
            #expect(client.next() == .close(code: 1001, reason: "server terminated"))
            client.sendClose(code: 1001)
            #expect(client.next() == .eof)
        }
        #expect(server.onLoop { wss.terminated })
        #expect(journal.all.contains("t server terminate"))
        // A terminated server takes no new clients.
        let late = try TestClient(port: server.port)
        #expect(late.statusCode == 404)
    }

    @Test func terminateSendsTheCodeOnlyInThe3001To4999Range() throws {
        let journal = Journal()
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: RecordingServer("c", journal))
        }
        defer { server.stop() }
        let wss = server.onLoop { server.web.webSocketServers[0] }
        for (code, expected) in [(3001, TestClient.Event.close(code: 3001, reason: "bye")),
                                 (4999, .close(code: 4999, reason: "bye")),
                                 (3000, .close(code: nil, reason: "")),
                                 (1000, .close(code: nil, reason: "")),
                                 (5000, .close(code: nil, reason: ""))] {
            let client = try TestClient(port: server.port)
            client.send(text: "ping")
            #expect(client.next() == .text("c:ping"))
            server.onLoop {
                for ws in wss.connections { ws.terminate(code: code, message: "bye") }
            }
            #expect(client.next() == expected, "code \(code)")
            client.sendClose(code: expected == .close(code: nil, reason: "") ? nil : UInt16(code))
            #expect(client.next() == .eof)
        }
    }
}
