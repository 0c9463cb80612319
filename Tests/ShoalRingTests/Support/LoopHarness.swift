// What the loop tests drive: a real `EventLoop` (io_uring by default, or the backend a test gives,
// such as an `EpollBackend`) on its own thread serving a loopback listener, a recording delegate per
// accepted socket, and blocking POSIX clients on the test thread.
// Every wait is bounded, so a broken loop fails a test instead of hanging the run.
import ShoalTestSupport
import Dispatch
import Foundation
import Glibc
import ShoalPosix
@testable import ShoalRing

/// A value shared between the loop thread and the test thread.

/// Moves a non-Sendable value to the loop thread; the test guarantees only one thread uses it at a time.
struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
}

/// Polls `condition` every millisecond until it holds or `seconds` (times `TestTime.scale`) have
/// passed; returns whether it held.
@discardableResult
func waitUntil(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = EventLoop.monotonicNanoseconds() + UInt64(TestTime.seconds(seconds) * 1e9)
    while !condition() {
        if EventLoop.monotonicNanoseconds() >= deadline { return false }
        usleep(1000)
    }
    return true
}

/// Connects `clientCount` clients to `port` and has each send `size` bytes (its own pattern) and read
/// them back, all at once. True when every client got its exact bytes back within 60 s (scaled).
func everyClientEchoesAtOnce(port: Int, clientCount: Int, size: Int) throws -> Bool {
    let clients = try (0..<clientCount).map { _ in try TestClient(port: port) }
    defer { for client in clients { client.close() } }
    let results = concurrently(clients, seconds: 60) { index, client in
        let message = pattern(size, seed: index)
        return client.send(message) && client.receive(exactly: size) == message
    }
    return results == [Bool](repeating: true, count: clientCount)
}

/// Runs `body(index, client)` for every client at once, each on its own thread, and returns what each
/// returned, or nil when they did not all finish within `seconds` (times `TestTime.scale`).
func concurrently(_ clients: [TestClient], seconds: Double = 60, _ body: @escaping (Int, TestClient) -> Bool) -> [Bool]? {
    let results = Locked([Bool](repeating: false, count: clients.count))
    let shared = Unchecked(value: (clients: clients, body: body))
    let start = DispatchSemaphore(value: 0)
    let done = DispatchGroup()
    for index in clients.indices {
        done.enter()
        Thread {
            start.wait()
            let ok = shared.value.body(index, shared.value.clients[index])
            results.withLock { $0[index] = ok }
            done.leave()
        }.start()
    }
    for _ in clients { start.signal() }
    guard done.wait(timeout: .now() + TestTime.seconds(seconds)) == .success else { return nil }
    return results.value
}

/// `count` bytes that differ from those of any other `seed` and repeat only every 251 bytes.
/// A plain loop, not `map` over a range: unoptimised, that takes the runtime's metadata lock per
/// byte, and 24 client threads doing it at once under ThreadSanitizer took minutes, not milliseconds.
func pattern(_ count: Int, seed: Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { bytes, initialized in
        var index = 0
        while index < count {
            bytes[index] = UInt8(truncatingIfNeeded: (index % 251) &+ seed &* 31)
            index += 1
        }
        initialized = count
    }
}

/// What the loop told a socket delegate (received bytes are counted on the connection instead).
enum LoopEvent: Equatable, Sendable {
    case opened(SocketHandle)
    case readEnded(SocketHandle, error: Int32?)
    case timerFired(SocketHandle, kind: UInt8)
    case drained(SocketHandle)
    case closed(SocketHandle)
}

/// How accepted sockets behave; every closure runs on the loop thread. The default echoes.
struct Behaviour {
    var opened: (Connection) -> Void = { _ in }
    var received: (Connection, UnsafeMutableRawBufferPointer) -> Void = { connection, bytes in
        connection.write(UnsafeRawBufferPointer(bytes))
    }
    var readEnded: (Connection, Int32?) -> Void = { connection, _ in connection.close(.abort) }
    var timerFired: (Connection, UInt8) -> Void = { _, _ in }
    var drained: (Connection) -> Void = { _ in }
}

