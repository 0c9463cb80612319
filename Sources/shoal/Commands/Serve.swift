// `shoal serve`: a web server with one WebSocket server running a built-in handler.
import ArgumentParser
import Logging
import Shoal
import ShoalTLS

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the demo page and a WebSocket server.")

    enum HandlerName: String, ExpressibleByArgument, CaseIterable {
        case echo, uppercase, chat, probe, broadcast, topics, metered
    }

    @Option(help: "Configuration file (YAML, keys named as these flags; default: $SHOAL_CONFIG). Flags override SHOAL_* variables, which override the file.")
    var config: String?
    @Option(help: "Address to listen on.") var host = "0.0.0.0"
    @Option(help: "TCP port.") var port = 8080
    @Option(help: "Built-in handler: \(HandlerName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var handler: HandlerName = .chat
    @Option(help: "Path of the WebSocket server (default: every upgrade request).") var path: String?
    @Option(help: "Form of received text messages: text, blob or object.") var dataType = "text"
    @Option(help: "Refuse WebSocket clients from this address (403); repeatable.") var refuseAddress: [String] = []
    @Option(name: .customLong("public"), help: "Folder of static files (default: the bundled demo page).") var publicDirectory: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"
    @Option(help: "Log lines as text, or json (one object per line, for log shippers).") var logFormat = "text"
    @Option(help: "Worker processes, or auto (the default): one per CPU, more if --cluster-connections needs them.")
    var workers: WorkerCount = .auto
    @Option(help: "WebSocket connections the whole cluster should hold (sizes --workers auto; warns when the workers cannot).")
    var clusterConnections: Int?
    @Option(help: "Registry entries for the whole cluster (split between 2 × workers slots).") var registryCapacity = 262_144
    @Option(help: "Redis server linking several instances (redis://HOST:PORT[/DB]): broadcasts reach all of them.")
    var redis: String?
    @Option(help: "Instances sharing a Redis server and this name form one cluster.") var clusterName = "shoal"
    @Option(help: "Seconds clients get to answer the 1001 close on stop or reload.") var drainTimeout = 5.0
    @Option(help: "Seconds a worker may make no progress before it is replaced (0: never).") var watchdogTimeout = 10.0
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
    @Option(help: "Seconds the kernel holds a connection that has sent nothing before a worker takes it (TCP_DEFER_ACCEPT; 0: at once).")
    var deferAccept = 1
    @Option(help: "Seconds a close handshake may take before TCP is dropped.") var closeTimeout = 2.0
    @Option(help: "Origin allowed to connect from a browser (https://app.example.com or *.example.com); repeatable. None: every origin.")
    var allowOrigin: [String] = []
    @Option(help: "Bytes queued for one client before the slow-consumer policy applies.") var maxBackpressure = 16 * 1024 * 1024
    @Option(help: "Slow-consumer policy: close (1008) or drop.") var slowConsumer = "close"

    // Behind a reverse proxy (docs/operations.md): who the client is.
    @Option(help: "Proxy address or CIDR block whose Forwarded/X-Forwarded-For/X-Real-IP headers name the client; repeatable.")
    var trustedProxy: [String] = []
    @Flag(help: "Every connection starts with a PROXY protocol header (v1 or v2) naming the client.")
    var proxyProtocol = false
    @Option(help: "Also answer /metrics and /healthz (only those, plain HTTP) on this address:port, e.g. 127.0.0.1:9100.")
    var metricsListen: String?

    // TLS in the worker (docs/tls.md): https:// and wss:// on the same port.
    @Option(help: "Certificate chain (PEM, leaf first: certbot's fullchain.pem); repeatable: the first answers every name, the others the names they cover (SNI).")
    var tlsCert: [String] = []
    @Option(help: "Private key (PEM) of the --tls-cert at the same position; repeatable.") var tlsKey: [String] = []
    @Option(help: "Seconds one set of session-ticket keys makes tickets (a ticket resumes in its period and the next).")
    var tlsTicketRotation = 3600

    // permessage-deflate (RFC 7692).
    @Option(help: "Compression: off, shared (one compressor per worker) or dedicated (one per connection).")
    var compression = "shared"
    @Option(help: "Window bits of a dedicated compressor (8-15).") var compressionWindowBits = 15
    @Option(help: "zlib memory level of a dedicated compressor (1-9).") var compressionMemoryLevel = 8
    @Option(help: "Messages smaller than this many bytes are sent uncompressed.") var compressionThreshold = 256
    @Option(help: "zlib compression level, 0 (store) to 9 (smallest); 1 is fastest.") var compressionLevel = 1
    @Option(help: "Most topics one connection may be subscribed to.") var maxTopicsPerConnection = 1_000

    /// Largest size any byte-count flag takes: 4 GiB, far above the defaults, far below overflow.
    private static let maxBytes = 1 << 32
    /// Largest count flags take (connections, fragments).
    private static let maxCount = Int(Int32.max)

    /// Every duration flag with its range in seconds (docs/operations.md lists them).
    private var durationFlags: [(flag: String, seconds: Double, range: ClosedRange<Double>)] {
        [("idle-timeout", idleTimeout, 0...86_400), ("pong-timeout", pongTimeout, 0...86_400),
         ("request-timeout", requestTimeout, 0.001...3600), ("close-timeout", closeTimeout, 0.001...3600),
         ("drain-timeout", drainTimeout, 0...3600), ("watchdog-timeout", watchdogTimeout, 0...3600)]
    }

    /// Every integer flag with its range (an unset optional one is not checked).
    private var integerFlags: [(flag: String, value: Int?, range: ClosedRange<Int>)] {
        [("port", port, 1...65_535), ("registry-capacity", registryCapacity, 1...16_777_216),
         ("receive-buffers", receiveBuffers, 16...32_768),
         ("max-message-size", maxMessageSize, 1...Self.maxBytes), ("max-fragments", maxFragments, 1...Self.maxCount),
         ("max-connections", maxConnections, 1...Self.maxCount), ("cluster-connections", clusterConnections, 1...Self.maxCount),
         ("max-connections-per-address", maxConnectionsPerAddress, 1...Self.maxCount),
         ("max-backpressure", maxBackpressure, 1024...Self.maxBytes),
         ("compression-window-bits", compressionWindowBits, 8...15), ("compression-memory-level", compressionMemoryLevel, 1...9),
         ("compression-threshold", compressionThreshold, 0...Self.maxBytes), ("compression-level", compressionLevel, 0...9),
         ("max-topics-per-connection", maxTopicsPerConnection, 1...Self.maxCount), ("defer-accept", deferAccept, 0...600),
         ("tls-ticket-rotation", tlsTicketRotation, 60...604_800)]
    }

    /// Merges the environment and the file under the flags (ServeConfiguration), then checks the result.
    mutating func validate() throws {
        do {
            self = try ServeConfiguration.resolveForThisProcess(self).serve
        } catch {
            throw error.reported()
        }
    }

    /// The range and form checks of every setting, wherever its value came from.
    func checkValues() throws {
        for (flag, seconds, range) in durationFlags { try FlagRange.require(flag, seconds, in: range, unit: "seconds") }
        for (flag, value, range) in integerFlags {
            if let value { try FlagRange.require(flag, value, in: range) }
        }
        guard receiveBuffers & (receiveBuffers - 1) == 0 else { throw ValidationError("--receive-buffers must be a power of two") }
        guard SlowConsumerPolicy(rawValue: slowConsumer) != nil else {
            throw ValidationError("--slow-consumer must be close or drop, not \"\(slowConsumer)\"")
        }
        do { _ = try OriginAllowList(allowOrigin) } catch { throw ValidationError("--allow-origin: \(error)") }
        guard ["off", "shared", "dedicated"].contains(compression) else {
            throw ValidationError("--compression must be off, shared or dedicated, not \"\(compression)\"")
        }
        guard WebSocketDataType(rawValue: dataType) != nil else {
            throw ValidationError("--data-type must be text, blob or object, not \"\(dataType)\"")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard ["text", "json"].contains(logFormat) else {
            throw ValidationError("--log-format must be text or json, not \"\(logFormat)\"")
        }
        if case .count(let n) = workers, n < 1 || n > WorkerSizing.maximumWorkers {
            throw ValidationError("--workers must be auto or between 1 and \(WorkerSizing.maximumWorkers)")
        }
        if let path, !path.hasPrefix("/") { throw ValidationError("--path must start with /") }
        // Under a second, one slow turn on a loaded machine would pass for a hang.
        guard watchdogTimeout == 0 || watchdogTimeout >= 1 else {
            throw ValidationError("--watchdog-timeout must be 0 (off) or between 1 and 3600 seconds")
        }
        do { _ = try trustedProxy.map(AddressRange.init) } catch { throw ValidationError("--trusted-proxy \(error)") }
        do { _ = try redisOptions() } catch { throw ValidationError("\(error)") }
        do { _ = try metricsListen.map(ListenAddress.init(parsing:)) } catch { throw ValidationError("--metrics-listen: \(error)") }
        if let tls = try tlsSettings {
            // Read now, so a missing, unreadable or mismatched file stops the start (exit 64).
            do { _ = try tls.makeContext() } catch { throw ValidationError("--tls-cert/--tls-key: \(error)") }
        }
    }

    /// `--redis` and `--cluster-name`, checked and resolved (nil without --redis).
    private func redisOptions() throws -> RedisOptions? {
        guard let redis else {
            try RedisOptions.check(clusterName: clusterName)
            return nil
        }
        return try RedisOptions(url: redis, clusterName: clusterName)
    }

    /// The certificates, paired by position; nil without --tls-cert.
    private var tlsSettings: WebServerTLS? {
        get throws {
            guard !tlsCert.isEmpty || !tlsKey.isEmpty else { return nil }
            guard tlsCert.count == tlsKey.count else {
                throw ValidationError("--tls-cert and --tls-key come in pairs: \(tlsCert.count) certificate(s), \(tlsKey.count) key(s)")
            }
            let identities = zip(tlsCert, tlsKey).map { TLSIdentity(certificateChainPath: $0, privateKeyPath: $1) }
            return WebServerTLS(identities: identities, ticketRotationSeconds: tlsTicketRotation)
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
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "shoal")
        let options = WebSocketServerOptions(
            path: path, dataType: WebSocketDataType(rawValue: dataType) ?? .text,
            maxMessageSize: maxMessageSize, maxFragments: maxFragments,
            closeTimeout: .seconds(closeTimeout),
            allowedOrigins: allowOrigin.isEmpty ? nil : try OriginAllowList(allowOrigin),
            maxBackpressure: maxBackpressure, slowConsumerPolicy: SlowConsumerPolicy(rawValue: slowConsumer) ?? .close,
            idleTimeout: .seconds(idleTimeout), pongTimeout: .seconds(pongTimeout),
            compression: compressionChoice, compressionThreshold: compressionThreshold,
            compressionLevel: compressionLevel, maxTopicsPerConnection: maxTopicsPerConnection)
        let refused = Set(refuseAddress)
        var configuration = WebServerConfiguration(
            host: host, port: port, publicDirectory: publicDirectory,
            requestTimeout: .seconds(requestTimeout),
            drainTimeout: .seconds(drainTimeout), watchdogTimeout: .seconds(watchdogTimeout),
            workers: workers.fixed, registryCapacity: registryCapacity,
            receiveBuffers: receiveBuffers, maxConnections: maxConnections, maxConnectionsPerAddress: maxConnectionsPerAddress,
            trustedProxies: TrustedProxies(try trustedProxy.map(AddressRange.init)), proxyProtocol: proxyProtocol)
        configuration.clusterConnections = clusterConnections
        configuration.deferAccept = .seconds(deferAccept)
        configuration.redis = try redisOptions()
        configuration.reloadCheck = ServeConfiguration.reloadCheck(for: self)
        configuration.tls = try tlsSettings
        configuration.metricsListen = try metricsListen.map(ListenAddress.init(parsing:))
        configuration.build = BuildLabels(version: VersionReport.version, commit: BuildInfo.gitCommit, swift: VersionReport.swiftVersion)
        let choice = handler
        try Shoal.run(configuration, logger: logger) { web in
            let serverHandler: any WebSocketServerHandler
            switch choice {
            case .echo: serverHandler = EchoServer()
            case .uppercase: serverHandler = UppercaseServer()
            case .chat: serverHandler = ChatServer(refusedAddresses: refused)
            case .probe: serverHandler = ProbeServer(refusedAddresses: refused)
            case .broadcast: serverHandler = BroadcastServer()
            case .topics: serverHandler = TopicsServer()
            case .metered: serverHandler = MeteredServer()
            }
            _ = WebSocketServer(on: web, handler: serverHandler, options: options)
            logger.info("WebSocket server \"\(choice.rawValue)\" on \(options.path ?? "every path"), dataType \(options.dataType.rawValue)")
            if options.allowedOrigins == nil {
                logger.warning("no --allow-origin: any web page can open WebSocket connections to this server (RFC 6455 §10.2)")
            }
        }
    }
}
