// `shoal serve`'s effective configuration: the flags as parsed, and under them, for every flag
// not given, its `SHOAL_*` environment variable, then its key in the `--config` file, then the
// default. The table below is the one list of settings: keys, variables, check-config's output
// and the errors all follow from it.
import ArgumentParser
import ShoalPosix

extension Serve {
    /// Every flag of `serve` (but `--config` itself), as the setting it fills.
    static var settings: [Setting<Serve>] {
        [.option("host", \.host), .option("port", \.port), .option("handler", \.handler), .option("path", \.path),
         .option("data-type", \.dataType), .list("refuse-address", \.refuseAddress), .option("public", \.publicDirectory),
         .option("log-level", \.logLevel), .option("log-format", \.logFormat),
         .option("workers", \.workers), .option("cluster-connections", \.clusterConnections),
         .option("registry-capacity", \.registryCapacity), .option("drain-timeout", \.drainTimeout),
         .option("watchdog-timeout", \.watchdogTimeout), .option("receive-buffers", \.receiveBuffers),
         .option("max-message-size", \.maxMessageSize), .option("max-fragments", \.maxFragments),
         .option("max-connections", \.maxConnections), .option("max-connections-per-address", \.maxConnectionsPerAddress),
         .option("idle-timeout", \.idleTimeout), .option("pong-timeout", \.pongTimeout),
         .option("request-timeout", \.requestTimeout), .option("defer-accept", \.deferAccept),
         .option("close-timeout", \.closeTimeout),
         .list("allow-origin", \.allowOrigin), .option("max-backpressure", \.maxBackpressure),
         .option("slow-consumer", \.slowConsumer), .list("trusted-proxy", \.trustedProxy), .toggle("proxy-protocol", \.proxyProtocol),
         .option("compression", \.compression), .option("compression-window-bits", \.compressionWindowBits),
         .option("compression-memory-level", \.compressionMemoryLevel),
         .option("compression-threshold", \.compressionThreshold), .option("compression-level", \.compressionLevel),
         .option("max-topics-per-connection", \.maxTopicsPerConnection),
         .option("redis", \.redis), .option("cluster-name", \.clusterName),
         .option("metrics-listen", \.metricsListen),
         .list("tls-cert", \.tlsCert), .list("tls-key", \.tlsKey), .option("tls-ticket-rotation", \.tlsTicketRotation)]
    }
}

struct ServeConfiguration {
    /// The environment variable naming the file when `--config` is not given.
    static let fileVariable = "SHOAL_CONFIG"
    /// `SHOAL_*` variables that are not settings: the backend choice, the file, and the cluster's
    /// own (docs/cluster.md); the rest are reported as unknown by check-config.
    static let reservedVariables: Set<String> = ["SHOAL_BACKEND", fileVariable, "SHOAL_WORKER_SLOT",
                                                 "SHOAL_WORKER_GENERATION", "SHOAL_CLUSTER_WORKERS"]

    /// The command with every setting at its effective value.
    let serve: Serve
    /// Where each setting's value came from, by key.
    let origins: [String: SettingOrigin]
    /// The file read, if any.
    let filePath: String?

    /// Merges the environment and the file under the flags `parsed` holds (`arguments` tells which
    /// were given) and checks the result; every problem names its key and where the value came from.
    static func resolve(_ parsed: Serve, arguments: [String], environment: [String: String],
                        readFile: (String) throws -> String) throws(ConfigurationError) -> ServeConfiguration {
        let settings = Serve.settings
        let keys = settings.map(\.key)
        // An empty SHOAL_CONFIG names no file (as an unset one), so a unit can clear it.
        let path = parsed.config ?? environment[fileVariable].flatMap { $0.isEmpty ? nil : $0 }
        var file: ConfigurationFile?
        if let path {
            let text: String
            do { text = try readFile(path) } catch { throw ConfigurationError(problems: ["\(path): cannot be read: \(error)"]) }
            file = try ConfigurationFile(yaml: text, path: path)
        }
        let (raw, fileProblems) = ConfigurationLayers.resolve(
            keys: keys, flagsGiven: ConfigurationLayers.flagsGiven(in: arguments, keys: keys), environment: environment, file: file)
        var serve = parsed
        var problems = fileProblems
        for setting in settings {
            guard let value = raw[setting.key.name], value.origin.isEnvironmentOrFile else { continue }
            if let assigned = setting.assign(serve, value.values) {
                serve = assigned
            } else {
                let shown = value.values.map { "\"\($0)\"" }.joined(separator: ", ")
                problems.append("\(label(value.origin, setting.key)): \(shown) is not \(setting.expected)")
            }
        }
        guard problems.isEmpty else { throw ConfigurationError(problems: problems) }
        let origins = raw.mapValues(\.origin)
        do {
            try serve.checkValues()
        } catch {
            throw ConfigurationError(problems: [attribute("\(error)", keys: keys, origins: origins)])
        }
        return ServeConfiguration(serve: serve, origins: origins, filePath: path)
    }

