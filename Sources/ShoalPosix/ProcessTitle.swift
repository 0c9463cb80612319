// What ps and top call this process. ps reads /proc/PID/cmdline, which is the memory holding the
// process's argv strings; top shows the main thread's name (/proc/PID/comm, 15 bytes), which
// prctl(PR_SET_NAME) sets. The title is written over the argv strings and, when it needs more
// room, over the environment strings that follow them in memory, once those have been copied to
// the heap (as nginx's setproctitle does). It is cut to fit that area, one byte kept for the
// final NUL, so nothing beyond the memory the kernel laid out for argv and environ is touched.
// The environment's bytes are overwritten only as far as a title longer than the arguments needs
// (/proc/PID/environ shows the title there); otherwise they stay readable as they were.
import CShoalSystem
#if canImport(Glibc)
import Glibc
#endif

public enum ProcessTitle {
    /// Shows `title` in ps (`args`, /proc/PID/cmdline) and `name` in top (`comm`, cut to 15 bytes).
    /// Call it on the main thread, after the arguments were read (CommandLine.arguments keeps its copy).
    public static func set(_ title: String, name: String) {
        _ = shoal_set_thread_name(name)
        guard let area = ArgumentArea.claimed else { return }
        area.write(title)
    }

    /// The bytes a title may take here: the argv strings and the environment strings right after them.
    public static var capacity: Int { ArgumentArea.claimed.map { $0.length - 1 } ?? 0 }

    /// The longest prefix of `title` that fits `capacity` bytes without splitting a UTF-8 sequence.
    public static func truncated(_ title: String, capacity: Int) -> [UInt8] {
        let bytes = Array(title.utf8)
        guard bytes.count > capacity else { return bytes }
        var end = max(0, capacity)
        // A continuation byte (10xxxxxx) at the cut means the cut is inside a character: back off to its start.
        while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return Array(bytes[..<end])
    }
}

/// The contiguous memory of the argv strings and the environment strings that follow them.
private struct ArgumentArea: Sendable {
    let start: UInt
    /// Bytes of the argv strings.
    let argumentsLength: Int
    /// Bytes of the argv strings and the environment strings after them.
    let length: Int

    /// Found once per process; the environment strings inside it are moved to the heap first.
    static let claimed: ArgumentArea? = claim()

    private static func claim() -> ArgumentArea? {
        let argv = CommandLine.unsafeArgv
        guard CommandLine.argc > 0, let first = argv[0] else { return nil }
        var end = first + strlen(first) + 1
        for index in 1..<Int(CommandLine.argc) {
            guard let argument = argv[index], argument == end else { break }
            end = argument + strlen(argument) + 1
        }
        let argumentsEnd = end
        var cursor = environ
        while let entry = cursor.pointee, entry == end {
            end = entry + strlen(entry) + 1
            // getenv and environ go on reading this copy; the original bytes become title room.
            cursor.pointee = strdup(entry)
            cursor += 1
        }
        return ArgumentArea(start: UInt(bitPattern: first), argumentsLength: first.distance(to: argumentsEnd),
                            length: first.distance(to: end))
    }

    func write(_ title: String) {
        guard let base = UnsafeMutablePointer<CChar>(bitPattern: start) else { return }
        let bytes = ProcessTitle.truncated(title, capacity: length - 1)
        // Clear the old arguments (ps would show their tail) and the title's own room, not more.
        memset(base, 0, max(argumentsLength, bytes.count + 1))
        bytes.withUnsafeBytes { title in
            if let source = title.baseAddress { _ = memcpy(base, source, title.count) }
        }
    }
}
