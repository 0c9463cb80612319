// What the shared-segment tests use to look at the segment from outside its API: raw reads and
// writes of the memfd at byte offsets (pread/pwrite, so the layout is checked against the file
// itself), threads that really run at once, and a C helper process compiled at test time.
import ShoalTestSupport
import CShoalSystem
import Dispatch
import Foundation
import Glibc
import ShoalCluster
import ShoalPosix
import Synchronization

/// Reads `count` bytes of the file behind `descriptor` at `offset`.
func readBytes(_ descriptor: Int32, at offset: Int, count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    let read = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, count, off_t(offset)) }
    precondition(read == count, "pread at \(offset): \(read)")
    return bytes
}

/// Little-endian integer of `size` bytes at `offset`.
func readInteger(_ descriptor: Int32, at offset: Int, size: Int) -> UInt64 {
    readBytes(descriptor, at: offset, count: size).reversed().reduce(0) { $0 << 8 | UInt64($1) }
}

func readU64(_ descriptor: Int32, at offset: Int) -> UInt64 { readInteger(descriptor, at: offset, size: 8) }
func readU32(_ descriptor: Int32, at offset: Int) -> UInt32 { UInt32(readInteger(descriptor, at: offset, size: 4)) }

/// Writes `value` as `size` little-endian bytes at `offset` (forging or corrupting a segment).
func writeInteger(_ descriptor: Int32, at offset: Int, _ value: UInt64, size: Int) {
    let bytes = (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, size, off_t(offset)) }
    precondition(written == size, "pwrite at \(offset): \(written)")
}

/// A memfd of `size` bytes holding `contents` at its start (a foreign descriptor for attach).
func makeMemfd(size: Int, contents: [UInt8] = []) -> Int32 {
    let fd = shoal_memfd_create("shoal-test-foreign")
    precondition(fd >= 0 && ftruncate(fd, off_t(size)) == 0)
    if !contents.isEmpty {
        _ = contents.withUnsafeBytes { pwrite(fd, $0.baseAddress, contents.count, 0) }
    }
    return fd
}

/// Runs every body on its own thread, all at once, and returns when all have finished.
func runOnThreads(_ bodies: [@Sendable () -> Void]) {
    let group = DispatchGroup()
    for body in bodies {
        group.enter()
        let thread = Thread {
            body()
            group.leave()
        }
        thread.start()
    }
    group.wait()
}

/// A counter several threads share.
final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
    func load() -> Int { value.load(ordering: .acquiring) }
    func store(_ newValue: Int) { value.store(newValue, ordering: .releasing) }
    func add(_ amount: Int) { value.add(amount, ordering: .relaxed) }
}

/// A value shared between threads, behind a lock.

/// The C compiler the multi-process tests build their helper with, if there is one.
let cCompiler: String? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        for name in ["cc", "gcc", "clang"] {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
    }
    return nil
}()

/// A fresh directory under the system's temporary directory.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("shoal-segment-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

struct HelperFailure: Error, CustomStringConvertible {
    let description: String
}

/// A child process of a test: started with posix_spawn (`Spawn.start`) and waited for with waitpid
/// on its own pid. Not Foundation's Process: on Linux, `Process.run` keeps a run-loop source that
/// holds the Process until `waitUntilExit` spins this thread's run loop, and a weak reference to
/// the thread's RunLoop; LeakSanitizer reported both.
final class ChildProcess {
    let pid: pid_t
    /// The wait status once the child has ended (`Spawn.describe` says how).
    private(set) var status: Int32?

    /// Starts `executable` with `arguments`; its stdout and stderr go to the file `outputPath` when
    /// given, else to ours.
    init(_ executable: String, _ arguments: [String], outputPath: String? = nil) throws {
        var output: Int32 = -1
        defer { if output >= 0 { close(output) } }
        if let outputPath {
            let fd = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SystemError.last("open(\(outputPath))") }
            output = try Spawn.moveAbove(fd, minimum: 3)
        }
        let redirected = [(child: STDOUT_FILENO, parent: output), (child: STDERR_FILENO, parent: output)]
        pid = try Spawn.start(path: executable, arguments: [executable] + arguments,
                              environment: Spawn.currentEnvironment(), descriptors: output < 0 ? [] : redirected)
    }

    /// True once the child exited with status 0.
    var succeeded: Bool { status == 0 }

    /// Waits for the child to end, polling; kills it and throws after `seconds`.
    func wait(seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while status == nil {
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                status = raw
            } else if result < 0 && errno != EINTR {
                throw SystemError.last("waitpid(\(pid))")
            } else if Date() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &raw, 0)
                status = raw
                throw HelperFailure(description: "process \(pid) still running after \(seconds) s")
            } else {
                usleep(1000)
            }
        }
    }
}

/// Runs `executable` with `arguments` to completion (bounded: killed after `seconds`); throws
/// with its output when it fails.
func runToCompletion(_ executable: String, _ arguments: [String], seconds: Double = 120) throws {
    let outputPath = NSTemporaryDirectory() + "shoal-helper-\(UUID().uuidString)"
    defer { unlink(outputPath) }
    let process = try ChildProcess(executable, arguments, outputPath: outputPath)
    try process.wait(seconds: seconds)
    guard process.succeeded else {
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let how = Spawn.describe(status: process.status ?? 0)
        throw HelperFailure(description: "\(executable) \(arguments) failed (\(how)): " + text)
    }
}

/// nil when `ids` hold every id of 1...total exactly once, else a short account of what is wrong
/// (a short message: expectations on half a million ids would print them all).
func exactlyOnceProblem(_ ids: [Int], total: Int) -> String? {
    var times = [UInt8](repeating: 0, count: total + 1)
    var outside: [Int] = []
    for id in ids {
        if id >= 1 && id <= total { times[id] &+= 1 } else { outside.append(id) }
    }
    let duplicated = (1...total).filter { times[$0] > 1 }
    let missing = (1...total).filter { times[$0] == 0 }
    if outside.isEmpty && duplicated.isEmpty && missing.isEmpty { return nil }
    return "\(ids.count) ids for 1...\(total): \(duplicated.count) duplicated (first \(duplicated.prefix(5))), "
        + "\(missing.count) missing (first \(missing.prefix(5))), \(outside.count) outside (first \(outside.prefix(5)))"
}

/// nil when `ids` strictly increase, else where they do not.
func increaseProblem(_ ids: [Int]) -> String? {
    for index in ids.indices.dropFirst() where ids[index] <= ids[index - 1] {
        return "ids[\(index - 1)] = \(ids[index - 1]), ids[\(index)] = \(ids[index])"
    }
    return nil
}
