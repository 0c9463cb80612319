// onMessageView: every message reaches the handler as bytes in place first; a handler that overrides it
// gets them (and can send them back as they came) with no onMessage, and the default still gives
// onMessage the event in the server's dataType. Through the in-memory harness.
import Testing
import ShoalTesting
import ShoalWire
@testable import Shoal

/// Mirrors every message from the view, and records what it saw (an onMessage would be a failure).
final class ViewMirror: WebSocketServerHandler, WebSocketConnectionHandler {
    var seen: [(bytes: [UInt8], isBinary: Bool)] = []
    var onMessageCalls = 0

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? { self }
    func onMessageView(_ ws: WebSocketConnection, _ message: WebSocketMessageView) {
        seen.append((Array(message.bytes), message.isBinary))
        ws.send(message)
    }
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) { onMessageCalls += 1 }
}

/// Keeps the default onMessageView: what onMessage gets.
final class EventRecorder: WebSocketServerHandler, WebSocketConnectionHandler {
    var events: [WebSocketMessageEvent] = []
    var errors: [WebSocketErrorEvent] = []
    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? { self }
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) { events.append(event) }
    func onError(_ ws: WebSocketConnection, _ event: WebSocketErrorEvent) { errors.append(event) }
}

@Suite struct MessageViewTests {
    @Test func anOverridingHandlerGetsTheBytesAndSendsThemBackAsTheyCame() throws {
        let handler = ViewMirror()
        let server = try WebSocketTestServer { web in _ = WebSocketServer(on: web, handler: handler) }
        let client = server.connect()
        let binary = (0..<1_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        client.send("héllo, 16+ bytes of text")
        client.send(binary)
        #expect(client.takeMessages() == [.text("héllo, 16+ bytes of text"), .blob(binary)])
        #expect(handler.seen.map(\.isBinary) == [false, true])
        #expect(handler.seen.map(\.bytes) == [Array("héllo, 16+ bytes of text".utf8), binary])
        #expect(handler.onMessageCalls == 0)
    }

    @Test func aMessageInFragmentsArrivesWholeThroughTheView() throws {
        let handler = ViewMirror()
        let server = try WebSocketTestServer { web in _ = WebSocketServer(on: web, handler: handler) }
        let client = server.connect()
        let first = FrameWriter.frame(opcode: .text, fin: false, payload: Array("split ".utf8), maskKey: 0x0102_0304)
        let last = FrameWriter.frame(opcode: .continuation, payload: Array("in two".utf8), maskKey: 0x0A0B_0C0D)
        client.sendRaw(first + last)
        #expect(client.takeMessages() == [.text("split in two")])
        #expect(handler.seen.map(\.bytes) == [Array("split in two".utf8)])
    }

    @Test(arguments: [WebSocketDataType.text, .blob, .object])
    func theDefaultGivesOnMessageTheServersDataType(dataType: WebSocketDataType) throws {
        let handler = EventRecorder()
        let server = try WebSocketTestServer { web in
            _ = WebSocketServer(on: web, handler: handler, options: .init(dataType: dataType))
        }
        let client = server.connect()
        client.send(#"{"a": 1}"#)
        client.send([1, 2, 3])
        client.send("not json")
        let text: WebSocketData
        switch dataType {
        case .text: text = .text(#"{"a": 1}"#)
        case .blob: text = .blob(Array(#"{"a": 1}"#.utf8))
        case .object: text = .object(.object(["a": .integer(1)]))
        }
        let notJSON: [WebSocketData] = dataType == .object ? [] : [dataType == .text ? .text("not json") : .blob(Array("not json".utf8))]
        #expect(handler.events.map(\.data) == [text, .blob([1, 2, 3])] + notJSON)
        #expect(handler.events.map(\.isBinary) == [false, true] + notJSON.map { _ in false })
        #expect(handler.errors.map { $0.errors.first?.errCode } == (dataType == .object ? [1007] : []))
    }
}
