// `serve`'s settings table against its flags, and the merged configuration: values read as the
// flags read them, bad ones named with their variable or file line, check-config's report.
import ArgumentParser
import Testing

@testable import shoal

@Suite struct ServeConfigurationTests {
    let yaml = """
        host: 127.0.0.1
        port: 9000
        workers: 2
        allow-origin: [https://app.example.com, "*.example.org"]
        proxy-protocol: yes
        idle-timeout: 60
        """

    /// Resolves `flags` (valid ones: parse() checks them) with `config` as --config, against the
    /// given environment and file text instead of this process's.
    func resolve(_ flags: [String], config: String? = nil, environment: [String: String] = [:], file: String? = nil,
                 adjust: (inout Serve) -> Void = { _ in }) throws(ConfigurationError) -> ServeConfiguration {
        var parsed: Serve
        do { parsed = try Serve.parse(flags) } catch { throw ConfigurationError(problems: ["\(error)"]) }
        parsed.config = config
        adjust(&parsed)
        let arguments = flags + (config.map { ["--config", $0] } ?? [])
        return try ServeConfiguration.resolve(parsed, arguments: arguments, environment: environment) { _ in
            guard let file else { throw ConfigurationError(problems: ["no such file"]) }
            return file
        }
    }

    @Test func everyServeFlagHasASetting() {
        let help = Serve.helpMessage(columns: 10_000)
        var flags = Set(help.split(whereSeparator: { !($0.isLetter || $0 == "-") }).filter { $0.hasPrefix("--") }.map { String($0.dropFirst(2)) })
        flags.subtract(["help", "config"])
        #expect(flags == Set(Serve.settings.map(\.key.name)))
        #expect(flags.count >= 30)
    }

    @Test func flagsBeatTheEnvironmentWhichBeatsTheFile() throws {
        let effective = try resolve(["--port", "9100"], environment: ["SHOAL_PORT": "9200", "SHOAL_WORKERS": "3", "SHOAL_CONFIG": "/etc/s.yaml"],
                                    file: yaml)
        #expect(effective.serve.port == 9100)
        #expect(effective.serve.workers == .count(3))
        #expect(effective.serve.host == "127.0.0.1")
        #expect(effective.serve.allowOrigin == ["https://app.example.com", "*.example.org"])
        #expect(effective.serve.proxyProtocol)
        #expect(effective.serve.idleTimeout == 60)
        #expect(effective.serve.maxConnectionsPerAddress == 8192)
        #expect(effective.origins["port"] == .flag("--port"))
        #expect(effective.origins["workers"] == .environment("SHOAL_WORKERS"))
        #expect(effective.origins["host"] == .file(path: "/etc/s.yaml", line: 1))
        #expect(effective.origins["max-connections-per-address"] == .builtIn)
        #expect(effective.filePath == "/etc/s.yaml")
    }

    @Test func theConfigFlagBeatsTheVariable() throws {
        let effective = try resolve([], config: "/a.yaml", environment: ["SHOAL_CONFIG": "/b.yaml"], file: "port: 1234")
        #expect(effective.filePath == "/a.yaml")
        #expect(effective.origins["port"] == .file(path: "/a.yaml", line: 1))
    }

    @Test func anEmptyFileVariableNamesNoFile() throws {
        let effective = try resolve([], environment: ["SHOAL_CONFIG": ""], file: "port: 1")
        #expect(effective.filePath == nil)
        #expect(effective.serve.port == 8080)
    }

    @Test func badValuesNameTheirVariableOrFileLine() {
        #expect(throws: ConfigurationError(problems: ["SHOAL_PORT: \"eighty\" is not an integer",
                                                      "/s.yaml:3: workers: \"many\" is not auto or an integer"])) {
            try resolve([], config: "/s.yaml", environment: ["SHOAL_PORT": "eighty"], file: "host: 127.0.0.2\nport: 1\nworkers: many\n")
        }
        #expect(throws: ConfigurationError(problems: ["/s.yaml:1: unknown key \"colour\"",
                                                      "/s.yaml:2: handler: \"chatter\" is not one of: "
                                                      + Serve.HandlerName.allCases.map(\.rawValue).joined(separator: ", ")])) {
            try resolve([], config: "/s.yaml", file: "colour: red\nhandler: chatter")
        }
        #expect(throws: ConfigurationError(problems: ["SHOAL_PROXY_PROTOCOL: \"maybe\" is not true or false"])) {
            try resolve([], environment: ["SHOAL_PROXY_PROTOCOL": "maybe"])
        }
    }

    @Test func rangeChecksNameTheSourceOfTheValue() {
        #expect(throws: ConfigurationError(problems: ["/s.yaml:2: max-connections-per-address must be in 1...2147483647, not 0"])) {
            try resolve([], config: "/s.yaml", file: "port: 8000\nmax-connections-per-address: 0\n")
        }
        #expect(throws: ConfigurationError(problems: ["SHOAL_COMPRESSION: compression must be off, shared or dedicated, not \"fast\""])) {
            try resolve([], environment: ["SHOAL_COMPRESSION": "fast"])
        }
        // From a flag the message stays as it was: it names the flag.
        #expect(throws: ConfigurationError(problems: ["--port must be in 1...65535, not 0"])) {
            try resolve(["--port", "1"]) { $0.port = 0 }
        }
    }

    @Test func aFileThatCannotBeReadIsNamed() {
        #expect(throws: ConfigurationError(problems: ["/missing.yaml: cannot be read: no such file"])) {
            try resolve([], config: "/missing.yaml")
        }
    }

    @Test func theReportReadsBackAsTheSameConfiguration() throws {
        let first = try resolve(["--path", "/chat"], config: "/s.yaml", environment: ["SHOAL_REFUSE_ADDRESS": "192.0.2.1,2001:db8::1"],
                                file: yaml)
        let report = CheckConfig.report(first, unknownVariables: ["SHOAL_PROT"])
        #expect(report.contains("port: 9000"))
        #expect(report.contains("# file /s.yaml:2"))
        #expect(report.contains("# flag --path"))
        #expect(report.contains("# env SHOAL_REFUSE_ADDRESS"))
        #expect(report.contains("# max-connections: (not set)"))
        #expect(report.contains("# warning: SHOAL_PROT is not a setting (ignored)"))
        let again = try resolve([], config: "/r.yaml", file: report)
        for setting in Serve.settings {
            #expect(setting.show(again.serve) == setting.show(first.serve), "\(setting.key.name)")
        }
    }
}
