// The client class inside the process: a client made in a server's handler runs on that server's
// loop (a worker linking to another server), and a client made from a plain thread runs on the
// client loop, with every 4D member (id, url, status, dataType, handler, send of each kind,
// terminate with a code and a message) checked against a server that sees what arrived.
import Dispatch
import Foundation
import Testing
import ShoalPosix
import ShoalRing
import ShoalTestSupport
@testable import Shoal

/// Echoes every message in its kind; reports what its connections' onTerminate saw.
private final class EchoServer: WebSocketServerHandler, WebSocketConnectionHandler {
    let journal: Journal
    init(_ journal: Journal) { self.journal = journal }

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        journal.add("server header \(event.request.headers["x-token"] ?? "-")")
        return self
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        ws.send(event.isBinary ? .blob(event.data.blob ?? []) : .text(event.data.text ?? ""))
    }

    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {
        journal.add("server terminate \(event.code) \(event.reason ?? "-")")
    }
}

/// Records every callback of a client, and on which thread it ran.
private final class ClientRecorder: WebSocketHandler, @unchecked Sendable {
    let journal: Journal
    let dataType: WebSocketDataType
    var headers: [String: String] { ["X-Token": "t-42"] }
    /// Runs in onOpen (on the client's loop thread).
    var whenOpen: ((WebSocket) -> Void)?
    var whenMessage: ((WebSocket, WebSocketMessageEvent) -> Void)?

    init(_ journal: Journal, dataType: WebSocketDataType = .text) {
        self.journal = journal
        self.dataType = dataType
    }

    func onOpen(_ ws: WebSocket, _ event: WebSocketOpenEvent) {
        journal.add("open \(ws.status) on-loop \(ws.loop.inEventLoop)")
        whenOpen?(ws)
    }

    func onMessage(_ ws: WebSocket, _ event: WebSocketMessageEvent) {
        switch event.data {
        case .text(let text): journal.add("text \(text)")
        case .blob(let bytes): journal.add("\(event.isBinary ? "binary" : "blob") \(bytes)")
        case .object(let value):
            var bytes: [UInt8] = []
            value.write(into: &bytes)
            journal.add("object \(String(decoding: bytes, as: UTF8.self))")
        }
        whenMessage?(ws, event)
    }

    func onError(_ ws: WebSocket, _ event: WebSocketErrorEvent) {
        journal.add("error \(event.errors.first?.errCode ?? 0) \(event.message)")
    }

    func onTerminate(_ ws: WebSocket, _ event: WebSocketTerminateEvent) {
        journal.add("terminate \(event.code) \(event.reason ?? "-") \(ws.status)")
    }
}

/// A server whose connections, told "dial PATH", open a client to PATH on the same server from
/// inside onMessage (the worker's loop thread) and relay what that client hears.
private final class DialingServer: WebSocketServerHandler, WebSocketConnectionHandler, @unchecked Sendable {
    let journal: Journal
    var clients: [WebSocket] = []
    init(_ journal: Journal) { self.journal = journal }

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        self
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        guard let text = event.data.text, text.hasPrefix("dial ") else { return }
        let recorder = ClientRecorder(journal)
        recorder.whenOpen = { [journal] client in
            journal.add("same loop \(client.loop === ws.wss.loop)")
            client.send("through the link")
        }
        recorder.whenMessage = { _, reply in ws.send("relayed \(reply.data.text ?? "")") }
        clients.append(WebSocket(url: String(text.dropFirst(5)), handler: recorder))
    }
}

