// The one error type for failed syscalls: the errno and the name of the call, as nginx logs
// "name() failed". Network conditions become values elsewhere; this is for what is left.
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call and the errno it left.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var function: String
    public var errno: Int32

    public init(_ function: String, errno: Int32) {
        self.function = function
        self.errno = errno
    }

    /// Captures the current `errno` for `function`.
    public static func last(_ function: String) -> SystemError {
        SystemError(function, errno: Glibc.errno)
    }

    /// What the errno says ("Connection refused").
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        "\(function) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Retries a call that returns -1 and sets errno while it fails with EINTR.
@inline(never)
public func retryingOnInterrupt(_ function: String, _ body: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(function, errno: code)
    }
}
