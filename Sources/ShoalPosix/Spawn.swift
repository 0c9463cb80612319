// Starting worker processes: posix_spawn of the same binary with chosen descriptors at fixed
// numbers (as nginx hands listeners to workers). fork without exec is unsafe in a process that
// may already have threads, so the worker re-runs the program's entry in a fresh image.
#if canImport(Glibc)
import Glibc
#endif

/// posix_spawn with descriptor placement.
public enum Spawn {
    /// The path of the running executable (so a worker runs exactly the supervisor's binary).
    public static let currentExecutable = "/proc/self/exe"

    /// Starts `path` with `arguments` (argv[0] included) and `environment`; `descriptors` maps a
    /// descriptor number in the child to a descriptor of ours. Every other descriptor of ours is
    /// close-on-exec and does not reach the child. Signal dispositions and mask are reset.
    public static func start(path: String, arguments: [String], environment: [String],
                             descriptors: [(child: Int32, parent: Int32)]) throws(SystemError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (child, parent) in descriptors {
            // The parent descriptors live above every child number (see `moveAbove`), so dup2 always
            // creates a new descriptor, which does not inherit close-on-exec.
            precondition(parent != child, "descriptor \(parent) must be moved above the child range first")
            posix_spawn_file_actions_adddup2(&actions, parent, child)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE, SIGUSR1, SIGUSR2] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw SystemError("posix_spawn(\(path))", errno: rc) }
        return pid
    }

    /// Duplicates `fd` to a number ≥ `minimum` (close-on-exec) and closes the original, so that
    /// placing descriptors at small fixed numbers in a child never collides with a source.
    public static func moveAbove(_ fd: Int32, minimum: Int32) throws(SystemError) -> Int32 {
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, minimum)
        guard moved >= 0 else { throw SystemError.last("fcntl(F_DUPFD_CLOEXEC)") }
        Glibc.close(fd)
        return moved
    }

    /// The current environment as "NAME=value" strings.
    public static func currentEnvironment() -> [String] {
        var result: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            result.append(String(cString: entry))
            cursor += 1
        }
        return result
    }

    /// Reaps one exited child without blocking: its pid and how it ended, or nil.
    public static func reap() -> (pid: pid_t, status: Int32)? {
        var status: Int32 = 0
        let pid = waitpid(-1, &status, WNOHANG)
        return pid > 0 ? (pid, status) : nil
    }

    /// Sends `signal` to `pid`; false when the process is gone.
    @discardableResult
    public static func kill(_ pid: pid_t, _ signal: Int32) -> Bool {
        Glibc.kill(pid, signal) == 0
    }

    /// Human description of a wait status ("exited with 0", "killed by signal 9").
    public static func describe(status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exited with \((status >> 8) & 0xff)" }
        return "killed by signal \(signal)"
    }
}
