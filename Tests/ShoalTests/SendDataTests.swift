// `ws.send(event.data)` (4D's echo idiom) and `wss.broadcast` of a JSON value, over a real loop.
import Testing
@testable import Shoal

/// Echoes `event.data` as it came; "everybody" broadcasts a JSON value instead.
final class DataEchoServer: WebSocketServerHandler, WebSocketConnectionHandler {
    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? { self }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        if event.data == .object(.string("everybody")) {
            ws.wss.broadcast(JSONValue.object(["from": .integer(Int64(ws.id))]))
        } else {
            ws.send(event.data)
        }
    }
}

@Suite(.serialized) struct SendDataTests {
    @Test(arguments: [WebSocketDataType.text, .object])
    func echoOfEventDataKeepsTheFrameKindAndText(dataType: WebSocketDataType) throws {
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: DataEchoServer(), options: .init(dataType: dataType))
        }
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        client.send(text: #"{"a": [1, 2.5, "é"]}"#)
        let expected = dataType == .object ? #"{"a":[1,2.5,"é"]}"# : #"{"a": [1, 2.5, "é"]}"#
        #expect(client.next() == .text(expected))
    }

    @Test func broadcastOfAJSONValueReachesEveryClientAsText() throws {
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: DataEchoServer(), options: .init(dataType: .object))
        }
        defer { server.stop() }
        let a = try TestClient(port: server.port)
        let b = try TestClient(port: server.port)
        let wss = server.onLoop { server.web.webSocketServers[0] }
        #expect(waitUntil { server.onLoop { wss.connections.count } == 2 })
        a.send(text: #""everybody""#)
        let sender = server.onLoop { wss.connections.map(\.id) }
        let got = [a.next(), b.next()]
        #expect(got[0] == got[1])
        guard case .text(let text) = got[0] else { Issue.record("not a text frame: \(got[0])"); return }
        #expect(sender.contains { text == #"{"from":\#($0)}"# })
    }
}
