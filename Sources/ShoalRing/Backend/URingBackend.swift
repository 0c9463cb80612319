// The io_uring backend: multishot accept, multishot receive into a provided-buffer ring (bundled
// where the kernel offers it), and sends, all submitted with one io_uring_enter per loop turn;
// accepted sockets are named by their index in a registered file table (direct descriptors). Requires Linux ≥ 6.0 for
// multishot receive; `URingBackend.init` throws when the kernel refuses, and the loop's
// factory falls back to epoll.
import CLibUring
import CShoalSystem
import Glibc
import ShoalPosix

/// Sizes of the ring and its receive buffers.
public struct URingConfiguration: Sendable {
    /// Submission queue entries. Multishot operations need few; sends are one per busy socket per turn.
    public var submissionEntries: UInt32 = 1024
    /// Completion queue entries: multishot receives post many completions per submission, so the
    /// CQ is kept several times larger than the SQ (liburing's echo-server uses ×8).
    public var completionEntries: UInt32 = 8192
    /// The most provided receive buffers (a power of two). They are recycled within the turn that
    /// filled them; 64 circulate at first, twice as many each time a turn runs out (-ENOBUFS).
    public var receiveBufferCount: Int = 1024
    /// Bytes per receive buffer. 16 KiB holds many small frames per completion.
    public var receiveBufferSize: Int = 16 * 1024
    /// Try SINGLE_ISSUER | DEFER_TASKRUN first (completion work runs only when the loop enters the
    /// kernel to wait, which also lets idle receive buffers be handed back, see ReceiveBufferRelease).
    public var deferTaskRun = true
    /// Name accepted sockets by an index into a registered file table (direct descriptors, see
    /// DirectDescriptorTable) when the kernel accepts the table; otherwise by their descriptor.
    /// Off unless asked for: it measured no gain in messages per CPU-second (docs/io_uring.md) and
    /// costs a descriptor-to-index map per worker and 512 KiB of kernel memory for the table.
    public var directDescriptors = false
    /// Indices in that table (capped by the RLIMIT_NOFILE soft limit, which the kernel requires).
    /// Sockets beyond it work as ordinary descriptors.
    public var directDescriptorCapacity: Int32 = 65_536
    /// Let one receive completion fill several receive buffers (IORING_RECVSEND_BUNDLE) when the
    /// kernel offers it (Linux 6.10): a burst larger than one buffer costs one completion.
    public var receiveBundles = true
    /// After busy turns, when the wait would sleep anyway, wait for a batch of completions with
    /// io_uring's minimum wait; nil always waits for one (see BatchedWait). Used only when the
    /// kernel offers the minimum wait (Linux 6.12) and the ring tells pending completion work
    /// (DEFER_TASKRUN with TASKRUN_FLAG): without that, a wait cannot be known to sleep. By
    /// default only connect storms make the loop busy (`BatchedWait.acceptBursts`): counting
    /// every arrival gave 1.13-1.16× handshakes per server CPU-second in a storm but cost echo
    /// with 2 or 4 connections 0.65-0.93× of its messages per server CPU-second (docs/benchmarks.md).
    public var batchedWait: BatchedWait? = .acceptBursts

    public init() {}
}

/// `LoopBackend` on io_uring through liburing.
public final class URingBackend: LoopBackend {
    public let name = "io_uring"
    private let ring: UnsafeMutablePointer<io_uring>
    private var buffers: ProvidedBufferRing!
    /// Scratch space for one batch of completion pointers, allocated once (no per-turn allocation).
    private let completionBatch = UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>.allocate(capacity: 256)
    private let completionBatchSize: UInt32 = 256
    /// Completions taken off the ring and not yet given to the loop, oldest first: each drain copies
    /// them here before handing them out, and so does making room in a full submission queue (which
    /// can happen in the middle of a drain). Delivered by the current or next drain, in order.
    /// `@exclusivity(unchecked)`: read once per completion, only on the loop thread, and no access
    /// spans a call out (each read ends before the completion is handed to the loop); the runtime
    /// check would cost on every completion (see EventLoop's slots).
    @exclusivity(unchecked) private var reaped: ContiguousArray<ReapedCompletion> = []
    /// Entries of `reaped` before this index were delivered.
    @exclusivity(unchecked) private var reapedDelivered = 0
    /// Test seam: a result to use instead of calling io_uring_submit when the queue is full (nil: call it).
    var submitFault: (() -> Int32?)?
    private static let bufferGroup: UInt16 = 1