/// The delegate of one accepted socket: records its events into the server's log and runs the behaviour.
final class Connection: SocketDelegate, @unchecked Sendable {
    unowned let loop: EventLoop
    private unowned let server: LoopHarness
    /// Set in `opened(on:)`, before the connection becomes visible to the test thread.
    private(set) var handle = SocketHandle(index: .max, generation: .max)
    /// Bytes delivered by `received(_:on:)` so far.
    let receivedCount = Locked(0)

    init(loop: EventLoop, server: LoopHarness) {
        self.loop = loop
        self.server = server
    }

    func write(_ bytes: UnsafeRawBufferPointer) { loop.write(handle, bytes) }

    func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { loop.write(handle, $0) } }

    func close(_ mode: CloseMode) { loop.close(handle, mode: mode) }

    func opened(on handle: SocketHandle) {
        self.handle = handle
        server.record(.opened(handle), connection: self)
        server.behaviour.opened(self)
    }

    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) {
        receivedCount.withLock { $0 += bytes.count }
        server.behaviour.received(self, bytes)
    }

    func readEnded(on handle: SocketHandle, error: Int32?) {
        server.record(.readEnded(handle, error: error))
        server.behaviour.readEnded(self, error)
    }

    func timerFired(on handle: SocketHandle, kind: UInt8) {
        server.record(.timerFired(handle, kind: kind))
        server.behaviour.timerFired(self, kind)
    }

    func drained(on handle: SocketHandle) {
        server.record(.drained(handle))
        server.behaviour.drained(self)
    }

    func closed(on handle: SocketHandle) {
        server.record(.closed(handle))
    }
}

/// A `LoopBackend` that forwards to another one (io_uring unless told) and counts what passes through it.
final class CountingBackend: LoopBackend {
    struct Counts {
        var sends = 0
        var receives = 0
        var noBufferCompletions = 0
    }

    let base: any LoopBackend
    let counts = Locked(Counts())
    var name: String { base.name }

    init(configuration: URingConfiguration = .init()) throws(SystemError) {
        base = try URingBackend(configuration: configuration)
    }

    init(wrapping base: any LoopBackend) {
        self.base = base
    }

    func prepareAccept(listener: Int32, userData: UInt64) { base.prepareAccept(listener: listener, userData: userData) }

    func prepareReceive(socket: Int32, userData: UInt64) {
        counts.withLock { $0.receives += 1 }
        base.prepareReceive(socket: socket, userData: userData)
    }

    func prepareSend(socket: Int32, bytes: UnsafeRawBufferPointer, userData: UInt64) {
        counts.withLock { $0.sends += 1 }
        base.prepareSend(socket: socket, bytes: bytes, userData: userData)
    }

    func prepareRead(descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) {
        base.prepareRead(descriptor: descriptor, into: buffer, userData: userData)
    }

    func preparePoll(descriptor: Int32, writable: Bool, userData: UInt64) {
        base.preparePoll(descriptor: descriptor, writable: writable, userData: userData)
    }

    func prepareConnect(socket: Int32, address: UnsafeRawBufferPointer, userData: UInt64) {
        base.prepareConnect(socket: socket, address: address, userData: userData)
    }

    func prepareCancel(socket: Int32, userData: UInt64) { base.prepareCancel(socket: socket, userData: userData) }

    func prepareCancelReceive(socket: Int32, receiveUserData: UInt64, userData: UInt64) {
        base.prepareCancelReceive(socket: socket, receiveUserData: receiveUserData, userData: userData)
    }

    func shutdownSocket(_ fd: Int32, read: Bool, write: Bool) { base.shutdownSocket(fd, read: read, write: write) }

    func closeSocket(_ fd: Int32) { base.closeSocket(fd) }

