// The client example of 4D's WebSocket page, ported line by line: a handler whose onMessage shows
// the message and whose onTerminate says "Connection closed", a `WebSocket` made with it, and
// "Hello world" sent to the server. Where 4D shows an ALERT, this prints a line.
//
//   shoal-client-example ws://localhost:8081/upper
//
// Each line typed on standard input is sent too; at its end the program terminates the connection
// and exits when onTerminate ran (status 1 if onError ran). `--trace` also prints every callback
// as a JSON line on standard error (the integration tests read it); `--ca FILE` trusts the
// certificates in FILE (PEM) for wss:// instead of the system's.
import Foundation
import Shoal

let arguments = CommandLine.arguments.dropFirst()
let trace = arguments.contains("--trace")
let caIndex = arguments.firstIndex(of: "--ca")
let trustedCertificates = caIndex.flatMap { arguments.index(after: $0) < arguments.endIndex ? arguments[arguments.index(after: $0)] : nil }
let positional = arguments.enumerated().filter { item in
    !item.element.hasPrefix("--") && caIndex.map { item.offset != arguments.distance(from: arguments.startIndex, to: $0) + 1 } ?? true
}
guard let url = positional.first?.element, caIndex == nil || trustedCertificates != nil else {
    FileHandle.standardError.write(Data("usage: shoal-client-example [--trace] [--ca FILE] ws://host[:port]/path\n".utf8))
    exit(64)
}

/// Prints one callback as a JSON line on standard error (with --trace).
func traceEvent(_ fields: JSONObject) {
    guard trace else { return }
    var bytes: [UInt8] = []
    JSONValue.object(fields).write(into: &bytes)
    FileHandle.standardError.write(Data(bytes + [10]))
}

/// What 4D shows in an ALERT: a line on standard output, written at once.
func show(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

// 4D: the WSConnectionHandler class.
final class WSConnectionHandler: WebSocketHandler {
    private(set) var failed = false
    var trustedCertificatesPath: String? { trustedCertificates }

    func onMessage(_ ws: WebSocket, _ event: WebSocketMessageEvent) {
        traceEvent(["event": "message", "data": .string(event.data.text ?? ""), "binary": .bool(event.isBinary)])
        show(event.data.text ?? "\(event.data.blob?.count ?? 0) bytes")  // 4D: ALERT($event.data)
    }

    func onTerminate(_ ws: WebSocket, _ event: WebSocketTerminateEvent) {
        traceEvent(["event": "terminate", "code": .integer(Int64(event.code)), "reason": event.reason.map(JSONValue.string) ?? .null,
                    "status": .string(ws.status)])
        show("Connection closed")  // 4D: ALERT("Connection closed")
    }

    func onOpen(_ ws: WebSocket, _ event: WebSocketOpenEvent) {
        traceEvent(["event": "open", "id": .integer(Int64(ws.id)), "url": .string(ws.url), "status": .string(ws.status),
                    "dataType": .string(ws.dataType.rawValue)])
    }

    func onError(_ ws: WebSocket, _ event: WebSocketErrorEvent) {
        failed = true
        traceEvent(["event": "error", "code": .integer(Int64(event.code)), "errCode": .integer(Int64(event.errors.first?.errCode ?? 0)),
                    "message": .string(event.message), "status": .string(ws.status)])
    }
}

// 4D: Form.webSocket:=4D.WebSocket.new($wssUrl; cs.WSConnectionHandler.new())
let handler = WSConnectionHandler()
let webSocket = WebSocket(url: url, handler: handler)
// 4D: Form.webSocket.send("Hello world")
webSocket.send("Hello world")

while let line = readLine() {
    if webSocket.status == "Closed" { break }
    webSocket.send(line)
}
webSocket.terminate()
webSocket.waitUntilTerminated()
exit(handler.failed ? 1 : 0)
