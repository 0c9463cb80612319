// Sec-WebSocket-Protocol (RFC 6455 §4.2.2): onConnection picks one of the client's offers, the 101
// names it, `ws.protocol` tells it; a client that offers none, or none the server speaks, still connects.
import Foundation
import Testing
@testable import Shoal

/// Speaks "chat.v2" and "chat.v1" (preferring v2) and answers every message with `ws.protocol`.
final class VersionedServer: WebSocketServerHandler, WebSocketConnectionHandler {
    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        for name in ["chat.v2", "chat.v1"] where event.selectProtocol(name) { break }
        return self
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        ws.send(ws.protocol ?? "none")
    }
}

@Suite(.serialized) struct SubprotocolTests {
    @Test func theServerPicksFromTheOfferAndTheConnectionKnowsIt() throws {
        let server = try InProcessServer { web in _ = WebSocketServer(on: web, handler: VersionedServer()) }
        defer { server.stop() }
        let cases: [([String], String?)] = [
            (["Sec-WebSocket-Protocol: chat.v1, chat.v2"], "chat.v2"),
            (["Sec-WebSocket-Protocol: mqtt", "Sec-WebSocket-Protocol: chat.v1"], "chat.v1"),
            (["Sec-WebSocket-Protocol: mqtt"], nil),
            ([], nil),
        ]
        for (headers, chosen) in cases {
            let client = try TestClient(port: server.port, headers: headers)
            #expect(client.statusCode == 101)
            let answered = client.responseHead.split(separator: "\r\n")
                .first { $0.lowercased().hasPrefix("sec-websocket-protocol:") }
                .map { String($0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)) }
            #expect(answered == chosen, "\(headers)")
            client.send(text: "which")
            #expect(client.next() == .text(chosen ?? "none"))
        }
    }

    @Test func requestsListTheOfferInOrder() {
        let request = WebSocketRequest(url: "/", headers: [("Sec-WebSocket-Protocol", " a ,b,, c"), ("sec-websocket-protocol", "d")])
        #expect(request.protocols == ["a", "b", "c", "d"])
        let event = WebSocketConnectionEvent(request: request)
        #expect(event.selectedProtocol == nil)
        #expect(!event.selectProtocol("z"))
        #expect(event.selectProtocol("c"))
        #expect(event.selectedProtocol == "c")
    }
}