    func submitAndWait(timeoutNanoseconds: Int64?) throws(SystemError) {
        try base.submitAndWait(timeoutNanoseconds: timeoutNanoseconds)
    }

    func drainCompletions(limit: Int, _ body: (Completion) -> Void) {
        base.drainCompletions(limit: limit) { completion in
            if completion.result == -ENOBUFS { counts.withLock { $0.noBufferCompletions += 1 } }
            body(completion)
        }
    }

    func receivedBytes(bufferID: UInt16, count: Int) -> UnsafeMutableRawBufferPointer {
        base.receivedBytes(bufferID: bufferID, count: count)
    }

    func recycle(bufferID: UInt16) { base.recycle(bufferID: bufferID) }

    func shutdown() { base.shutdown() }
}

/// An event loop running on its own thread, optionally serving a listener on `host` (127.0.0.1
/// unless told; port 0).
/// The loop runs on `backend`, or on a new `URingBackend` when none is given.
/// Call `shutDown()` at the end of every test: it stops the loop, releases it and closes the listener.
final class LoopHarness: ListenerDelegate, @unchecked Sendable {
    let loop: EventLoop
    let behaviour: Behaviour
    /// The listener's port (0 when not listening).
    let port: Int
    private let listener: Int32
    /// Runs on every accepted descriptor before it is registered (socket options).
    private let configureAccepted: (Int32) -> Void
    private let runReturned = Locked(false)
    private let failure = Locked<String?>(nil)
    private let events = Locked<[LoopEvent]>([])
    private let openedConnections = Locked<[Connection]>([])
    private let peers = Locked<[PeerAddress]>([])

    init(
        backend: (any LoopBackend)? = nil,
        listening: Bool = true,
        host: String = "127.0.0.1",
        behaviour: Behaviour = Behaviour(),
        configureAccepted: @escaping (Int32) -> Void = { _ in }
    ) throws {
        loop = try EventLoop(backend: backend ?? URingBackend())
        self.behaviour = behaviour
        self.configureAccepted = configureAccepted
        if listening {
            listener = try Socket.listen(host: host, port: 0, reusePort: false)
            port = Socket.localPort(listener)
            loop.listen(socket: listener, delegate: self)
        } else {
            listener = -1
            port = 0
        }
        let thread = Thread { [self] in
            do { try loop.run() } catch { failure.withLock { $0 = "\(error)" } }
            runReturned.withLock { $0 = true }
        }
        thread.name = "ShoalRingTests loop"
        thread.start()
    }

    func accepted(socket fd: Int32, peer: PeerAddress, on loop: EventLoop) -> (any SocketDelegate)? {
        peers.withLock { $0.append(peer) }
        configureAccepted(fd)
        return Connection(loop: loop, server: self)
    }

    func record(_ event: LoopEvent, connection: Connection? = nil) {
        events.withLock { $0.append(event) }
        if let connection { openedConnections.withLock { $0.append(connection) } }
    }

    /// Everything the delegates saw so far, in order.
    var log: [LoopEvent] { events.value }

    /// The peer each accept reported, in order.
    var acceptedPeers: [PeerAddress] { peers.value }

    /// Connections in the order they were opened.
    var connections: [Connection] { openedConnections.value }

    /// Waits until at least `count` connections were opened and returns the `count`th.
    func connection(_ number: Int) -> Connection? {
        guard waitUntil({ connections.count >= number }) else { return nil }
        return connections[number - 1]
    }

    /// How many times `closed(on:)` was called for `handle`.
    func closedCount(_ handle: SocketHandle) -> Int {
        log.filter { $0 == .closed(handle) }.count
    }

    /// How many times `closed(on:)` was called, over all sockets.
    var closedTotal: Int {
        log.filter { if case .closed = $0 { true } else { false } }.count
    }

