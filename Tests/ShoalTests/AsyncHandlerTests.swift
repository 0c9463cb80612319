// Async work from a handler: onMessage starts a Task that awaits something slow (a database call)
// and then sends with `await ws.onLoop { $0.send(...) }`. The client may have left meanwhile:
// the send is then a no-op whose result says `.closed`, never a crash.
import Foundation
import Testing
@testable import Shoal
import ShoalTestSupport

/// Stands for a database: `query` waits until the test calls `answer`.
final class SlowDatabase: Sendable {
    private let waiting = Locked<[CheckedContinuation<String, Never>]>([])

    func query(_ question: String) async -> String {
        await withCheckedContinuation { continuation in waiting.withLock { $0.append(continuation) } }
    }

    var pending: Int { waiting.value.count }

    func answer(_ rows: String) {
        for continuation in waiting.withLock({ list in defer { list.removeAll() }; return list }) {
            continuation.resume(returning: rows)
        }
    }
}

/// The documented pattern (docs/api.md, "Async work from handlers").
final class LookupServer: WebSocketServerHandler, WebSocketConnectionHandler, @unchecked Sendable {
    let database = SlowDatabase()
    let results = Locked<[WebSocketSendResult]>([])

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? { self }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        guard let question = event.data.text else { return }
        let database = self.database, results = self.results
        Task {
            let rows = await database.query(question)
            let result = await ws.onLoop { $0.send(rows) }
            results.withLock { $0.append(result) }
        }
    }
}

/// Polls `condition` every millisecond for at most 10 s without holding a thread of the shared
/// pool (the handlers' Tasks need one to run; other suites' blocking clients may hold the rest).
func eventually(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<10_000 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return condition()
}

@Suite(.serialized) struct AsyncHandlerTests {
    @Test func aTaskSendsWhatItAwaitedToAClientStillThere() async throws {
        let handler = LookupServer()
        let server = try InProcessServer { web in _ = WebSocketServer(on: web, handler: handler) }
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        client.send(text: "select 1")
        #expect(await eventually { handler.database.pending == 1 })
        handler.database.answer("1 row")
        #expect(await eventually { handler.results.value == [.queued] })
        #expect(client.next() == .text("1 row"))
    }

    @Test func aTaskThatSendsAfterTheClientLeftGetsClosedAndNothingBreaks() async throws {
        let handler = LookupServer()
        let server = try InProcessServer { web in _ = WebSocketServer(on: web, handler: handler) }
        defer { server.stop() }
        let wss = server.onLoop { server.web.webSocketServers[0] }
        do {
            let client = try TestClient(port: server.port)
            client.send(text: "select 1")
            #expect(await eventually { handler.database.pending == 1 })
            client.sendClose(code: 1000)
            #expect(client.next() == .close(code: 1000, reason: ""))
        }
        #expect(await eventually { wss.connections.isEmpty })
        handler.database.answer("too late")
        #expect(await eventually { handler.results.value == [.closed] })
        // The server still serves.
        let next = try TestClient(port: server.port)
        next.send(text: "select 2")
        #expect(await eventually { handler.database.pending == 1 })
        handler.database.answer("2 rows")
        #expect(await eventually { handler.results.value == [.closed, .queued] })
        #expect(next.next() == .text("2 rows"))
    }

    @Test func sendOnTheLoopAfterTerminateSaysClosed() throws {
        let server = try InProcessServer { web in _ = WebSocketServer(on: web, handler: SilentServer()) }
        defer { server.stop() }
        let wss = server.onLoop { server.web.webSocketServers[0] }
        let client = try TestClient(port: server.port)
        #expect(waitUntil { wss.connections.count == 1 })
        let results = server.onLoop { () -> [WebSocketSendResult] in
            let ws = wss.connections[0]
            let before = ws.send("before")
            ws.terminate()
            return [before, ws.send("after"), ws.send([1, 2]), ws.send(JSONValue.null)]
        }
        #expect(results == [.queued, .closed, .closed, .closed])
        #expect(client.next() == .text("before"))
        #expect(client.next() == .close(code: nil, reason: ""))
    }
}
