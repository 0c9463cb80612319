// --threads: one loop per thread, each driving its share of the connections. The threads meet at a
// start line once their connections are open, so their measured windows line up and their per-run
// figures can be added up (ReportMerge.swift). Nothing on the hot path is shared between threads.
import ArgumentParser
import Foundation
import Glibc
import ShoalRing
import Synchronization

/// How many threads, for the scenarios that split their connections (echo, broadcast, connect).
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads, each its own loop with its share of the connections (default: one per CPU this process may run on).")
    var threads: Int?

    func validate() throws {
        if let threads { guard (1...1024).contains(threads) else { throw ValidationError("--threads must be 1...1024") } }
    }

    /// The thread count for `work` units of work (connections, handshakes in flight): never more
    /// threads than units.
    func count(for work: Int) -> Int { max(1, min(threads ?? usableCPUs(), work)) }
}

/// CPUs this process may run on: the bits of its affinity mask (`Cpus_allowed`, which `taskset`
/// narrows; Glibc's module does not offer sched_getaffinity).
func usableCPUs() -> Int {
    let line = ProcessStats.read("/proc/self/status")?.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed:") }
    let mask = line?.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit } ?? ""
    let count = mask.reduce(0) { $0 + ($1.hexDigitValue ?? 0).nonzeroBitCount }
    return count > 0 ? count : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

/// Where the threads meet before load starts: each arrives once its connections resolved, and
/// all leave together (or after `patience`, so a thread whose connections hang holds no one forever).
final class StartLine: @unchecked Sendable {
    private let expected: Int
    /// Guards `arrived` and `start`.
    private let condition = NSCondition()
    private var arrived = 0
    private var start: UInt64 = 0
    private static let patience: TimeInterval = 15

    init(threads: Int) { expected = threads }

    /// Blocks until every thread arrived; returns the common start (monotonic ns): the last arrival.
    func arrive() -> UInt64 {
        condition.lock()
        defer { condition.unlock() }
        arrived += 1
        start = max(start, monotonicNanoseconds())
        if arrived >= expected {
            condition.broadcast()
        } else {
            let deadline = Date(timeIntervalSinceNow: Self.patience)
            while arrived < expected && condition.wait(until: deadline) {}
            start = max(start, arrived < expected ? monotonicNanoseconds() : start)
        }
        return start
    }
}

/// What every thread shows on the progress line, added up; thread 0 prints it.
final class ProgressBoard: Sendable {
    struct Entry: Sendable { var count = 0, open = 0, errors = 0 }
    private let entries: Mutex<[Entry]>

    init(threads: Int) { entries = Mutex([Entry](repeating: Entry(), count: threads)) }

    func post(_ thread: Int, _ entry: Entry) { entries.withLock { $0[thread] = entry } }

    var total: Entry {
        entries.withLock { $0.reduce(Entry()) { Entry(count: $0.count + $1.count, open: $0.open + $1.open, errors: $0.errors + $1.errors) } }
    }
}

/// One thread's place in the generator.
struct ThreadShare: Sendable {
    let index: Int
    let count: Int
    let startLine: StartLine
    let board: ProgressBoard
    /// Time zero shared by every thread (broadcast payload stamps).
    let epoch: UInt64

    /// The global numbers of this thread's units out of `total`: every count-th one, from `index`
    /// (connection g goes to thread g % count, so shares differ by one at most).
    func numbers(of total: Int) -> [Int] { Array(stride(from: index, to: total, by: count)) }

    /// This thread's part of a total rate: its share of `units` (connections, publishers).
    func part(of units: Int) -> Double { Double(numbers(of: units).count) / Double(max(units, 1)) }
}

/// A scenario run on every thread; the reports are merged once all threads ended.
private final class ThreadSlot: @unchecked Sendable {
    var scenario: Scenario?
    var error: (any Error)?
}

/// Builds one scenario per thread with `make` (on that thread, which owns its loop), runs them all
/// and returns them once every thread ended. The first error a thread met is thrown.
func runThreads(_ common: CommonOptions, threads: Int, make: @escaping @Sendable (BenchSetup, ThreadShare) throws -> Scenario) throws -> [Scenario] {
    let startLine = StartLine(threads: threads)
    let board = ProgressBoard(threads: threads)
    let epoch = monotonicNanoseconds()
    let slots = (0..<threads).map { _ in ThreadSlot() }
    let done = DispatchGroup()
    let options = UncheckedBox(common)
    for index in 0..<threads {
        let slot = slots[index]
        done.enter()
        let thread = Thread {
            defer { done.leave() }
            do {
                let share = ThreadShare(index: index, count: threads, startLine: startLine, board: board, epoch: epoch)
                let scenario = try make(try BenchSetup(options.value), share)
                slot.scenario = scenario
                scenario.start()
                try scenario.loop.run()
                if index == 0 { scenario.progress.finish() }
            } catch {
                slot.error = error
                // The others must not wait at the start line for this one.
                _ = startLine.arrive()
            }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    done.wait()
    if let error = slots.compactMap(\.error).first { throw error }
    return slots.compactMap(\.scenario)
}

/// Carries a value the compiler cannot prove Sendable to a thread that is its only user from then on.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