    public init(configuration: URingConfiguration = .init()) throws(SystemError) {
        ring = .allocate(capacity: 1)
        var params = io_uring_params()
        var chosen = SetupFlags.tiers(deferTaskRun: configuration.deferTaskRun)[...]
        var rc: Int32 = -EINVAL
        // Older kernels reject the flags they do not know (EINVAL): try the next, smaller set.
        while let flags = chosen.first {
            params = io_uring_params()
            params.cq_entries = configuration.completionEntries
            params.flags = flags.rawValue
            rc = io_uring_queue_init_params(configuration.submissionEntries, ring, &params)
            if rc != -EINVAL || chosen.count == 1 { break }
            chosen = chosen.dropFirst()
        }
        guard rc == 0, let flags = chosen.first else {
            ring.deallocate()
            throw SystemError("io_uring_queue_init_params", errno: -rc)
        }
        setupFlags = flags
        receiveBundles = configuration.receiveBundles && params.features & shoal_feat_recvsend_bundle() != 0
        let knowsSleep = params.features & shoal_feat_min_timeout() != 0 && flags.contains(.taskRunFlag)
            && SetupFlags.taskRunFlag.rawValue != 0
        batchedWait = knowsSleep ? configuration.batchedWait : nil
        awaitingIssuer = flags.contains(.startDisabled)
        bufferRelease = ReceiveBufferRelease(kernelWritesOnlyWhenEntered: flags.contains(.deferTaskRun))
        do {
            buffers = try ProvidedBufferRing(uring: ring, group: Self.bufferGroup,
                                             count: configuration.receiveBufferCount,
                                             bufferSize: configuration.receiveBufferSize)
        } catch {
            io_uring_queue_exit(ring)
            ring.deallocate()
            throw error
        }
        reaped.reserveCapacity(Int(completionBatchSize))
        if configuration.directDescriptors {
            registerDirectDescriptorTable(capacity: configuration.directDescriptorCapacity)
        }
    }

    // MARK: Direct descriptors

    /// Accepted sockets in the ring's registered file table; nil when the feature is off (the
    /// configuration, or a kernel that refused the table).
    private var directTable: DirectDescriptorTable?
    /// Per table index, the descriptor its install operation reads (the kernel copies it when it
    /// issues the operation, during the next submit; a cell is rewritten only once its index was
    /// released and handed out again, after that submit).
    private var installCells: UnsafeMutablePointer<Int32>?
    /// Why the table is not in use, when it was asked for and refused (a negated errno).
    public private(set) var directDescriptorRefusal: Int32?
    /// Tag of our own install and remove operations (they post a completion only when they fail).
    private static let directTag: UInt64 = 0xFD << 56
    /// Install or remove operations that failed (the socket's operations then fail with -EBADF
    /// and it closes); expected to stay 0.
    public private(set) var directDescriptorFailures = 0

    /// Registers an empty ("sparse") file table. A kernel or a limit that refuses it leaves the
    /// backend on ordinary descriptors.
    private func registerDirectDescriptorTable(capacity wanted: Int32) {
        // liburing raises the soft limit itself when the kernel says EMFILE; stay under it instead.
        let capacity = Int32(clamping: min(Int(wanted), ResourceLimits.openFilesLimit()))
        guard capacity > 0 else { return }
        let rc = io_uring_register_files_sparse(ring, UInt32(capacity))
        guard rc == 0 else {
            directDescriptorRefusal = rc
            return
        }
        directTable = DirectDescriptorTable(capacity: capacity)
        // Untouched pages are not backed: the cells cost memory only as indices come into use.
        installCells = .allocate(capacity: Int(capacity))
    }

    /// What the log line and `shoal --version` name: the set-up flags, then RECV_BUNDLE when
    /// receives are bundled, ACCEPT_BATCH_WAIT when accept bursts wait for a batch (BATCH_WAIT when
    /// any busy turn does) and FIXED_FILES when sockets are named by table index
    /// ("SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL|RECV_BUNDLE|ACCEPT_BATCH_WAIT").
    public var features: String {
        let batching = batchedWait.map { $0.busy == .arrivals ? ["BATCH_WAIT"] : ["ACCEPT_BATCH_WAIT"] } ?? []
        let extras = (receiveBundles ? ["RECV_BUNDLE"] : []) + batching
            + (usesDirectDescriptors ? ["FIXED_FILES"] : [])
        guard !extras.isEmpty else { return setupFlags.description }
        let flags = setupFlags.description == SetupFlags([]).description ? [] : [setupFlags.description]
        return (flags + extras).joined(separator: "|")
    }

