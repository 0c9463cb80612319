// A `LoopBackend` that plays the kernel (in the spirit of SwiftNIO's EmbeddedChannel): it records
// what the loop prepares and completes it only when the test says so, in any order, with any
// result (short sends, -ECANCELED, -EAGAIN, -ENOBUFS), and with a submission queue that can run
// full. It checks the loop's side of the kernel contract as it goes and lists every breach in
// `violations`: a send's bytes changing while the kernel reads them (a chunk released in flight),
// a descriptor closed twice or with operations still on it, an operation on a closed descriptor,
// a receive buffer recycled that was not lent.
//
// Descriptors are plain numbers (`fakeDescriptor`), never open files: close and shutdown reach
// this backend, not the system.
import Glibc
import ShoalPosix
@testable import ShoalRing

final class ScriptedBackend: LoopBackend {
    enum Kind: Equatable {
        case accept, receive, send, read, poll, cancel, cancelReceive, cancelTag, connect
    }

    /// One operation the loop prepared.
    struct Operation {
        let kind: Kind
        let fd: Int32
        let userData: UInt64
        /// Send: the bytes the kernel reads, and a copy taken when the loop prepared it.
        var bytes: UnsafeRawBufferPointer? = nil
        var snapshot: [UInt8] = []
        /// Cancel of one receive, or of one operation by its tag: that tag.
        var target: UInt64 = 0
        /// A cancel named this operation; it is still in flight until the test completes it.
        var cancelRequested = false
    }

    let name = "scripted"
    /// Numbers no open file can have (above any RLIMIT_NOFILE), for sockets that exist only here.
    static func fakeDescriptor(_ n: Int) -> Int32 { Int32(1 << 22) + Int32(n) }

    /// Prepared and not yet submitted: the submission queue.
    private(set) var submissionQueue: [Operation] = []
    /// Submitted and not completed: what the kernel holds.
    private(set) var inFlight: [Operation] = []
    /// Completions the next drain delivers, in this order.
    private(set) var ready: [Completion] = []
    /// Entries of the submission queue; preparing beyond it submits what is there first (SQ full).
    var submissionCapacity = Int.max
    /// How many times a full submission queue was submitted early.
    private(set) var earlySubmissions = 0
    /// When true, a cancel completes the operations it names with -ECANCELED at once; when false
    /// they only get `cancelRequested` and the test decides when (and whether) they complete so.
    var cancelsCompleteAtOnce = true
    /// Cancels by descriptor the loop asked for (io_uring walks every armed operation for one).
    private(set) var cancelsByDescriptor = 0
    /// Every close and shutdown the loop asked for, in order.
    private(set) var closed: [Int32] = []
    private(set) var shutdowns: [(fd: Int32, read: Bool, write: Bool)] = []
    /// The timeout of every `submitAndWait` (nil: wait without one).
    private(set) var waits: [Int64?] = []
    /// Runs after each completion the loop took (a test's kernel that keeps posting).
    var onDelivered: (() -> Void)?
    /// Breaches of the kernel contract, in the order they happened.
    private(set) var violations: [String] = []

    private let bufferSize: Int
    private let buffers: UnsafeMutableRawPointer
    private var freeBuffers: [UInt16]
    private var lent: [Bool]

    /// `receiveBuffers` provided buffers of `bufferSize` bytes; a receive with none free completes with -ENOBUFS.
    init(receiveBuffers: Int = 8, bufferSize: Int = 4096) {
        self.bufferSize = bufferSize
        buffers = .allocate(byteCount: receiveBuffers * bufferSize, alignment: 16)
        freeBuffers = (0..<receiveBuffers).reversed().map { UInt16($0) }
        lent = [Bool](repeating: false, count: receiveBuffers)
    }

    // MARK: LoopBackend (the loop's side)

    func prepareAccept(listener: Int32, userData: UInt64) { prepare(Operation(kind: .accept, fd: listener, userData: userData)) }

    func prepareReceive(socket: Int32, userData: UInt64) {
        if inFlight.contains(where: { $0.fd == socket && $0.kind == .receive })
            || submissionQueue.contains(where: { $0.fd == socket && $0.kind == .receive }) {
            violations.append("second receive armed on \(socket)")
        }
        prepare(Operation(kind: .receive, fd: socket, userData: userData))
    }

