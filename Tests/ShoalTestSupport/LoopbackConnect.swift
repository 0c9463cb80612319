// A blocking connect to 127.0.0.1 for test clients that survives signals: the test process gets
// SIGCHLD and friends from servers other tests run, and a blocking connect interrupted by one
// (EINTR) keeps connecting in the background, so it is finished with poll + SO_ERROR, not retried.
import Glibc

/// Connects `fd` to 127.0.0.1:`port`. Returns 0, or -1 with errno set.
public func connectToLoopback(_ fd: Int32, port: Int) -> Int32 {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc != 0, errno == EINTR else { return rc }
    var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
    var polled: Int32
    repeat { polled = poll(&ready, 1, 10_000) } while polled < 0 && errno == EINTR
    guard polled == 1 else {
        errno = polled == 0 ? ETIMEDOUT : errno
        return -1
    }
    var error: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { return -1 }
    if error != 0 {
        errno = error
        return -1
    }
    return 0
}