    /// Whether sockets are named by table index (the table was registered).
    public var usesDirectDescriptors: Bool { directTable != nil }

    /// Sockets in the table now.
    public var directDescriptorsInUse: Int { directTable?.count ?? 0 }

    /// The descriptor an operation on `socket` names: its table index (installed by an operation
    /// queued just before, on its first use) with `fixed` set, or the socket itself when the
    /// feature is off or the table is full.
    @inline(__always)
    private func operand(for socket: Int32) -> (descriptor: Int32, fixed: Bool) {
        guard directTable != nil else { return (socket, false) }
        if let index = directTable!.index(of: socket) { return (index, true) }
        guard let index = directTable!.assign(socket), let cells = installCells else { return (socket, false) }
        cells[Int(index)] = socket
        let sqe = nextSubmission()
        io_uring_prep_files_update(sqe, cells + Int(index), 1, index)
        sqe.pointee.flags |= UInt8(shoal_iosqe_cqe_skip_success())
        io_uring_sqe_set_data64(sqe, Self.directTag | UInt64(UInt32(bitPattern: index)))
        return (index, true)
    }

    /// A submission entry for an operation on `socket`, prepared by `prepare` with the
    /// descriptor to name, then marked as naming a table index when it does.
    @inline(__always)
    private func prepareOnSocket(_ socket: Int32, _ prepare: (UnsafeMutablePointer<io_uring_sqe>, Int32) -> Void)
        -> UnsafeMutablePointer<io_uring_sqe> {
        let (descriptor, fixed) = operand(for: socket)
        let sqe = nextSubmission()
        prepare(sqe, descriptor)  // io_uring_prep_* clears the flags, so FIXED_FILE goes on after
        if fixed { sqe.pointee.flags |= UInt8(shoal_iosqe_fixed_file()) }
        return sqe
    }

    /// The set-up flags the kernel accepted.
    public let setupFlags: SetupFlags
    /// The ring was created disabled and waits for the thread that runs the loop to enable it.
    private var awaitingIssuer: Bool
    /// When the receive buffers' pages may be handed back.
    private var bufferRelease: ReceiveBufferRelease
    /// A ring with SINGLE_ISSUER accepts submissions from one thread only: the one that enabled
    /// it. The loop may run on another thread than the one that created the backend (the tests'
    /// harness does), so the ring starts disabled and the first entry into the kernel, which is
    /// always made on the loop thread, enables it there. The ring's descriptor is registered
    /// there too: that registration is per thread.
    @inline(__always)
    private func enableOnIssuerThread() {
        guard awaitingIssuer else { return }
        awaitingIssuer = false
        let rc = shoal_enable_rings(ring)
        if rc < 0 { fatalError("IORING_REGISTER_ENABLE_RINGS failed: errno \(-rc)") }
        // Optional: without it every io_uring_enter looks the descriptor up (fdget/fdput).
        ringDescriptorRegistered = io_uring_register_ring_fd(ring) == 1
    }

    /// Whether io_uring_enter goes through a registered ring descriptor (known once the loop ran).
    public private(set) var ringDescriptorRegistered = false

    /// A free submission entry, flushing the queue to the kernel when it is full.
    @inline(__always)
    private func nextSubmission() -> UnsafeMutablePointer<io_uring_sqe> {
        if let sqe = io_uring_get_sqe(ring) { return sqe }
        return makeRoom()
    }

