// Outbound connections (a WebSocket client on the loop): the loop makes the socket, the backend
// connects it (io_uring's connect, or a non-blocking connect finished on EPOLLOUT), and once
// connected the socket is registered like an accepted one, its delegate told `opened(on:)`.
import Glibc
public import ShoalPosix

/// Told how an outbound connect ended: `opened(on:)` (the socket is registered) or `connectFailed`.
public protocol ConnectDelegate: SocketDelegate {
    /// The connect failed with `error` (an errno: ECONNREFUSED, ETIMEDOUT, ECANCELED after
    /// `cancelConnect`...); no handle was ever given.
    func connectFailed(error: Int32)
}

/// An outbound connect in flight, to cancel it.
public struct ConnectHandle: Hashable, Sendable {
    let index: UInt32
}

/// The connects in flight of one loop: their socket, the address the kernel reads until the
/// connect completes, and their delegate.
final class PendingConnects {
    struct Entry {
        let fd: Int32
        let address: UnsafeMutableRawBufferPointer
        let delegate: any ConnectDelegate
    }

    private var entries: [UInt32: Entry] = [:]
    private var nextIndex: UInt32 = 0

    func add(_ entry: Entry) -> UInt32 {
        while entries[nextIndex] != nil { nextIndex &+= 1 }
        entries[nextIndex] = entry
        defer { nextIndex &+= 1 }
        return nextIndex
    }

    func socket(of index: UInt32) -> Int32? { entries[index]?.fd }

    func take(_ index: UInt32) -> Entry? { entries.removeValue(forKey: index) }

    func takeAll() -> [Entry] {
        defer { entries.removeAll() }
        return Array(entries.values)
    }
}

extension EventLoop {
    /// Connects to `address` on the loop thread. The delegate gets `opened(on:)` with the new
    /// socket's handle once connected, or `connectFailed(error:)` (at the next turn when even the
    /// socket could not be made). Returns a handle to cancel the connect with.
    @discardableResult
    public func connect(to address: SocketAddress, delegate: any ConnectDelegate) -> ConnectHandle? {
        let fd: Int32
        do {
            fd = try address.makeSocket()
        } catch {
            let code = error.errno
            schedule(after: 0) { delegate.connectFailed(error: code) }
            return nil
        }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: address.bytes.count, alignment: 16)
        storage.copyBytes(from: address.bytes)
        let index = connects.add(PendingConnects.Entry(fd: fd, address: storage, delegate: delegate))
        backend.prepareConnect(socket: fd, address: UnsafeRawBufferPointer(storage), userData: UserData(.connect, index: index).raw)
        return ConnectHandle(index: index)
    }

    /// Cancels a connect still in flight: its delegate gets `connectFailed(error: ECANCELED)`.
    /// Does nothing once the connect completed.
    public func cancelConnect(_ handle: ConnectHandle) {
        guard let fd = connects.socket(of: handle.index) else { return }
        backend.prepareCancel(socket: fd, userData: UserData(.cancel, index: 0).raw)
    }

    func completeConnect(_ tag: UserData, _ completion: Completion) {
        guard let entry = connects.take(tag.index) else { return }
        entry.address.deallocate()
        // -EISCONN: kernels before 6.2 may retry an io_uring connect on a non-blocking socket once it
        // connected and report that instead of 0.
        if completion.result >= 0 || completion.result == -EISCONN {
            register(socket: entry.fd, delegate: entry.delegate)
        } else {
            backend.closeSocket(entry.fd)
            entry.delegate.connectFailed(error: -completion.result)
        }
    }

    /// At shutdown: connects still in flight end unanswered (the backend's kernel objects go too).
    func abandonConnects() {
        for entry in connects.takeAll() {
            backend.closeSocket(entry.fd)
            entry.address.deallocate()
        }
    }
}
