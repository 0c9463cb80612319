// A complete program using Shoal as a library: the two examples of the 4D documentation served
// on one port by a cluster (one worker per CPU). Run it, open http://localhost:8081/ for the demo
// page (it connects to /chat), or `websocat ws://localhost:8081/upper`.
//
// `Shoal.run` makes this process the supervisor; the supervisor re-runs this same executable for
// every worker, and in each worker `Shoal.run` calls the setup closure below to create the servers.
import Logging
import Shoal

/// 4D example 1: each message comes back in upper case.
final class UppercaseServer: WebSocketServerHandler {
    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        UppercaseConnection()
    }
}

final class UppercaseConnection: WebSocketConnectionHandler {
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        if let text = event.data.text { ws.send(text.uppercased()) }
    }
}

/// 4D example 2: a chat. The loop over `ws.wss.connections` reaches the clients of every worker.
final class ChatServer: WebSocketServerHandler {
    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        // The 4D example refuses clients by address here; this one refuses none.
        ChatConnection()
    }
}

final class ChatConnection: WebSocketConnectionHandler {
    func onOpen(_ ws: WebSocketConnection, _ event: WebSocketOpenEvent) {
        ws.send("Welcome on the chat!")
        for client in ws.wss.connections where client.id != ws.id { client.send("New client connected") }
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        guard let text = event.data.text else { return }
        for client in ws.wss.connections where client.id != ws.id { client.send(text) }
    }

    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {
        for client in ws.wss.connections where client.id != ws.id { client.send("Client disconnected") }
    }
}

LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
let logger = Logger(label: "shoal-example")
let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8081
do {
    try Shoal.run(WebServerConfiguration(host: "0.0.0.0", port: port), logger: logger) { web in
        _ = WebSocketServer(on: web, handler: UppercaseServer(), options: .init(path: "/upper"))
        _ = WebSocketServer(on: web, handler: ChatServer(), options: .init(path: "/chat"))
    }
} catch {
    logger.critical("\(error)")
}
