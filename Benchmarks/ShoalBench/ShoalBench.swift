// `shoal-bench`: Shoal's load generator. One io_uring loop per thread (--threads), each driving its
// share of the connections; each subcommand is a scenario (docs/shoal-bench.md).
import ArgumentParser
import Glibc
import ShoalRing

@main
struct ShoalBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal-bench",
        abstract: "Load generator for WebSocket servers (any RFC 6455 server), one io_uring loop per thread.",
        discussion: "Figures: wall-clock rate, and with --server-pid the rate per server CPU-second (user+sys of "
            + "the server's whole process tree). The bench reports its own CPU and prints a WARNING instead of "
            + "that figure when it, not the server, was the bottleneck.",
        subcommands: [Echo.self, Broadcast.self, Connect.self, Idle.self]
    )
}

/// Options every scenario takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "Server URL: ws://host:port/path.")
    var url = "ws://127.0.0.1:8080/"

    @Flag(help: "Print the report as JSON on stdout instead of the table.")
    var json = false

    @Flag(help: "Show the progress line on stderr even when it is not a terminal.")
    var progress = false

    @Option(name: .customLong("server-pid"),
            help: "Server process to account CPU (and RSS for idle) to; its descendants are included. Repeatable.")
    var serverPIDs: [Int32] = []

    @Option(help: "Measured runs; the table shows the median and min..max (3 or more recommended).")
    var runs = 3

    @Flag(help: "Offer permessage-deflate (\"\(ClientDeflateAgreement.offer)\"); where the server accepts, read and send compressed messages.")
    var deflate = false

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        for pid in serverPIDs where kill(pid, 0) != 0 && errno == ESRCH {
            throw ValidationError("--server-pid \(pid): no such process")
        }
    }
}

/// Runs a scenario on `threads` threads (one loop each, built by `make` on its thread) to the end
/// and prints the merged report; exits 1 when no connection opened.
func execute(_ common: CommonOptions, threads: Int, rateTitle: String, extraColumns: [(String, String, (Double) -> String)] = [],
             make: @escaping @Sendable (BenchSetup, ThreadShare) throws -> Scenario) throws {
    let scenarios = try runThreads(common, threads: threads, make: make)
    var report = Report.merged(scenarios)
    report.summarize()
    if common.json {
        print(report.json())
        for warning in report.warnings { writeStandardError("shoal-bench: \(warning)\n") }
    } else {
        print(report.table(rateTitle: rateTitle, extraColumns: extraColumns), terminator: "")
    }
    if report.connectionsOpened == 0 {
        writeStandardError("shoal-bench: no connection could be opened to \(report.url)\n")
        throw ExitCode(1)
    }
}

/// Seconds (command-line) to nanoseconds.
func nanoseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }
