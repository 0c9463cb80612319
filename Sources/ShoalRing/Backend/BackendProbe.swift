// Chooses a worker's loop backend at run time (STYLE.md §4, monoio's `detect_uring`): io_uring
// when the kernel lets us set it up, otherwise epoll, and says which one in one log line. When
// io_uring is refused the line carries the errno text and its likely cause, so "why is this host
// slower" has an answer in the log (DESIGN.md, "Process model": fall back, loudly, never fail).
//
// Limit: only the set-up is probed (io_uring_queue_init_params and the provided-buffer ring
// registration). A kernel that sets up a ring but lacks multishot receive (5.19) or multishot
// accept (< 5.19) passes the probe and then fails the first receive or accept with -EINVAL; run
// such hosts with SHOAL_BACKEND=epoll. The minimum for the io_uring backend is Linux 6.0.
import Glibc
import ShoalPosix

/// Picks and creates the loop backend of a worker.
public enum BackendProbe {
    /// The environment variable that forces a backend: `epoll` or `io_uring` (`auto`, the default,
    /// tries io_uring and falls back).
    public static let environmentVariable = "SHOAL_BACKEND"
    /// `coop` sets the io_uring ring up with COOP_TASKRUN instead of SINGLE_ISSUER|DEFER_TASKRUN
    /// (which also keeps the idle receive buffers resident, see ReceiveBufferRelease).
    public static let taskRunVariable = "SHOAL_URING_TASKRUN"
    /// `on` names accepted sockets by an index into the ring's registered file table (direct
    /// descriptors; off by default, see URingConfiguration.directDescriptors).
    public static let directDescriptorsVariable = "SHOAL_URING_DIRECT"
    /// `off` keeps each receive completion to one buffer (no IORING_RECVSEND_BUNDLE), to compare.
    public static let receiveBundlesVariable = "SHOAL_URING_BUNDLE"
    /// How the loop waits after busy turns when the wait would sleep anyway (io_uring's minimum
    /// wait, Linux 6.12; BatchedWait): `accepts` (the default) for a batch after connect storms,
    /// `on` after any busy turn, `BUSY,LIMIT,MICROSECONDS` likewise with its figures, `off` always
    /// for one completion.
    public static let batchedWaitVariable = "SHOAL_URING_BATCH_WAIT"

    /// Creates the backend: io_uring unless `preferred` (say, a command-line option) or else the
    /// environment variable `SHOAL_BACKEND` says `epoll`; epoll when io_uring cannot be set up.
    /// Logs exactly one line saying which backend runs and, on fallback, why.
    /// Throws only when the epoll backend cannot be created either.
    /// `receiveBuffers` (a power of two) sets how many 16 KiB receive buffers the loop lends the
    /// kernel; nil keeps the default (1,024).
    public static func makeBackend(preferred: String? = nil, receiveBuffers: Int? = nil,
                                   log: (String) -> Void) throws -> any LoopBackend {
        var uring = URingConfiguration()
        var epoll = EpollConfiguration()
        if let receiveBuffers {
            uring.receiveBufferCount = receiveBuffers
            epoll.receiveBufferCount = receiveBuffers
        }
        // SHOAL_URING_TASKRUN=coop: the ring set-up before DEFER_TASKRUN, to compare the two in one build.
        if let taskRun = getenv(taskRunVariable), String(cString: taskRun).lowercased() == "coop" {
            uring.deferTaskRun = false
        }
        if let direct = getenv(directDescriptorsVariable), String(cString: direct).lowercased() == "on" {
            uring.directDescriptors = true
        }
        if let bundle = getenv(receiveBundlesVariable), String(cString: bundle).lowercased() == "off" {
            uring.receiveBundles = false
        }
        if let batched = getenv(batchedWaitVariable).map({ String(cString: $0) }) {
            switch BatchedWait.parse(batched) {
            case .off?: uring.batchedWait = nil
            case .on(let wait)?: uring.batchedWait = wait
            case nil: log("ignoring \(batchedWaitVariable)=\(batched): expected accepts, on, off or BUSY,LIMIT,MICROSECONDS")
            }
        }
        return try makeBackend(
            preferred: preferred,
            environment: getenv(environmentVariable).map { String(cString: $0) },
            makeURing: { () throws(SystemError) -> any LoopBackend in try URingBackend(configuration: uring) },
            makeEpoll: { () throws(SystemError) -> any LoopBackend in try EpollBackend(configuration: epoll) },
            log: log)
    }

