// `shoal-bench`: Shoal's load generator. One io_uring loop per thread (--threads), each driving its
// share of the connections; each subcommand is a scenario (docs/shoal-bench.md).
import ArgumentParser
import Foundation
import Glibc
import Histogram
import ShoalRing
import ShoalWire

@main
struct ShoalBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal-bench",
        abstract: "Load generator for WebSocket servers (any RFC 6455 server), one io_uring loop per thread.",
        discussion: "Figures: wall-clock rate, and with --server-pid the rate per server CPU-second (user+sys of "
            + "the server's whole process tree). The bench reports its own CPU and prints a WARNING instead of "
            + "that figure when it, not the server, was the bottleneck (a thread at 90 % of a core, or the whole bench "
            + "at 90 % of its CPUs). Exit status: 0; 1 when no connection opened; 99 when a --threshold failed; "
            + "64 for a bad command line or scenario file.",
        subcommands: [Echo.self, Broadcast.self, Topics.self, Connect.self, Idle.self, Run.self]
    )
}

/// Options every scenario takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "Server URL: ws://host:port/path.")
    var url = "ws://127.0.0.1:8080/"

    @Flag(help: "Print the report as JSON on stdout instead of the table.")
    var json = false

    @Option(help: ArgumentHelp("Also write the report as one self-contained HTML page (plots of throughput, latency and errors over time, the latency distribution; no network needed to view it).", valueName: "file.html"))
    var report: String?

    @Flag(help: "Show the progress line on stderr even when it is not a terminal.")
    var progress = false

    @Option(name: .customLong("server-pid"),
            help: "Server process to account CPU (and RSS for idle) to; its descendants are included. Repeatable.")
    var serverPIDs: [Int32] = []

    @Option(help: "Measured runs; the table shows the median and min..max (3 or more recommended).")
    var runs = 3

    @Option(help: ArgumentHelp("Pass/fail condition for CI, repeatable: p99<5ms, p99.9<=20ms, mean<1ms, max<1s, errors<0.1%, errors<=10, rate>=0.99 (open model: achieved share of the target). Exit status 99 when one does not hold.", valueName: "condition"))
    var threshold: [String] = []

    @Flag(help: "Offer permessage-deflate (\"\(ClientDeflateAgreement.offer)\"); where the server accepts, read and send compressed messages.")
    var deflate = false

    /// The parsed --threshold conditions.
    var thresholds: [Threshold] { threshold.compactMap { try? Threshold($0) } }

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        if let report {
            let directory = URL(fileURLWithPath: report).deletingLastPathComponent().path
            guard FileManager.default.isWritableFile(atPath: directory) else {
                throw ValidationError("--report \(report): cannot write in \(directory)")
            }
        }
        for text in threshold {
            do throws(Threshold.ParseError) { _ = try Threshold(text) } catch { throw ValidationError(error.description) }
        }
        for pid in serverPIDs where kill(pid, 0) != 0 && errno == ESRCH {
            throw ValidationError("--server-pid \(pid): no such process")
        }
    }
}

/// Runs a scenario on `threads` threads (one loop each, built by `make` on its thread) to the end
/// and prints the merged report; exits 1 when no connection opened, 99 when a --threshold failed.
/// `measures`: the kinds of figure the scenario has, for the thresholds.
func execute(_ common: CommonOptions, threads: Int, measures: Set<Threshold.Kind> = [.latency, .errors], rateTitle: String,
             extraColumns: [(String, String, (Double) -> String)] = [],
             make: @escaping @Sendable (BenchSetup, ThreadShare) throws -> Scenario) throws {
    let thresholds = common.thresholds
    for t in thresholds where !measures.contains(t.kind) {
        throw ValidationError("--threshold '\(t.text)': " + (t.kind == .rate
            ? "rate is the achieved share of a target rate: it needs echo --rate or --stages"
            : "this scenario measures no latency"))
    }
    let scenarios = try runThreads(common, threads: threads, make: make)
    var (report, latency) = Report.merged(scenarios)
    report.summarize()
    if !thresholds.isEmpty {
        report.thresholds = report.check(thresholds) { p in latency.map { Double($0.valueAtPercentile(p)) / 1000 } }
    }
    if common.json {
        print(report.json())
        for warning in report.warnings { writeStandardError("shoal-bench: \(warning)\n") }
    } else {
        print(report.table(rateTitle: rateTitle, extraColumns: extraColumns), terminator: "")
    }
    if let path = common.report {
        do throws(HTMLReport.WriteError) { try HTMLReport.write(report, to: path) } catch {
            writeStandardError("shoal-bench: \(error)\n")
            throw ExitCode(1)
        }
    }
    if report.connectionsOpened == 0 {
        writeStandardError("shoal-bench: no connection could be opened to \(report.url)\n")
        throw ExitCode(1)
    }
    let failed = (report.thresholds ?? []).filter { !$0.passed }
    if !failed.isEmpty {
        writeStandardError("shoal-bench: \(failed.count) of \(thresholds.count) threshold(s) failed: "
            + failed.map(\.threshold).joined(separator: ", ") + "\n")
        throw ExitCode(Threshold.failedStatus)
    }
}

/// Seconds (command-line) to nanoseconds.
func nanoseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }
