// A backend that plays the kernel in memory, for tests of the layers above the loop (ShoalTesting):
// sockets are numbers the test makes up, what a peer "sends" is handed to the loop's armed receive,
// what the loop sends is kept for the test to read, and every send completes whole at once.
// No descriptor is involved: the loop closes and shuts down sockets through the backend, and here
// that only forgets the simulated socket.
import Glibc
import ShoalPosix

/// An in-memory `LoopBackend`. Used on one thread: the thread that runs the loop, between turns.
public final class MemoryBackend: LoopBackend {
    public let name = "memory"

    /// Descriptors handed out by `makeSocket()`: above RLIMIT_NOFILE's largest value, so never real.
    private var nextSocket: Int32 = 1_900_000_000
    private var armedReceives: [Int32: UInt64] = [:]
    private var inbox: [Int32: [UInt8]] = [:]
    private var endOfStream: Set<Int32> = []
    private var outbox: [Int32: [UInt8]] = [:]
    private var ready: [Completion] = []
    private var buffers: [UInt16: UnsafeMutableRawBufferPointer] = [:]
    private var freeBufferIDs: [UInt16] = []
    private var nextBufferID: UInt16 = 0

    /// Completions handed to the loop and operations it prepared since the last `resetActivity()`.
    public private(set) var activity = 0
    /// Called from `submitAndWait` when nothing is ready (the loop would block there): a test
    /// harness stops the loop from here to get control back.
    public var whenIdle: (() -> Void)?

    /// What an outbound connect completes with: no peer lives in memory, so it is refused unless a
    /// test says otherwise.
    public var connectResult: Int32 = -ECONNREFUSED
    /// Real descriptors the loop made for outbound connects: closed for real when the loop closes them.
    private var outboundSockets: Set<Int32> = []

    /// Bytes per receive completion, as the loop's provided buffers hold.
    public static let receiveSize = 16 * 1024

    public init() {}

    /// A new socket number for a simulated connection.
    public func makeSocket() -> Int32 {
        nextSocket += 1
        return nextSocket
    }

    /// The peer sent `bytes` on `socket`.
    public func peerSent(_ bytes: [UInt8], on socket: Int32) {
        inbox[socket, default: []] += bytes
    }

    /// The peer ended its side of `socket` (FIN).
    public func peerClosed(_ socket: Int32) {
        endOfStream.insert(socket)
    }

    /// What the loop sent on `socket` since the last call.
    public func takeSent(on socket: Int32) -> [UInt8] {
        outbox.removeValue(forKey: socket) ?? []
    }

    public func resetActivity() { activity = 0 }

    // MARK: LoopBackend

    public func prepareAccept(listener: Int32, userData: UInt64) {}

    public func prepareReceive(socket: Int32, userData: UInt64) {
        armedReceives[socket] = userData
        activity += 1
    }

    public func prepareSend(socket: Int32, bytes: UnsafeRawBufferPointer, userData: UInt64) {
        outbox[socket, default: []] += bytes
        ready.append(Completion(userData: userData, result: Int32(bytes.count), hasMore: false, bufferID: nil))
        activity += 1
    }

    public func prepareConnect(socket: Int32, address: UnsafeRawBufferPointer, userData: UInt64) {
        outboundSockets.insert(socket)
        ready.append(Completion(userData: userData, result: connectResult, hasMore: false, bufferID: nil))
        activity += 1
    }

    /// The loop's wakeup read: never completes (the loop runs its queued tasks every turn anyway).
    public func prepareRead(descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) {}

    /// No simulated socket is ever polled (the Redis link needs a real one): ready at once, so a
    /// caller that does polls does not hang; a real descriptor's call then says what it holds.
    public func preparePoll(descriptor: Int32, writable: Bool, userData: UInt64) {
        ready.append(Completion(userData: userData, result: 0, hasMore: false, bufferID: nil))
        activity += 1
    }

    public func prepareCancel(socket: Int32, userData: UInt64) {
        cancelReceive(on: socket)
        ready.append(Completion(userData: userData, result: 0, hasMore: false, bufferID: nil))
    }

    public func prepareCancelReceive(socket: Int32, receiveUserData: UInt64, userData: UInt64) {
        cancelReceive(on: socket)
        ready.append(Completion(userData: userData, result: 0, hasMore: false, bufferID: nil))
    }

    private func cancelReceive(on socket: Int32) {
        guard let armed = armedReceives.removeValue(forKey: socket) else { return }
        ready.append(Completion(userData: armed, result: -ECANCELED, hasMore: false, bufferID: nil))
        activity += 1
    }

    public func submitAndWait(timeoutNanoseconds: Int64?) throws(SystemError) {
        for (socket, userData) in armedReceives {
            if var bytes = inbox[socket], !bytes.isEmpty {
                let count = min(bytes.count, Self.receiveSize)
                let id = takeBufferID()
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.receiveSize, alignment: 16)
                bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                buffers[id] = buffer
                bytes.removeFirst(count)
                inbox[socket] = bytes.isEmpty ? nil : bytes
                ready.append(Completion(userData: userData, result: Int32(count), hasMore: true, bufferID: id))
            } else if endOfStream.remove(socket) != nil {
                armedReceives[socket] = nil
                ready.append(Completion(userData: userData, result: 0, hasMore: false, bufferID: nil))
            }
        }
        if ready.isEmpty { whenIdle?() }
    }

    public func drainCompletions(limit: Int, _ body: (Completion) -> Void) {
        let count = min(limit, ready.count)
        let completions = ready.prefix(count)
        ready.removeFirst(count)
        activity += completions.count
        for completion in completions { body(completion) }
    }

    public func shutdownSocket(_ fd: Int32, read: Bool, write: Bool) {}

    public func closeSocket(_ fd: Int32) {
        armedReceives[fd] = nil
        inbox[fd] = nil
        endOfStream.remove(fd)
        if outboundSockets.remove(fd) != nil { Socket.close(fd) }
    }

    public func receivedBytes(bufferID: UInt16, count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffers[bufferID]![..<count])
    }

    public func recycle(bufferID: UInt16) {
        buffers.removeValue(forKey: bufferID)?.deallocate()
        freeBufferIDs.append(bufferID)
    }

    public func shutdown() {
        for buffer in buffers.values { buffer.deallocate() }
        buffers.removeAll()
    }

    private func takeBufferID() -> UInt16 {
        if let id = freeBufferIDs.popLast() { return id }
        nextBufferID += 1
        return nextBufferID - 1
    }
}
