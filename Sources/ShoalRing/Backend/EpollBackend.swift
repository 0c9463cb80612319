// The epoll backend: the fallback for hosts where io_uring cannot be set up (DESIGN.md, "Process
// model"). It emulates the completion semantics of `URingBackend` on a readiness API, so
// `EventLoop` and everything above it run unchanged (STYLE.md §4, monoio's "legacy" driver):
//
//   multishot accept   on EPOLLIN of the listener, accept4 until EAGAIN (bounded per turn), one
//                      completion per descriptor with hasMore; a real error (EMFILE…) ends it.
//   multishot receive  on EPOLLIN, recv into a free buffer of the backend's own pool, one
//                      completion per read with hasMore and the buffer id; EOF, an error or an
//                      empty pool (-ENOBUFS) ends it (hasMore false), as with a provided-buffer ring.
//   send               tried at once in `submitAndWait`; on EAGAIN it waits for EPOLLOUT.
//   read               (the loop's eventfd) on EPOLLIN, one read, one completion.
//   poll               (a library's own socket) on EPOLLIN or EPOLLOUT, one completion, no I/O.
//   connect            connect(2) at once; when it is in progress, on EPOLLOUT the socket's
//                      SO_ERROR is the completion's result (0: connected).
//   cancel             every pending operation of the descriptor completes with -ECANCELED and
//                      the descriptor leaves the epoll set; the cancel completes with 0.
//   cancel receive     only the pending receive completes with -ECANCELED (-ENOENT if none).
//
// Level-triggered, not edge-triggered: a socket that still has bytes after its bounded reads of
// this turn is simply reported again by the next epoll_wait, which gives fairness between sockets
// without a ready list of our own. It never spins, because a descriptor is only in the epoll set
// with the interests of operations that are pending on it (no pending operation, no registration),
// so an EOF'd socket or one without a free buffer is not reported again until the loop re-arms it.
// Registration changes are batched per turn; in steady state (receive armed, sends succeeding at
// once) a turn costs one epoll_wait plus the recv/send calls themselves.
//
// Every syscall goes through one of the small helpers at the end of the file, which retry EINTR
// (epoll_wait returns instead, so the time left to the deadline is recomputed).
// Nothing is allocated per event in steady state: the epoll_event array, the completion array and
// the list of prepared operations are allocated once and reused; per-descriptor state lives in an
// array indexed by descriptor that only grows when a higher descriptor number shows up.
import CShoalSystem
import Glibc
import ShoalPosix

/// Sizes of the epoll backend's receive pool and batches. The pool defaults to the io_uring
/// backend's provided-buffer ring (`URingConfiguration`), so both backends use the same memory.
public struct EpollConfiguration: Sendable {
    /// Receive buffers in the pool (at most 65536: ids are 16 bits).
    public var receiveBufferCount: Int = URingConfiguration().receiveBufferCount
    /// Bytes per receive buffer.
    public var receiveBufferSize: Int = URingConfiguration().receiveBufferSize
    /// Events taken from the kernel per epoll_wait.
    public var eventsPerWait: Int = 256
    /// At most this many reads per socket per turn (fairness between busy sockets). A socket with
    /// more bytes waiting is reported again by the next epoll_wait (level-triggered).
    public var readsPerSocketPerTurn: Int = 4
    /// At most this many accept4 calls per listener per turn; the rest of the backlog next turn.
    public var acceptsPerTurn: Int = 256

    public init() {}

    /// The receive pool of an io_uring configuration (same buffer count and size).
    public init(matching uring: URingConfiguration) {
        receiveBufferCount = uring.receiveBufferCount
        receiveBufferSize = uring.receiveBufferSize
    }
}

/// `LoopBackend` on epoll, emulating io_uring's completions (see the top of the file).
///
/// At most one operation of each kind (accept, receive, send, read) may be pending per descriptor,
/// which is how `EventLoop` uses a backend; a second one completes at once with -EBUSY. A
/// descriptor must not be closed while an operation is pending on it (cancel first, as the loop does).
public final class EpollBackend: LoopBackend {
    public let name = "epoll"

