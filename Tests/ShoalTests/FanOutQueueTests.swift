// Broadcasts and publishes in slices across loop turns, through the in-memory harness: a turn
// delivers one slice, the rest follows, and per connection a direct send or a close made meanwhile
// still comes after the fan-outs sent before it.
import Testing
import ShoalRing
import ShoalTesting
@testable import Shoal

/// Runs the test's closure for each text message, on the loop.
final class ScriptedFanOutServer: WebSocketServerHandler, WebSocketConnectionHandler {
    var onText: (WebSocketConnection, String) -> Void = { _, _ in }
    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? { self }
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        if case .text(let text) = event.data { onText(ws, text) }
    }
}

@Suite struct FanOutQueueTests {
    private static let small = FanOutSlicing.Limits(deliveriesPerSlice: 3, nanosecondsPerSlice: .max, maxQueued: 64)

    /// `count` clients on one server with small slices; the first client is the one that triggers.
    private func serve(_ count: Int, limits: FanOutSlicing.Limits = small) throws
        -> (WebSocketTestServer, WebSocketServer, ScriptedFanOutServer, [SimulatedClient])
    {
        let handler = ScriptedFanOutServer()
        let server = try WebSocketTestServer { web in _ = WebSocketServer(on: web, handler: handler) }
        let wss = server.servers[0]
        wss.fanOutLimits = limits
        let clients = (0..<count).map { _ in server.connect() }
        return (server, wss, handler, clients)
    }

    /// The connections that have bytes queued and not yet taken (what this turn wrote to).
    private func written(_ wss: WebSocketServer) -> Int {
        wss.connections.filter { wss.loop.bufferedAmount($0.socket) > 0 }.count
    }

    @Test func oneTurnDeliversOneSliceAndTheRestFollowsInOrder() throws {
        let (server, wss, handler, clients) = try serve(10)
        var writtenInTheTurn = -1
        handler.onText = { ws, _ in
            ws.wss.broadcast("one")
            ws.wss.broadcast("two")
            writtenInTheTurn = self.written(ws.wss)
        }
        clients[0].send("go")
        server.settle()
        #expect(writtenInTheTurn == 3)
        for client in clients { #expect(client.takeMessages() == [.text("one"), .text("two")]) }
        _ = wss
    }

    @Test func aDirectSendToAClientNotReachedYetComesAfterTheBroadcasts() throws {
        let (server, wss, handler, clients) = try serve(10)
        handler.onText = { ws, _ in
            ws.wss.broadcast("one")
            ws.wss.broadcast("two")
            // Connections in server order: the last ones are reached by a later slice.
            for connection in ws.wss.connections { connection.send("direct \(connection.id)") }
        }
        clients[0].send("go")
        server.settle()
        let ids = wss.connections.map(\.id)
        for (client, id) in zip(clients, ids) {
            #expect(client.takeMessages() == [.text("one"), .text("two"), .text("direct \(id)")])
        }
    }

    @Test func aCloseBeforeTheSliceReachesTheClientStillSendsItsBroadcastFirst() throws {
        let (server, _, handler, clients) = try serve(8)
        handler.onText = { ws, _ in
            ws.wss.broadcast("last words")
            // The last client in server order: the third slice reaches it.
            ws.wss.connections.last?.terminate(code: 4000, message: "bye")
        }
        clients[0].send("go")
        server.settle()
        let last = clients[7]
        #expect(last.takeMessages() == [.text("last words")])
        #expect(last.closeFrame == SimulatedClient.CloseFrame(code: 4000, reason: "bye"))
        for client in clients.dropLast() { #expect(client.takeMessages() == [.text("last words")]) }
    }

    @Test func publishesAreSlicedAndKeepTheirOrderToo() throws {
        let (server, wss, handler, clients) = try serve(9)
        for connection in wss.connections { try connection.subscribe("t") }
        handler.onText = { ws, _ in
            for n in 0..<5 { try? ws.wss.publish("t", "\(n)") }
            for connection in ws.wss.connections { connection.send("after") }
        }
        clients[0].send("go")
        server.settle()
        for client in clients { #expect(client.takeMessages() == (0..<5).map { .text("\($0)") } + [.text("after")]) }
    }

    @Test func aFullQueueFinishesItsOldestAndLosesNothing() throws {
        let (server, _, handler, clients) = try serve(7, limits: .init(deliveriesPerSlice: 2, nanosecondsPerSlice: .max, maxQueued: 2))
        handler.onText = { ws, _ in for n in 0..<20 { ws.wss.broadcast("\(n)") } }
        clients[0].send("go")
        server.settle()
        for client in clients { #expect(client.takeMessages() == (0..<20).map { .text("\($0)") }) }
    }

    @Test func defaultSlicesLeaveASmallBroadcastUnsliced() throws {
        let (server, _, handler, clients) = try serve(20, limits: .init())
        var writtenInTheTurn = -1
        handler.onText = { ws, _ in
            ws.wss.broadcast("hello")
            writtenInTheTurn = self.written(ws.wss)
        }
        clients[0].send("go")
        server.settle()
        #expect(writtenInTheTurn == 20)
        for client in clients { #expect(client.takeMessages() == [.text("hello")]) }
    }
}
