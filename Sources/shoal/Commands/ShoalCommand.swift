// `shoal`: the command-line front of the library.
import ArgumentParser

@main
struct ShoalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal",
        abstract: "A WebSocket server with the 4D WebSocketServer API, on io_uring.",
        discussion: "shoal --version prints the version, git commit, Swift version and the loop backend this host allows.",
        subcommands: [Serve.self, CheckConfig.self],
        defaultSubcommand: Serve.self
    )

    /// `--version` is answered before argument parsing: its report probes the loop backend, which
    /// a static `CommandConfiguration.version` would do on every start of every worker.
    static func main() {
        if CommandLine.arguments.dropFirst().first == "--version" {
            print(VersionReport.text())
            return
        }
        main(nil)
    }
}