@Suite(.serialized) struct WebSocketClientTests {
    @Test func aClientMadeInAHandlerRunsOnTheServersLoop() throws {
        let journal = Journal()
        let dialing = DialingServer(journal)
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: EchoServer(journal), options: .init(path: "/echo"))
            _ = WebSocketServer(on: web, handler: dialing, options: .init(path: "/dial"))
        }
        defer { server.stop() }
        let user = try TestClient(port: server.port, path: "/dial")
        user.send(text: "dial ws://127.0.0.1:\(server.port)/echo")
        #expect(user.next() == .text("relayed through the link"))
        #expect(journal.all.contains("open Connected on-loop true"))
        #expect(journal.all.contains("same loop true"))
        server.onLoop { dialing.clients.forEach { $0.terminate() } }
        #expect(journal.wait { $0 == "terminate 1000 - Closed" })
        // The relay's handler holds the server's connection, which holds the server: let go of it.
        server.onLoop { dialing.clients.removeAll() }
    }

    @Test func aClientOnItsOwnLoopHasEvery4DMember() throws {
        let journal = Journal()
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: EchoServer(journal), options: .init(path: "/echo"))
        }
        defer { server.stop() }
        let recorder = ClientRecorder(journal, dataType: .object)
        let url = "ws://127.0.0.1:\(server.port)/echo"
        let ws = WebSocket(url: url, handler: recorder)
        #expect(ws.status == "Connecting")
        #expect(ws.url == url)
        #expect(ws.dataType == .object)
        #expect(ws.handler === recorder)
        let other = WebSocket(url: url, handler: ClientRecorder(Journal()))
        #expect(other.id != ws.id && other.id > 0 && ws.id > 0)
        other.terminate()

        // Sent while connecting: they go out once open, in order.
        var object: JSONObject = [:]
        object["n"] = .integer(7)
        #expect(ws.send(JSONValue.object(object)) == .handedToLoop)
        ws.send([1, 2, 3])
        ws.send(WebSocketData.text("[true]"))
        ws.send("plain text")
        #expect(journal.wait { $0.hasPrefix("open") })
        #expect(journal.all.contains("open Connected on-loop true"))
        #expect(journal.all.contains("server header t-42"))
        #expect(ws.status == "Connected")
        #expect(journal.wait { $0.hasPrefix("error") })
        // dataType object: JSON text arrives parsed; binary frames as blobs; text that is not JSON is an onError (1007).
        let messages = journal.all.filter { $0.hasPrefix("object") || $0.hasPrefix("binary") || $0.hasPrefix("error") }
        #expect(messages.count == 4)
        #expect(messages.prefix(3) == [#"object {"n":7}"#, "binary [1, 2, 3]", "object [true]"])
        #expect(messages.last?.hasPrefix("error 1007 ") == true)

        ws.terminate(code: 4100, message: "done here")
        #expect(journal.wait { $0 == "server terminate 4100 done here" })
        #expect(journal.wait { $0 == "terminate 4100 - Closed" })
        #expect(ws.status == "Closed")
        #expect(ws.waitUntilTerminated(timeout: .seconds(1)))
    }

    @Test func aBadURLAndARefusedConnectReachOnErrorThenOnTerminate() throws {
        let journal = Journal()
        let bad = WebSocket(url: "ftp://example.com/", handler: ClientRecorder(journal))
        #expect(bad.waitUntilTerminated(timeout: .seconds(10)))
        #expect(journal.all == ["error 10 \"ftp://example.com/\" is not a ws:// or wss:// URL", "terminate 1006 - Closed"])

        let refusedJournal = Journal()
        let listener = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false)
        let port = Socket.localPort(listener)
        Socket.close(listener)
        let refused = WebSocket(url: "ws://127.0.0.1:\(port)/", handler: ClientRecorder(refusedJournal))
        #expect(refused.waitUntilTerminated(timeout: .seconds(10)))
        #expect(refusedJournal.all == ["error 11 cannot connect to 127.0.0.1:\(port): Connection refused", "terminate 1006 - Closed"])
        #expect(refused.send("late") == .handedToLoop)
    }

    @Test func aHeaderTheHandshakeOwnsIsRefused() {
        final class BadHeaders: WebSocketHandler {
            let journal: Journal
            init(_ journal: Journal) { self.journal = journal }
            var headers: [String: String] { ["Sec-WebSocket-Key": "mine"] }
            func onError(_ ws: WebSocket, _ event: WebSocketErrorEvent) { journal.add("error \(event.errors[0].errCode) \(event.message)") }
        }
        let journal = Journal()
        let ws = WebSocket(url: "ws://127.0.0.1:9/", handler: BadHeaders(journal))
        #expect(ws.waitUntilTerminated(timeout: .seconds(10)))
        #expect(journal.all == ["error 14 request header Sec-WebSocket-Key is set by the WebSocket handshake itself"])
    }
}
