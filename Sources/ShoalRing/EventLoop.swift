// One event loop per worker thread: owns every socket slot, their send queues, the timers and the
// cross-thread task queue, and drives a `LoopBackend`. Each turn: flush sends and re-arm
// receives (prepared, not yet submitted), one submit-and-wait, then consume every completion.
// What a socket's events mean is decided by its `SocketLifecycle`; this file carries out the
// actions it returns.
import Glibc
import ShoalPosix
import Synchronization

/// How `close(_:mode:)` ends a socket.
public enum CloseMode: Sendable {
    /// Send what is queued, then FIN (shutdown of our side), then wait for the peer's FIN at most
    /// `lingerNanoseconds` while discarding what it sends, so it reads our last bytes instead of an RST.
    case graceful(lingerNanoseconds: UInt64)
    /// Drop what is queued and close now.
    case abort
}

/// A single-threaded event loop. Everything except `execute(_:)`, `stop()` and `inEventLoop` must be
/// called on the loop thread.
public final class EventLoop: @unchecked Sendable {
    private struct Slot {
        var fd: Int32 = -1
        var generation: UInt32 = 0
        var delegate: (any SocketDelegate)?
        var sendQueue = SendQueue()
        var lifecycle = SocketLifecycle()
        var onFlushList = false
        var inUse = false
    }

    private struct Listener {
        var fd: Int32
        var delegate: any ListenerDelegate
        var active: Bool
    }

    public let backend: any LoopBackend
    // `@exclusivity(unchecked)`: these are touched several times per message, only on the loop thread,
    // and no access to them ever calls out to code that could touch them again (the `fill` closure of
    // `write(_:reserving:_:)` writes send memory only). The runtime check (a thread-local access set,
    // swift_beginAccess/endAccess) was ~4% of a worker's CPU under echo load.
    @exclusivity(unchecked) private var slots: ContiguousArray<Slot> = []
    /// The transform (TLS) and plaintext queue of each socket that has one, by slot index, beside
    /// `slots` rather than in them: a plain socket's slot is then 40 bytes. Empty until the first
    /// transform (a ws:// loop never allocates it), then grown to the slot count.
    @exclusivity(unchecked) private var transformedSlots: ContiguousArray<TransformedSending?> = []
    private var freeSlots: [UInt32] = []
    @exclusivity(unchecked) private var flushList: [UInt32] = []
    private var listeners: [Listener] = []
    /// Descriptors watched for a library (index = the watch's tag index; nil: free).
    private var watches: [DescriptorWatch?] = []
    private var timers = TimerHeap()
    /// Send memory: a connection's first chunk holds 1 KiB (one small frame), later ones 16 KiB.
    private let pool = ChunkPool(smallCapacity: 1024 - MemoryLayout<ChunkHeader>.stride)
    private let tasks = TaskQueue()
    private let wakeup: EventFD
    private let wakeupBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
    /// Where transforms write the plaintext they deliver (a TLS record holds at most 16 KiB).
    /// Allocated with the first transform.
    private var transformScratch: UnsafeMutableRawBufferPointer?
    /// The thread running `run()` (0: none). Atomic because `inEventLoop` reads it from any thread
    /// (ThreadSanitizer reported the plain variable as a race).
    private let loopThread = Atomic<UInt>(0)
    private var running = false
    private var turnEndHooks: [() -> Void] = []
    /// Outbound connects in flight (EventLoop+Connect.swift).
    let connects = PendingConnects()
    /// Monotonic time at the start of the current turn, in nanoseconds.
    public private(set) var now: UInt64
    /// Where `now` comes from: CLOCK_MONOTONIC, or a test's manual clock.
    private let clock: () -> UInt64
    /// Completions handled, timers run, sockets given bytes and sends prepared: a loop that moves
    /// it is alive however long one turn (or one callback) takes, and one that does not is stuck
    /// (the cluster's watchdog reads it).
    public private(set) var progress: UInt64 = 0
    /// Told `progress` at the end of every turn that moved it, and every
    /// `progressReportInterval` steps within a turn (a long turn still shows life), not at each
    /// completion: this sits on the hot path.
    public var progressObserver: ((UInt64) -> Void)?
    static let progressReportInterval: UInt64 = 64
    private var progressReported: UInt64 = 0