    /// How many times `drained(on:)` was called, over all sockets.
    var drainedTotal: Int {
        log.filter { if case .drained = $0 { true } else { false } }.count
    }

    /// Runs `body` on the loop thread and returns its result, or nil when the loop did not run it in time.
    func onLoop<T>(_ body: @escaping (EventLoop) -> T) -> T? {
        let result = Locked<Unchecked<T>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let task = Unchecked(value: body)
        let loop = Unchecked(value: loop)
        self.loop.execute {
            let value = task.value(loop.value)
            result.withLock { $0 = Unchecked(value: value) }
            done.signal()
        }
        guard done.wait(timeout: .now() + TestTime.seconds(10)) == .success else { return nil }
        return result.value?.value
    }

    /// Waits (bounded) until `run()` returned on the loop thread.
    func waitUntilRunReturned() -> Bool { waitUntil { runReturned.value } }

    /// Stops the loop and waits (bounded) for `run()` to return, then releases the loop and closes the
    /// listener. Returns false when the loop did not stop or `run()` threw.
    @discardableResult
    func shutDown() -> Bool {
        loop.stop()
        let stopped = waitUntilRunReturned()
        if stopped { loop.shutdown() }
        if listener >= 0 { Socket.close(listener) }
        return stopped && failure.value == nil
    }
}

/// A blocking IPv4 client. Sends and receives time out after 10 s (scaled), so no call blocks forever.
final class TestClient {
    enum End: Equatable {
        case endOfFile
        case reset
        case timedOut
        case failed(Int32)
    }

    private(set) var fd: Int32

    /// Connects to 127.0.0.1:`port`; `receiveBufferSize` (set before connecting) caps the TCP window.
    init(port: Int, receiveBufferSize: Int32? = nil) throws(SystemError) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("socket") }
        do throws(SystemError) {
            var timeout = timeval(tv_sec: Int(TestTime.seconds(10)), tv_usec: 0)
            let size = socklen_t(MemoryLayout<timeval>.size)
            guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, size) == 0,
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, size) == 0
            else { throw SystemError.last("setsockopt(timeouts)") }
            if let receiveBufferSize {
                try Socket.setOption(fd, SOL_SOCKET, SO_RCVBUF, receiveBufferSize, "setsockopt(SO_RCVBUF)")
            }
            guard connectToLoopback(fd, port: port) == 0 else { throw SystemError.last("connect") }
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    deinit { close() }

    /// Sends all of `bytes`; false when the connection failed or a send timed out.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    /// Reads exactly `count` bytes, in reads of at most `piece` bytes, pausing `pauseMicroseconds`
    /// between reads (a slow reader). Nil when the stream ended, failed or timed out first.
    func receive(exactly count: Int, piece: Int = 1 << 20, pauseMicroseconds: UInt32 = 0) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        let ok = bytes.withUnsafeMutableBytes { raw in
            while offset < count {
                let n = recv(fd, raw.baseAddress! + offset, min(piece, count - offset), 0)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
                if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
            }
            return true
        }
        return ok ? bytes : nil
    }

    /// Reads until the stream ends (or `limit` bytes were read without an end) and says how it ended.
    func readToEnd(limit: Int = 64 << 20) -> (bytes: [UInt8], end: End) {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while collected.count < limit {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 {
                collected += buffer[0..<n]
                continue
            }
            if n == 0 { return (collected, .endOfFile) }
            switch errno {
            case EINTR: continue
            case ECONNRESET: return (collected, .reset)
            case EAGAIN: return (collected, .timedOut)
            case let code: return (collected, .failed(code))
            }
        }
        return (collected, .timedOut)
    }

    /// Sends FIN: the server's receive sees end of stream while this side can still read.
    func shutdownWrite() { Socket.shutdown(fd, read: false, write: true) }

    /// Closes with an RST (SO_LINGER 0).
    func reset() {
        guard fd >= 0 else { return }
        Socket.abort(fd)
        fd = -1
    }

    func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }
}
