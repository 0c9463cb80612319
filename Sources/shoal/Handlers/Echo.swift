// `echo`: sends every message back as it came: text as text, binary as binary, and with
// dataType "object" the parsed JSON re-serialized.
import Shoal

final class EchoServer: WebSocketServerHandler {
    /// The handler keeps no state per client, so one object serves them all: an idle connection
    /// then costs the server no handler allocation (32 bytes each at 10,000 clients).
    private let everyConnection = EchoConnection()

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        everyConnection
    }
}

final class EchoConnection: WebSocketConnectionHandler {
    /// Mirrors the bytes from the receive buffer into the send queue, as uWebSockets' echo does with its
    /// string_view: no String or [UInt8] per message. dataType "object" re-serializes the parsed JSON,
    /// so it takes the event path.
    func onMessageView(_ ws: WebSocketConnection, _ message: WebSocketMessageView) {
        if ws.wss.dataType == .object { return ws.deliver(message, to: self) }
        ws.send(message)
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        // With dataType "blob" a text frame arrives as bytes too: it goes back as text.
        if case .blob(let bytes) = event.data, !event.isBinary {
            ws.send(String(decoding: bytes, as: UTF8.self))
        } else {
            ws.send(event.data)  // 4D's echo idiom
        }
    }

    func onError(_ ws: WebSocketConnection, _ event: WebSocketErrorEvent) {
        // Tell the client what was wrong with its message (protocol errors, code ≠ 0, close the connection instead).
        if event.code == 0 {
            ws.send(JSONValue.object(["error": .string(event.message)]))
        }
    }
}