    /// What is pending on one descriptor, and what the kernel knows of it.
    ///
    /// Every open socket has one, idle clients included, so which operations are pending is one
    /// byte of flags (`pending`) beside plain fields, instead of seven Optionals each padded to 16 or
    /// 32 bytes: 96 bytes a descriptor instead of 152. The properties below read and
    /// write them as Optionals (nil: not pending).
    private struct Descriptor {
        private struct Kinds: OptionSet {
            let rawValue: UInt8
            static let accept = Kinds(rawValue: 1 << 0)
            static let receive = Kinds(rawValue: 1 << 1)
            static let send = Kinds(rawValue: 1 << 2)
            static let read = Kinds(rawValue: 1 << 3)
            static let pollIn = Kinds(rawValue: 1 << 4)
            static let pollOut = Kinds(rawValue: 1 << 5)
            static let connect = Kinds(rawValue: 1 << 6)
        }

        private var acceptUserData: UInt64 = 0
        private var receiveUserData: UInt64 = 0
        private var pollInUserData: UInt64 = 0
        private var pollOutUserData: UInt64 = 0
        private var connectUserData: UInt64 = 0
        private var sendOperation: (userData: UInt64, bytes: UnsafeRawBufferPointer) =
            (0, UnsafeRawBufferPointer(start: nil, count: 0))
        private var readOperation: (userData: UInt64, buffer: UnsafeMutableRawBufferPointer) =
            (0, UnsafeMutableRawBufferPointer(start: nil, count: 0))
        /// Interest registered in the epoll set; 0 when the descriptor is not in it.
        var registered: UInt32 = 0
        /// On `dirtyList`: the registration may no longer match the pending operations.
        var dirty = false
        /// The kinds whose field above holds a pending operation.
        private var pending: Kinds = []

        var accept: UInt64? { get { self[.accept, \.acceptUserData] } set { self[.accept, \.acceptUserData] = newValue } }
        var receive: UInt64? { get { self[.receive, \.receiveUserData] } set { self[.receive, \.receiveUserData] = newValue } }
        var send: (userData: UInt64, bytes: UnsafeRawBufferPointer)? {
            get { self[.send, \.sendOperation] } set { self[.send, \.sendOperation] = newValue }
        }
        var read: (userData: UInt64, buffer: UnsafeMutableRawBufferPointer)? {
            get { self[.read, \.readOperation] } set { self[.read, \.readOperation] = newValue }
        }
        var pollIn: UInt64? { get { self[.pollIn, \.pollInUserData] } set { self[.pollIn, \.pollInUserData] = newValue } }
        var pollOut: UInt64? { get { self[.pollOut, \.pollOutUserData] } set { self[.pollOut, \.pollOutUserData] = newValue } }
        var connect: UInt64? { get { self[.connect, \.connectUserData] } set { self[.connect, \.connectUserData] = newValue } }

        /// The operation of `kind` kept in `field` if one is pending; setting nil ends it.
        private subscript<Value>(kind: Kinds, field: WritableKeyPath<Descriptor, Value>) -> Value? {
            get { pending.contains(kind) ? self[keyPath: field] : nil }
            set {
                if let newValue {
                    self[keyPath: field] = newValue
                    pending.insert(kind)
                } else {
                    pending.remove(kind)
                }
            }
        }

        /// The interest the pending operations need.
        var wanted: UInt32 {
            (pending.isDisjoint(with: [.accept, .receive, .read, .pollIn]) ? 0 : EpollBackend.readable)
                | (pending.isDisjoint(with: [.send, .pollOut, .connect]) ? 0 : EpollBackend.writable)
        }
    }

    /// Bytes each descriptor number takes in the table (for the size test).
    static var descriptorStride: Int { MemoryLayout<Descriptor>.stride }

    /// An operation prepared by the loop, run by the next `submitAndWait` (in order).
    private enum Prepared {
        case accept(fd: Int32, userData: UInt64)
        case receive(fd: Int32, userData: UInt64)
        case send(fd: Int32, bytes: UnsafeRawBufferPointer, userData: UInt64)
        case read(fd: Int32, buffer: UnsafeMutableRawBufferPointer, userData: UInt64)
        case poll(fd: Int32, writable: Bool, userData: UInt64)
        case cancel(fd: Int32, userData: UInt64)
        case connect(fd: Int32, address: UnsafeRawBufferPointer, userData: UInt64)
        case cancelReceive(fd: Int32, receiveUserData: UInt64, userData: UInt64)
    }

    private static let readable = shoal_epollin()
    private static let writable = shoal_epollout()
    private static let failed = shoal_epollerr() | shoal_epollhup()

