// `topics`: publish/subscribe over JSON text commands, for tests, demos and load tests of wss.publish.
//   {"subscribe":"T"}            → {"subscribed":"T"} once the subscription holds on this worker
//   {"unsubscribe":"T"}          → {"unsubscribed":"T"}
//   {"publish":"T","data":ANY}   → every subscriber of T (the sender too, if subscribed) gets ANY as JSON text,
//                                  with nothing around it; the publisher gets no answer
//   {"count":"T"}                → {"topic":"T","subscribers":N}, N counted on every worker
// Anything else (bad JSON, a binary frame, an unknown command, a topic refused) gets {"error":"..."} back, and the
// connection stays open.
import Shoal

final class TopicsServer: WebSocketServerHandler {
    /// No state per client: one handler object serves them all.
    private let everyConnection = TopicsConnection()

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        everyConnection
    }
}

final class TopicsConnection: WebSocketConnectionHandler {
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        let command: JSONValue
        switch event.data {
        case .object(let value):
            command = value
        case .text(let text):
            do {
                command = try JSONParser.parse(text)
            } catch {
                return reply(ws, error: error.description)
            }
        case .blob(let bytes) where !event.isBinary:
            // dataType "blob": a text frame (valid UTF-8, the reader checked) arrives as bytes.
            return onMessage(ws, WebSocketMessageEvent(data: .text(String(decoding: bytes, as: UTF8.self)), isBinary: false))
        case .blob:
            return reply(ws, error: "binary messages are not commands; send JSON text")
        }
        do {
            try run(command, from: ws)
        } catch {
            reply(ws, error: error.description)
        }
    }

    func onError(_ ws: WebSocketConnection, _ event: WebSocketErrorEvent) {
        // dataType "object": a message that is not JSON (code 0); protocol errors close the connection instead.
        if event.code == 0 { reply(ws, error: event.message) }
    }

    private func run(_ command: JSONValue, from ws: WebSocketConnection) throws(TopicError) {
        guard let fields = command.objectValue else {
            return reply(ws, error: "a command is a JSON object: subscribe, unsubscribe, publish or count")
        }
        if let topic = fields["subscribe"]?.stringValue, fields.count == 1 {
            try ws.subscribe(topic)
            ws.send(JSONValue.object(["subscribed": .string(topic)]))
        } else if let topic = fields["unsubscribe"]?.stringValue, fields.count == 1 {
            ws.unsubscribe(topic)
            ws.send(JSONValue.object(["unsubscribed": .string(topic)]))
        } else if let topic = fields["publish"]?.stringValue, let data = fields["data"], fields.count == 2 {
            try ws.wss.publish(topic, data)
        } else if let topic = fields["count"]?.stringValue, fields.count == 1 {
            ws.send(JSONValue.object(["topic": .string(topic), "subscribers": .integer(Int64(ws.wss.subscriberCount(topic)))]))
        } else {
            reply(ws, error: "unknown command: expected {\"subscribe\":T}, {\"unsubscribe\":T}, "
                + "{\"publish\":T,\"data\":ANY} or {\"count\":T} with T a string")
        }
    }

    private func reply(_ ws: WebSocketConnection, error message: String) {
        ws.send(JSONValue.object(["error": .string(message)]))
    }
}
