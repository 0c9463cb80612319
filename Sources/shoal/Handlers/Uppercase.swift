// `uppercase`: the first example of 4D's WebSocketServer documentation, in Swift:
// onMessage does ws.send(Uppercase(event.data)).
import Shoal

final class UppercaseServer: WebSocketServerHandler {
    /// The handler keeps no state per client, so one object serves them all: an idle connection
    /// then costs the server no handler allocation (32 bytes each at 10,000 clients).
    private let everyConnection = UppercaseConnection()

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        everyConnection
    }
}

final class UppercaseConnection: WebSocketConnectionHandler {
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        if let text = event.data.text {
            ws.send(text.uppercased())
        } else if let bytes = event.data.blob {
            ws.send(String(decoding: bytes, as: UTF8.self).uppercased())
        }
    }
}