    private let configuration: EpollConfiguration
    private let epoll: Int32
    private let events: UnsafeMutableRawPointer
    private let pool: ReceiveBufferPool
    private var descriptors: ContiguousArray<Descriptor> = []
    private var dirtyList: [Int32] = []
    private var prepared: [Prepared] = []
    private var completions: [Completion] = []
    /// Completions before this index were delivered; the rest wait for the next drain.
    private var completionsDelivered = 0

    public init(configuration: EpollConfiguration = .init()) throws(SystemError) {
        precondition(configuration.eventsPerWait > 0 && configuration.readsPerSocketPerTurn > 0
                     && configuration.acceptsPerTurn > 0, "epoll batch sizes must be positive")
        self.configuration = configuration
        pool = try ReceiveBufferPool(count: configuration.receiveBufferCount, bufferSize: configuration.receiveBufferSize)
        let fd = shoal_epoll_create1(shoal_epoll_cloexec())
        guard fd >= 0 else {
            let error = SystemError.last("epoll_create1")
            pool.release()
            throw error
        }
        epoll = fd
        events = .allocate(byteCount: configuration.eventsPerWait * shoal_epoll_event_size(), alignment: 8)
        descriptors.reserveCapacity(1024)
        dirtyList.reserveCapacity(256)
        prepared.reserveCapacity(256)
        completions.reserveCapacity(configuration.eventsPerWait * configuration.readsPerSocketPerTurn)
    }

    // MARK: Preparing (nothing reaches the kernel before submitAndWait)

    public func prepareAccept(listener: Int32, userData: UInt64) {
        prepared.append(.accept(fd: listener, userData: userData))
    }

    public func prepareReceive(socket: Int32, userData: UInt64) {
        prepared.append(.receive(fd: socket, userData: userData))
    }

    public func prepareSend(socket: Int32, bytes: UnsafeRawBufferPointer, userData: UInt64) {
        prepared.append(.send(fd: socket, bytes: bytes, userData: userData))
    }

    public func prepareRead(descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) {
        prepared.append(.read(fd: descriptor, buffer: buffer, userData: userData))
    }

    public func preparePoll(descriptor: Int32, writable: Bool, userData: UInt64) {
        prepared.append(.poll(fd: descriptor, writable: writable, userData: userData))
    }

    public func prepareConnect(socket: Int32, address: UnsafeRawBufferPointer, userData: UInt64) {
        prepared.append(.connect(fd: socket, address: address, userData: userData))
    }

    public func prepareCancel(socket: Int32, userData: UInt64) {
        prepared.append(.cancel(fd: socket, userData: userData))
    }

    public func prepareCancelReceive(socket: Int32, receiveUserData: UInt64, userData: UInt64) {
        prepared.append(.cancelReceive(fd: socket, receiveUserData: receiveUserData, userData: userData))
    }

    public func shutdownSocket(_ fd: Int32, read: Bool, write: Bool) {
        Socket.shutdown(fd, read: read, write: write)
    }

    public func closeSocket(_ fd: Int32) {
        Socket.close(fd)
    }

    // MARK: Running

    /// Runs the prepared operations (sends are tried at once), brings the epoll set up to date,
    /// then waits for readiness and performs the operations it allows, until at least one
    /// completion is ready or the timeout passed (nil: no timeout).
    public func submitAndWait(timeoutNanoseconds: Int64?) throws(SystemError) {
        // Saturating: a timeout as long as Int64 allows must not wrap into the past.
        let deadline = timeoutNanoseconds.map { EventLoop.deadline(after: UInt64(max(0, $0)), from: EventLoop.monotonicNanoseconds()) }
        runPrepared()
        while true {
            updateRegistrations(removalsOnly: false)
            var timeout: Int32 = -1
            if !completions.isEmpty {
                timeout = 0
            } else if let deadline {
                let now = EventLoop.monotonicNanoseconds()
                // Rounded up: waking before the deadline would only make the loop spin until it.
                timeout = deadline > now ? Int32(clamping: (deadline - now + 999_999) / 1_000_000) : 0
            }
            let count = try wait(timeoutMilliseconds: timeout)
            for i in 0..<count {
                let fd = Int32(truncatingIfNeeded: shoal_epoll_event_data(events, Int32(i)))
                perform(fd: fd, events: shoal_epoll_event_events(events, Int32(i)))
            }
            if !completions.isEmpty || timeout == 0 { break }
            if let deadline, EventLoop.monotonicNanoseconds() >= deadline { break }
            // Only spurious readiness (EAGAIN): wait again.
        }
        // A descriptor whose last operation finished leaves the epoll set now, before the loop
        // can close it and reuse its number; narrower interests wait for the next turn, when the
        // loop has probably re-armed the same operation.
        updateRegistrations(removalsOnly: true)
    }

