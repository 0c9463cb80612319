// CPU time and resident memory of process trees, read from /proc the way
// Benchmarks/scripts/echo_cpu.py does: user+sys of a pid and all its descendants, VmRSS summed.
// The bench's own CPU comes from getrusage. None of this runs on the hot path.
import Glibc

enum ProcessStats {
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Contents of a small /proc file, or nil when it is gone.
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The fields of /proc/pid/stat after the command name (field 3, state, is index 0).
    private static func statFields(_ pid: Int32) -> [Substring]? {
        guard let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// `roots` and every live descendant of them, each once.
    static func tree(_ roots: [Int32]) -> [Int32] {
        guard !roots.isEmpty, let dir = opendir("/proc") else { return roots }
        defer { closedir(dir) }
        var children: [Int32: [Int32]] = [:]
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name), let fields = statFields(pid), fields.count > 1, let parent = Int32(fields[1]) else { continue }
            children[parent, default: []].append(pid)
        }
        var seen = Set<Int32>()
        var stack = roots
        var all: [Int32] = []
        while let pid = stack.popLast() {
            guard seen.insert(pid).inserted else { continue }
            all.append(pid)
            stack.append(contentsOf: children[pid] ?? [])
        }
        return all
    }

    /// user+sys CPU seconds of the processes (each one's threads included).
    static func cpuSeconds(_ pids: [Int32]) -> Double {
        var ticks = 0
        for pid in pids {
            guard let fields = statFields(pid), fields.count > 12 else { continue }
            ticks += (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
        }
        return Double(ticks) / ticksPerSecond
    }

    /// Sum of VmRSS of the processes, in bytes.
    static func residentBytes(_ pids: [Int32]) -> Int {
        pids.reduce(0) { $0 + residentBytes(of: $1) }
    }

    /// VmRSS of one process, in bytes (0 when it is gone).
    static func residentBytes(of pid: Int32) -> Int {
        guard let status = read("/proc/\(pid)/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        let kilobytes = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) } ?? 0
        return kilobytes * 1024
    }

    /// The calling thread's user+sys CPU seconds.
    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// This process's user+sys CPU seconds (every thread).
    static func selfCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

/// One reading of the clocks that a measurement window compares.
struct Snapshot {
    var wall: UInt64
    /// The whole bench process.
    var clientCPU: Double
    /// The thread taking the snapshot (its loop).
    var threadCPU: Double
    var serverCPU: Double?

    /// Reads them now; `serverPIDs` empty means no server CPU.
    static func take(serverPIDs: [Int32]) -> Snapshot {
        Snapshot(wall: monotonicNanoseconds(),
                 clientCPU: ProcessStats.selfCPUSeconds(),
                 threadCPU: ProcessStats.threadCPUSeconds(),
                 serverCPU: serverPIDs.isEmpty ? nil : ProcessStats.cpuSeconds(ProcessStats.tree(serverPIDs)))
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock broadcast payloads carry).
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
