// Unix-domain socket pairs: the bus between workers. SOCK_SEQPACKET keeps record boundaries, so a
// worker that dies mid-write can never leave half a record for the peer to misread.
#if canImport(Glibc)
import Glibc
#endif

/// socketpair(2) helpers.
public enum UnixSocket {
    /// A connected SOCK_SEQPACKET pair, close-on-exec, with send buffers raised to `bufferBytes`
    /// (the kernel caps it at net.core.wmem_max) so bursts of bus records do not stall.
    public static func seqpacketPair(bufferBytes: Int32 = 4 << 20) throws(SystemError) -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError.last("socketpair(AF_UNIX, SOCK_SEQPACKET)")
        }
        for fd in fds {
            var size = bufferBytes
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        return (fds[0], fds[1])
    }
}
