// Which source wins for each setting (flag > SHOAL_* environment > file > default), how lists
// and switches are written in each, and the problems the layers find, each naming its key.
import Testing

@testable import shoal

@Suite struct ConfigurationLayersTests {
    let keys = [SettingKey(name: "port", shape: .single), SettingKey(name: "workers", shape: .single),
                SettingKey(name: "max-connections", shape: .single), SettingKey(name: "allow-origin", shape: .list),
                SettingKey(name: "proxy-protocol", shape: .toggle)]

    func file(_ entries: [(String, [String], Int)]) -> ConfigurationFile {
        ConfigurationFile(path: "/etc/shoal/shoal.yaml", entries: entries.map { .init(key: $0.0, values: $0.1, line: $0.2) })
    }

    @Test func eachKeyTakesTheHighestSourceThatSetsIt() throws {
        let (raw, problems) = ConfigurationLayers.resolve(
            keys: keys, flagsGiven: ["port"],
            environment: ["SHOAL_PORT": "9001", "SHOAL_WORKERS": "3"],
            file: file([("port", ["9000"], 1), ("workers", ["2"], 2), ("max-connections", ["500"], 3)]))
        #expect(raw["port"] == RawSetting(values: [], origin: .flag("--port")))
        #expect(raw["workers"] == RawSetting(values: ["3"], origin: .environment("SHOAL_WORKERS")))
        #expect(raw["max-connections"] == RawSetting(values: ["500"], origin: .file(path: "/etc/shoal/shoal.yaml", line: 3)))
        #expect(raw["allow-origin"] == RawSetting(values: [], origin: .builtIn))
        #expect(raw["proxy-protocol"]?.origin.description == "default")
        #expect(raw["max-connections"]?.origin.description == "file /etc/shoal/shoal.yaml:3")
        #expect(problems.isEmpty)
    }

    @Test func variableNamesFollowTheKey() {
        #expect(SettingKey(name: "max-connections-per-address", shape: .single).environmentVariable == "SHOAL_MAX_CONNECTIONS_PER_ADDRESS")
        #expect(SettingKey(name: "workers", shape: .single).flag == "--workers")
    }

    @Test func aListFromTheEnvironmentReplacesTheFilesList() throws {
        let raw = ConfigurationLayers.resolve(
            keys: keys, flagsGiven: [], environment: ["SHOAL_ALLOW_ORIGIN": " https://a.example , *.b.example,"],
            file: file([("allow-origin", ["https://c.example"], 4)]))
        #expect(raw.settings["allow-origin"]?.values == ["https://a.example", "*.b.example"])
        let emptied = ConfigurationLayers.resolve(keys: keys, flagsGiven: [], environment: ["SHOAL_ALLOW_ORIGIN": ""],
                                                      file: file([("allow-origin", ["https://c.example"], 4)]))
        #expect(emptied.settings["allow-origin"] == RawSetting(values: [], origin: .environment("SHOAL_ALLOW_ORIGIN")))
    }

    @Test func unknownFileKeysAreNamedWithLineAndNearestKey() {
        let resolved = ConfigurationLayers.resolve(keys: keys, flagsGiven: [], environment: [:],
                                                   file: file([("max-conections", ["5"], 5), ("colour", ["blue"], 6), ("port", ["1"], 7)]))
        #expect(resolved.problems == [
            "/etc/shoal/shoal.yaml:5: unknown key \"max-conections\" (did you mean \"max-connections\"?)",
            "/etc/shoal/shoal.yaml:6: unknown key \"colour\"",
        ])
        #expect(resolved.settings["port"]?.values == ["1"])
    }

    @Test func aSingleKeyRefusesAList() {
        let resolved = ConfigurationLayers.resolve(keys: keys, flagsGiven: [], environment: [:], file: file([("port", ["1", "2"], 2)]))
        #expect(resolved.problems == ["/etc/shoal/shoal.yaml:2: port takes one value, not a list"])
    }

    @Test func flagsGivenAreFoundInEitherSpellingUpToTheTerminator() {
        let given = ConfigurationLayers.flagsGiven(
            in: ["shoal", "serve", "--port", "9", "--workers=2", "--log-level", "debug", "--", "--max-connections", "4"], keys: keys)
        #expect(given == ["port", "workers"])
    }

    @Test func unknownVariablesLeaveReservedOnesOut() {
        let unknown = ConfigurationLayers.unknownVariables(
            in: ["SHOAL_PORT": "1", "SHOAL_BACKEND": "epoll", "SHOAL_PROT": "2", "PATH": "/bin"], keys: keys, reserved: ["SHOAL_BACKEND"])
        #expect(unknown == ["SHOAL_PROT"])
    }
}
