// The server under test: a ws:// URL resolved once to a socket address, plus the Host header and
// path the opening handshake sends. TLS (wss://) is out of scope: the bench measures servers, not TLS.
import Glibc
import ShoalPosix
import ShoalWire

/// Where the connections go.
struct Target {
    let url: String
    let host: String
    let port: Int
    let path: String
    /// The Host header: host[:port] as the URL spelled it.
    let hostHeader: String
    /// The resolved address (IPv4 or IPv6).
    let address: sockaddr_storage
    let addressLength: socklen_t
    let family: Int32
    /// True for 127.x.y.z: only then can connections come from other 127.0.0.x source addresses.
    let isLoopbackIPv4: Bool

    struct InvalidURL: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses `ws://host[:port][/path]` and resolves host (numeric or by name) to its first address.
    init(url: String) throws(InvalidURL) {
        self.url = url
        let parsed: WebSocketURL
        do {
            parsed = try WebSocketURL(url)
        } catch {
            throw InvalidURL(description: error.description)
        }
        guard !parsed.secure else {
            throw InvalidURL(description: "wss:// is not supported: shoal-bench measures servers without TLS (\(url))")
        }
        host = parsed.host
        port = parsed.port
        path = parsed.target
        hostHeader = parsed.authority

        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let info = list else {
            throw InvalidURL(description: "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen)))
        }
        address = storage
        addressLength = info.pointee.ai_addrlen
        family = info.pointee.ai_family
        if family == AF_INET {
            let ip = withUnsafeBytes(of: storage) { $0.load(fromByteOffset: 4, as: UInt32.self) }
            isLoopbackIPv4 = UInt32(bigEndian: ip) >> 24 == 127
        } else {
            isLoopbackIPv4 = false
        }
    }
}

/// Synchronous socket set-up for client connections (the loop takes over once connected).
enum Connector {
    /// IP_BIND_ADDRESS_NO_PORT (linux/in.h): bind the source address now, pick the port at connect
    /// time, so each source address offers the whole ephemeral range to every destination.
    private static let bindAddressNoPort: Int32 = 24

    /// Opens a TCP connection to `target`, blocking until the kernel finished the three-way handshake
    /// (microseconds on loopback), then makes the socket non-blocking with TCP_NODELAY.
    /// `source` is an IPv4 address in network order to connect from (127.0.0.x for `idle`).
    static func connect(to target: Target, source: UInt32? = nil) throws(SystemError) -> Int32 {
        let fd = socket(target.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("socket") }
        do throws(SystemError) {
            if let source {
                try Socket.setOption(fd, Int32(IPPROTO_IP), bindAddressNoPort, 1, "setsockopt(IP_BIND_ADDRESS_NO_PORT)")
                var local = sockaddr_in()
                local.sin_family = sa_family_t(AF_INET)
                local.sin_addr.s_addr = source
                let rc = withUnsafePointer(to: &local) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard rc == 0 else { throw SystemError.last("bind(source address)") }
            }
            var address = target.address
            _ = try retryingOnInterrupt("connect(\(target.host):\(target.port))") {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, target.addressLength) }
                }
            }
            try Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)")
            let flags = fcntl(fd, F_GETFL)
            guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw SystemError.last("fcntl(O_NONBLOCK)") }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// 127.0.0.(1+i) in network order, for i in 0..<count.
    static func loopbackSources(count: Int) -> [UInt32] {
        (0..<count).map { UInt32(0x7F00_0001 + $0).bigEndian }
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force.
    static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
    }
}