    public convenience init(backend: any LoopBackend) throws(SystemError) {
        try self.init(backend: backend, clock: EventLoop.monotonicNanoseconds)
    }

    init(backend: any LoopBackend, clock: @escaping () -> UInt64) throws(SystemError) {
        self.backend = backend
        self.clock = clock
        now = clock()
        wakeup = try EventFD()
    }

    /// The loop's eventfd, for signal handlers that must wake it.
    public var wakeupDescriptor: Int32 { wakeup.descriptor }

    /// Bytes one socket slot takes in the slot table (an idle connection pays this, TLS or not).
    static var slotStride: Int { MemoryLayout<Slot>.stride }

    /// Number of sockets registered and not yet closed.
    public private(set) var openSockets = 0

    /// Send chunks taken from the pool and not given back (queued or read by an in-flight send).
    var chunksOutstanding: Int { pool.outstanding }

    /// Frees the send chunks kept for reuse, so a heap trim can return them to the kernel once a
    /// storm of clients has gone (the pool refills as sends need it), and lets the backend hand
    /// back its idle receive buffers' pages.
    public func releasePooledMemory() {
        pool.releaseRetained()
        backend.releaseIdleReceiveBuffers()
    }

    // MARK: Threads

    /// True on the thread running `run()`.
    public var inEventLoop: Bool {
        let thread = loopThread.load(ordering: .acquiring)
        return thread != 0 && pthread_equal(thread, pthread_self()) != 0
    }

    /// True while a thread is inside `run()`. Safe from any thread.
    public var isRunning: Bool { loopThread.load(ordering: .acquiring) != 0 }