    /// The submission queue is full (a busy turn): submit it now, ahead of the turn's own submit.
    /// The kernel may refuse: -EBUSY while completions it could not post wait for room in the
    /// completion queue, -EAGAIN when short of memory; then reap completions into `reaped` (the
    /// loop gets them with the next drain), give the kernel a moment if there was nothing to reap,
    /// and try again. -EINTR is simply retried. A worker must not die of a busy ring.
    private func makeRoom() -> UnsafeMutablePointer<io_uring_sqe> {
        enableOnIssuerThread()
        while true {
            let rc = submitFault?() ?? io_uring_submit(ring)
            if rc >= 0, let sqe = io_uring_get_sqe(ring) { return sqe }
            switch -rc {
            case EINTR:
                continue
            case EBADF, EFAULT, EINVAL, ENXIO, EOPNOTSUPP:
                // The ring itself is unusable: no retry can help.
                fatalError("io_uring_submit failed: errno \(-rc)")
            default:
                if reapReady() == 0 {
                    // Nothing to reap yet: wait up to a millisecond for the kernel to post (entering
                    // it also flushes completions it holds back for want of room).
                    var cqe: UnsafeMutablePointer<io_uring_cqe>?
                    var pause = __kernel_timespec(tv_sec: 0, tv_nsec: 1_000_000)
                    _ = io_uring_wait_cqe_timeout(ring, &cqe, &pause)
                    _ = reapReady()
                }
            }
        }
    }

    /// Moves the completions ready in the ring to `reaped` and frees their ring entries. Returns how many.
    @discardableResult
    private func reapReady() -> Int {
        // liburing's peek enters the kernel to run pending completion work when the ring is empty
        // and IORING_SQ_TASKRUN is set (TASKRUN_FLAG): the loop leaves that to its wait, as without
        // the flag (an overflow is still flushed there, as before).
        guard io_uring_cq_ready(ring) > 0 || io_uring_cq_has_overflow(ring) else { return 0 }
        let n = Int(io_uring_peek_batch_cqe(ring, completionBatch, completionBatchSize))
        for i in 0..<n {
            let cqe = completionBatch[i]!
            if cqe.pointee.flags & shoal_cqe_f_buffer() != 0 || cqe.pointee.user_data >> 56 == Self.acceptPollTag >> 56 {
                arrivalsSinceSleep += 1
            }
            reaped.append(ReapedCompletion(userData: cqe.pointee.user_data, result: cqe.pointee.res, flags: cqe.pointee.flags))
        }
        if n > 0 { io_uring_cq_advance(ring, UInt32(n)) }
        return n
    }

    /// Accept is readiness-based: a multishot poll on the listener, then accept4 in this process.
    /// An io_uring accept (multishot or not) takes connections off the queue inside the kernel, and
    /// those a worker's ring took in the instant it was killed are reset with it; with a poll, a
    /// connection leaves the shared listener's queue only when a live worker calls accept4, so a
    /// crashed worker's replacement finds every queued connection still there.
    public func prepareAccept(listener: Int32, userData: UInt64) {
        let index = listenerPolls.firstIndex { $0.listener == listener } ?? {
            listenerPolls.append((listener, userData))
            return listenerPolls.count - 1
        }()
        listenerPolls[index].userData = userData
        stoppedListenerPolls.remove(index)
        let sqe = nextSubmission()
        io_uring_prep_poll_multishot(sqe, listener, UInt32(POLLIN))
        io_uring_sqe_set_data64(sqe, Self.acceptPollTag | UInt64(index))
    }

    /// Listeners with a poll armed, and the tag the loop gave their accept.
    private var listenerPolls: [(listener: Int32, userData: UInt64)] = []
    /// Listener polls we removed ourselves (after EMFILE and the like), whose -ECANCELED is ours.
    private var removedPolls: [Int] = []
    /// Listener polls the loop cancelled (it stopped accepting: a reload or a stop): a readiness
    /// already reaped, or queued again below, accepts nothing more; the connections wait in the
    /// shared listener's queue for another worker.
    private var stoppedListenerPolls: Set<Int> = []
    /// Top byte of our own poll tags: the loop's operations use small numbers there (see UserData).
    private static let acceptPollTag: UInt64 = 0xFE << 56
    /// Connections accepted per readiness event before the others get their turn.
    private static let acceptsPerWakeup = 256