    public func drainCompletions(limit: Int, _ body: (Completion) -> Void) {
        // `body` may prepare operations and recycle buffers, never add completions.
        let end = completionsDelivered + min(limit, completions.count - completionsDelivered)
        while completionsDelivered < end {
            body(completions[completionsDelivered])
            completionsDelivered += 1
        }
        if completionsDelivered == completions.count {
            completions.removeAll(keepingCapacity: true)
            completionsDelivered = 0
        }
    }

    public func receivedBytes(bufferID: UInt16, count: Int) -> UnsafeMutableRawBufferPointer {
        pool.bytes(id: bufferID, count: count)
    }

    public func recycle(bufferID: UInt16) {
        pool.give(bufferID)
    }

    public func shutdown() {
        _ = Glibc.close(epoll)
        events.deallocate()
        pool.release()
    }

    // MARK: Operations

    private func runPrepared() {
        guard !prepared.isEmpty else { return }
        var i = 0
        while i < prepared.count {
            let operation = prepared[i]
            i += 1
            switch operation {
            case .accept(let fd, let userData):
                guard claim(fd, userData, \.accept) else { continue }
                descriptors[Int(fd)].accept = userData
                markDirty(fd)
            case .receive(let fd, let userData):
                guard claim(fd, userData, \.receive) else { continue }
                descriptors[Int(fd)].receive = userData
                markDirty(fd)
            case .read(let fd, let buffer, let userData):
                guard claim(fd, userData, \.read) else { continue }
                descriptors[Int(fd)].read = (userData, buffer)
                markDirty(fd)
            case .poll(let fd, let writable, let userData):
                guard claim(fd, userData, writable ? \.pollOut : \.pollIn) else { continue }
                if writable { descriptors[Int(fd)].pollOut = userData } else { descriptors[Int(fd)].pollIn = userData }
                markDirty(fd)
            case .send(let fd, let bytes, let userData):
                guard claim(fd, userData, \.send) else { continue }
                descriptors[Int(fd)].send = (userData, bytes)
                performSend(fd)
            case .connect(let fd, let address, let userData):
                guard claim(fd, userData, \.connect) else { continue }
                let result = startConnect(fd, address)
                if result == -EINPROGRESS {
                    descriptors[Int(fd)].connect = userData
                    markDirty(fd)
                } else {
                    complete(userData, result)
                }
            case .cancel(let fd, let userData):
                cancelAll(fd)
                complete(userData, 0)
            case .cancelReceive(let fd, let receiveUserData, let userData):
                let found = fd >= 0 && Int(fd) < descriptors.count && descriptors[Int(fd)].receive == receiveUserData
                if found { endReceive(fd, receiveUserData, -ECANCELED) }
                complete(userData, found ? 0 : -ENOENT)
            }
        }
        prepared.removeAll(keepingCapacity: true)
    }

    /// Makes room for `fd` and checks that no operation of the same kind is pending on it;
    /// otherwise completes the new operation at once (-EBADF, -EBUSY) and returns false.
    private func claim<Pending>(_ fd: Int32, _ userData: UInt64, _ kind: KeyPath<Descriptor, Pending?>) -> Bool {
        guard fd >= 0 else {
            complete(userData, -EBADF)
            return false
        }
        if Int(fd) >= descriptors.count {
            descriptors.append(contentsOf: repeatElement(Descriptor(), count: Int(fd) + 1 - descriptors.count))
        }
        guard descriptors[Int(fd)][keyPath: kind] == nil else {
            complete(userData, -EBUSY)
            return false
        }
        return true
    }

