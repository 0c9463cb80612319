// `metered`: the echo handler, recording its own metrics through swift-metrics as any program's
// handler may; they appear in /metrics beside Shoal's (docs/operations.md, "Handler metrics").
// A text message "label:NAME" also counts under demo_labelled_total{value="NAME"}: one series per
// name, to show (and test) the per-worker bound on series.
import CoreMetrics
import Shoal

final class MeteredServer: WebSocketServerHandler {
    private let everyConnection = MeteredConnection()

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        everyConnection
    }
}

final class MeteredConnection: WebSocketConnectionHandler {
    private let echo = EchoConnection()
    private let textMessages = Counter(label: "demo_messages", dimensions: [("type", "text")])
    private let binaryMessages = Counter(label: "demo_messages", dimensions: [("type", "binary")])
    private let open = Meter(label: "demo_open_connections")
    private let sizes = Recorder(label: "demo_message_bytes")
    private let echoTime = Timer(label: "demo_echo_seconds")

    func onOpen(_ ws: WebSocketConnection, _ event: WebSocketOpenEvent) {
        open.increment()
    }

    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {
        open.decrement()
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        let started = ContinuousClock.now
        (event.isBinary ? binaryMessages : textMessages).increment()
        switch event.data {
        case .text(let text):
            sizes.record(text.utf8.count)
            if text.hasPrefix("label:") {
                Counter(label: "demo_labelled", dimensions: [("value", String(text.dropFirst(6)))]).increment()
            }
        case .blob(let bytes):
            sizes.record(bytes.count)
        case .object:
            break
        }
        echo.onMessage(ws, event)
        let elapsed = (ContinuousClock.now - started).components
        echoTime.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
    }

    func onError(_ ws: WebSocketConnection, _ event: WebSocketErrorEvent) {
        echo.onError(ws, event)
    }
}
