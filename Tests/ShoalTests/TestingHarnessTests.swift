// ShoalTesting: the 4D chat example and the API's refusals, tested without sockets or workers,
// as a user of the library tests their own handlers (docs/api.md, "Testing handlers").
import Testing
import Shoal
import ShoalTestSupport
import ShoalTesting

/// The chat of the 4D documentation: refuse by address, welcome, relay, say goodbye.
final class DocChatServer: WebSocketServerHandler {
    private(set) var errors: [WebSocketServerErrorEvent] = []

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        event.request.remoteAddress == "192.0.2.66" ? nil : DocChatConnection()
    }

    func onError(_ wss: WebSocketServer, _ event: WebSocketServerErrorEvent) { errors.append(event) }
}

final class DocChatConnection: WebSocketConnectionHandler {
    func onOpen(_ ws: WebSocketConnection, _ event: WebSocketOpenEvent) {
        ws.send("Welcome on the chat!")
        for client in ws.wss.connections where client.id != ws.id { client.send("New client connected") }
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        for client in ws.wss.connections where client.id != ws.id { client.send(event.data) }
    }

    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {
        for client in ws.wss.connections where client.id != ws.id { client.send("Client disconnected") }
    }
}

@Suite struct TestingHarnessTests {
    @Test func theChatOfThe4DDocumentationWithoutSockets() throws {
        let chat = DocChatServer()
        let server = try WebSocketTestServer { web in
            _ = WebSocketServer(on: web, handler: chat, options: .init(path: "/chat"))
        }
        let alice = server.connect("/chat")
        #expect(alice.status == 101)
        #expect(alice.takeMessages() == [.text("Welcome on the chat!")])
        let bob = server.connect("/chat")
        #expect(bob.takeMessages() == [.text("Welcome on the chat!")])
        #expect(alice.takeMessages() == [.text("New client connected")])

        alice.send("hello")
        #expect(bob.takeMessages() == [.text("hello")])
        #expect(alice.takeMessages() == [])
        bob.send([0, 1, 2])
        #expect(alice.takeMessages() == [.blob([0, 1, 2])])

        bob.close(code: 1000, reason: "bye")
        #expect(bob.closeFrame == .init(code: 1000))
        #expect(alice.takeMessages() == [.text("Client disconnected")])
        #expect(server.servers[0].connections.map(\.id).count == 1)

        let mallory = server.connect("/chat", remoteAddress: "192.0.2.66")
        #expect(mallory.status == 403)
        #expect(chat.errors.map { $0.errors[0].errCode } == [WebSocketErrorCode.refusedByHandler.rawValue])
        #expect(server.connect("/elsewhere").status == 404)
    }

    /// The example of docs/api.md, "Testing handlers", as written there.
    @Test func theDocumentedExample() throws {
        let server = try WebSocketTestServer { web in
            _ = WebSocketServer(on: web, handler: DocChatServer(), options: .init(path: "/chat"))
        }
        let alice = server.connect("/chat")
        let bob = server.connect("/chat")
        #expect(alice.takeMessages() == [.text("Welcome on the chat!"), .text("New client connected")])
        alice.send("hello")
        #expect(bob.takeMessages() == [.text("Welcome on the chat!"), .text("hello")])
        #expect(server.connect("/chat", remoteAddress: "192.0.2.66").status == 403)

        server.servers[0].terminate()
        server.settle()
        #expect(bob.closeFrame == .init(code: 1001, reason: "server terminated"))
    }

    /// A handler's Task sends after an await: the send reaches the loop at the next settle.
    @Test func aSendFromATaskArrivesAtTheNextSettle() async throws {
        let lookup = LookupServer()
        let server = try WebSocketTestServer { web in _ = WebSocketServer(on: web, handler: lookup) }
        let client = server.connect()
        client.send("select 1")
        while lookup.database.pending == 0 { await Task.yield() }
        lookup.database.answer("1 row")
        while lookup.results.value.isEmpty {
            await Task.yield()
            server.settle()
        }
        #expect(lookup.results.value == [.queued])
        server.settle()
        #expect(client.takeMessages() == [.text("1 row")])
    }

