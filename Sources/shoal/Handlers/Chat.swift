// `chat`: the second example of 4D's WebSocketServer documentation, ported as a 4D user would:
// it loops over ws.wss.connections and skips ws.id, so it reaches every client of the server.
import Shoal

final class ChatServer: WebSocketServerHandler {
    let refusedAddresses: Set<String>

    init(refusedAddresses: Set<String>) {
        self.refusedAddresses = refusedAddresses
    }

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        // 4D's example checks the client's address before accepting it.
        refusedAddresses.contains(event.request.remoteAddress) ? nil : ChatConnection()
    }
}

final class ChatConnection: WebSocketConnectionHandler {
    func onOpen(_ ws: WebSocketConnection, _ event: WebSocketOpenEvent) {
        ws.send("Welcome on the chat!")
        sendToOthers(of: ws, "New client connected")
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        for client in ws.wss.connections where client.id != ws.id {
            switch event.data {
            case .text(let text): client.send(text)
            case .blob(let bytes): client.send(bytes)
            case .object(let value): client.send(value)
            }
        }
    }

    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {
        sendToOthers(of: ws, "Client disconnected")
    }

    private func sendToOthers(of ws: WebSocketConnection, _ text: String) {
        for client in ws.wss.connections where client.id != ws.id {
            client.send(text)
        }
    }
}