    /// What epoll reported for `fd`: runs the operations it allows. An error or hang-up lets every
    /// pending operation run, so each of them completes with its own error or end of stream.
    private func perform(fd: Int32, events: UInt32) {
        guard fd >= 0, Int(fd) < descriptors.count else { return }
        if events & (Self.readable | Self.failed) != 0 {
            if descriptors[Int(fd)].accept != nil { performAccept(fd) }
            if descriptors[Int(fd)].receive != nil { performReceive(fd) }
            if descriptors[Int(fd)].read != nil { performRead(fd) }
            if let userData = descriptors[Int(fd)].pollIn {
                descriptors[Int(fd)].pollIn = nil
                markDirty(fd)
                complete(userData, Int32(bitPattern: events))
            }
        }
        if events & (Self.writable | Self.failed) != 0 {
            if descriptors[Int(fd)].send != nil { performSend(fd) }
            if let userData = descriptors[Int(fd)].pollOut {
                descriptors[Int(fd)].pollOut = nil
                markDirty(fd)
                complete(userData, Int32(bitPattern: events))
            }
        }
        if events & (Self.writable | Self.failed) != 0, let userData = descriptors[Int(fd)].connect {
            descriptors[Int(fd)].connect = nil
            markDirty(fd)
            complete(userData, connectOutcome(fd))
        }
    }

    private func performAccept(_ fd: Int32) {
        guard let userData = descriptors[Int(fd)].accept else { return }
        for _ in 0..<configuration.acceptsPerTurn {
            var peer = PeerAddress.unknown
            let result = acceptConnection(fd, peer: &peer)
            if result >= 0 {
                completions.append(Completion(userData: userData, result: result, hasMore: true, bufferID: nil, peer: peer))
                continue
            }
            switch -result {
            case EAGAIN, EWOULDBLOCK:
                return
            case ECONNABORTED, EPROTO, EPERM, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH:
                // That connection died in the queue (accept(2), "Error handling"); take the next one.
                continue
            default:
                // EMFILE, ENFILE, ENOBUFS, ENOMEM…: the multishot accept ends; the loop re-arms later.
                descriptors[Int(fd)].accept = nil
                markDirty(fd)
                complete(userData, result)
                return
            }
        }
    }

    private func performReceive(_ fd: Int32) {
        guard let userData = descriptors[Int(fd)].receive else { return }
        for _ in 0..<configuration.readsPerSocketPerTurn {
            guard let id = pool.take() else {
                // As with an empty provided-buffer ring: the receive ends, the loop re-arms it
                // once this turn's buffers are recycled.
                endReceive(fd, userData, -ENOBUFS)
                return
            }
            let buffer = pool.bytes(id: id, count: pool.bufferSize)
            let result = receive(fd, into: buffer)
            if result > 0 {
                complete(userData, result, hasMore: true, bufferID: id)
                // A short read emptied the socket; level-triggered epoll reports it again if not.
                if Int(result) < buffer.count { return }
                continue
            }
            pool.give(id)
            if result == -EAGAIN || result == -EWOULDBLOCK { return }
            endReceive(fd, userData, result)  // 0: end of stream; else the error
            return
        }
    }

    private func endReceive(_ fd: Int32, _ userData: UInt64, _ result: Int32) {
        descriptors[Int(fd)].receive = nil
        markDirty(fd)
        complete(userData, result)
    }

    private func performRead(_ fd: Int32) {
        guard let (userData, buffer) = descriptors[Int(fd)].read else { return }
        let result = readOnce(fd, into: buffer)
        if result == -EAGAIN || result == -EWOULDBLOCK { return }
        descriptors[Int(fd)].read = nil
        markDirty(fd)
        complete(userData, result)
    }

    /// Tries the pending send of `fd`; on EAGAIN it stays pending until EPOLLOUT.
    private func performSend(_ fd: Int32) {
        guard let (userData, bytes) = descriptors[Int(fd)].send else { return }
        let result = send(fd, bytes)
        if result == -EAGAIN || result == -EWOULDBLOCK {
            if descriptors[Int(fd)].registered & Self.writable == 0 { markDirty(fd) }
            return
        }
        descriptors[Int(fd)].send = nil
        if descriptors[Int(fd)].registered & Self.writable != 0 { markDirty(fd) }
        complete(userData, result)
    }