    /// Turns a listener's readiness into accept completions in the loop's terms.
    private func acceptReady(_ cqe: ReapedCompletion, _ body: (Completion) -> Void) {
        let index = Int(cqe.userData & 0xFFFF_FFFF)
        guard index < listenerPolls.count else { return }
        let (listener, userData) = listenerPolls[index]
        let pollArmed = cqe.flags & shoal_cqe_f_more() != 0
        if cqe.result == -ECANCELED, let removed = removedPolls.firstIndex(of: index) {
            removedPolls.remove(at: removed)  // our own removal below: the loop was told already
            return
        }
        guard cqe.result >= 0 else {
            body(Completion(userData: userData, result: cqe.result, hasMore: false, bufferID: nil))
            return
        }
        if stoppedListenerPolls.contains(index) { return }
        var queueEmptied = false
        var peer = PeerAddress.unknown
        for _ in 0..<Self.acceptsPerWakeup {
            let fd = Socket.accept(listener, peer: &peer)
            if fd >= 0 {
                acceptedSinceSleep += 1
                body(Completion(userData: userData, result: fd, hasMore: true, bufferID: nil, peer: peer))
                continue
            }
            let error = errno
            if error == EAGAIN || error == EWOULDBLOCK {
                queueEmptied = true
                break
            }
            if error == EINTR || error == ECONNABORTED || error == EPROTO { continue }
            // EMFILE, ENFILE, ENOBUFS...: stop polling; the loop re-arms after a pause.
            if pollArmed {
                removedPolls.append(index)
                let sqe = nextSubmission()
                io_uring_prep_poll_remove(sqe, cqe.userData)
                io_uring_sqe_set_data64(sqe, Self.acceptPollTag | 0xFFFF_FFFF)
            }
            body(Completion(userData: userData, result: -error, hasMore: false, bufferID: nil))
            return
        }
        if !pollArmed {
            // The kernel ended the multishot poll (it may, e.g. on overflow): arm it again.
            prepareAccept(listener: listener, userData: userData)
        } else if !queueEmptied {
            // The poll reports a wake-up (a connection arriving), not a level: connections left in
            // the accept queue after this wake-up's budget would wait for the next arrival, and
            // after a storm there is none (20,000 clients at once on one worker: 1,856 were never
            // accepted and /healthz went unanswered). Come back to it behind the completions
            // already reaped, as if the poll had fired again; the loop does not sleep meanwhile.
            reaped.append(cqe)
        }
    }

    public func prepareReceive(socket: Int32, userData: UInt64) {
        let sqe = prepareOnSocket(socket) { io_uring_prep_recv_multishot($0, $1, nil, 0, 0) }
        sqe.pointee.flags |= UInt8(shoal_iosqe_buffer_select())
        if receiveBundles { sqe.pointee.ioprio |= shoal_recvsend_bundle() }
        shoal_sqe_set_buf_group(sqe, Self.bufferGroup)
        io_uring_sqe_set_data64(sqe, userData)
    }

