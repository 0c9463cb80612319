// Where each setting of `shoal serve` takes its value: a command-line flag, else a `SHOAL_*`
// environment variable, else the configuration file, else the built-in default. Pure: the
// arguments, the environment and the file's entries come in, the chosen raw values and their
// origins (or every problem found, each naming its key and source) go out.

/// How a setting is written: one value, a list (a repeatable flag; a comma list in the
/// environment; a sequence in the file) or a switch (a flag without value; true/false elsewhere).
enum SettingShape: Sendable, Equatable {
    case single, list, toggle
}

/// The name of one setting, from which its flag and its environment variable follow.
struct SettingKey: Sendable, Hashable {
    let name: String
    let shape: SettingShape

    var flag: String { "--" + name }
    var environmentVariable: String { Self.environmentPrefix + name.uppercased().replacingOccurrences("-", "_") }

    static let environmentPrefix = "SHOAL_"
}

/// Where a setting's effective value came from.
enum SettingOrigin: Sendable, Equatable, CustomStringConvertible {
    case flag(String)
    case environment(String)
    case file(path: String, line: Int?)
    case builtIn

    var description: String {
        switch self {
        case .flag(let flag): return "flag \(flag)"
        case .environment(let variable): return "env \(variable)"
        case .file(let path, let line): return "file " + ConfigurationFile.place(path, line)
        case .builtIn: return "default"
        }
    }
}

/// A value the environment or the file gives a setting, before it is read as its type.
struct RawSetting: Sendable, Equatable {
    let values: [String]
    let origin: SettingOrigin
}

/// Everything wrong with a configuration, one line per problem, each naming its key.
struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    var problems: [String]

    var description: String { problems.joined(separator: "\n") }
}

enum ConfigurationLayers {
    /// The keys given as flags in `arguments` (`--name value` or `--name=value`), up to a `--`.
    static func flagsGiven(in arguments: [String], keys: [SettingKey]) -> Set<String> {
        let names = Set(keys.map(\.name))
        var given: Set<String> = []
        for argument in arguments {
            if argument == "--" { break }
            guard argument.hasPrefix("--") else { continue }
            let name = String(argument.dropFirst(2).prefix { $0 != "=" })
            if names.contains(name) { given.insert(name) }
        }
        return given
    }

    /// Each key's origin, and for those the environment or the file set, their raw values (keys
    /// given as flags keep the parsed flag), and the file's problems. Unknown keys in the file are problems; unknown
    /// `SHOAL_*` variables are not (the environment is shared with other programs and with the
    /// cluster's own variables), `unknownVariables` lists them for `check-config`.
    static func resolve(keys: [SettingKey], flagsGiven: Set<String>, environment: [String: String],
                        file: ConfigurationFile?) -> (settings: [String: RawSetting], problems: [String]) {
        var problems: [String] = []
        let known = Dictionary(uniqueKeysWithValues: keys.map { ($0.name, $0) })
        var fromFile: [String: ConfigurationFile.Entry] = [:]
        for entry in file?.entries ?? [] {
            let place = ConfigurationFile.place(file?.path ?? "", entry.line)
            guard let key = known[entry.key] else {
                let hint = nearest(entry.key, among: keys.map(\.name)).map { " (did you mean \"\($0)\"?)" } ?? ""
                problems.append("\(place): unknown key \"\(entry.key)\"\(hint)")
                continue
            }
            if key.shape != .list, entry.values.count != 1 {
                problems.append("\(place): \(key.name) takes one value, not a list")
                continue
            }
            fromFile[key.name] = entry
        }
        var result: [String: RawSetting] = [:]
        for key in keys {
            if flagsGiven.contains(key.name) {
                result[key.name] = RawSetting(values: [], origin: .flag(key.flag))
            } else if let text = environment[key.environmentVariable] {
                result[key.name] = RawSetting(values: environmentValues(text, shape: key.shape),
                                              origin: .environment(key.environmentVariable))
            } else if let entry = fromFile[key.name], let file {
                result[key.name] = RawSetting(values: entry.values, origin: .file(path: file.path, line: entry.line))
            } else {
                result[key.name] = RawSetting(values: [], origin: .builtIn)
            }
        }
        return (result, problems)
    }

    /// `SHOAL_*` variables that name no key, except those Shoal reads for itself (`reserved`).
    static func unknownVariables(in environment: [String: String], keys: [SettingKey], reserved: Set<String>) -> [String] {
        let known = Set(keys.map(\.environmentVariable)).union(reserved)
        return environment.keys.filter { $0.hasPrefix(SettingKey.environmentPrefix) && !known.contains($0) }.sorted()
    }

    /// A list is written `a,b,c` in the environment (spaces around items ignored; empty: none).
    static func environmentValues(_ text: String, shape: SettingShape) -> [String] {
        guard shape == .list else { return [text] }
        return text.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
    }

    /// The known name closest to a misspelt one (at most 3 edits away), for the error's hint.
    static func nearest(_ name: String, among names: [String]) -> String? {
        let scored = names.map { ($0, editDistance(Array(name), Array($0))) }.filter { $0.1 <= 3 }
        return scored.min { $0.1 < $1.1 }?.0
    }

    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }

    func replacingOccurrences(_ target: Character, _ replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
