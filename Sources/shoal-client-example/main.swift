// The client example of 4D's WebSocket page, ported line by line: a handler whose onMessage shows
// the message and whose onTerminate says "Connection closed", a `WebSocket` made with it, and
// "Hello world" sent to the server. Where 4D shows an ALERT, this prints a line.
//
//   shoal-client-example [options] ws://localhost:8081/upper
//
// Each line typed on standard input is sent too; at its end the program terminates the connection.
// It exits once onTerminate ran: status 0, or 1 if onError ran. Options:
//   --trace               every callback also as a JSON line on standard error (the tests read it)
//   --ca FILE             trust the certificates in FILE (PEM) for wss:// instead of the system's
//   --header NAME:VALUE   a request header of the handler (4D: `headers`), repeatable
//   --data-type TYPE      the handler's dataType: text (default), blob or object
import Foundation
import Shoal

/// What 4D shows in an ALERT: a line on standard output, written at once.
func show(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func usage(_ problem: String) -> Never {
    FileHandle.standardError.write(Data("""
        shoal-client-example: \(problem)
        usage: shoal-client-example [--trace] [--ca FILE] [--header NAME:VALUE]... [--data-type text|blob|object] ws://host[:port]/path

        """.utf8))
    exit(64)
}

/// The command line, read into the handler's settings.
struct Options {
    var url = ""
    var trace = false
    var trustedCertificates: String?
    var headers: [String: String] = [:]
    var dataType = WebSocketDataType.text

    init(_ arguments: ArraySlice<String>) {
        var rest = arguments
        while let argument = rest.popFirst() {
            switch argument {
            case "--trace": trace = true
            case "--ca":
                guard let file = rest.popFirst() else { usage("--ca needs a file") }
                trustedCertificates = file
            case "--header":
                guard let header = rest.popFirst(), let colon = header.firstIndex(of: ":") else { usage("--header needs NAME:VALUE") }
                headers[String(header[..<colon])] = String(header[header.index(after: colon)...])
            case "--data-type":
                guard let type = rest.popFirst().flatMap(WebSocketDataType.init(rawValue:)) else { usage("--data-type is text, blob or object") }
                dataType = type
            default:
                guard !argument.hasPrefix("--"), url.isEmpty else { usage("unexpected \(argument)") }
                url = argument
            }
        }
        guard !url.isEmpty else { usage("no URL") }
    }
}

let options = Options(CommandLine.arguments.dropFirst())

/// One callback as a JSON line on standard error (with --trace).
func trace(_ fields: JSONObject) {
    guard options.trace else { return }
    var bytes: [UInt8] = []
    JSONValue.object(fields).write(into: &bytes)
    FileHandle.standardError.write(Data(bytes + [10]))
}

/// How a message shows: text as it is, an object as JSON text, a blob by its size.
func describe(_ data: WebSocketData) -> String {
    switch data {
    case .text(let text): return text
    case .object(let value):
        var bytes: [UInt8] = []
        value.write(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    case .blob(let bytes): return "\(bytes.count) bytes"
    }
}

// 4D: the WSConnectionHandler class.
final class WSConnectionHandler: WebSocketHandler, @unchecked Sendable {
    private(set) var failed = false
    var dataType: WebSocketDataType { options.dataType }
    var headers: [String: String] { options.headers }
    var trustedCertificatesPath: String? { options.trustedCertificates }

    func onMessage(_ ws: WebSocket, _ event: WebSocketMessageEvent) {
        trace(["event": "message", "data": .string(describe(event.data)), "binary": .bool(event.isBinary)])
        show(describe(event.data))  // 4D: ALERT($event.data)
    }

    func onTerminate(_ ws: WebSocket, _ event: WebSocketTerminateEvent) {
        trace(["event": "terminate", "code": .integer(Int64(event.code)), "reason": event.reason.map(JSONValue.string) ?? .null,
               "status": .string(ws.status)])
        show("Connection closed")  // 4D: ALERT("Connection closed")
    }

    func onOpen(_ ws: WebSocket, _ event: WebSocketOpenEvent) {
        trace(["event": "open", "id": .integer(Int64(ws.id)), "url": .string(ws.url), "status": .string(ws.status),
               "dataType": .string(ws.dataType.rawValue)])
    }

    func onError(_ ws: WebSocket, _ event: WebSocketErrorEvent) {
        failed = true
        trace(["event": "error", "code": .integer(Int64(event.code)), "errCode": .integer(Int64(event.errors.first?.errCode ?? 0)),
               "message": .string(event.message), "status": .string(ws.status)])
    }
}

// 4D: Form.webSocket:=4D.WebSocket.new($wssUrl; cs.WSConnectionHandler.new())
let handler = WSConnectionHandler()
let webSocket = WebSocket(url: options.url, handler: handler)
// 4D: Form.webSocket.send("Hello world")
webSocket.send("Hello world")

// Standard input is read on a thread of its own, so the program ends as soon as the connection
// does, whether the input ended or not.
Thread.detachNewThread {
    while let line = readLine() { webSocket.send(line) }
    webSocket.terminate()
}
webSocket.waitUntilTerminated()
exit(handler.failed ? 1 : 0)