    /// Resolves with this process's arguments, environment and files.
    static func resolveForThisProcess(_ parsed: Serve) throws(ConfigurationError) -> ServeConfiguration {
        try resolve(parsed, arguments: CommandLine.arguments, environment: processEnvironment()) { path in
            String(decoding: try SmallFile.read(path, limit: maxFileBytes), as: UTF8.self)
        }
    }

    /// A configuration file is a page or two; a larger one is a mistake (a log named by --config).
    static let maxFileBytes = 1 << 20

    /// This process's environment as a dictionary (a name set twice: the first, as getenv reads it).
    static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        for entry in Spawn.currentEnvironment() {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            let name = String(entry[..<equals])
            if result[name] == nil { result[name] = String(entry[entry.index(after: equals)...]) }
        }
        return result
    }

    /// The supervisor's check on SIGHUP: the problem the new workers would stop at, or nil. They
    /// parse the same command line and read the environment and the file again; `serve` holds the
    /// flags (and the values merged at start, which the environment and the file set again).
    static func reloadCheck(for serve: Serve) -> @Sendable () -> String? {
        let snapshot = Snapshot(serve: serve)
        return {
            do throws(ConfigurationError) {
                _ = try resolveForThisProcess(snapshot.serve)
                return nil
            } catch {
                return error.description
            }
        }
    }

    /// A copy of the parsed command, only ever read (ArgumentParser's wrappers are not Sendable).
    private final class Snapshot: @unchecked Sendable {
        let serve: Serve
        init(serve: Serve) { self.serve = serve }
    }

    /// "SHOAL_PORT" or "/etc/shoal/shoal.yaml:3: port": where a bad value was written.
    private static func label(_ origin: SettingOrigin, _ key: SettingKey) -> String {
        if case .file = origin { return origin.placeOnly + ": " + key.name }
        return origin.placeOnly
    }

    /// A range check names the flag (`--port must be in ...`); when the value came from the
    /// environment or the file, the message names that source and the key instead.
    private static func attribute(_ message: String, keys: [SettingKey], origins: [String: SettingOrigin]) -> String {
        // Longest first, so --max-connections-per-address is not taken for --max-connections.
        for key in keys.sorted(by: { $0.name.count > $1.name.count }) where message.contains(key.flag) {
            guard let origin = origins[key.name], origin.isEnvironmentOrFile else { return message }
            return "\(origin.placeOnly): " + message.replacingFirst(key.flag, with: key.name)
        }
        return message
    }
}

extension ConfigurationError {
    /// Prints one line per problem on stderr; the exit status of a bad configuration, 64 (EX_USAGE).
    func reported() -> ExitCode {
        for problem in problems { StandardError.write("Error: \(problem)\n") }
        return ExitCode.validationFailure
    }
}

extension SettingOrigin {
    var isEnvironmentOrFile: Bool {
        switch self {
        case .environment, .file: return true
        case .flag, .builtIn: return false
        }
    }

    /// The variable, or the file and line, without the kind of source.
    var placeOnly: String {
        switch self {
        case .environment(let variable): return variable
        case .file(let path, let line): return ConfigurationFile.place(path, line)
        case .flag(let flag): return flag
        case .builtIn: return "default"
        }
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        replacing(target, with: replacement, maxReplacements: 1)
    }
}