    /// `makeBackend` with its inputs explicit (tests inject a failing io_uring).
    static func makeBackend(
        preferred: String?,
        environment: String?,
        makeURing: () throws(SystemError) -> any LoopBackend,
        makeEpoll: () throws(SystemError) -> any LoopBackend,
        log: (String) -> Void
    ) throws(SystemError) -> any LoopBackend {
        let (choice, source) = choose(preferred: preferred, environment: environment, log: log)
        if choice == .epoll {
            let backend = try makeEpoll()
            log("event loop backend: epoll (chosen by \(source))")
            return backend
        }
        do {
            let backend = try makeURing()
            let flags = (backend as? URingBackend).map { " (\($0.features))" } ?? ""
            log("event loop backend: io_uring\(flags)")
            return backend
        } catch {
            let backend = try makeEpoll()
            log("event loop backend: epoll, because io_uring is unavailable: \(error); "
                + "likely cause: \(likelyCause(of: error.errno)); same behaviour, more syscalls per turn")
            return backend
        }
    }

    enum Choice { case auto, epoll }

    /// The requested backend and who asked; an unknown name is logged and ignored.
    static func choose(preferred: String?, environment: String?, log: (String) -> Void) -> (Choice, String) {
        let (requested, source): (String?, String) =
            if let preferred, !preferred.isEmpty { (preferred, "configuration") }
            else if let environment, !environment.isEmpty { (environment, "\(environmentVariable)=\(environment)") }
            else { (nil, "default") }
        switch requested?.lowercased() {
        case nil, "auto", "io_uring", "iouring", "uring":
            return (.auto, source)
        case "epoll":
            return (.epoll, source)
        case let other?:
            log("unknown event loop backend \"\(other)\" (from \(source)); expected epoll or io_uring, trying io_uring")
            return (.auto, "default")
        }
    }

    /// Why io_uring set-up most likely failed with `code`, for the fallback log line.
    static func likelyCause(of code: Int32) -> String {
        let kernel = "kernel \(kernelRelease())"
        switch code {
        case EPERM, EACCES:
            switch sysctl("kernel/io_uring_disabled") {
            case "2": return "io_uring is disabled by sysctl kernel.io_uring_disabled=2"
            case "1": return "sysctl kernel.io_uring_disabled=1 and this process is not in kernel.io_uring_group"
            default: return "a seccomp profile blocks io_uring_setup (Docker's and containerd's default profiles do)"
            }
        case ENOSYS:
            return "\(kernel) is built without io_uring (CONFIG_IO_URING), or a seccomp profile blocks io_uring_setup"
        case EINVAL:
            return "\(kernel) is too old for the ring set-up or provided-buffer rings (need Linux 6.0 or newer)"
        case ENOMEM:
            return "not enough locked memory for the ring (RLIMIT_MEMLOCK; \(kernel))"
        case EMFILE, ENFILE:
            return "out of file descriptors"
        default:
            return "unexpected (\(kernel); io_uring needs Linux 6.0 or newer, no seccomp filter on io_uring_setup, "
                + "and sysctl kernel.io_uring_disabled=0)"
        }
    }

    /// The running kernel's release ("6.1.0-18-amd64").
    private static func kernelRelease() -> String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: &names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The first line of /proc/sys/`name`, or nil when it does not exist (an older kernel).
    private static func sysctl(_ name: String) -> String? {
        let fd = open("/proc/sys/" + name, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].prefix { $0 != 10 }, as: UTF8.self)
    }
}
