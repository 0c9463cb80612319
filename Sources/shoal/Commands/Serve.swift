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
    @Option(help: "Worker processes, or auto (the default): one per CPU, more if --cluster-connections needs them.")
    var workers: WorkerCount = .auto
    @Option(help: "WebSocket connections the whole cluster should hold (sizes --workers auto; warns when the workers cannot).")
    var clusterConnections: Int?
    @Option(help: "Registry entries for the whole cluster (split between 2 × workers slots).") var registryCapacity = 262_144
    @Option(help: "Seconds clients get to answer the 1001 close on stop or reload.") var drainTimeout = 5.0
    @Option(help: "Most 16 KiB receive buffers per worker (power of two; lent as bursts need them).")
    var receiveBuffers = 1024

    // Limits (docs/security.md): each on by default.
    @Option(help: "Largest message in bytes (larger: close 1009).") var maxMessageSize = 16 * 1024 * 1024
    @Option(help: "Most frames per message (more: close 1009).") var maxFragments = 100_000
    @Option(help: "WebSocket connections per worker (beyond: 503; default: open-files limit - 256).")
    var maxConnections: Int?
    @Option(help: "WebSocket connections per client address and worker (beyond: 429).") var maxConnectionsPerAddress = 8192
    @Option(help: "Seconds of client silence before a ping (0: never).") var idleTimeout = 120.0
    @Option(help: "Seconds a pinged client has to answer before close 1001.") var pongTimeout = 30.0
    @Option(help: "Seconds for a request head to arrive (then 408).") var requestTimeout = 10.0
    @Option(help: "Seconds a close handshake may take before TCP is dropped.") var closeTimeout = 2.0
    @Option(help: "Origin allowed to connect from a browser (https://app.example.com or *.example.com); repeatable. None: every origin.")
    var allowOrigin: [String] = []
    @Option(help: "Bytes queued for one client before the slow-consumer policy applies.") var maxBackpressure = 16 * 1024 * 1024
    @Option(help: "Slow-consumer policy: close (1008) or drop.") var slowConsumer = "close"

    // permessage-deflate (RFC 7692).
    @Option(help: "Compression: off, shared (one compressor per worker) or dedicated (one per connection).")
    var compression = "shared"
    @Option(help: "Window bits of a dedicated compressor (8-15).") var compressionWindowBits = 15
    @Option(help: "zlib memory level of a dedicated compressor (1-9).") var compressionMemoryLevel = 8
    @Option(help: "Messages smaller than this many bytes are sent uncompressed.") var compressionThreshold = 256
    @Option(help: "zlib compression level, 0 (store) to 9 (smallest); 1 is fastest.") var compressionLevel = 1

    func validate() throws {
        guard maxMessageSize >= 1 else { throw ValidationError("--max-message-size must be at least 1") }
        guard maxFragments >= 1 else { throw ValidationError("--max-fragments must be at least 1") }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        guard maxConnectionsPerAddress >= 1 else { throw ValidationError("--max-connections-per-address must be at least 1") }
        for (name, value) in [("idle-timeout", idleTimeout), ("pong-timeout", pongTimeout)] where value < 0 || value > 86_400 {
            throw ValidationError("--\(name) must be between 0 and 86400 seconds")
        }
        for (name, value) in [("request-timeout", requestTimeout), ("close-timeout", closeTimeout)] where value <= 0 || value > 3600 {
            throw ValidationError("--\(name) must be above 0 and at most 3600 seconds")
        }
        guard maxBackpressure >= 1024 else { throw ValidationError("--max-backpressure must be at least 1024 bytes") }
        guard SlowConsumerPolicy(rawValue: slowConsumer) != nil else {
            throw ValidationError("--slow-consumer must be close or drop, not \"\(slowConsumer)\"")
        }
        do { _ = try OriginAllowList(allowOrigin) } catch { throw ValidationError("--allow-origin: \(error)") }
        guard ["off", "shared", "dedicated"].contains(compression) else {
            throw ValidationError("--compression must be off, shared or dedicated, not \"\(compression)\"")
        }
        guard (8...15).contains(compressionWindowBits) else { throw ValidationError("--compression-window-bits must be 8...15") }
        guard (1...9).contains(compressionMemoryLevel) else { throw ValidationError("--compression-memory-level must be 1...9") }
        guard compressionThreshold >= 0 else { throw ValidationError("--compression-threshold must not be negative") }
        guard (0...9).contains(compressionLevel) else { throw ValidationError("--compression-level must be 0...9") }
        guard WebSocketDataType(rawValue: dataType) != nil else {
            throw ValidationError("--data-type must be text, blob or object, not \"\(dataType)\"")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        if let path, !path.hasPrefix("/") { throw ValidationError("--path must start with /") }
        if case .count(let n) = workers, n < 1 || n > WorkerSizing.maximumWorkers {
            throw ValidationError("--workers must be auto or between 1 and \(WorkerSizing.maximumWorkers)")
        }
        if let clusterConnections, clusterConnections < 1 { throw ValidationError("--cluster-connections must be at least 1") }
        guard registryCapacity >= 1 else { throw ValidationError("--registry-capacity must be at least 1") }
        guard drainTimeout >= 0 else { throw ValidationError("--drain-timeout must not be negative") }
        guard receiveBuffers >= 16, receiveBuffers <= 32768, receiveBuffers & (receiveBuffers - 1) == 0 else {
            throw ValidationError("--receive-buffers must be a power of two between 16 and 32768")
        }
    }

    private var compressionChoice: WebSocketCompression {
        switch compression {
        case "off": return .off
        case "dedicated": return .dedicated(windowBits: compressionWindowBits, memoryLevel: compressionMemoryLevel)
        default: return .shared
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
        let options = WebSocketServerOptions(
            path: path, dataType: WebSocketDataType(rawValue: dataType) ?? .text,
            maxMessageSize: maxMessageSize, maxFragments: maxFragments,
            closeTimeoutNanoseconds: UInt64(closeTimeout * 1e9),
            allowedOrigins: allowOrigin.isEmpty ? nil : try OriginAllowList(allowOrigin),
            maxBackpressure: maxBackpressure, slowConsumerPolicy: SlowConsumerPolicy(rawValue: slowConsumer) ?? .close,
            idleTimeoutNanoseconds: UInt64(idleTimeout * 1e9), pongTimeoutNanoseconds: UInt64(pongTimeout * 1e9),
            compression: compressionChoice, compressionThreshold: compressionThreshold,
            compressionLevel: compressionLevel)
        let refused = Set(refuseAddress)
        var configuration = WebServerConfiguration(
            host: host, port: port, publicDirectory: publicDirectory,
            requestTimeoutNanoseconds: UInt64(requestTimeout * 1e9),
            drainTimeoutNanoseconds: UInt64(drainTimeout * 1e9), workers: workers.fixed, registryCapacity: registryCapacity,
            receiveBuffers: receiveBuffers, maxConnections: maxConnections, maxConnectionsPerAddress: maxConnectionsPerAddress)
        configuration.clusterConnections = clusterConnections
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
            if options.allowedOrigins == nil {
                logger.warning("no --allow-origin: any web page can open WebSocket connections to this server (RFC 6455 §10.2)")
            }
        }
    }
}