    /// Runs `task` on the loop thread at its next turn. Safe from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        if tasks.push(task) { wakeup.signal() }
    }

    /// Makes `run()` return after the current turn. Safe from any thread.
    public func stop() {
        execute { [unowned self] in self.running = false }
    }

    /// Registers work to do at the end of every turn, after completions and before the next submit
    /// (the place to coalesce what the turn produced).
    public func addTurnEndHook(_ hook: @escaping () -> Void) {
        turnEndHooks.append(hook)
    }

    // MARK: Watched descriptors

    /// Watches `fd` (a socket a library reads and writes itself) for readiness: `onReady` runs on
    /// the loop thread while the interests set on the returned watch hold. The loop polls its own
    /// duplicate of `fd` and closes it after `stop()`.
    public func watch(descriptor fd: Int32, onReady: @escaping (_ readable: Bool, _ writable: Bool) -> Void) throws(SystemError) -> DescriptorWatch {
        let copy = try Socket.duplicate(fd)
        let index = watches.firstIndex { $0 == nil } ?? {
            watches.append(nil)
            return watches.count - 1
        }()
        let watch = DescriptorWatch(descriptor: copy, loop: self, index: UInt32(index), onReady: onReady)
        watches[index] = watch
        return watch
    }

    /// Watches open now (tests).
    var watchCount: Int { watches.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    func watchFinished(_ index: UInt32) {
        watches[Int(index)] = nil
    }

    // MARK: Listeners

    /// Starts accepting on a listening socket the caller owns. It gets TCP_NODELAY, which Linux
    /// copies to every connection accepted from it: no setsockopt(2) per connection.
    public func listen(socket fd: Int32, delegate: any ListenerDelegate) {
        Socket.disableNagle(fd)
        listeners.append(Listener(fd: fd, delegate: delegate, active: true))
        backend.prepareAccept(listener: fd, userData: UserData(.accept, index: UInt32(listeners.count - 1)).raw)
    }

    /// Stops accepting on every listener (connections already accepted stay).
    public func stopAccepting() {
        for i in listeners.indices where listeners[i].active {
            listeners[i].active = false
            backend.prepareCancel(socket: listeners[i].fd, userData: UserData(.cancel, index: UInt32(i)).raw)
        }
    }

    // MARK: Sockets

    /// Takes ownership of a connected socket and starts receiving on it.
    @discardableResult
    public func register(socket fd: Int32, delegate: any SocketDelegate) -> SocketHandle {
        let index: UInt32
        if let reused = freeSlots.popLast() {
            index = reused
        } else {
            index = UInt32(slots.count)
            slots.append(Slot())
        }
        slots.withUnsafeMutableBufferPointer { all in
            let generation = all[Int(index)].generation
            all[Int(index)] = Slot(fd: fd, generation: generation, delegate: delegate, inUse: true)
        }
        openSockets += 1
        flushList.append(index)
        slots[Int(index)].onFlushList = true
        let handle = SocketHandle(index: index, generation: slots[Int(index)].generation)
        delegate.opened(on: handle)
        return handle
    }

    /// Replaces the delegate of an open socket (an HTTP connection that upgrades to WebSocket).
    public func setDelegate(_ delegate: any SocketDelegate, for handle: SocketHandle) {
        guard isCurrent(handle) else { return }
        slots[Int(handle.index)].delegate = delegate
    }

    /// Whether the handle still names an open socket that accepts writes.
    public func isWritable(_ handle: SocketHandle) -> Bool {
        isCurrent(handle) && slots[Int(handle.index)].lifecycle.acceptsWrites
    }

    /// Bytes queued on the socket and not yet taken by the kernel.
    public func bufferedAmount(_ handle: SocketHandle) -> Int {
        guard isCurrent(handle) else { return 0 }
        return queuedBytes(at: Int(handle.index))
    }

    /// Bytes queued on every socket and not yet taken by the kernel, plaintext a transform has
    /// not sealed yet included, as in `bufferedAmount` (walks every slot: for a once-a-second
    /// metrics sample, not the hot path).
    public var queuedBytes: Int {
        slots.indices.reduce(0) { $0 + queuedBytes(at: $1) }
    }

    private func queuedBytes(at i: Int) -> Int {
        slots[i].sendQueue.queuedBytes + (transformed(i)?.plainQueue.queuedBytes ?? 0)
    }

    /// The transform side of slot `i`, nil for a plain socket.
    @inline(__always) private func transformed(_ i: Int) -> TransformedSending? {
        i < transformedSlots.count ? transformedSlots[i] : nil
    }

    /// Stops delivering bytes from this socket until `resumeReceiving`: the armed receive is
    /// cancelled, so the kernel's socket buffer fills and TCP flow control slows the peer down.
    /// Bytes the kernel already handed over may still arrive once. Closing resumes reading.
    public func pauseReceiving(_ handle: SocketHandle) {
        guard isCurrent(handle) else { return }
        perform(slots[Int(handle.index)].lifecycle.pauseRequested(), Int(handle.index))
    }

    /// Undoes `pauseReceiving`.
    public func resumeReceiving(_ handle: SocketHandle) {
        guard isCurrent(handle) else { return }
        perform(slots[Int(handle.index)].lifecycle.resumeRequested(), Int(handle.index))
    }

    /// Whether `pauseReceiving` is in effect.
    public func isReceivePaused(_ handle: SocketHandle) -> Bool {
        isCurrent(handle) && slots[Int(handle.index)].lifecycle.receivePaused
    }

    /// Queues a copy of `bytes`. They leave with the socket's other bytes at the end of the turn.
    public func write(_ handle: SocketHandle, _ bytes: UnsafeRawBufferPointer) {
        guard isWritable(handle), bytes.count > 0 else { return }
        let i = Int(handle.index)
        if let side = transformed(i) {
            side.plainQueue.append(bytes, pool: pool)
        } else {
            slots[i].sendQueue.append(bytes, pool: pool)
        }
        scheduleFlush(handle.index)
    }

    /// Reserves `count` contiguous bytes in the socket's send queue and lets `fill` write them
    /// (a frame header and its payload, written once, straight into send memory).
    /// Returns false when the socket no longer accepts writes.
    @discardableResult
    public func write(_ handle: SocketHandle, reserving count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        guard isWritable(handle) else { return false }
        let i = Int(handle.index)
        if let side = transformed(i) {
            side.plainQueue.append(count: count, pool: pool, fill)
        } else {
            slots[i].sendQueue.append(count: count, pool: pool, fill)
        }
        scheduleFlush(handle.index)
        return true
    }

    /// Ends a socket. The delegate's `closed(on:)` comes once the kernel has let go of it.
    public func close(_ handle: SocketHandle, mode: CloseMode) {
        guard isCurrent(handle) else { return }
        let i = Int(handle.index)
        var linger: UInt64?
        if case .graceful(let nanoseconds) = mode { linger = nanoseconds }
        if transformed(i) != nil { endTransform(i, graceful: linger != nil) }
        let actions = slots[i].lifecycle.closeRequested(graceful: linger != nil, queueIsEmpty: slots[i].sendQueue.isEmpty)
        if actions.contains(.armLingerTimer), let linger {
            timers.insert(deadline: deadline(after: linger), .socket(index: handle.index, generation: handle.generation, kind: Self.lingerTimerKind))
        }
        perform(actions, i)
    }

    /// Fires the delegate's `timerFired(on:kind:)` after `nanoseconds`, unless the socket is gone by then.
    /// `kind` 255 is reserved by the loop.
    public func setTimer(_ handle: SocketHandle, after nanoseconds: UInt64, kind: UInt8) {
        guard isCurrent(handle) else { return }
        timers.insert(deadline: deadline(after: nanoseconds), .socket(index: handle.index, generation: handle.generation, kind: kind))
    }

    /// Runs `body` on the loop after `nanoseconds`.
    public func schedule(after nanoseconds: UInt64, _ body: @escaping () -> Void) {
        timers.insert(deadline: deadline(after: nanoseconds), .closure(body))
    }

    /// The loop time `nanoseconds` from now. A duration may be any value a program passes
    /// (UInt64.max: never), so the sum saturates instead of wrapping into the past.
    public func deadline(after nanoseconds: UInt64) -> UInt64 {
        Self.deadline(after: nanoseconds, from: now)
    }

    /// `start + nanoseconds`, saturated at UInt64.max.
    public static func deadline(after nanoseconds: UInt64, from start: UInt64) -> UInt64 {
        let (sum, overflow) = start.addingReportingOverflow(nanoseconds)
        return overflow ? .max : sum
    }

    private static let lingerTimerKind: UInt8 = 255

    private func isCurrent(_ handle: SocketHandle) -> Bool {
        let i = Int(handle.index)
        return i < slots.count && slots[i].inUse && slots[i].generation == handle.generation
    }

    private func handle(of index: Int) -> SocketHandle {
        SocketHandle(index: UInt32(index), generation: slots[index].generation)
    }

    private func scheduleFlush(_ index: UInt32) {
        if !slots[Int(index)].onFlushList {
            slots[Int(index)].onFlushList = true
            flushList.append(index)
            // A socket given bytes is work done, even inside one long callback: a broadcast to the
            // 19,600 clients of a worker is one bus completion, and on a CPU shared by 51 workers
            // it took over 10 s, so the watchdog killed 38 workers that were sending.
            madeProgress()
        }
    }

    /// Carries out what a socket's lifecycle asked for: chunks released first, the descriptor
    /// closed last (`finish` frees the slot). Delegate calls that carry data (received, readEnded, drained) are made by the
    /// completion handlers themselves, and `close` arms the linger timer (it knows the linger).
    private func perform(_ actions: SocketLifecycle.Actions, _ i: Int) {
        if actions.isEmpty { return }
        if actions.contains(.releaseAll) {
            slots[i].sendQueue.discardAll(pool: pool)
            transformed(i)?.plainQueue.discardAll(pool: pool)
        }
        if actions.contains(.releaseUnsent) { slots[i].sendQueue.discardAllButHead(pool: pool) }
        if actions.contains(.flush) { scheduleFlush(UInt32(i)) }
        if actions.contains(.cancelReceive) {
            let generation = slots[i].generation
            backend.prepareCancelReceive(
                socket: slots[i].fd,
                receiveUserData: UserData(.receive, generation: generation, index: UInt32(i)).raw,
                userData: UserData(.cancel, generation: generation, index: UInt32(i)).raw)
        }
        if actions.contains(.shutdownWrite) { backend.shutdownSocket(slots[i].fd, read: false, write: true) }
        if actions.contains(.cancelAll) {
            backend.shutdownSocket(slots[i].fd, read: true, write: true)
            let generation = slots[i].generation
            backend.prepareCancelOperations(
                socket: slots[i].fd,
                receiveUserData: UserData(.receive, generation: generation, index: UInt32(i)).raw,
                sendUserData: UserData(.send, generation: generation, index: UInt32(i)).raw,
                userData: UserData(.cancel, generation: generation, index: UInt32(i)).raw)
        }
        if actions.contains(.finish) { finish(i) }
    }

    /// Closes the descriptor and frees the slot; the lifecycle says when (once, nothing in flight).
    private func finish(_ i: Int) {
        assert(slots[i].sendQueue.head == nil, "a socket finished with chunks still queued")
        let handle = handle(of: i)
        backend.closeSocket(slots[i].fd)
        let delegate = slots[i].delegate
        slots[i].delegate = nil
        dropTransform(i)
        slots[i].fd = -1
        slots[i].inUse = false
        slots[i].generation = (slots[i].generation &+ 1) & UserData.generationMask
        freeSlots.append(UInt32(i))
        openSockets -= 1
        delegate?.closed(on: handle)
    }

    // MARK: Transforms (TLS): see StreamTransform.swift

    /// Puts `transform` between the socket and its delegate from now on; `feeding` are bytes
    /// already received past a header the delegate read itself (a PROXY header before TLS), as
    /// if they had just arrived. What the transform has to send first (a ClientHello) leaves at
    /// the end of the turn.
    public func setTransform(_ transform: any StreamTransform, for handle: SocketHandle,
                             feeding bytes: UnsafeRawBufferPointer? = nil) {
        guard isCurrent(handle) else { return }
        let i = Int(handle.index)
        if let side = transformed(i) {
            side.transform = transform
        } else {
            if transformedSlots.count < slots.count {
                transformedSlots.append(contentsOf: repeatElement(nil, count: slots.count - transformedSlots.count))
            }
            transformedSlots[i] = TransformedSending(transform: transform)
        }
        if let bytes, bytes.count > 0 {
            receiveThroughTransform(bytes, i, handle)
        } else if moveTransformOutput(i) {
            scheduleFlush(handle.index)
        }
    }

    /// The socket's transform, if it has one.
    public func transform(of handle: SocketHandle) -> (any StreamTransform)? {
        isCurrent(handle) ? transformed(Int(handle.index))?.transform : nil
    }

    /// Drops the socket's transform and the plaintext still waiting for it.
    private func dropTransform(_ i: Int) {
        guard let side = transformed(i) else { return }
        side.plainQueue.discardAll(pool: pool)
        transformedSlots[i] = nil
    }

    /// Received bytes into the transform, plaintext out to the delegate (re-read at every piece:
    /// an HTTP session that upgrades hands the socket to a new delegate in the middle).
    private func receiveThroughTransform(_ bytes: UnsafeRawBufferPointer, _ i: Int, _ handle: SocketHandle) {
        guard let transform = transformed(i)?.transform else { return }
        let scratch = transformScratch ?? UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
        transformScratch = scratch
        let wasEstablished = transform.isEstablished
        let event = transform.receive(bytes, scratch: scratch) { plaintext in
            guard isCurrent(handle), slots[i].lifecycle.deliversBytes, let delegate = slots[i].delegate else { return }
            delegate.received(plaintext, on: handle)
        }
        guard isCurrent(handle) else { return }
        if moveTransformOutput(i) { scheduleFlush(handle.index) }
        switch event {
        case .needMoreInput:
            break
        case .established:
            // Plaintext written before the handshake ended (a client's upgrade request) can go now.
            if !wasEstablished && transformed(i)?.plainQueue.isEmpty == false { scheduleFlush(UInt32(i)) }
        case .endOfStream:
            slots[i].delegate?.readEnded(on: handle, error: nil)
        case .failed:
            // The alert is queued; send it and end. Nothing more is read from a broken stream.
            dropTransform(i)
            close(handle, mode: .graceful(lingerNanoseconds: Self.transformFailureLinger))
        }
    }

    /// How long a socket whose transform failed waits for its alert to leave: the peer is broken
    /// or hostile, so not the configured linger.
    static let transformFailureLinger: UInt64 = 1_000_000_000

    /// Seals what the delegate wrote this turn (once per turn: the turn's small frames share
    /// records) and queues the result for the kernel; called by `flush`, so it schedules nothing.
    /// Waits while the transform is not established.
    private func sealPlaintext(_ i: Int) {
        guard let side = transformed(i) else { return }
        let transform = side.transform
        var sealed = true
        if transform.isEstablished && !side.plainQueue.isEmpty {
            side.plainQueue.drainAll(pool: pool) { piece in
                if sealed { sealed = transform.seal(piece) }
            }
        }
        _ = moveTransformOutput(i)
        if !sealed { perform(slots[i].lifecycle.closeRequested(graceful: false, queueIsEmpty: slots[i].sendQueue.isEmpty), i) }
    }

    /// Moves what the transform has to send into the socket's send queue; true when it moved any
    /// (the caller schedules the flush, unless it is the flush).
    private func moveTransformOutput(_ i: Int) -> Bool {
        guard let transform = transformed(i)?.transform else { return false }
        var pending = transform.pendingOutputCount
        guard pending > 0 else { return false }
        while pending > 0 {
            let piece = min(pending, pool.standardCapacity)
            slots[i].sendQueue.append(count: piece, pool: pool) { region in
                let taken = transform.takeOutput(into: region)
                assert(taken == piece, "a transform gave fewer bytes than it said were pending")
            }
            pending = transform.pendingOutputCount
        }
        return true
    }

    /// Before a close: a graceful one seals what is queued and adds the transform's end of stream
    /// (close_notify); an abort drops the plaintext.
    private func endTransform(_ i: Int, graceful: Bool) {
        if graceful, let transform = transformed(i)?.transform, slots[i].lifecycle.acceptsWrites {
            sealPlaintext(i)
            if transform.isEstablished { transform.finish() }
            if moveTransformOutput(i) { scheduleFlush(UInt32(i)) }
        }
        transformed(i)?.plainQueue.discardAll(pool: pool)
    }

    // MARK: Running

    /// Runs turns until `stop()`.
    public func run() throws(SystemError) {
        loopThread.store(pthread_self(), ordering: .releasing)
        running = true
        armWakeup()
        while running { try runTurn() }
        flush()
        try backend.submitAndWait(timeoutNanoseconds: 0)
        loopThread.store(0, ordering: .releasing)
    }

    /// Completions one turn handles before it runs timers, tasks and turn-end hooks: a flood the
    /// kernel keeps feeding (accepts, closes, messages) must not starve them. The rest waits in the
    /// backend for the next turn, which then does not sleep. 1024 completions take well under a
    /// millisecond in steady state, so timers are late by that much at most under a flood.
    static let completionsPerTurn = 1024

    /// One turn. `run()` repeats it; tests on a scripted backend call it one at a time.
    func runTurn() throws(SystemError) {
        flush()
        var timeout: Int64? = nil
        if let deadline = timers.earliestDeadline {
            timeout = deadline > now ? Int64(clamping: deadline - now) : 0
        }
        try backend.submitAndWait(timeoutNanoseconds: timeout)
        now = clock()
        backend.drainCompletions(limit: Self.completionsPerTurn) { completion in self.complete(completion) }
        runDueTimers()
        reportProgress()
        runTasks()
        for hook in turnEndHooks { hook() }
    }

    /// Prepares the sends and receives the turn produced; they reach the kernel with the next submit.
    private func flush() {
        guard !flushList.isEmpty else { return }
        for index in flushList {
            let i = Int(index)
            slots[i].onFlushList = false
            guard slots[i].inUse else { continue }
            if transformed(i) != nil {
                sealPlaintext(i)
                guard slots[i].inUse else { continue }  // a seal that failed aborted the socket
            }
            let userDataGeneration = slots[i].generation
            let bytes = slots[i].sendQueue.nextSendable
            let actions = slots[i].lifecycle.flushed(hasSendable: bytes != nil)
            if actions.contains(.armReceive) {
                backend.prepareReceive(socket: slots[i].fd, userData: UserData(.receive, generation: userDataGeneration, index: index).raw)
            }
            if actions.contains(.send), let bytes {
                backend.prepareSend(socket: slots[i].fd, bytes: bytes, userData: UserData(.send, generation: userDataGeneration, index: index).raw)
                madeProgress()  // a full submission ring is submitted here: the kernel's sends take time too
            }
        }
        flushList.removeAll(keepingCapacity: true)
    }

    private func complete(_ completion: Completion) {
        madeProgress()
        guard let tag = UserData(raw: completion.userData) else { return }
        switch tag.operation {
        case .receive: completeReceive(tag, completion)
        case .send: completeSend(tag, completion)
        case .accept: completeAccept(tag, completion)
        case .wakeup: armWakeup()
        case .cancel: break
        case .poll:
            guard Int(tag.index) < watches.count, let watch = watches[Int(tag.index)] else { return }
            watch.completed(kind: tag.generation, result: completion.result)
        case .connect: completeConnect(tag, completion)
        }
    }

    private func completeReceive(_ tag: UserData, _ completion: Completion) {
        let i = Int(tag.index)
        let current = i < slots.count && slots[i].inUse && slots[i].generation == tag.generation
        guard current else {
            if let id = completion.bufferID { backend.recycle(bufferID: id) }
            return
        }
        let handle = SocketHandle(index: tag.index, generation: tag.generation)
        let outcome: SocketLifecycle.ReceiveOutcome
        if completion.result > 0, let id = completion.bufferID {
            // Bytes first, the lifecycle after: a delegate that closes while reading them gets
            // `closed(on:)` once this call returned, not inside it.
            if slots[i].lifecycle.deliversBytes {
                let bytes = backend.receivedBytes(bufferID: id, count: Int(completion.result))
                if transformed(i) != nil {
                    receiveThroughTransform(UnsafeRawBufferPointer(bytes), i, handle)
                } else if let delegate = slots[i].delegate {
                    delegate.received(bytes, on: handle)
                }
            }
            backend.recycle(bufferID: id)
            guard isCurrent(handle) else { return }
            outcome = .bytes
        } else if completion.result == -ENOBUFS {
            outcome = .noBuffers
        } else if completion.result == -ECANCELED {
            outcome = .cancelled
        } else {
            outcome = .ended
        }
        let actions = slots[i].lifecycle.receiveCompleted(outcome, hasMore: completion.hasMore)
        perform(actions, i)
        if actions.contains(.notifyReadEnded) {
            let error: Int32? = completion.result < 0 && completion.result != -ECANCELED ? -completion.result : nil
            slots[i].delegate?.readEnded(on: handle, error: error)
        }
    }

    private func completeSend(_ tag: UserData, _ completion: Completion) {
        let i = Int(tag.index)
        guard i < slots.count, slots[i].inUse, slots[i].generation == tag.generation else { return }
        let handle = SocketHandle(index: tag.index, generation: tag.generation)
        let outcome: SocketLifecycle.SendOutcome
        if completion.result >= 0 {
            slots[i].sendQueue.consume(Int(completion.result), pool: pool)
            outcome = .sent
        } else if completion.result == -EAGAIN || completion.result == -EINTR {
            outcome = .retry
        } else {
            outcome = .failed
        }
        let actions = slots[i].lifecycle.sendCompleted(outcome, queueIsEmpty: queuedBytes(at: i) == 0)
        perform(actions, i)
        if actions.contains(.notifyDrained) {
            slots[i].delegate?.drained(on: handle)
        } else if actions.contains(.notifyReadEnded) {
            slots[i].delegate?.readEnded(on: handle, error: -completion.result)
            if actions.contains(.abortAfterNotifying) && isCurrent(handle) {
                perform(slots[i].lifecycle.closeRequested(graceful: false, queueIsEmpty: slots[i].sendQueue.isEmpty), i)
            }
        }
    }

    private func completeAccept(_ tag: UserData, _ completion: Completion) {
        let l = Int(tag.index)
        guard l < listeners.count else { return }
        if completion.result >= 0 {
            let fd = completion.result
            if listeners[l].active, let delegate = listeners[l].delegate.accepted(socket: fd, peer: completion.peer, on: self) {
                register(socket: fd, delegate: delegate)
            } else {
                backend.closeSocket(fd)
            }
        } else if listeners[l].active {
            listeners[l].delegate.acceptFailed(error: -completion.result, on: self)
        }
        if !completion.hasMore && listeners[l].active {
            // Multishot accept ended (EMFILE, ENFILE, ...): re-arm after a pause so a descriptor
            // shortage does not become a busy loop.
            let pause: UInt64 = completion.result < 0 ? 100_000_000 : 0
            schedule(after: pause) { [unowned self] in
                if self.listeners[l].active {
                    self.backend.prepareAccept(listener: self.listeners[l].fd, userData: UserData(.accept, index: UInt32(l)).raw)
                }
            }
        }
    }

    private func runDueTimers() {
        while let action = timers.popDue(now: now) {
            madeProgress()
            switch action {
            case .closure(let body):
                body()
            case .socket(let index, let generation, let kind):
                let handle = SocketHandle(index: index, generation: generation)
                guard isCurrent(handle) else { continue }
                if kind == Self.lingerTimerKind {
                    perform(slots[Int(index)].lifecycle.lingerTimerFired(), Int(index))
                } else {
                    slots[Int(index)].delegate?.timerFired(on: handle, kind: kind)
                }
            }
        }
    }

    private func madeProgress() {
        progress &+= 1
        if progress & (Self.progressReportInterval - 1) == 0 { reportProgress() }
    }

    private func reportProgress() {
        guard progress != progressReported else { return }
        progressReported = progress
        progressObserver?(progress)
    }

    private func runTasks() {
        for task in tasks.takeAll() { task() }
    }

    private func armWakeup() {
        backend.prepareRead(descriptor: wakeup.descriptor, into: wakeupBuffer, userData: UserData(.wakeup, index: 0).raw)
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Releases the backend and every delegate, hook, timer and queued task. Call after `run()`
    /// returned, when no socket is left. Those often hold the loop in turn (a web server owns its
    /// loop and is its listener's delegate; a turn-end hook captures the server), so a loop that kept
    /// them after shutdown was never freed, nor anything they hold (LeakSanitizer reported every
    /// loop the unit tests started, send chunks included).
    public func shutdown() {
        // Every socket still open ends here, and its delegate hears it (`closed(on:)`, once, as the
        // contract says): a WebSocket connection still held when the drain timeout passed gets its
        // onTerminate, and leaves its server, instead of staying in a cycle with it.
        var ended: [(any SocketDelegate, SocketHandle)] = []
        for i in slots.indices where slots[i].inUse {
            backend.closeSocket(slots[i].fd)
            slots[i].sendQueue.discardAll(pool: pool)
            dropTransform(i)
            if let delegate = slots[i].delegate { ended.append((delegate, handle(of: i))) }
            slots[i].delegate = nil
            slots[i].inUse = false
        }
        openSockets = 0
        for case let watch? in watches { backend.closeSocket(watch.descriptor) }
        watches.removeAll()
        abandonConnects()
        for (delegate, handle) in ended { delegate.closed(on: handle) }
        slots.removeAll()
        transformedSlots.removeAll()
        freeSlots.removeAll()
        flushList.removeAll()
        listeners.removeAll()
        turnEndHooks.removeAll()
        timers = TimerHeap()
        _ = tasks.takeAll()
        backend.shutdown()
        wakeup.close()
        wakeupBuffer.deallocate()
        transformScratch?.deallocate()
        transformScratch = nil
    }
}
