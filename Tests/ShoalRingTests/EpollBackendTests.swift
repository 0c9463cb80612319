// The epoll fallback backend: the same loopback tests as the io_uring loop (echo of every size
// class, many clients, a send queue far beyond the socket buffers, graceful and abortive closes,
// a receive pool that runs dry, cross-thread wake-up), plus the backend's own completion contract
// driven directly (cancel, bounded reads, send waiting for EPOLLOUT) and the backend probe.
// The helpers are private to this file (other files of this target have their own).
import Dispatch
import Foundation
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

@Suite(.serialized) struct EpollBackendTests {
    // MARK: Through an EventLoop

    @Test func echoesMessagesFromOneByteToOneMebibyteExactly() throws {
        let server = try EpollTestServer()
        defer { #expect(server.shutDown()) }
        let client = try EpollTestClient(port: server.port)
        let sizes = [1, 2, 7, 100, 1000, 4096, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 65536, 100_000, 1 << 20]
        for (seed, size) in sizes.enumerated() {
            let message = epollPattern(size, seed: seed)
            #expect(client.send(message))
            #expect(client.receive(exactly: size) == message, "message of \(size) bytes")
        }
        let burst = sizes.enumerated().flatMap { epollPattern($0.element, seed: $0.offset + 100) }
        #expect(client.send(burst))
        #expect(client.receive(exactly: burst.count) == burst)
        #expect(server.backendName == "epoll")
    }

    @Test func manyClientsAtOnceEachGetTheirOwnBytesBack() throws {
        let server = try EpollTestServer()
        defer { #expect(server.shutDown()) }
        let clientCount = 64
        let clients = try (0..<clientCount).map { _ in try EpollTestClient(port: server.port) }
        #expect(epollWaitUntil { server.opened.value == clientCount })
        let ok = EpollLocked([Bool](repeating: false, count: clientCount))
        let all = EpollUnchecked(value: clients)
        DispatchQueue.concurrentPerform(iterations: clientCount) { index in
            let client = all.value[index]
            var good = true
            for round in 0..<10 {
                let message = epollPattern(1 + (index * 977 + round * 4093) % 40_000, seed: index + round)
                good = good && client.send(message) && client.receive(exactly: message.count) == message
            }
            ok.withLock { $0[index] = good }
        }
        #expect(ok.value == [Bool](repeating: true, count: clientCount))
        for client in clients { client.close() }
        #expect(epollWaitUntil { server.closed.value == clientCount })
        #expect(server.onLoop { $0.openSockets } == 0)
    }

    @Test func aSendQueueFarLargerThanTheSocketBuffersReachesASlowReaderInOrder() throws {
        let total = 4 << 20
        let payload = epollPattern(total, seed: 9)
        let queuedAfterWrite = EpollLocked(-1)
        var behaviour = EpollBehaviour()
        behaviour.received = { peer, _ in
            payload.withUnsafeBytes { peer.write($0) }
            queuedAfterWrite.withLock { $0 = peer.loop.bufferedAmount(peer.handle) }
        }
        let server = try EpollTestServer(behaviour: behaviour) { fd in
            try? Socket.setOption(fd, SOL_SOCKET, SO_SNDBUF, 32 * 1024, "SO_SNDBUF")
        }
        defer { #expect(server.shutDown()) }
        let client = try EpollTestClient(port: server.port, receiveBufferSize: 8 * 1024)
        #expect(client.send([1]))
        let head = client.receive(exactly: 64 * 1024, piece: 4096, pauseMicroseconds: 300)
        #expect(head.map { $0[...] } == payload[0..<(64 * 1024)])
        #expect(queuedAfterWrite.value == total)
        // The rest is still in the loop's queue, waiting for EPOLLOUT.
        #expect((server.onLoop { loop in server.peers.value.first.map { loop.bufferedAmount($0.handle) } ?? 0 } ?? 0) > 0)
        let rest = client.receive(exactly: total - 64 * 1024, piece: 64 * 1024, pauseMicroseconds: 20)
        #expect(rest.map { $0[...] } == payload[(64 * 1024)...])
        #expect(epollWaitUntil { server.drained.value == 1 })
    }

    @Test func gracefulCloseDeliversTheLastBytesThenEndOfStream() throws {
        var behaviour = EpollBehaviour()
        behaviour.received = { peer, bytes in
            peer.write(UnsafeRawBufferPointer(bytes))
            peer.loop.close(peer.handle, mode: .graceful(lingerNanoseconds: 5_000_000_000))
        }
        let server = try EpollTestServer(behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try EpollTestClient(port: server.port)
        let message = epollPattern(300_000, seed: 3)
        #expect(client.send(message))
        let (bytes, end) = client.readToEnd()
        // The first receive of the server got a prefix of the message; it is echoed, then FIN.
        #expect(end == .endOfFile)
        #expect(!bytes.isEmpty && bytes[...] == message[0..<bytes.count])
        client.close()
        // Our FIN ends the linger: the socket closes long before the 5 s linger timer.
        #expect(epollWaitUntil(seconds: 3) { server.closed.value == 1 })
        #expect(server.onLoop { $0.openSockets } == 0)
    }

    @Test func abortWhileASendWaitsForTheSlowPeerCancelsAndClosesOnce() throws {
        var behaviour = EpollBehaviour()
        behaviour.received = { peer, _ in
            epollPattern(8 << 20, seed: 4).withUnsafeBytes { peer.write($0) }
        }
        let server = try EpollTestServer(behaviour: behaviour) { fd in
            try? Socket.setOption(fd, SOL_SOCKET, SO_SNDBUF, 32 * 1024, "SO_SNDBUF")
        }
        defer { #expect(server.shutDown()) }
        let client = try EpollTestClient(port: server.port, receiveBufferSize: 8 * 1024)
        #expect(client.send([1]))
        // The client does not read: the loop's send is parked on EPOLLOUT while the receive is armed.
        #expect(epollWaitUntil { (server.onLoop { loop in server.peers.value.first.map { loop.bufferedAmount($0.handle) } ?? 0 } ?? 0) > 0 })
        usleep(50_000)
        _ = server.onLoop { loop in
            if let peer = server.peers.value.first { loop.close(peer.handle, mode: .abort) }
        }
        #expect(epollWaitUntil { server.closed.value == 1 })
        let (_, end) = client.readToEnd()
        #expect(end == .endOfFile || end == .reset)
        usleep(50_000)
        #expect(server.closed.value == 1)
        #expect(server.onLoop { $0.openSockets } == 0)
        // The loop still serves new connections afterwards.
        let second = try EpollTestClient(port: server.port)
        #expect(second.send([7]))
        #expect(epollWaitUntil { server.opened.value == 2 })
    }

    @Test func aPeerResetEndsTheReadWithAnErrorAndTheSocketCloses() throws {
        let readEnds = EpollLocked<[Int32?]>([])
        var behaviour = EpollBehaviour()
        behaviour.readEnded = { peer, error in
            readEnds.withLock { $0.append(error) }
            peer.loop.close(peer.handle, mode: .abort)
        }
        let server = try EpollTestServer(behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try EpollTestClient(port: server.port)
        #expect(client.send([1, 2, 3]))
        #expect(client.receive(exactly: 3) == [1, 2, 3])
        client.reset()
        #expect(epollWaitUntil { server.closed.value == 1 })
        #expect(readEnds.value.count == 1)
    }

    @Test func anIdleLoopDoesNotTurnForAHalfClosedOrWritableSocket() throws {
        // The socket stays open after the peer's FIN: its receive ended, it is always writable and
        // readable at EOF; a loop that kept it in the epoll set (level-triggered) would spin.
        var behaviour = EpollBehaviour()
        behaviour.readEnded = { _, _ in }
        let server = try EpollTestServer(behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let turns = EpollLocked(0)
        _ = server.onLoop { loop in loop.addTurnEndHook { turns.withLock { $0 += 1 } } }
        let client = try EpollTestClient(port: server.port)
        #expect(client.send([1, 2]))
        #expect(client.receive(exactly: 2) == [1, 2])
        Socket.shutdown(client.fd, read: false, write: true)
        usleep(100_000)
        let loopThread = try #require(server.onLoop { _ in pthread_self() })
        var clock = clockid_t()
        #expect(pthread_getcpuclockid(loopThread, &clock) == 0)
        let before = turns.value
        let cpuBefore = epollCPUNanoseconds(clock)
        usleep(300_000)
        #expect(turns.value - before <= 1)
        // Nor spin inside submitAndWait: the loop thread stays (almost) idle.
        #expect(epollCPUNanoseconds(clock) - cpuBefore < 30_000_000)
        // Still writable from the server side.
        _ = server.onLoop { loop in
            if let peer = server.peers.value.first { [UInt8]([9, 8, 7]).withUnsafeBytes { loop.write(peer.handle, $0) } }
        }
        #expect(client.receive(exactly: 3) == [9, 8, 7])
    }

    @Test func everyByteArrivesWhenTheReceivePoolRunsDry() throws {
        var configuration = EpollConfiguration()
        configuration.receiveBufferCount = 2
        configuration.receiveBufferSize = 64
        let backend = try EpollCountingBackend(configuration: configuration)
        let server = try EpollTestServer(backend: backend)
        defer { #expect(server.shutDown()) }
        let clientCount = 6
        let size = 128 * 1024
        let clients = try (0..<clientCount).map { _ in try EpollTestClient(port: server.port) }
        let ok = EpollLocked([Bool](repeating: false, count: clientCount))
        let all = EpollUnchecked(value: clients)
        DispatchQueue.concurrentPerform(iterations: clientCount) { index in
            let message = epollPattern(size, seed: index)
            let good = all.value[index].send(message) && all.value[index].receive(exactly: size) == message
            ok.withLock { $0[index] = good }
        }
        #expect(ok.value == [Bool](repeating: true, count: clientCount))
        let counts = backend.counts.value
        #expect(counts.noBufferCompletions > 0)
        #expect(counts.receives > clientCount)
    }

    @Test func executeWakesALoopBlockedWithoutTimers() throws {
        let server = try EpollTestServer(listening: false)
        defer { #expect(server.shutDown()) }
        usleep(200_000)  // the loop is now blocked in epoll_wait with no timeout
        for _ in 0..<3 {
            let start = EventLoop.monotonicNanoseconds()
            let ran = DispatchSemaphore(value: 0)
            server.loop.execute { ran.signal() }
            #expect(ran.wait(timeout: .now() + 2) == .success)
            #expect(EventLoop.monotonicNanoseconds() - start < 1_000_000_000)
            usleep(50_000)
        }
    }

    @Test func timersFireWhileTheLoopWaitsInEpoll() throws {
        let server = try EpollTestServer(listening: false)
        defer { #expect(server.shutDown()) }
        let fired = DispatchSemaphore(value: 0)
        let start = EventLoop.monotonicNanoseconds()
        _ = server.onLoop { loop in loop.schedule(after: 30_000_000) { fired.signal() } }
        #expect(fired.wait(timeout: .now() + 2) == .success)
        let elapsed = EventLoop.monotonicNanoseconds() - start
        #expect(elapsed >= 30_000_000 && elapsed < 1_000_000_000)
    }

    // MARK: The backend on its own

    @Test func cancelCompletesEveryPendingOperationAndItself() throws {
        let backend = try EpollBackend()
        defer { backend.shutdown() }
        let (a, b) = try epollSocketPair()
        defer { close(a); close(b) }
        // Fill a's send buffer so the next send has to wait for EPOLLOUT.
        let chunk = [UInt8](repeating: 0x55, count: 1 << 20)
        var sent = 0
        while true {
            let n = chunk.withUnsafeBytes { send(a, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { break }
            sent += n
        }
        #expect(sent > 0)
        backend.prepareReceive(socket: a, userData: 1)
        try chunk.withUnsafeBytes { bytes in
            backend.prepareSend(socket: a, bytes: bytes, userData: 2)
            let first = try epollTurn(backend, timeout: 20_000_000)
            #expect(first.isEmpty, "nothing ready: the receive waits for bytes, the send for room")
            backend.prepareCancel(socket: a, userData: 3)
            let completions = try epollTurn(backend, timeout: 0)
            #expect(completions.count == 3)
            #expect(completions.contains { $0.userData == 1 && $0.result == -ECANCELED && !$0.hasMore && $0.bufferID == nil })
            #expect(completions.contains { $0.userData == 2 && $0.result == -ECANCELED })
            #expect(completions.contains { $0.userData == 3 && $0.result == 0 })
        }
        // Gone from epoll: bytes arriving now produce nothing.
        #expect(send(b, "x", 1, 0) == 1)
        #expect(try epollTurn(backend, timeout: 20_000_000).isEmpty)
    }

    @Test func receiveIsMultishotBoundedPerTurnAndEndsAtEndOfStream() throws {
        var configuration = EpollConfiguration()
        configuration.receiveBufferCount = 16
        configuration.receiveBufferSize = 1024
        configuration.readsPerSocketPerTurn = 3
        let backend = try EpollBackend(configuration: configuration)
        defer { backend.shutdown() }
        let (a, b) = try epollSocketPair()
        defer { close(a) }
        let message = epollPattern(10 * 1024, seed: 5)
        #expect(message.withUnsafeBytes { send(b, $0.baseAddress, $0.count, 0) } == message.count)
        backend.prepareReceive(socket: a, userData: 7)
        var received: [UInt8] = []
        var turns = 0
        var ended = false
        while !ended && turns < 20 {
            turns += 1
            var inThisTurn = 0
            try backend.submitAndWait(timeoutNanoseconds: 1_000_000_000)
            backend.drainCompletions { completion in
                #expect(completion.userData == 7)
                if completion.result > 0, let id = completion.bufferID {
                    #expect(completion.hasMore)
                    received += backend.receivedBytes(bufferID: id, count: Int(completion.result))
                    backend.recycle(bufferID: id)
                    inThisTurn += 1
                } else {
                    #expect(completion.result == 0 && !completion.hasMore)
                    ended = true
                }
            }
            #expect(inThisTurn <= 3)
            if received.count == message.count && !ended { close(b) }
        }
        #expect(received == message)
        #expect(ended)
        #expect(turns >= 4)  // 10 reads of 1 KiB, at most 3 per turn
    }

    @Test func anEmptyPoolEndsTheReceiveWithENOBUFS() throws {
        var configuration = EpollConfiguration()
        configuration.receiveBufferCount = 1
        configuration.receiveBufferSize = 16
        let backend = try EpollBackend(configuration: configuration)
        defer { backend.shutdown() }
        let (a, b) = try epollSocketPair()
        defer { close(a); close(b) }
        #expect(send(b, [UInt8](repeating: 1, count: 100), 100, 0) == 100)
        backend.prepareReceive(socket: a, userData: 1)
        let completions = try epollTurn(backend, timeout: 1_000_000_000)
        #expect(completions.map(\.result) == [16, -ENOBUFS])
        #expect(completions.map(\.hasMore) == [true, false])
        // Not armed any more: no completion until the receive is prepared again.
        #expect(try epollTurn(backend, timeout: 20_000_000).isEmpty)
        backend.prepareReceive(socket: a, userData: 1)
        #expect(try epollTurn(backend, timeout: 1_000_000_000).first?.result == 16)
    }

    @Test func aSendThatWouldBlockCompletesOnceThePeerReads() throws {
        let backend = try EpollBackend()
        defer { backend.shutdown() }
        let (a, b) = try epollSocketPair()
        defer { close(a); close(b) }
        let big = [UInt8](repeating: 0xAB, count: 4 << 20)
        try big.withUnsafeBytes { bytes in
            backend.prepareSend(socket: a, bytes: bytes, userData: 1)
            let first = try epollTurn(backend, timeout: 0)
            #expect(first.count == 1 && first[0].result > 0 && Int(first[0].result) < bytes.count)
            let rest = UnsafeRawBufferPointer(rebasing: bytes[Int(first[0].result)...])
            backend.prepareSend(socket: a, bytes: rest, userData: 2)
            #expect(try epollTurn(backend, timeout: 20_000_000).isEmpty, "buffer full: waits for EPOLLOUT")
            let reader = EpollUnchecked(value: b)
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) {
                var sink = [UInt8](repeating: 0, count: 1 << 20)
                var total = 0
                while total < 1 << 20 {
                    let n = sink.withUnsafeMutableBytes { recv(reader.value, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { break }
                    total += n
                }
            }
            let second = try epollTurn(backend, timeout: nil)
            #expect(second.count == 1 && second[0].userData == 2 && second[0].result > 0)
        }
    }

    @Test func aMultishotAcceptYieldsOneDescriptorPerConnection() throws {
        let backend = try EpollBackend()
        defer { backend.shutdown() }
        let listener = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false)
        defer { close(listener) }
        let port = Socket.localPort(listener)
        backend.prepareAccept(listener: listener, userData: 9)
        let clients = try (0..<5).map { _ in try EpollTestClient(port: port) }
        var accepted: [Int32] = []
        while accepted.count < clients.count {
            let completions = try epollTurn(backend, timeout: 1_000_000_000)
            if completions.isEmpty { break }
            for completion in completions {
                #expect(completion.userData == 9 && completion.hasMore && completion.result >= 0)
                accepted.append(completion.result)
            }
        }
        #expect(accepted.count == clients.count)
        for fd in accepted {
            #expect(fcntl(fd, F_GETFL) & O_NONBLOCK != 0)
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
            close(fd)
        }
    }

    // MARK: Choosing the backend

    @Test func theProbeHonoursTheRequestAndFallsBackLoudly() throws {
        var lines: [String] = []
        let makeEpoll = { () throws(SystemError) -> any LoopBackend in try EpollBackend() }
        let refused = { () throws(SystemError) -> any LoopBackend in
            throw SystemError("io_uring_queue_init_params", errno: EPERM)
        }
        let working = { () throws(SystemError) -> any LoopBackend in try EpollCountingBackend(configuration: .init()) }

        let chosen = try BackendProbe.makeBackend(preferred: "epoll", environment: nil, makeURing: refused,
                                                  makeEpoll: makeEpoll, log: { lines.append($0) })
        #expect(chosen.name == "epoll")
        #expect(lines == ["event loop backend: epoll (chosen by configuration)"])
        chosen.shutdown()

        lines = []
        let fromEnvironment = try BackendProbe.makeBackend(preferred: nil, environment: "epoll", makeURing: working,
                                                           makeEpoll: makeEpoll, log: { lines.append($0) })
        #expect(fromEnvironment is EpollBackend)
        #expect(lines == ["event loop backend: epoll (chosen by SHOAL_BACKEND=epoll)"])
        fromEnvironment.shutdown()

        lines = []
        let preferred = try BackendProbe.makeBackend(preferred: nil, environment: "io_uring", makeURing: working,
                                                     makeEpoll: makeEpoll, log: { lines.append($0) })
        #expect(preferred is EpollCountingBackend)
        #expect(lines == ["event loop backend: io_uring"])
        preferred.shutdown()

        lines = []
        let fallback = try BackendProbe.makeBackend(preferred: nil, environment: nil, makeURing: refused,
                                                    makeEpoll: makeEpoll, log: { lines.append($0) })
        #expect(fallback is EpollBackend)
        #expect(lines.count == 1)
        let line = lines.first ?? ""
        #expect(line.hasPrefix("event loop backend: epoll, because io_uring is unavailable: io_uring_queue_init_params failed: "))
        #expect(line.contains("Operation not permitted"))
        #expect(line.contains("likely cause: ") && (line.contains("seccomp") || line.contains("io_uring_disabled")))
        fallback.shutdown()

        lines = []
        let unknown = try BackendProbe.makeBackend(preferred: "kqueue", environment: nil, makeURing: working,
                                                   makeEpoll: makeEpoll, log: { lines.append($0) })
        #expect(unknown is EpollCountingBackend)
        #expect(lines.count == 2 && lines[0].contains("unknown event loop backend \"kqueue\""))
        unknown.shutdown()
    }

    @Test func theProbeNamesTheLikelyCauseOfEachRefusal() {
        #expect(BackendProbe.likelyCause(of: ENOSYS).contains("CONFIG_IO_URING"))
        #expect(BackendProbe.likelyCause(of: EINVAL).contains("6.0"))
        #expect(BackendProbe.likelyCause(of: ENOMEM).contains("RLIMIT_MEMLOCK"))
        #expect(BackendProbe.likelyCause(of: EPERM).contains("io_uring"))
    }

    @Test func thePublicProbeGivesAWorkingBackendOnThisHost() throws {
        var lines: [String] = []
        let backend = try BackendProbe.makeBackend { lines.append($0) }
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix("event loop backend: \(backend.name)") == true)
        let server = try EpollTestServer(backend: backend)
        defer { #expect(server.shutDown()) }
        let client = try EpollTestClient(port: server.port)
        #expect(client.send([1, 2, 3]))
        #expect(client.receive(exactly: 3) == [1, 2, 3])
    }
}

// MARK: - Helpers (private to this file)

/// Prepares nothing, runs one submit-and-wait and returns the completions (buffers recycled).
private func epollTurn(_ backend: EpollBackend, timeout: Int64?) throws -> [Completion] {
    var completions: [Completion] = []
    try backend.submitAndWait(timeoutNanoseconds: timeout)
    backend.drainCompletions { completion in
        completions.append(completion)
        if let id = completion.bufferID { backend.recycle(bufferID: id) }
    }
    return completions
}

/// The reading of a CPU-time clock (a thread's, from pthread_getcpuclockid).
private func epollCPUNanoseconds(_ clock: clockid_t) -> UInt64 {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// A connected pair of non-blocking stream sockets.
private func epollSocketPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    guard socketpair(AF_UNIX, flags, 0, &fds) == 0 else { throw SystemError.last("socketpair") }
    return (fds[0], fds[1])
}

/// Polls `condition` every millisecond for at most `seconds`.
private func epollWaitUntil(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = EventLoop.monotonicNanoseconds() + UInt64(seconds * 1e9)
    while !condition() {
        if EventLoop.monotonicNanoseconds() >= deadline { return false }
        usleep(1000)
    }
    return true
}

/// `count` bytes that repeat every 251 bytes, shifted by `seed`.
private func epollPattern(_ count: Int, seed: Int) -> [UInt8] {
    let period = (0..<251).map { UInt8(truncatingIfNeeded: $0 &+ seed &* 31) }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count + 251)
    while bytes.count < count { bytes += period }
    bytes.removeLast(bytes.count - count)
    return bytes
}

private final class EpollLocked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&stored)
    }
    var value: Value { withLock { $0 } }
}

private struct EpollUnchecked<Value>: @unchecked Sendable {
    let value: Value
}

/// An `EpollBackend` that counts receive arms and -ENOBUFS completions.
private final class EpollCountingBackend: LoopBackend {
    struct Counts {
        var receives = 0
        var noBufferCompletions = 0
    }

    let base: EpollBackend
    let counts = EpollLocked(Counts())
    var name: String { base.name }

    init(configuration: EpollConfiguration) throws(SystemError) { base = try EpollBackend(configuration: configuration) }

    func prepareAccept(listener: Int32, userData: UInt64) { base.prepareAccept(listener: listener, userData: userData) }
    func prepareReceive(socket: Int32, userData: UInt64) {
        counts.withLock { $0.receives += 1 }
        base.prepareReceive(socket: socket, userData: userData)
    }
    func prepareSend(socket: Int32, bytes: UnsafeRawBufferPointer, userData: UInt64) {
        base.prepareSend(socket: socket, bytes: bytes, userData: userData)
    }
    func prepareRead(descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) {
        base.prepareRead(descriptor: descriptor, into: buffer, userData: userData)
    }
    func prepareCancel(socket: Int32, userData: UInt64) { base.prepareCancel(socket: socket, userData: userData) }
    func submitAndWait(timeoutNanoseconds: Int64?) throws(SystemErrorValue) {
        try base.submitAndWait(timeoutNanoseconds: timeoutNanoseconds)
    }
    func drainCompletions(_ body: (Completion) -> Void) {
        base.drainCompletions { completion in
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

/// How accepted sockets behave (closures run on the loop thread). The default echoes and aborts at end of stream.
private struct EpollBehaviour {
    var received: (EpollPeer, UnsafeMutableRawBufferPointer) -> Void = { peer, bytes in
        peer.write(UnsafeRawBufferPointer(bytes))
    }
    var readEnded: (EpollPeer, Int32?) -> Void = { peer, _ in peer.loop.close(peer.handle, mode: .abort) }
}

private final class EpollPeer: SocketDelegate, @unchecked Sendable {
    unowned let loop: EventLoop
    unowned let server: EpollTestServer
    private(set) var handle = SocketHandle(index: .max, generation: .max)

    init(loop: EventLoop, server: EpollTestServer) {
        self.loop = loop
        self.server = server
    }

    func write(_ bytes: UnsafeRawBufferPointer) { loop.write(handle, bytes) }

    func opened(on handle: SocketHandle) {
        self.handle = handle
        server.peers.withLock { $0.append(self) }
        server.opened.withLock { $0 += 1 }
    }
    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) { server.behaviour.received(self, bytes) }
    func readEnded(on handle: SocketHandle, error: Int32?) { server.behaviour.readEnded(self, error) }
    func drained(on handle: SocketHandle) { server.drained.withLock { $0 += 1 } }
    func closed(on handle: SocketHandle) { server.closed.withLock { $0 += 1 } }
}

/// An `EventLoop` on an epoll backend (or the one given) on its own thread, serving a loopback listener.
private final class EpollTestServer: ListenerDelegate, @unchecked Sendable {
    let loop: EventLoop
    let behaviour: EpollBehaviour
    let port: Int
    let backendName: String
    let peers = EpollLocked<[EpollPeer]>([])
    let opened = EpollLocked(0)
    let drained = EpollLocked(0)
    let closed = EpollLocked(0)
    private let listener: Int32
    private let configureAccepted: (Int32) -> Void
    private let finished = DispatchSemaphore(value: 0)
    private let failure = EpollLocked<String?>(nil)

    init(backend: (any LoopBackend)? = nil, listening: Bool = true, behaviour: EpollBehaviour = EpollBehaviour(),
         configureAccepted: @escaping (Int32) -> Void = { _ in }) throws {
        let backend = try backend ?? EpollBackend()
        backendName = backend.name
        loop = try EventLoop(backend: backend)
        self.behaviour = behaviour
        self.configureAccepted = configureAccepted
        if listening {
            listener = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false)
            port = Socket.localPort(listener)
            loop.listen(socket: listener, delegate: self)
        } else {
            listener = -1
            port = 0
        }
        let thread = Thread { [self] in
            do { try loop.run() } catch { failure.withLock { $0 = "\(error)" } }
            finished.signal()
        }
        thread.name = "EpollBackendTests loop"
        thread.start()
    }

    func accepted(socket fd: Int32, on loop: EventLoop) -> (any SocketDelegate)? {
        configureAccepted(fd)
        return EpollPeer(loop: loop, server: self)
    }

    /// Runs `body` on the loop thread; nil when it did not run within 10 s.
    func onLoop<T>(_ body: @escaping (EventLoop) -> T) -> T? {
        let result = EpollLocked<EpollUnchecked<T>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let task = EpollUnchecked(value: body)
        let loop = EpollUnchecked(value: loop)
        self.loop.execute {
            let value = task.value(loop.value)
            result.withLock { $0 = EpollUnchecked(value: value) }
            done.signal()
        }
        guard done.wait(timeout: .now() + 10) == .success else { return nil }
        return result.value?.value
    }

    /// Stops the loop (bounded wait), releases it and closes the listener; false when it did not stop cleanly.
    func shutDown() -> Bool {
        loop.stop()
        let stopped = finished.wait(timeout: .now() + 10) == .success
        if stopped { loop.shutdown() }
        if listener >= 0 { Socket.close(listener) }
        return stopped && failure.value == nil
    }
}

/// A blocking IPv4 client whose sends and receives time out after 10 s.
private final class EpollTestClient {
    enum End: Equatable { case endOfFile, reset, timedOut, failed(Int32) }

    private(set) var fd: Int32

    init(port: Int, receiveBufferSize: Int32? = nil) throws(SystemError) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("socket") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        let size = socklen_t(MemoryLayout<timeval>.size)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, size)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, size)
        if let receiveBufferSize {
            try Socket.setOption(fd, SOL_SOCKET, SO_RCVBUF, receiveBufferSize, "setsockopt(SO_RCVBUF)")
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let error = SystemError.last("connect")
            Glibc.close(fd)
            throw error
        }
    }

    deinit { close() }

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

    /// Closes with an RST.
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
