// `shoal serve`: a web server with one WebSocket server running a built-in handler.
import ArgumentParser
import Logging
import Shoal

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the demo page and a WebSocket server.")

    enum HandlerName: String, ExpressibleByArgument, CaseIterable {
        case echo, uppercase, chat, probe, broadcast
    }

    @Option(help: "Address to listen on.") var host = "0.0.0.0"
    @Option(help: "TCP port.") var port = 8080
    @Option(help: "Built-in handler: \(HandlerName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var handler: HandlerName = .chat
    @Option(help: "Path of the WebSocket server (default: every upgrade request).") var path: String?
    @Option(help: "Form of received text messages: text, blob or object.") var dataType = "text"
    @Option(help: "Refuse WebSocket clients from this address (403); repeatable.") var refuseAddress: [String] = []
    @Option(name: .customLong("public"), help: "Folder of static files (default: the bundled demo page).") var publicDirectory: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"
    @Option(help: "Worker processes (default: one per CPU).") var workers: Int?
    @Option(help: "Registry entries for the whole cluster (split between 2 × workers slots).") var registryCapacity = 262_144
    @Option(help: "Seconds clients get to answer the 1001 close on stop or reload.") var drainTimeout = 5.0
    @Option(help: "16 KiB receive buffers per worker (power of two; resident memory vs. burst capacity).")
    var receiveBuffers = 1024

    func validate() throws {
        guard WebSocketDataType(rawValue: dataType) != nil else {
            throw ValidationError("--data-type must be text, blob or object, not \"\(dataType)\"")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        if let path, !path.hasPrefix("/") { throw ValidationError("--path must start with /") }
        if let workers, workers < 1 || workers > 256 { throw ValidationError("--workers must be between 1 and 256") }
        guard registryCapacity >= 1 else { throw ValidationError("--registry-capacity must be at least 1") }
        guard drainTimeout >= 0 else { throw ValidationError("--drain-timeout must not be negative") }
        guard receiveBuffers >= 16, receiveBuffers <= 32768, receiveBuffers & (receiveBuffers - 1) == 0 else {
            throw ValidationError("--receive-buffers must be a power of two between 16 and 32768")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "shoal")
        let options = WebSocketServerOptions(path: path, dataType: WebSocketDataType(rawValue: dataType) ?? .text)
        let refused = Set(refuseAddress)
        let configuration = WebServerConfiguration(
            host: host, port: port, publicDirectory: publicDirectory,
            drainTimeoutNanoseconds: UInt64(drainTimeout * 1e9), workers: workers, registryCapacity: registryCapacity,
            receiveBuffers: receiveBuffers)
        let choice = handler
        try Shoal.run(configuration, logger: logger) { web in
            let serverHandler: any WebSocketServerHandler
            switch choice {
            case .echo: serverHandler = EchoServer()
            case .uppercase: serverHandler = UppercaseServer()
            case .chat: serverHandler = ChatServer(refusedAddresses: refused)
            case .probe: serverHandler = ProbeServer(refusedAddresses: refused)
            case .broadcast: serverHandler = BroadcastServer()
            }
            _ = WebSocketServer(on: web, handler: serverHandler, options: options)
            logger.info("WebSocket server \"\(choice.rawValue)\" on \(options.path ?? "every path"), dataType \(options.dataType.rawValue)")
        }
    }
}
