// What a listener delegate learns about an accepted connection without a syscall of its own: the
// peer's address comes with the accept, and TCP_NODELAY comes from the listener. On both backends,
// over real loopback connections from addresses the test chose.
import ShoalTestSupport
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

@Suite(.serialized) struct AcceptedPeerTests {
    private static func backend(_ name: String) throws -> any LoopBackend {
        name == "epoll" ? try EpollBackend() : try URingBackend()
    }

    @Test(arguments: ["io_uring", "epoll"])
    func anIPv4PeerComesWithItsAcceptAsAnIPv4MappedAddress(_ backendName: String) throws {
        let noDelay = Locked<[Int32]>([])
        let server = try LoopHarness(backend: Self.backend(backendName), configureAccepted: { fd in
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &length)
            noDelay.withLock { $0.append(value) }
        })
        defer { #expect(server.shutDown()) }
        // From two addresses of the loopback block other than 127.0.0.1, so a fixed answer cannot pass.
        for (source, expected) in [("127.0.0.5", UInt64(0xffff_7f00_0005)), ("127.1.2.250", 0xffff_7f01_02fa)] {
            let client = try connect(family: AF_INET, from: source, to: "127.0.0.1", port: server.port)
            defer { Glibc.close(client) }
            #expect(waitUntil { server.acceptedPeers.count == (source == "127.0.0.5" ? 1 : 2) })
            #expect(server.acceptedPeers.last == PeerAddress(high: 0, low: expected), "\(source)")
        }
        // No setsockopt per connection: the option the loop set on the listener is the connections'.
        #expect(noDelay.value == [1, 1])
    }

    @Test(arguments: ["io_uring", "epoll"])
    func anIPv6PeerComesWithItsAccept(_ backendName: String) throws {
        let server = try LoopHarness(backend: Self.backend(backendName), host: "::1")
        defer { #expect(server.shutDown()) }
        let client = try connect(family: AF_INET6, from: "::1", to: "::1", port: server.port)
        defer { Glibc.close(client) }
        #expect(waitUntil { server.acceptedPeers.count == 1 })
        #expect(server.acceptedPeers == [PeerAddress(high: 0, low: 1)])
    }

    @Test func readsTheAddressOfEitherFamilyFromASockaddr() {
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_addr.s_addr = inet_addr("192.0.2.33")
        #expect(withUnsafeBytes(of: &v4) { PeerAddress(sockaddr: $0.baseAddress!, length: $0.count) }
                == PeerAddress(high: 0, low: 0xffff_c000_0221))
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        _ = inet_pton(AF_INET6, "2001:db8::ff00:42:8329", &v6.sin6_addr)
        #expect(withUnsafeBytes(of: &v6) { PeerAddress(sockaddr: $0.baseAddress!, length: $0.count) }
                == PeerAddress(high: 0x2001_0db8_0000_0000, low: 0x0000_ff00_0042_8329))
        // A dual-stack listener reports an IPv4 client as ::ffff:a.b.c.d: the same bits as above.
        _ = inet_pton(AF_INET6, "::ffff:192.0.2.33", &v6.sin6_addr)
        #expect(withUnsafeBytes(of: &v6) { PeerAddress(sockaddr: $0.baseAddress!, length: $0.count) }
                == PeerAddress(high: 0, low: 0xffff_c000_0221))
        // Not IP, or cut short: not known.
        var unix = sockaddr_un()
        unix.sun_family = sa_family_t(AF_UNIX)
        #expect(withUnsafeBytes(of: &unix) { PeerAddress(sockaddr: $0.baseAddress!, length: $0.count) } == .unknown)
        #expect(withUnsafeBytes(of: &v4) { PeerAddress(sockaddr: $0.baseAddress!, length: 4) } == .unknown)
    }

    /// A blocking TCP socket bound to `source`, connected to `destination`:`port`.
    private func connect(family: Int32, from source: String, to destination: String, port: Int) throws -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("socket") }
        func call(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32, host: String, port: Int) -> Int32 {
            if family == AF_INET {
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(port).bigEndian)
                address.sin_addr.s_addr = inet_addr(host)
                return withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            _ = inet_pton(AF_INET6, host, &address.sin6_addr)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        guard call({ bind(fd, $0, $1) }, host: source, port: 0) == 0 else {
            Glibc.close(fd)
            throw SystemError.last("bind(\(source))")
        }
        guard call({ Glibc.connect(fd, $0, $1) }, host: destination, port: port) == 0 else {
            Glibc.close(fd)
            throw SystemError.last("connect(\(destination))")
        }
        return fd
    }
}