    /// Completes every operation pending on `fd` with -ECANCELED; the descriptor then leaves the
    /// epoll set (before the next epoll_wait).
    private func cancelAll(_ fd: Int32) {
        guard fd >= 0, Int(fd) < descriptors.count else { return }
        let pending = descriptors[Int(fd)]
        descriptors[Int(fd)].accept = nil
        descriptors[Int(fd)].receive = nil
        descriptors[Int(fd)].send = nil
        descriptors[Int(fd)].read = nil
        descriptors[Int(fd)].pollIn = nil
        descriptors[Int(fd)].pollOut = nil
        descriptors[Int(fd)].connect = nil
        markDirty(fd)
        failPending(pending, -ECANCELED)
    }

    private func complete(_ userData: UInt64, _ result: Int32, hasMore: Bool = false, bufferID: UInt16? = nil) {
        completions.append(Completion(userData: userData, result: result, hasMore: hasMore, bufferID: bufferID))
    }

    // MARK: The epoll set

    private func markDirty(_ fd: Int32) {
        guard !descriptors[Int(fd)].dirty else { return }
        descriptors[Int(fd)].dirty = true
        dirtyList.append(fd)
    }

    /// Brings the registration of every dirty descriptor in line with its pending operations
    /// (`removalsOnly`: only those with none left, the rest stay dirty).
    private func updateRegistrations(removalsOnly: Bool) {
        guard !dirtyList.isEmpty else { return }
        var kept = 0
        for i in dirtyList.indices {
            let fd = dirtyList[i]
            if removalsOnly && descriptors[Int(fd)].wanted != 0 {
                dirtyList[kept] = fd
                kept += 1
                continue
            }
            descriptors[Int(fd)].dirty = false
            updateRegistration(fd)
        }
        dirtyList.removeSubrange(kept...)
    }

    private func updateRegistration(_ fd: Int32) {
        let wanted = descriptors[Int(fd)].wanted
        let registered = descriptors[Int(fd)].registered
        guard wanted != registered else { return }
        if wanted == 0 {
            // ENOENT/EBADF: the descriptor already left the set (closed behind our back); fine.
            _ = control(shoal_epoll_ctl_del(), fd, 0)
            descriptors[Int(fd)].registered = 0
            return
        }
        var result = control(registered == 0 ? shoal_epoll_ctl_add() : shoal_epoll_ctl_mod(), fd, wanted)
        // Our record can be stale when a descriptor was closed and its number reused: retry the other way.
        if result == -EEXIST {
            result = control(shoal_epoll_ctl_mod(), fd, wanted)
        } else if result == -ENOENT {
            result = control(shoal_epoll_ctl_add(), fd, wanted)
        }
        if result == 0 {
            descriptors[Int(fd)].registered = wanted
            return
        }
        // Not pollable (EPERM: a regular file) or not open (EBADF): fail what is pending on it.
        let pending = descriptors[Int(fd)]
        descriptors[Int(fd)] = Descriptor()
        _ = control(shoal_epoll_ctl_del(), fd, 0)
        failPending(pending, result)
    }

    /// Completes every operation `pending` held with `result`.
    private func failPending(_ pending: Descriptor, _ result: Int32) {
        if let userData = pending.connect { complete(userData, result) }
        if let userData = pending.accept { complete(userData, result) }
        if let userData = pending.receive { complete(userData, result) }
        if let (userData, _) = pending.send { complete(userData, result) }
        if let (userData, _) = pending.read { complete(userData, result) }
        if let userData = pending.pollIn { complete(userData, result) }
        if let userData = pending.pollOut { complete(userData, result) }
    }

    // MARK: Syscalls: each returns the result or a negated errno (io_uring's convention); EINTR is retried.

    /// epoll_ctl; the descriptor number is the event's tag.
    private func control(_ operation: Int32, _ fd: Int32, _ interest: UInt32) -> Int32 {
        retrying { shoal_epoll_ctl(epoll, operation, fd, interest, UInt64(UInt32(bitPattern: fd))) }
    }

    /// epoll_wait into the preallocated event array (-1: no timeout). Returns the number of events,
    /// 0 when a signal interrupted it: the caller recomputes the time left to its deadline, where a
    /// retry with the same timeout would wait it whole again after every signal (a worker stopped
    /// and continued every 0.2 s never reached its timers: measured with test_reload.py).
    private func wait(timeoutMilliseconds: Int32) throws(SystemError) -> Int {
        let result = shoal_epoll_wait(epoll, events, Int32(configuration.eventsPerWait), timeoutMilliseconds)
        if result >= 0 { return Int(result) }
        let code = Glibc.errno
        if code == EINTR { return 0 }
        throw SystemError("epoll_wait", errno: code)
    }

