// The contract every I/O backend of the event loop implements (io_uring today, epoll as the
// fallback). It is completion-shaped: the loop prepares operations, submits them once per
// turn, then consumes completions. A readiness backend emulates completions behind it.
public import ShoalPosix

/// One finished operation, as the backend reports it.
public struct Completion: Sendable {
    /// The tag the loop gave the operation (see `UserData`).
    public var userData: UInt64
    /// Bytes transferred, a new descriptor (accept), 0 for end of stream, or a negated errno.
    public var result: Int32
    /// The operation stays armed and will complete again (multishot accept and receive).
    public var hasMore: Bool
    /// For receive completions: the provided buffer holding the bytes.
    public var bufferID: UInt16?
    /// For accept completions: the new connection's peer, as accept(2) reported it (unknown when
    /// the backend has no address to give, e.g. a simulated socket).
    public var peer: PeerAddress

    public init(userData: UInt64, result: Int32, hasMore: Bool, bufferID: UInt16?, peer: PeerAddress = .unknown) {
        self.userData = userData
        self.result = result
        self.hasMore = hasMore
        self.bufferID = bufferID
        self.peer = peer
    }
}

/// What an event-loop backend must implement. Operations are only *prepared* by the `prepare*`
/// calls; nothing reaches the kernel before `submitAndWait`, so one loop turn costs one syscall.
///
/// Ownership: memory passed to `prepareSend`/`prepareRead` belongs to the kernel until that
/// operation's completion has been drained. Receive buffers belong to the loop from the completion
/// until `recycle(bufferID:)`.
public protocol LoopBackend: AnyObject {
    /// Short name for logs ("io_uring", "epoll").
    var name: String { get }
    /// Arms a multishot accept on a listening socket: each completion carries a new descriptor
    /// (io_uring implements it as a readiness poll plus accept4, see URingBackend).
    func prepareAccept(listener: Int32, userData: UInt64)
    /// Arms a multishot receive into provided buffers.
    func prepareReceive(socket: Int32, userData: UInt64)
    /// Sends `bytes` (a single attempt; the completion says how many went out).
    func prepareSend(socket: Int32, bytes: UnsafeRawBufferPointer, userData: UInt64)
    /// Connects the non-blocking `socket` to the sockaddr in `address` (an outbound client); the
    /// completion's result is 0 once connected, or a negated errno (-ECONNREFUSED, -ECANCELED...).
    /// `address` belongs to the kernel until that completion was drained.
    func prepareConnect(socket: Int32, address: UnsafeRawBufferPointer, userData: UInt64)
    /// One read into caller-owned memory (used for the loop's eventfd).
    func prepareRead(descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64)
    /// A one-shot readiness wait on a descriptor the loop does not read or write itself (a client
    /// library's socket, e.g. hiredis): completes with a non-negative result once it is readable
    /// (`writable` false) or writable (`writable` true), or has an error or hang-up, which the
    /// library then finds on its own call. At most one of each direction pending per descriptor.
    func preparePoll(descriptor: Int32, writable: Bool, userData: UInt64)
    /// Asks the kernel to cancel every operation on `socket` (it then completes with -ECANCELED).
    func prepareCancel(socket: Int32, userData: UInt64)
    /// Cancels only the receive tagged `receiveUserData` on `socket` (it completes with -ECANCELED
    /// and no more; bytes already received may still complete before it). Sends are untouched.
    func prepareCancelReceive(socket: Int32, receiveUserData: UInt64, userData: UInt64)
    /// Cancels what a connected socket may have in flight, its receive and its send, found by their
    /// tags; each then completes (-ECANCELED, or on its own if it was ending anyway).
    func prepareCancelOperations(socket: Int32, receiveUserData: UInt64, sendUserData: UInt64, userData: UInt64)
    /// shutdown(2) of a socket the loop owns.
    func shutdownSocket(_ fd: Int32, read: Bool, write: Bool)
    /// close(2) of a socket the loop owns, once no operation is pending on it. Through the backend,
    /// so a backend that plays the kernel in tests sees every close.
    func closeSocket(_ fd: Int32)
    /// Submits everything prepared and waits for at least one completion or the timeout.
    func submitAndWait(timeoutNanoseconds: Int64?) throws(SystemError)
    /// Calls `body` for the completions ready now, at most `limit` of them; the rest stay, in
    /// order, for the next call, and the next `submitAndWait` does not wait while any are left.
    func drainCompletions(limit: Int, _ body: (Completion) -> Void)
    /// The bytes of a receive completion, valid until `recycle(bufferID:)`.
    func receivedBytes(bufferID: UInt16, count: Int) -> UnsafeMutableRawBufferPointer
    /// Gives a receive buffer back to the kernel.
    func recycle(bufferID: UInt16)
    /// Releases the backend's kernel objects; no call may follow.
    func shutdown()
    /// Hands the memory of idle receive buffers back to the kernel when the backend can do so
    /// safely (a burst is over); a hint, done at the backend's next safe moment or not at all.
    func releaseIdleReceiveBuffers()
}

extension LoopBackend {
    /// Backends whose receive memory needs no trimming do nothing.
    public func releaseIdleReceiveBuffers() {}

    /// Where a cancel by descriptor costs no more than by tag (epoll, the test backends).
    public func prepareCancelOperations(socket: Int32, receiveUserData: UInt64, sendUserData: UInt64, userData: UInt64) {
        prepareCancel(socket: socket, userData: userData)
    }
}