    public func prepareSend(socket: Int32, bytes: UnsafeRawBufferPointer, userData: UInt64) {
        let sqe = prepareOnSocket(socket) { io_uring_prep_send($0, $1, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
        io_uring_sqe_set_data64(sqe, userData)
    }

    public func prepareConnect(socket: Int32, address: UnsafeRawBufferPointer, userData: UInt64) {
        let sqe = nextSubmission()
        io_uring_prep_connect(sqe, socket, address.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(address.count))
        io_uring_sqe_set_data64(sqe, userData)
    }

    public func prepareRead(descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) {
        let sqe = nextSubmission()
        io_uring_prep_read(sqe, descriptor, buffer.baseAddress, UInt32(buffer.count), 0)
        io_uring_sqe_set_data64(sqe, userData)
    }

    public func preparePoll(descriptor: Int32, writable: Bool, userData: UInt64) {
        let sqe = nextSubmission()
        io_uring_prep_poll_add(sqe, descriptor, UInt32(writable ? POLLOUT : POLLIN))
        io_uring_sqe_set_data64(sqe, userData)
    }

    public func prepareCancel(socket: Int32, userData: UInt64) {
        if let index = listenerPolls.firstIndex(where: { $0.listener == socket }) { stoppedListenerPolls.insert(index) }
        let sqe = nextSubmission()
        io_uring_prep_cancel_fd(sqe, socket, UInt32(IORING_ASYNC_CANCEL_ALL))
        io_uring_sqe_set_data64(sqe, userData)
    }

    /// By tag, not by descriptor: the kernel finds a tag in its hash of armed operations, but a
    /// cancel by descriptor walks every operation the ring has in flight. A worker draining 16,000
    /// clients on a reload closed each with one, and spent 86 % of its time in that walk (the
    /// clients waited 15 s for their close frames).
    public func prepareCancelOperations(socket: Int32, receiveUserData: UInt64, sendUserData: UInt64, userData: UInt64) {
        prepareCancel(tag: receiveUserData, userData: userData)
        prepareCancel(tag: sendUserData, userData: userData)
    }

    private func prepareCancel(tag: UInt64, userData: UInt64) {
        let sqe = nextSubmission()
        io_uring_prep_cancel64(sqe, tag, 0)
        io_uring_sqe_set_data64(sqe, userData)
    }

    public func prepareCancelReceive(socket: Int32, receiveUserData: UInt64, userData: UInt64) {
        let sqe = nextSubmission()
        io_uring_prep_cancel64(sqe, receiveUserData, 0)
        io_uring_sqe_set_data64(sqe, userData)
    }

    public func shutdownSocket(_ fd: Int32, read: Bool, write: Bool) {
        Socket.shutdown(fd, read: read, write: write)
    }

    /// Cancel by descriptor needs no table index: the kernel matches operations by the open
    /// file, which the table entry and the descriptor share.
    public func closeSocket(_ fd: Int32) {
        if let index = directTable?.release(fd) {
            // The table holds its own reference: the socket ends (FIN or RST) once this removal
            // runs at the next submit, after every operation queued before it on this index.
            let sqe = nextSubmission()
            io_uring_prep_close_direct(sqe, UInt32(index))
            sqe.pointee.flags |= UInt8(shoal_iosqe_cqe_skip_success())
            io_uring_sqe_set_data64(sqe, Self.directTag | UInt64(UInt32(bitPattern: index)))
        }
        Socket.close(fd)
    }

    public func submitAndWait(timeoutNanoseconds: Int64?) throws(SystemError) {
        enableOnIssuerThread()
        let completionsWaiting = reapedDelivered < reaped.count
        // Waiting: taken off the ring, still in it, or held back by the kernel for want of room.
        if bufferRelease.releaseNow(completionsWaiting: completionsWaiting || io_uring_cq_ready(ring) > 0
                                    || io_uring_cq_has_overflow(ring)) {
            buffers.releasePages()
        }
        var cqe: UnsafeMutablePointer<io_uring_cqe>?
        let rc: Int32
        if completionsWaiting {
            // Completions taken off the ring are ready now: submit, but do not sleep (and the
            // arrivals counted so far still describe the turns since the loop last slept). With
            // nothing to submit liburing would still enter the kernel whenever IORING_SQ_TASKRUN is
            // set; the pending work runs at the next wait instead, as without the flag.
            rc = io_uring_sq_ready(ring) == 0 && !io_uring_cq_has_overflow(ring) ? 0 : io_uring_submit(ring)
        } else {
            var wait = BatchedWait.Wait.plain(timeoutNanoseconds: timeoutNanoseconds)
            if let policy = batchedWait {
                let outlook = BatchedWait.Outlook(
                    submitting: Int(io_uring_sq_ready(ring)),
                    completionsReady: io_uring_cq_ready(ring) > 0 || io_uring_cq_has_overflow(ring),
                    workPending: shoal_taskrun_pending(ring))
                wait = policy.wait(afterArrivals: arrivalsSinceSleep, accepted: acceptedSinceSleep, outlook: outlook,
                                   timeoutNanoseconds: timeoutNanoseconds)
                // A wait that may return at once (its sends complete inline, say) leaves the counts
                // running: the arrivals that led to those sends still say how busy the loop is.
                if outlook.certainToSleep {
                    arrivalsSinceSleep = 0
                    acceptedSinceSleep = 0
                }
            }
            switch wait {
            case let .batched(count, minimumWait, timeout):
                batchedWaits += 1
                rc = shoal_submit_and_wait_min(ring, count, minimumWait, timeout, ringDescriptorRegistered)
            case let .plain(timeout?):
                var ts = __kernel_timespec(tv_sec: timeout / 1_000_000_000, tv_nsec: timeout % 1_000_000_000)
                rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nil)
            case .plain(nil):
                rc = io_uring_submit_and_wait(ring, 1)
            }
        }
        // ETIME: the timeout passed; EINTR: a signal arrived (its handler rang the eventfd).
        if rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY {
            throw SystemError("io_uring_submit_and_wait", errno: -rc)
        }
    }

    /// How the loop waits after a busy turn; nil when turned off, when the kernel lacks the
    /// minimum wait (IORING_FEAT_MIN_TIMEOUT) or when the ring cannot tell pending completion work
    /// (no TASKRUN_FLAG: the cooperative set-up), and then every wait is for one completion.
    public let batchedWait: BatchedWait?
    /// Completions of peers' doing (bytes received, connections to accept) taken off the ring since
    /// the loop last went to a wait certain to sleep: how busy the turns since were. The loop's own
    /// sends are not counted: each completes within the submit that follows the receive it
    /// answers, so a lone client's turns would look twice as busy (see BatchedWait).
    private var arrivalsSinceSleep = 0
    /// Connections accepted over the same turns (what `BatchedWait.acceptBursts` counts).
    private var acceptedSinceSleep = 0
    /// Waits made for a batch (tests and measurements read it).
    public private(set) var batchedWaits = 0
    /// The kernel holds completion work for the loop, to run at its next wait (IORING_SQ_TASKRUN;
    /// false on a ring set up without TASKRUN_FLAG).
    var completionWorkPending: Bool { shoal_taskrun_pending(ring) }

    public func drainCompletions(limit: Int, _ body: (Completion) -> Void) {
        var lentMore = false
        var delivered = 0
        while delivered < limit {
            // Copied off the ring first: `body` may prepare operations, and a full submission
            // queue then reaps more completions (appended behind these, delivered in order).
            if reapedDelivered == reaped.count {
                reaped.removeAll(keepingCapacity: true)
                reapedDelivered = 0
                if reapReady() == 0 { return }
            }
            while reapedDelivered < reaped.count && delivered < limit {
                let cqe = reaped[reapedDelivered]
                reapedDelivered += 1
                delivered += 1
                if cqe.userData >> 56 == Self.acceptPollTag >> 56 {
                    acceptReady(cqe, body)
                    continue
                }
                if cqe.userData >> 56 == Self.directTag >> 56 {
                    directDescriptorFailures += 1  // only failures post (CQE_SKIP_SUCCESS)
                    continue
                }
                if cqe.result == -ENOBUFS && !lentMore {
                    // The ring ran dry: lend more before the loop re-arms this turn's receives. Once
                    // per drain, as every socket that found it empty reports the same shortage.
                    lentMore = buffers.lendMore()
                }
                let hasBuffer = cqe.flags & shoal_cqe_f_buffer() != 0
                if hasBuffer && Int(cqe.result) > buffers.bufferSize {
                    deliverBundle(cqe, body)
                    continue
                }
                body(Completion(userData: cqe.userData, result: cqe.result,
                                hasMore: cqe.flags & shoal_cqe_f_more() != 0,
                                bufferID: hasBuffer ? UInt16(truncatingIfNeeded: cqe.flags >> 16) : nil))
            }
        }
    }

    /// A receive completion that filled several buffers, handed to the loop as one completion per
    /// buffer (each full but the last; all but the last say the receive stays armed), as if the
    /// kernel had posted them one by one. Every buffer id is read before the first is handed over:
    /// the loop recycles each buffer as it goes, which may reuse the ring positions read here.
    private func deliverBundle(_ cqe: ReapedCompletion, _ body: (Completion) -> Void) {
        let size = buffers.bufferSize
        let total = Int(cqe.result)
        let pieces = (total + size - 1) / size
        let first = UInt16(truncatingIfNeeded: cqe.flags >> 16)
        bundleIDs.removeAll(keepingCapacity: true)
        for offset in 0..<pieces { bundleIDs.append(buffers.buffer(after: first, by: offset)) }
        receiveBundleCompletions += 1
        let armed = cqe.flags & shoal_cqe_f_more() != 0
        for (offset, id) in bundleIDs.enumerated() {
            let last = offset == pieces - 1
            body(Completion(userData: cqe.userData, result: Int32(last ? total - offset * size : size),
                            hasMore: last ? armed : true, bufferID: id))
        }
    }

    /// Scratch for one bundle's buffer ids (no allocation once grown).
    private var bundleIDs: [UInt16] = []

    /// Whether receives may fill several buffers per completion (the kernel offered it and the
    /// configuration asked for it).
    public private(set) var receiveBundles: Bool

    /// Receive completions that filled more than one buffer (tests read it).
    public private(set) var receiveBundleCompletions = 0

    public func receivedBytes(bufferID: UInt16, count: Int) -> UnsafeMutableRawBufferPointer {
        buffers.bytes(id: bufferID, length: count)
    }

    public func recycle(bufferID: UInt16) {
        buffers.recycle(id: bufferID)
    }

    /// Receive buffers circulating in the ring now (between 64 and `receiveBufferCount`).
    public var receiveBuffersLent: Int { buffers.lent }

    /// Hands the receive buffers' pages back to the kernel before the loop next waits, when that
    /// is safe (DEFER_TASKRUN, no completion waiting); see ReceiveBufferRelease.
    public func releaseIdleReceiveBuffers() {
        bufferRelease.request()
    }

    /// Times the receive buffers' pages were handed back (tests read it).
    public var receiveBufferReleases: Int { bufferRelease.releases }

    /// Bytes of receive buffers backed by memory now (the pages the kernel wrote and were not handed back).
    public var receiveBufferResidentBytes: Int { buffers.residentBytes() }

    public func shutdown() {
        buffers.release(uring: ring)
        io_uring_queue_exit(ring)
        ring.deallocate()
        completionBatch.deallocate()
        installCells?.deallocate()
    }
}

extension URingBackend {
    /// The IORING_SETUP_* flags Shoal asks for, in the terms the log line uses.
    public struct SetupFlags: OptionSet, Sendable, CustomStringConvertible {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// The CQ gets its own size (several times the SQ's: multishot receives post many).
        static let completionQueueSize = SetupFlags(rawValue: shoal_setup_cqsize())
        /// One failing SQE does not stop the rest of the batch.
        static let submitAll = SetupFlags(rawValue: shoal_setup_submit_all())
        /// Completion work runs when the task enters the kernel anyway, not by an interrupt.
        static let cooperativeTaskRun = SetupFlags(rawValue: shoal_setup_coop_taskrun())
        /// Only one thread submits (the kernel skips its locking).
        static let singleIssuer = SetupFlags(rawValue: shoal_setup_single_issuer())
        /// Completion work runs only when the issuer waits in io_uring_enter (GETEVENTS).
        static let deferTaskRun = SetupFlags(rawValue: shoal_setup_defer_taskrun())
        /// Created disabled: the thread that enables it becomes the single issuer.
        static let startDisabled = SetupFlags(rawValue: shoal_setup_r_disabled())
        /// The kernel flags the SQ ring while it holds completion work for the loop (IORING_SQ_TASKRUN).
        static let taskRunFlag = SetupFlags(rawValue: shoal_setup_taskrun_flag())

