// `shoal`: the command-line front of the library.
import ArgumentParser

@main
struct ShoalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal",
        abstract: "A WebSocket server with the 4D WebSocketServer API, on io_uring.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}