    func prepareSend(socket: Int32, bytes: UnsafeRawBufferPointer, userData: UInt64) {
        if inFlight.contains(where: { $0.fd == socket && $0.kind == .send })
            || submissionQueue.contains(where: { $0.fd == socket && $0.kind == .send }) {
            violations.append("second send in flight on \(socket)")
        }
        prepare(Operation(kind: .send, fd: socket, userData: userData, bytes: bytes, snapshot: Array(bytes)))
    }

    func prepareRead(descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) {
        prepare(Operation(kind: .read, fd: descriptor, userData: userData))
    }

    func preparePoll(descriptor: Int32, writable: Bool, userData: UInt64) {
        prepare(Operation(kind: .poll, fd: descriptor, userData: userData, target: writable ? 1 : 0))
    }

    func prepareConnect(socket: Int32, address: UnsafeRawBufferPointer, userData: UInt64) {
        prepare(Operation(kind: .connect, fd: socket, userData: userData))
    }

    func prepareCancel(socket: Int32, userData: UInt64) {
        cancelsByDescriptor += 1
        prepare(Operation(kind: .cancel, fd: socket, userData: userData))
    }

    func prepareCancelReceive(socket: Int32, receiveUserData: UInt64, userData: UInt64) {
        prepare(Operation(kind: .cancelReceive, fd: socket, userData: userData, target: receiveUserData))
    }

    /// As io_uring: one cancel per tag, each finding the one operation that carries it.
    func prepareCancelOperations(socket: Int32, receiveUserData: UInt64, sendUserData: UInt64, userData: UInt64) {
        prepare(Operation(kind: .cancelTag, fd: socket, userData: userData, target: receiveUserData))
        prepare(Operation(kind: .cancelTag, fd: socket, userData: userData, target: sendUserData))
    }

    func closeSocket(_ fd: Int32) {
        if closed.contains(fd) { violations.append("descriptor \(fd) closed twice") }
        if inFlight.contains(where: { $0.fd == fd && $0.kind != .cancel }) {
            violations.append("descriptor \(fd) closed with operations in flight")
        }
        closed.append(fd)
    }

    func shutdownSocket(_ fd: Int32, read: Bool, write: Bool) {
        if closed.contains(fd) { violations.append("shutdown of closed descriptor \(fd)") }
        shutdowns.append((fd, read, write))
    }

    func submitAndWait(timeoutNanoseconds: Int64?) throws(SystemError) {
        waits.append(timeoutNanoseconds)
        submit()
    }

    func drainCompletions(limit: Int, _ body: (Completion) -> Void) {
        // Like a ring: what is posted during the drain (a submission queue run full, `onDelivered`)
        // is delivered by the same drain, up to `limit`.
        var delivered = 0
        while delivered < limit && !ready.isEmpty {
            body(ready.removeFirst())
            delivered += 1
            onDelivered?()
        }
    }

