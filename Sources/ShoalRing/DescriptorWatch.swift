// Readiness of a descriptor whose I/O a library does itself (hiredis' async API asks "tell me when
// this socket is readable / writable" and then reads and writes it on its own). The loop polls a
// duplicate of the library's descriptor with one-shot polls (io_uring poll, or EPOLLIN/EPOLLOUT on
// the epoll fallback), so the library may close its own descriptor at any time: the duplicate keeps
// the socket's file alive until our polls are cancelled and completed, then the loop closes it.

/// One watched descriptor. Created with `EventLoop.watch(descriptor:onReady:)`; used on the loop thread.
///
/// Ownership: `descriptor` (the duplicate) belongs to the loop from `watch` until the last poll on it
/// completed after `stop()`; the caller's original descriptor stays the caller's.
public final class DescriptorWatch {
    /// The loop's duplicate of the watched descriptor.
    public let descriptor: Int32
    /// Call `onReady` when the descriptor is readable (the interest stays until cleared).
    public var wantsRead = false { didSet { arm() } }
    /// Call `onReady` when the descriptor is writable (the interest stays until cleared).
    public var wantsWrite = false { didSet { arm() } }
    /// False once `stop()` was called.
    public private(set) var isActive = true

    unowned let loop: EventLoop
    let index: UInt32
    private var onReady: ((_ readable: Bool, _ writable: Bool) -> Void)?
    private var readArmed = false
    private var writeArmed = false
    private var cancelPending = false

    /// Direction of a poll in its tag's generation field.
    static let readPoll: UInt32 = 0
    static let writePoll: UInt32 = 1
    static let cancelled: UInt32 = 2

    init(descriptor: Int32, loop: EventLoop, index: UInt32, onReady: @escaping (Bool, Bool) -> Void) {
        self.descriptor = descriptor
        self.loop = loop
        self.index = index
        self.onReady = onReady
    }

    /// Stops watching: no more `onReady`; the duplicate is closed once no poll holds it.
    public func stop() {
        guard isActive else { return }
        isActive = false
        onReady = nil
        wantsRead = false
        wantsWrite = false
        if readArmed || writeArmed {
            cancelPending = true
            loop.backend.prepareCancel(socket: descriptor, userData: UserData(.poll, generation: Self.cancelled, index: index).raw)
        } else {
            finish()
        }
    }

    /// A poll (or the cancel) of this watch completed.
    func completed(kind: UInt32, result: Int32) {
        switch kind {
        case Self.readPoll: readArmed = false
        case Self.writePoll: writeArmed = false
        default: cancelPending = false
        }
        guard isActive else {
            if !readArmed && !writeArmed && !cancelPending { finish() }
            return
        }
        // An error or hang-up (a negative result on the epoll fallback) counts as ready: the
        // library's own read or write then meets it and reports it.
        let readable = kind == Self.readPoll && wantsRead
        let writable = kind == Self.writePoll && wantsWrite
        if readable || writable { onReady?(readable, writable) }
        if isActive { arm() }
    }

    /// Puts a poll in flight for every interest that has none.
    private func arm() {
        guard isActive else { return }
        if wantsRead && !readArmed {
            readArmed = true
            loop.backend.preparePoll(descriptor: descriptor, writable: false, userData: UserData(.poll, generation: Self.readPoll, index: index).raw)
        }
        if wantsWrite && !writeArmed {
            writeArmed = true
            loop.backend.preparePoll(descriptor: descriptor, writable: true, userData: UserData(.poll, generation: Self.writePoll, index: index).raw)
        }
    }

    private func finish() {
        loop.backend.closeSocket(descriptor)
        loop.watchFinished(index)
    }
}
