// How the loop talks to the layer above it (HTTP, WebSocket): a listener delegate decides what
// to do with accepted sockets, a socket delegate gets bytes, timer events and the final close.
public import ShoalPosix

/// A socket registered with a loop: its slot index plus the slot's generation, so a handle kept
/// after the socket closed can never act on the next socket that reuses the slot.
public struct SocketHandle: Hashable, Sendable {
    public let index: UInt32
    public let generation: UInt32

    /// A handle; one that the loop did not hand out names no socket and every call with it is ignored.
    public init(index: UInt32, generation: UInt32) {
        self.index = index
        self.generation = generation
    }
}

/// Receives accepted connections of a listener.
public protocol ListenerDelegate: AnyObject {
    /// A new connection from `peer` (as accept(2) reported it; `.unknown` when the backend had no
    /// address to give); return its delegate, or nil to close it at once.
    func accepted(socket fd: Int32, peer: PeerAddress, on loop: EventLoop) -> (any SocketDelegate)?
    /// Accepting failed with `error` (an errno: EMFILE, ENFILE, ...); the loop retries after a pause.
    func acceptFailed(error: Int32, on loop: EventLoop)
}

extension ListenerDelegate {
    public func acceptFailed(error: Int32, on loop: EventLoop) {}
}

/// Events of one socket. All calls happen on the loop thread.
public protocol SocketDelegate: AnyObject {
    /// The socket was registered; `handle` names it from now on.
    func opened(on handle: SocketHandle)
    /// Bytes arrived. `bytes` is the loop's receive buffer and is valid only during the call;
    /// the delegate may modify it (unmask in place) and must copy what it keeps.
    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle)
    /// The peer ended its side of the stream (EOF) or the connection failed (`error` is the errno).
    func readEnded(on handle: SocketHandle, error: Int32?)
    /// A timer set with `EventLoop.setTimer(_:after:kind:)` fired.
    func timerFired(on handle: SocketHandle, kind: UInt8)
    /// Everything queued for sending was taken by the kernel.
    func drained(on handle: SocketHandle)
    /// The socket is closed and its handle is dead; the last call for this handle.
    func closed(on handle: SocketHandle)
}

extension SocketDelegate {
    public func opened(on handle: SocketHandle) {}
    public func timerFired(on handle: SocketHandle, kind: UInt8) {}
    public func drained(on handle: SocketHandle) {}
}