    /// accept4 of one connection, non-blocking and close-on-exec like io_uring's multishot accept,
    /// with its peer's address.
    private func acceptConnection(_ listener: Int32, peer: inout PeerAddress) -> Int32 {
        retrying { Socket.accept(listener, peer: &peer) }
    }

    /// One recv; 0 is end of stream.
    private func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        retrying { Int32(truncatingIfNeeded: recv(fd, buffer.baseAddress, buffer.count, 0)) }
    }

    /// One read (the eventfd).
    private func readOnce(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        retrying { Int32(truncatingIfNeeded: Glibc.read(fd, buffer.baseAddress, buffer.count)) }
    }

    /// One send without SIGPIPE; at most Int32.max bytes, like an io_uring send's result.
    private func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        retrying { Int32(truncatingIfNeeded: Glibc.send(fd, bytes.baseAddress, min(bytes.count, Int(Int32.max)), Int32(MSG_NOSIGNAL))) }
    }

    /// connect(2) of a non-blocking socket: 0, -EINPROGRESS, or the error. EINTR leaves the connect
    /// going on in the background (connect(2)), so it counts as in progress rather than being retried.
    private func startConnect(_ fd: Int32, _ address: UnsafeRawBufferPointer) -> Int32 {
        let rc = Glibc.connect(fd, address.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(address.count))
        if rc == 0 { return 0 }
        let code = Glibc.errno
        return code == EINTR ? -EINPROGRESS : -code
    }

    /// How an in-progress connect ended, once the socket is writable or failed: 0 or -SO_ERROR.
    private func connectOutcome(_ fd: Int32) -> Int32 {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { return -Glibc.errno }
        return -error
    }

    /// Runs a call returning -1 and errno until it does not fail with EINTR; -errno on failure.
    private func retrying(_ call: () -> Int32) -> Int32 {
        while true {
            let result = call()
            if result >= 0 { return result }
            let code = Glibc.errno
            if code != EINTR { return -code }
        }
    }
}

/// The epoll backend's receive buffers: `count` buffers of `bufferSize` bytes in one anonymous
/// mapping (pages only get memory once written), and a stack of free ids.
///
/// Ownership, as with the provided-buffer ring: a buffer is free in the pool, or lent to the loop
/// from the receive completion that names it until `recycle(bufferID:)`.
private final class ReceiveBufferPool {
    let count: Int
    let bufferSize: Int
    private let storage: UnsafeMutableRawPointer
    private let free: UnsafeMutablePointer<UInt16>
    private var freeCount: Int
    /// Whether each buffer is lent out (catches a double recycle).
    private let lent: UnsafeMutablePointer<Bool>

    init(count: Int, bufferSize: Int) throws(SystemError) {
        precondition(count > 0 && count <= 65536 && bufferSize > 0, "1…65536 receive buffers of at least one byte")
        self.count = count
        self.bufferSize = bufferSize
        guard let memory = mmap(nil, count * bufferSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              memory != MAP_FAILED else { throw SystemError.last("mmap(receive buffers)") }
        storage = memory
        free = .allocate(capacity: count)
        lent = .allocate(capacity: count)
        lent.initialize(repeating: false, count: count)
        // Lowest ids on top of the stack, so a lightly loaded worker keeps touching the same pages.
        for i in 0..<count { free[i] = UInt16(truncatingIfNeeded: count - 1 - i) }
        freeCount = count
    }

    /// A free buffer's id, or nil when every buffer is lent out.
    func take() -> UInt16? {
        guard freeCount > 0 else { return nil }
        freeCount -= 1
        let id = free[freeCount]
        lent[Int(id)] = true
        return id
    }

    /// Returns buffer `id` to the pool.
    func give(_ id: UInt16) {
        precondition(Int(id) < count && lent[Int(id)], "receive buffer \(id) recycled but not lent out")
        lent[Int(id)] = false
        free[freeCount] = id
        freeCount += 1
    }

    /// The first `count` bytes of buffer `id`.
    func bytes(id: UInt16, count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + Int(id) * bufferSize, count: count)
    }

    /// Unmaps the buffers; the pool must not be used afterwards.
    func release() {
        munmap(storage, count * bufferSize)
        free.deallocate()
        lent.deallocate()
    }
}
