// TCP socket setup: listeners (SO_REUSEPORT, for one listener per worker), socket options
// on accepted connections, peer addresses, and the few synchronous calls the loop needs.
#if canImport(Glibc)
import Glibc
#endif

/// Synchronous socket calls used outside the hot path (setup, accept bookkeeping, close).
public enum Socket {
    /// Creates a non-blocking TCP listener bound to `host:port` with SO_REUSEADDR and, when asked,
    /// SO_REUSEPORT (so several workers can each own a listener on the same port).
    ///
    /// `deferAcceptSeconds` > 0 sets TCP_DEFER_ACCEPT: the kernel hands a connection over only once
    /// its first bytes arrived (or, silent, at the first SYN-ACK retransmission after that many
    /// seconds: 1, 3, 7... s). For client-first protocols (HTTP, TLS, the PROXY header) the accept and
    /// the request then come in one wake-up, and the receive after accept finds its bytes waiting.
    public static func listen(host: String, port: Int, reusePort: Bool, backlog: Int32 = 4096,
                              deferAcceptSeconds: Int32 = 0) throws(SystemError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let info = list else {
            throw SystemError("getaddrinfo(\(host))", errno: rc == EAI_SYSTEM ? Glibc.errno : EINVAL)
        }
        defer { freeaddrinfo(list) }

        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("socket") }
        do throws(SystemError) {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)")
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)") }
            if deferAcceptSeconds > 0 {
                try setOption(fd, Int32(IPPROTO_TCP), TCP_DEFER_ACCEPT, deferAcceptSeconds, "setsockopt(TCP_DEFER_ACCEPT)")
            }
            guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { throw SystemError.last("bind(\(host):\(port))") }
            guard Glibc.listen(fd, backlog) == 0 else { throw SystemError.last("listen") }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// The numeric address (first TCP result of getaddrinfo) of `host`. Blocking (DNS): call it at
    /// start, never on a loop.
    public static func resolve(host: String) throws(SystemError) -> String {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        guard rc == 0, let info = list else {
            throw SystemError("getaddrinfo(\(host)): \(String(cString: gai_strerror(rc)))", errno: rc == EAI_SYSTEM ? Glibc.errno : EINVAL)
        }
        defer { freeaddrinfo(list) }
        var name = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let named = getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &name, socklen_t(name.count), nil, 0, NI_NUMERICHOST)
        guard named == 0 else { throw SystemError("getnameinfo(\(host))", errno: EINVAL) }
        return String(cString: name)
    }

    /// Sets an integer socket option.
    public static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ what: String) throws(SystemError) {
        var v = value
        guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else { throw SystemError.last(what) }
    }

    /// No Nagle delay, since frames are already batched per loop turn. Set on a listener, it holds
    /// for every connection accepted from it (Linux copies the option to the accepted socket).
    public static func disableNagle(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The peer's numeric address ("127.0.0.1", "::1"), or "" when the socket is already gone. A
    /// getpeername(2) and a getnameinfo(3): for sockets whose accept did not report the peer
    /// (`PeerAddress`), never per connection on a loop.
    public static func peerAddress(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
        }
        guard ok else { return "" }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
            }
        }
        guard rc == 0 else { return "" }
        var address = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if address.hasPrefix("::ffff:"), address.contains(".") { address.removeFirst(7) }
        return address
    }

    /// The port a listener is bound to (useful when it was asked for port 0).
    public static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    /// shutdown(2): ends one or both directions; the loop uses it to end multishot receives.
    /// A second descriptor (close-on-exec) for the same open socket: the loop polls its own copy of
    /// a library's socket, so the library may close its descriptor while a poll is still in flight.
    public static func duplicate(_ fd: Int32) throws(SystemError) -> Int32 {
        try retryingOnInterrupt("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fd, F_DUPFD_CLOEXEC, 0) }
    }

    public static func shutdown(_ fd: Int32, read: Bool, write: Bool) {
        let how: Int32 = read && write ? Int32(SHUT_RDWR) : (read ? Int32(SHUT_RD) : Int32(SHUT_WR))
        _ = Glibc.shutdown(fd, how)
    }

    /// close(2). EINTR is not retried: on Linux the descriptor is released even then (see LWN 576478).
    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Closes with an RST instead of a FIN (SO_LINGER 0), for connections we abandon.
    public static func abort(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        _ = Glibc.close(fd)
    }
}
