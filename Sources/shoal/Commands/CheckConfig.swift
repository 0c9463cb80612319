// `shoal check-config [--config FILE] [serve flags]`: resolves the configuration exactly as
// `shoal serve` would (flags, SHOAL_* variables, the file, defaults), and prints every setting
// with its value and where the value came from, as a YAML file `--config` would take back.
// Exit 0 when it is valid, 64 (with one line per problem) when not; nothing is started.
import ArgumentParser

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check the configuration serve would run with, and print it with where each value came from.",
        discussion: "Takes the flags of serve (see shoal serve --help). Exit status 0: valid; 64: a problem, named on stderr.")

    @Argument(parsing: .captureForPassthrough, help: "serve's flags, --config among them.")
    var serveArguments: [String] = []

    func run() throws {
        // The passthrough takes --help too: answer it here, or serve's help would pass for ours.
        if serveArguments.prefix(while: { $0 != "--" }).contains(where: { $0 == "--help" || $0 == "-h" }) {
            throw CleanExit.helpRequest(self)
        }
        let effective: ServeConfiguration
        do {
            // parse() runs Serve.validate(), which resolves and checks; resolving again gives the origins.
            effective = try ServeConfiguration.resolveForThisProcess(try Serve.parse(serveArguments))
        } catch let error as ConfigurationError {
            throw error.reported()
        } catch {
            Serve.exit(withError: error)
        }
        print(Self.report(effective, unknownVariables: ConfigurationLayers.unknownVariables(
            in: ServeConfiguration.processEnvironment(), keys: Serve.settings.map(\.key), reserved: ServeConfiguration.reservedVariables)))
    }

    /// The report: a header, then one `key: value  # origin` line per setting (an unset one
    /// commented out), then the SHOAL_* variables that set nothing.
    static func report(_ effective: ServeConfiguration, unknownVariables: [String]) -> String {
        var lines = ["# shoal check-config: valid. Precedence: flag > SHOAL_* environment > file > default.",
                     "# file: \(effective.filePath ?? "none")"]
        let rows = Serve.settings.map { setting -> (text: String, origin: String) in
            let origin = effective.origins[setting.key.name] ?? .builtIn
            guard let values = setting.show(effective.serve) else { return ("# \(setting.key.name): (not set)", origin.description) }
            let value = switch setting.key.shape {
            case .list: "[" + values.map(yamlScalar).joined(separator: ", ") + "]"
            case .toggle: values[0]
            case .single: yamlScalar(values[0])
            }
            return ("\(setting.key.name): \(value)", origin.description)
        }
        let width = rows.map(\.text.count).max() ?? 0
        lines += rows.map { $0.text + String(repeating: " ", count: width - $0.text.count) + "  # " + $0.origin }
        lines += unknownVariables.map { "# warning: \($0) is not a setting (ignored)" }
        return lines.joined(separator: "\n")
    }

    /// A value as YAML: plain when that reads back as the same text, else double-quoted.
    static func yamlScalar(_ text: String) -> String {
        let plain = text.first.map { $0.isLetter || $0.isNumber || $0 == "/" || $0 == "." } ?? false
            && text.allSatisfy { $0.isLetter || $0.isNumber || "._/:-".contains($0) }
            && !text.contains(": ") && !["null", "true", "false", "yes", "no", "on", "off", "~"].contains(text.lowercased())
        if plain { return text }
        return "\"" + text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}