        /// The sets tried in turn until the kernel accepts one: deferred task work on one issuer,
        /// flagged in the SQ ring while pending (Linux 6.1), cooperative task work (5.19), then
        /// only the CQ size.
        static func tiers(deferTaskRun: Bool) -> [SetupFlags] {
            let cooperative: SetupFlags = [.completionQueueSize, .submitAll, .cooperativeTaskRun]
            let deferred: SetupFlags = [.completionQueueSize, .submitAll, .singleIssuer, .deferTaskRun, .startDisabled,
                                        .taskRunFlag]
            // A flag the headers Shoal was built with do not know reads as 0.
            let known = singleIssuer.rawValue != 0 && Self.deferTaskRun.rawValue != 0
            return (deferTaskRun && known ? [deferred] : []) + [cooperative, .completionQueueSize]
        }

        /// "SINGLE_ISSUER|DEFER_TASKRUN", as the kernel names them (the ones that change behaviour).
        public var description: String {
            let named: [(SetupFlags, String)] = [(.singleIssuer, "SINGLE_ISSUER"), (.deferTaskRun, "DEFER_TASKRUN"),
                                                 (.cooperativeTaskRun, "COOP_TASKRUN"), (.submitAll, "SUBMIT_ALL")]
            let names = named.filter { $0.0.rawValue != 0 && contains($0.0) }.map(\.1)
            return names.isEmpty ? "no optional flags" : names.joined(separator: "|")
        }
    }
}

/// A completion copied off the ring (the fields Shoal reads).
private struct ReapedCompletion {
    var userData: UInt64
    var result: Int32
    var flags: UInt32
}