    func receivedBytes(bufferID: UInt16, count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: buffers + Int(bufferID) * bufferSize, count: count)
    }

    func recycle(bufferID: UInt16) {
        guard Int(bufferID) < lent.count, lent[Int(bufferID)] else {
            violations.append("receive buffer \(bufferID) recycled but not lent")
            return
        }
        lent[Int(bufferID)] = false
        freeBuffers.append(bufferID)
    }

    func shutdown() {
        buffers.deallocate()
    }

    // MARK: The kernel's side, driven by the test

    /// Operations of `kind` in flight on `fd`.
    func inFlight(_ kind: Kind, on fd: Int32) -> [Operation] {
        inFlight.filter { $0.kind == kind && $0.fd == fd }
    }

    /// Receive buffers lent to the loop right now.
    var buffersLent: Int { lent.filter { $0 }.count }

    /// Delivers `bytes` to the receive armed on `fd` (-ENOBUFS, ending it, when no buffer is free).
    /// `more`: the multishot receive stays armed.
    func receive(_ bytes: [UInt8], on fd: Int32, more: Bool = true) {
        guard let index = index(of: .receive, on: fd) else { return violations.append("no receive armed on \(fd)") }
        guard let id = freeBuffers.popLast() else { return complete(at: index, result: -ENOBUFS) }
        lent[Int(id)] = true
        let region = receivedBytes(bufferID: id, count: bytes.count)
        region.copyBytes(from: bytes)
        complete(at: index, result: Int32(bytes.count), hasMore: more, bufferID: id)
    }

    /// Ends the receive on `fd` with `result` (0: the peer's FIN; or a negated errno).
    func endReceive(on fd: Int32, result: Int32) {
        guard let index = index(of: .receive, on: fd) else { return violations.append("no receive armed on \(fd)") }
        complete(at: index, result: result)
    }

    /// Completes the send in flight on `fd`: `sent` bytes went out (nil: all), or `error` (positive errno).
    /// Returns the bytes the kernel read (nil when there was no send).
    @discardableResult
    func completeSend(on fd: Int32, sent: Int? = nil, error: Int32? = nil) -> [UInt8]? {
        guard let index = index(of: .send, on: fd) else {
            violations.append("no send in flight on \(fd)")
            return nil
        }
        let operation = inFlight[index]
        let read = Array(operation.bytes!)
        if read != operation.snapshot {
            violations.append("send bytes on \(fd) changed while in flight (a chunk released or reused)")
        }
        let count = min(sent ?? read.count, read.count)
        complete(at: index, result: error.map { -$0 } ?? Int32(count))
        return error == nil ? Array(read[0..<count]) : nil
    }

    /// A new connection on the listener `fd` (the multishot accept stays armed).
    func accept(_ connection: Int32, on listener: Int32) {
        guard let index = index(of: .accept, on: listener) else { return violations.append("no accept armed on \(listener)") }
        complete(at: index, result: connection, hasMore: true)
    }

    /// Completes the poll for readability (or writability) pending on `fd`: it is ready.
    func pollReady(on fd: Int32, writable: Bool) {
        guard let index = inFlight.firstIndex(where: { $0.kind == .poll && $0.fd == fd && $0.target == (writable ? 1 : 0) }) else {
            return violations.append("no \(writable ? "write" : "read") poll on \(fd)")
        }
        complete(at: index, result: Int32(writable ? POLLOUT : POLLIN))
    }

    /// Queues a completion the kernel never promised (a stale or unexpected one).
    func inject(_ completion: Completion) {
        ready.append(completion)
    }

    /// Completes the operation at `index` of `inFlight` with -ECANCELED.
    func completeCancelled(at index: Int) {
        complete(at: index, result: -ECANCELED)
    }

    /// Completes `inFlight[index]` (removing it unless `hasMore`).
    func complete(at index: Int, result: Int32, hasMore: Bool = false, bufferID: UInt16? = nil) {
        let operation = inFlight[index]
        if !hasMore { inFlight.remove(at: index) }
        ready.append(Completion(userData: operation.userData, result: result, hasMore: hasMore, bufferID: bufferID))
    }

    private func index(of kind: Kind, on fd: Int32) -> Int? {
        inFlight.firstIndex { $0.kind == kind && $0.fd == fd }
    }

    private func prepare(_ operation: Operation) {
        if ![.cancel, .cancelReceive, .cancelTag].contains(operation.kind) && closed.contains(operation.fd) {
            violations.append("\(operation.kind) prepared on closed descriptor \(operation.fd)")
        }
        if submissionQueue.count >= submissionCapacity {
            // What io_uring_get_sqe returning NULL forces: submit the full queue, then take an entry.
            earlySubmissions += 1
            submit()
        }
        submissionQueue.append(operation)
    }

    /// Hands the submission queue to the kernel. Cancels take effect now; what they name completes
    /// with -ECANCELED at once or when the test says (`cancelsCompleteAtOnce`).
    private func submit() {
        let batch = submissionQueue
        submissionQueue.removeAll()
        for operation in batch {
            switch operation.kind {
            case .cancel:
                var found: Int32 = 0
                for i in inFlight.indices.reversed() where inFlight[i].fd == operation.fd && !inFlight[i].cancelRequested {
                    found += 1
                    inFlight[i].cancelRequested = true
                    if cancelsCompleteAtOnce { completeCancelled(at: i) }
                }
                ready.append(Completion(userData: operation.userData, result: found > 0 ? found : -ENOENT, hasMore: false, bufferID: nil))
            case .cancelReceive, .cancelTag:
                let i = inFlight.firstIndex {
                    $0.userData == operation.target && (operation.kind == .cancelTag || $0.kind == .receive) && !$0.cancelRequested
                }
                if let i {
                    inFlight[i].cancelRequested = true
                    if cancelsCompleteAtOnce { completeCancelled(at: i) }
                }
                ready.append(Completion(userData: operation.userData, result: i == nil ? -ENOENT : 0, hasMore: false, bufferID: nil))
            default:
                inFlight.append(operation)
            }
        }
    }
}

/// A clock the test moves by hand.
final class ManualClock {
    var now: UInt64 = 1_000_000_000
}
