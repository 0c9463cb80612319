// Autobahn|Testsuite's client conformance run (its "fuzzingserver"), driven by Shoal's WebSocket
// client: ask the server how many cases it has, run each (echo every message, text as text and
// binary as binary, until the server closes), then ask it to write its reports.
// scripts/autobahn-client.sh starts the fuzzingserver, runs this, and judges the verdicts.
//
//   shoal-autobahn-client [--agent NAME] [--case-timeout SECONDS] ws://127.0.0.1:9001
//
// Exit status: 0 every case ran to its end; 1 a case did not end in time or the server could not
// be reached; 64 bad arguments. (Whether a case passed is the fuzzingserver's verdict.)
import Foundation
import Shoal

/// Echoes every message in the form it came; remembers the first text message (the case count).
final class EchoHandler: WebSocketHandler {
    private let lock = NSLock()
    private var firstText: String?
    private var errors: [String] = []

    func onMessage(_ ws: WebSocket, _ event: WebSocketMessageEvent) {
        lock.withLock { if firstText == nil { firstText = event.data.text } }
        ws.send(event.data)
    }

    func onError(_ ws: WebSocket, _ event: WebSocketErrorEvent) {
        lock.withLock { errors.append(event.message) }
    }

    var text: String? { lock.withLock { firstText } }
    var errorMessages: [String] { lock.withLock { errors } }
}

/// Says `line` on standard error.
func say(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

func usage() -> Never {
    say("usage: shoal-autobahn-client [--agent NAME] [--case-timeout SECONDS] ws://127.0.0.1:PORT")
    exit(64)
}

var agent = "shoal"
var caseTimeout = 120
var base: String?
var arguments = CommandLine.arguments.dropFirst()[...]
while let argument = arguments.popFirst() {
    switch argument {
    case "--agent":
        guard let value = arguments.popFirst() else { usage() }
        agent = value
    case "--case-timeout":
        guard let value = arguments.popFirst().flatMap(Int.init), value > 0 else { usage() }
        caseTimeout = value
    default:
        guard base == nil, argument.hasPrefix("ws://") else { usage() }
        base = argument.hasSuffix("/") ? String(argument.dropLast()) : argument
    }
}
guard let base, !agent.isEmpty, agent.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else { usage() }

/// Connects to `path`, echoes until the server closes, and returns the handler (nil: no end in time).
@MainActor func run(_ path: String) -> EchoHandler? {
    let handler = EchoHandler()
    let ws = WebSocket(url: base + path, handler: handler)
    guard ws.waitUntilTerminated(timeout: .seconds(caseTimeout)) else {
        ws.terminate()
        return nil
    }
    return handler
}

guard let counter = run("/getCaseCount"), let count = counter.text.flatMap(Int.init) else {
    say("shoal-autobahn-client: no case count from \(base)/getCaseCount")
    exit(1)
}
say("shoal-autobahn-client: \(count) cases")
var stuck: [Int] = []
for number in 1...max(1, count) where count > 0 {
    if run("/runCase?case=\(number)&agent=\(agent)") == nil { stuck.append(number) }
}
guard run("/updateReports?agent=\(agent)") != nil else {
    say("shoal-autobahn-client: the server did not close /updateReports")
    exit(1)
}
if !stuck.isEmpty {
    say("shoal-autobahn-client: case(s) \(stuck.map(String.init).joined(separator: ", ")) did not end within \(caseTimeout) s")
    exit(1)
}
say("shoal-autobahn-client: ran \(count) cases")
