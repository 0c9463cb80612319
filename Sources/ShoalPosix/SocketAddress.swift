// Where an outbound connection goes: a resolved IPv4 or IPv6 address and port, and the socket to
// connect from it. Resolution of a name blocks (getaddrinfo), so callers on a loop thread resolve
// numeric addresses only (`numeric`) and hand names to another thread (`resolve`).
#if canImport(Glibc)
import Glibc
#endif

/// A resolved TCP endpoint (a copy of a `sockaddr_in` or `sockaddr_in6`).
public struct SocketAddress: Sendable, CustomStringConvertible {
    public let family: Int32
    /// The sockaddr's bytes, as connect(2) takes them.
    public let bytes: [UInt8]
    public let description: String

    /// The address of a numeric host ("127.0.0.1", "::1"), or nil when `host` is a name.
    public static func numeric(host: String, port: Int) -> SocketAddress? {
        try? lookup(host: host, port: port, flags: AI_NUMERICHOST | AI_NUMERICSERV).first
    }

    /// Every address `host` resolves to, in getaddrinfo's order of preference. Blocks on DNS.
    public static func resolve(host: String, port: Int) throws(ResolutionError) -> [SocketAddress] {
        try lookup(host: host, port: port, flags: AI_NUMERICSERV | AI_ADDRCONFIG)
    }

    private static func lookup(host: String, port: Int, flags: Int32) throws(ResolutionError) -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = flags
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else { throw ResolutionError(host: host, message: String(cString: gai_strerror(rc))) }
        defer { freeaddrinfo(list) }
        var found: [SocketAddress] = []
        var entry = list
        while let info = entry?.pointee {
            if let address = info.ai_addr, info.ai_family == AF_INET || info.ai_family == AF_INET6 {
                let bytes = [UInt8](UnsafeRawBufferPointer(start: address, count: Int(info.ai_addrlen)))
                found.append(SocketAddress(family: info.ai_family, bytes: bytes,
                                           description: info.ai_family == AF_INET6 ? "[\(numericHost(address, info.ai_addrlen))]:\(port)"
                                                                                   : "\(numericHost(address, info.ai_addrlen)):\(port)"))
            }
            entry = info.ai_next
        }
        guard !found.isEmpty else { throw ResolutionError(host: host, message: "no IPv4 or IPv6 address") }
        return found
    }

    private static func numericHost(_ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { return "?" }
        return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A non-blocking, close-on-exec TCP socket of this address's family, without Nagle's delay
    /// (a client's frames are batched per loop turn already).
    public func makeSocket() throws(SystemError) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("socket") }
        Socket.disableNagle(fd)
        return fd
    }
}

/// A host name that did not resolve (getaddrinfo's message).
public struct ResolutionError: Error, Sendable, CustomStringConvertible {
    public let host: String
    public let message: String
    public var description: String { "cannot resolve \(host): \(message)" }
}
