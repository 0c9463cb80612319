// `broadcast`: every message goes to every client of the server, the sender included, through
// wss.broadcast (the fast path: one bus message per worker, frames written once per recipient).
// The shape of uWebSockets' broadcast benchmark, for load tests.
import Shoal

final class BroadcastServer: WebSocketServerHandler {
    /// The handler keeps no state per client, so one object serves them all: an idle connection
    /// then costs the server no handler allocation (32 bytes each at 10,000 clients).
    private let everyConnection = BroadcastConnection()

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        everyConnection
    }
}

final class BroadcastConnection: WebSocketConnectionHandler {
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        switch event.data {
        case .text(let text): ws.wss.broadcast(text)
        case .blob(let bytes) where event.isBinary: ws.wss.broadcast(bytes)
        case .blob(let bytes): ws.wss.broadcast(String(decoding: bytes, as: UTF8.self))
        case .object(let value): ws.wss.broadcast(value.jsonString)
        }
    }
}
