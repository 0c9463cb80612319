// The address of an accepted connection's peer, taken from the sockaddr accept(2) filled in: the
// same 128 bits for the same client whatever the listener's family, with no text in between.
#if canImport(Glibc)
import Glibc
#endif
import CShoalSystem

/// An accepted connection's peer address: 128 bits, most significant first, an IPv4 address in its
/// IPv4-mapped IPv6 form (::ffff:a.b.c.d), as a dual-stack socket reports it (and as ShoalWire's
/// IPAddress keeps it). All zeros (::, which no TCP peer has) stands for "not known".
public struct PeerAddress: Hashable, Sendable {
    public let high: UInt64
    public let low: UInt64

    /// No address: the backend did not report one (a simulated socket), or the family is not IP.
    public static let unknown = PeerAddress(high: 0, low: 0)

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The address in a `sockaddr_in` or `sockaddr_in6` of `length` bytes; unknown for anything else.
    public init(sockaddr address: UnsafeRawPointer, length: Int) {
        let family = Int32(address.loadUnaligned(as: sa_family_t.self))
        if family == AF_INET, length >= MemoryLayout<sockaddr_in>.size {
            let v4 = address.loadUnaligned(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!, as: UInt32.self)
            self.init(high: 0, low: 0xffff << 32 | UInt64(UInt32(bigEndian: v4)))
        } else if family == AF_INET6, length >= MemoryLayout<sockaddr_in6>.size {
            let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
            self.init(high: UInt64(bigEndian: address.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
                      low: UInt64(bigEndian: address.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)))
        } else {
            self = .unknown
        }
    }
}

extension Socket {
    /// accept4(2) of one connection from `listener`, non-blocking and close-on-exec, with its peer's
    /// address: the new descriptor, or -1 with errno set (nothing queued: EAGAIN).
    public static func accept(_ listener: Int32, peer: inout PeerAddress) -> Int32 {
        var storage = sockaddr_storage()
        var length = UInt32(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutableBytes(of: &storage) {
            shoal_accept4(listener, $0.baseAddress, &length, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
        }
        if fd >= 0 { peer = withUnsafeBytes(of: &storage) { PeerAddress(sockaddr: $0.baseAddress!, length: Int(length)) } }
        return fd
    }
}
