// Resource limits. A server holding one descriptor per client raises its soft open-files limit to
// the hard one at start (as nginx's worker_rlimit_nofile), so the default soft limit of 1024 is
// not what caps it; the hard limit stays the operator's decision (systemd LimitNOFILE, limits.conf).
#if canImport(Glibc)
import Glibc
#endif

public enum ResourceLimits {
    /// Sets the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit. Children
    /// (workers) inherit it.
    @discardableResult
    public static func raiseOpenFilesToHardLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(limit.rlim_cur)
    }

    /// The soft RLIMIT_NOFILE: how many descriptors this process may hold.
    public static func openFilesLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(clamping: limit.rlim_cur)
    }
}