    @Test func terminateAndBroadcastFromTheTest() throws {
        let server = try WebSocketTestServer { web in
            _ = WebSocketServer(on: web, handler: DocChatServer())
        }
        let clients = (0..<3).map { _ in server.connect() }
        for client in clients { _ = client.takeMessages() }
        let wss = server.servers[0]
        wss.broadcast(JSONValue.object(["n": 1]))
        server.settle()
        for client in clients { #expect(client.takeMessages() == [.text(#"{"n":1}"#)]) }

        wss.connections.first { $0.id != 0 }!.terminate(code: 4001, message: "kicked")
        server.settle()
        #expect(clients.filter { $0.closeFrame == .init(code: 4001, reason: "kicked") }.count == 1)

        wss.terminate()
        server.settle()
        #expect(wss.terminated)
        #expect(clients.allSatisfy { $0.isClosed })
        #expect(clients.filter { $0.closeFrame == .init(code: 1001, reason: "server terminated") }.count == 2)
        #expect(server.connect().status == 404)
    }

    /// The server's onOpen and onTerminate, and each connection's `handler` and `wss`.
    @Test func serverLifecycleAndConnectionAccessors() throws {
        final class Lifecycle: WebSocketServerHandler {
            var events: [String] = []
            let connectionHandler = DocChatConnection()
            func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
                connectionHandler
            }
            func onOpen(_ wss: WebSocketServer, _ event: WebSocketServerEvent) { events.append(event.type) }
            func onTerminate(_ wss: WebSocketServer, _ event: WebSocketServerEvent) { events.append(event.type) }
        }
        let lifecycle = Lifecycle()
        let server = try WebSocketTestServer { web in _ = WebSocketServer(on: web, handler: lifecycle, options: .init(dataType: .object)) }
        #expect(lifecycle.events == ["open"])
        let wss = server.servers[0]
        #expect(wss.handler === lifecycle && wss.dataType == .object && wss.path == nil && !wss.terminated)
        _ = server.connect()
        let ws = wss.connections[0]
        #expect(ws.handler === lifecycle.connectionHandler && ws.wss === wss && ws.status == "Connected")
        wss.terminate()
        server.settle()
        #expect(lifecycle.events == ["open", "terminate"])
        #expect(wss.terminated && ws.status == "Closed")
    }

    @Test func aSetupWithTwoServersOnOnePathIsRefused() {
        #expect(throws: SetupError.self) {
            _ = try WebSocketTestServer { web in
                _ = WebSocketServer(on: web, handler: DocChatServer(), options: .init(path: "/x"))
                _ = WebSocketServer(on: web, handler: DocChatServer(), options: .init(path: "/x"))
            }
        }
    }

    @Test func eventsHavePublicInitializersSoHandlersCanBeCalledDirectly() throws {
        let server = try WebSocketTestServer { web in _ = WebSocketServer(on: web, handler: DocChatServer()) }
        let handler = DocChatServer()
        let wss = server.servers[0]
        let request = WebSocketRequest(url: "/chat?room=1", headers: [("Origin", "https://a.example")], remoteAddress: "192.0.2.66")
        #expect(handler.onConnection(wss, WebSocketConnectionEvent(request: request)) == nil)
        #expect(request.query["room"] == "1" && request.headers["origin"] == "https://a.example")
        _ = WebSocketMessageEvent(data: .text("x"))
        _ = WebSocketTerminateEvent(code: 1000, reason: "done")
        _ = WebSocketErrorEvent(code: 0, errors: [WebSocketErrorInfo(errCode: 1007, message: "bad JSON")])
        _ = WebSocketServerErrorEvent(status: 404, errors: [WebSocketErrorInfo(errCode: 3, message: "no server")])
        _ = (WebSocketOpenEvent(), WebSocketDrainEvent(), WebSocketServerEvent(type: "open"))
        handler.onError(wss, WebSocketServerErrorEvent(status: 404, errors: [WebSocketErrorInfo(errCode: 3, message: "x")]))
        #expect(handler.errors.first?.statusText == "404 Not Found")
    }
}
