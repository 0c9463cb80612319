// `probe`: a handler that makes the API observable from outside, for the integration tests.
// Each command answers with one JSON message; every lifecycle event is reported to the other
// clients, so a test can watch what onTerminate saw for a connection that is gone. A client
// connecting with `?silent` is not announced (a test with hundreds of clients is spared their
// events), and `say TEXT` relays TEXT to every other client as the chat handler does.
import Shoal

final class ProbeServer: WebSocketServerHandler {
    let refusedAddresses: Set<String>
    /// The last server errors this worker saw (the `server-errors` command lists them).
    private(set) var errors: [JSONValue] = []

    init(refusedAddresses: Set<String>) {
        self.refusedAddresses = refusedAddresses
    }

    func onError(_ wss: WebSocketServer, _ event: WebSocketServerErrorEvent) {
        let entries = event.errors.map { error -> JSONValue in
            .object(["errCode": .integer(Int64(error.errCode)), "message": .string(error.message),
                     "componentSignature": .string(error.componentSignature)])
        }
        errors.append(.object(["status": event.status.map { .integer(Int64($0)) } ?? .null,
                               "statusText": .string(event.statusText), "errors": .array(entries)]))
        if errors.count > 100 { errors.removeFirst() }
    }

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        if event.request.queryItems.contains(where: { $0.key == "refuse" }) { return nil }
        if refusedAddresses.contains(event.request.remoteAddress) { return nil }
        // Speaks one subprotocol, chosen when the client offers it (`protocol` tells which).
        event.selectProtocol("probe.v1")
        // Like a 4D handler, the connection handler keeps what it needs from the request.
        return ProbeConnection(request: event.request)
    }
}

final class ProbeConnection: WebSocketConnectionHandler {
    let request: WebSocketRequest
    /// Whether the other clients are told of this connection's open, terminate and error.
    let announced: Bool

    init(request: WebSocketRequest) {
        self.request = request
        announced = !request.queryItems.contains { $0.key == "silent" }
    }

    func onOpen(_ ws: WebSocketConnection, _ event: WebSocketOpenEvent) {
        ws.send(JSONValue.object(["event": "hello", "id": .integer(Int64(ws.id))]))
        tellOthers(of: ws, ["event": "open", "id": .integer(Int64(ws.id))])
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        if event.isBinary, let bytes = event.data.blob {
            ws.send(bytes)
            return
        }
        let text: String
        switch event.data {
        case .text(let t): text = t
        case .blob(let b): text = String(decoding: b, as: UTF8.self)
        case .object(let o): text = o.jsonString
        }
        let words = text.split(separator: " ", maxSplits: 2).map(String.init)
        switch words.first ?? "" {
        case "say" where words.count > 1:
            let said = String(text.dropFirst(4))
            for client in ws.wss.connections where client.id != ws.id { client.send(said) }
        case "id": ws.send(JSONValue.object(["id": .integer(Int64(ws.id))]))
        case "status": ws.send(JSONValue.object(["status": .string(ws.status)]))
        case "count": ws.send(JSONValue.object(["count": .integer(Int64(ws.wss.connections.count))]))
        case "ids": ws.send(JSONValue.object(["ids": .array(ws.wss.connections.map { .integer(Int64($0.id)) })]))
        case "url": ws.send(JSONValue.object(["url": .string(request.url)]))
        case "remote": ws.send(JSONValue.object(["remote": .string(request.remoteAddress)]))
        case "query":
            ws.send(JSONValue.object(["query": .array(request.queryItems.map { .array([.string($0.key), .string($0.value)]) })]))
        case "header" where words.count > 1:
            ws.send(JSONValue.object(["header": .string(words[1]), "values": .array(request.headers.values(words[1]).map { .string($0) })]))
        case "broadcast-json":
            // wss.broadcast(JSONValue) reaches every client, the sender included.
            ws.wss.broadcast(JSONValue.object(["event": "broadcast", "from": .integer(Int64(ws.id))]))
        case "later" where words.count > 2:
            // Async work from a handler: a Task waits (as for a database), then sends through the loop
            // and tells everybody what became of it (the client may have left meanwhile).
            let delay = Int(words[1]) ?? 0
            let text = words[2]
            Task {
                try? await Task.sleep(for: .milliseconds(delay))
                let result = await ws.onLoop { $0.send(text) }
                ws.wss.broadcast(JSONValue.object(["event": "later", "id": .integer(Int64(ws.id)), "result": .string("\(result)")]))
            }
        case "protocol": ws.send(JSONValue.object(["protocol": ws.protocol.map(JSONValue.string) ?? .null]))
        case "server-errors":
            ws.send(JSONValue.object(["serverErrors": .array((ws.wss.handler as? ProbeServer)?.errors ?? [])]))
        case "terminate-server":
            // 4D's wss.terminate(): the server ends on every worker.
            ws.wss.terminate()
        case "terminate":
            if words.count > 1, let code = Int(words[1]) {
                ws.terminate(code: code, message: words.count > 2 ? words[2] : nil)
            } else {
                ws.terminate()
            }
            tellOthers(of: ws, ["event": "after-terminate", "id": .integer(Int64(ws.id)), "status": .string(ws.status)])
        default:
            ws.send(JSONValue.object(["echo": .string(text)]))
        }
    }

    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {
        tellOthers(of: ws, ["event": "terminate", "id": .integer(Int64(ws.id)), "code": .integer(Int64(event.code)),
                            "reason": event.reason.map(JSONValue.string) ?? .null, "status": .string(ws.status)])
    }

    func onError(_ ws: WebSocketConnection, _ event: WebSocketErrorEvent) {
        tellOthers(of: ws, ["event": "error", "id": .integer(Int64(ws.id)), "message": .string(event.message),
                            "code": .integer(Int64(event.code)),
                            "errCodes": .array(event.errors.map { .integer(Int64($0.errCode)) })])
    }

    private func tellOthers(of ws: WebSocketConnection, _ object: JSONObject) {
        guard announced else { return }
        let message = JSONValue.object(object)
        for client in ws.wss.connections where client.id != ws.id {
            client.send(message)
        }
    }
}
