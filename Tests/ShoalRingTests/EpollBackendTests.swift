// The epoll fallback backend: the same loopback tests as the io_uring loop (echo of every size
// class, many clients, a send queue far beyond the socket buffers, graceful and abortive closes,
// a receive pool that runs dry, cross-thread wake-up), plus the backend's own completion contract
// driven directly (cancel, bounded reads, send waiting for EPOLLOUT) and the backend probe.
// The loop tests run on `LoopHarness` (Support/LoopHarness.swift) with an `EpollBackend`.
import ShoalTestSupport
import Dispatch
import Foundation
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

@Suite(.serialized) struct EpollBackendTests {
    // MARK: Through an EventLoop

    @Test func echoesMessagesFromOneByteToOneMebibyteExactly() throws {
        let server = try LoopHarness(backend: EpollBackend())
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        let sizes = [1, 2, 7, 100, 1000, 4096, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 65536, 100_000, 1 << 20]
        for (seed, size) in sizes.enumerated() {
            let message = pattern(size, seed: seed)
            #expect(client.send(message))
            #expect(client.receive(exactly: size) == message, "message of \(size) bytes")
        }
        let burst = sizes.enumerated().flatMap { pattern($0.element, seed: $0.offset + 100) }
        #expect(client.send(burst))
        #expect(client.receive(exactly: burst.count) == burst)
        #expect(server.loop.backend.name == "epoll")
    }

    @Test func manyClientsAtOnceEachGetTheirOwnBytesBack() throws {
        let server = try LoopHarness(backend: EpollBackend())
        defer { #expect(server.shutDown()) }
        let clientCount = 64
        let clients = try (0..<clientCount).map { _ in try TestClient(port: server.port) }
        #expect(waitUntil { server.connections.count == clientCount })
        let ok = concurrently(clients) { index, client in
            var good = true
            for round in 0..<10 {
                let message = pattern(1 + (index * 977 + round * 4093) % 40_000, seed: index + round)
                good = good && client.send(message) && client.receive(exactly: message.count) == message
            }
            return good
        }
        #expect(ok == [Bool](repeating: true, count: clientCount))
        for client in clients { client.close() }
        #expect(waitUntil { server.closedTotal == clientCount })
        #expect(server.onLoop { $0.openSockets } == 0)
    }

    @Test func aSendQueueFarLargerThanTheSocketBuffersReachesASlowReaderInOrder() throws {
        let total = 4 << 20
        let payload = pattern(total, seed: 9)
        let queuedAfterWrite = Locked(-1)
        var behaviour = Behaviour()
        behaviour.received = { peer, _ in
            payload.withUnsafeBytes { peer.write($0) }
            queuedAfterWrite.withLock { $0 = peer.loop.bufferedAmount(peer.handle) }
        }
        let server = try LoopHarness(backend: EpollBackend(), behaviour: behaviour) { fd in
            try? Socket.setOption(fd, SOL_SOCKET, SO_SNDBUF, 32 * 1024, "SO_SNDBUF")
        }
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port, receiveBufferSize: 8 * 1024)
        #expect(client.send([1]))
        let head = client.receive(exactly: 64 * 1024, piece: 4096, pauseMicroseconds: 300)
        #expect(head.map { $0[...] } == payload[0..<(64 * 1024)])
        #expect(queuedAfterWrite.value == total)
        // The rest is still in the loop's queue, waiting for EPOLLOUT.
        #expect((server.onLoop { loop in server.connections.first.map { loop.bufferedAmount($0.handle) } ?? 0 } ?? 0) > 0)
        let rest = client.receive(exactly: total - 64 * 1024, piece: 64 * 1024, pauseMicroseconds: 20)
        #expect(rest.map { $0[...] } == payload[(64 * 1024)...])
        #expect(waitUntil { server.drainedTotal == 1 })
    }

    @Test func gracefulCloseDeliversTheLastBytesThenEndOfStream() throws {
        var behaviour = Behaviour()
        behaviour.received = { peer, bytes in
            peer.write(UnsafeRawBufferPointer(bytes))
            peer.loop.close(peer.handle, mode: .graceful(lingerNanoseconds: TestTime.nanoseconds(5_000_000_000)))
        }
        let server = try LoopHarness(backend: EpollBackend(), behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        let message = pattern(300_000, seed: 3)
        #expect(client.send(message))
        let (bytes, end) = client.readToEnd()
        // The first receive of the server got a prefix of the message; it is echoed, then FIN.
        #expect(end == .endOfFile)
        #expect(!bytes.isEmpty && bytes[...] == message[0..<bytes.count])
        client.close()
        // Our FIN ends the linger: the socket closes long before the 5 s linger timer (both scaled).
        #expect(waitUntil(seconds: 3) { server.closedTotal == 1 })
        #expect(server.onLoop { $0.openSockets } == 0)
    }

    @Test func abortWhileASendWaitsForTheSlowPeerCancelsAndClosesOnce() throws {
        var behaviour = Behaviour()
        behaviour.received = { peer, _ in
            pattern(8 << 20, seed: 4).withUnsafeBytes { peer.write($0) }
        }
        let server = try LoopHarness(backend: EpollBackend(), behaviour: behaviour) { fd in
            try? Socket.setOption(fd, SOL_SOCKET, SO_SNDBUF, 32 * 1024, "SO_SNDBUF")
        }
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port, receiveBufferSize: 8 * 1024)
        #expect(client.send([1]))
        // The client does not read: the loop's send is parked on EPOLLOUT while the receive is armed.
        #expect(waitUntil { (server.onLoop { loop in server.connections.first.map { loop.bufferedAmount($0.handle) } ?? 0 } ?? 0) > 0 })
        usleep(50_000)
        _ = server.onLoop { loop in
            if let peer = server.connections.first { loop.close(peer.handle, mode: .abort) }
        }
        #expect(waitUntil { server.closedTotal == 1 })
        let (_, end) = client.readToEnd()
        #expect(end == .endOfFile || end == .reset)
        usleep(50_000)
        #expect(server.closedTotal == 1)
        #expect(server.onLoop { $0.openSockets } == 0)
        // The loop still serves new connections afterwards.
        let second = try TestClient(port: server.port)
        #expect(second.send([7]))
        #expect(waitUntil { server.connections.count == 2 })
    }

    @Test func aPeerResetEndsTheReadWithAnErrorAndTheSocketCloses() throws {
        let readEnds = Locked<[Int32?]>([])
        var behaviour = Behaviour()
        behaviour.readEnded = { peer, error in
            readEnds.withLock { $0.append(error) }
            peer.loop.close(peer.handle, mode: .abort)
        }
        let server = try LoopHarness(backend: EpollBackend(), behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        #expect(client.send([1, 2, 3]))
        #expect(client.receive(exactly: 3) == [1, 2, 3])
        client.reset()
        #expect(waitUntil { server.closedTotal == 1 })
        #expect(readEnds.value.count == 1)
    }

    @Test func anIdleLoopDoesNotTurnForAHalfClosedOrWritableSocket() throws {
        // The socket stays open after the peer's FIN: its receive ended, it is always writable and
        // readable at EOF; a loop that kept it in the epoll set (level-triggered) would spin.
        var behaviour = Behaviour()
        behaviour.readEnded = { _, _ in }
        let server = try LoopHarness(backend: EpollBackend(), behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let turns = Locked(0)
        _ = server.onLoop { loop in loop.addTurnEndHook { turns.withLock { $0 += 1 } } }
        let client = try TestClient(port: server.port)
        #expect(client.send([1, 2]))
        #expect(client.receive(exactly: 2) == [1, 2])
        client.shutdownWrite()
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
            if let peer = server.connections.first { [UInt8]([9, 8, 7]).withUnsafeBytes { loop.write(peer.handle, $0) } }
        }
        #expect(client.receive(exactly: 3) == [9, 8, 7])
    }

    @Test func everyByteArrivesWhenTheReceivePoolRunsDry() throws {
        var configuration = EpollConfiguration()
        configuration.receiveBufferCount = 2
        configuration.receiveBufferSize = 64
        let backend = try CountingBackend(wrapping: EpollBackend(configuration: configuration))
        let server = try LoopHarness(backend: backend)
        defer { #expect(server.shutDown()) }
        let clientCount = 6
        let size = 128 * 1024
        let clients = try (0..<clientCount).map { _ in try TestClient(port: server.port) }
        let ok = concurrently(clients) { index, client in
            let message = pattern(size, seed: index)
            return client.send(message) && client.receive(exactly: size) == message
        }
        #expect(ok == [Bool](repeating: true, count: clientCount))
        let counts = backend.counts.value
        #expect(counts.noBufferCompletions > 0)
        #expect(counts.receives > clientCount)
    }

    @Test func executeWakesALoopBlockedWithoutTimers() throws {
        let server = try LoopHarness(backend: EpollBackend(), listening: false)
        defer { #expect(server.shutDown()) }
        usleep(200_000)  // the loop is now blocked in epoll_wait with no timeout
        for _ in 0..<3 {
            let start = EventLoop.monotonicNanoseconds()
            let ran = DispatchSemaphore(value: 0)
            server.loop.execute { ran.signal() }
            #expect(ran.wait(timeout: .now() + TestTime.seconds(2)) == .success)
            #expect(EventLoop.monotonicNanoseconds() - start < TestTime.nanoseconds(1_000_000_000))
            usleep(50_000)
        }
    }

    @Test func timersFireWhileTheLoopWaitsInEpoll() throws {
        let server = try LoopHarness(backend: EpollBackend(), listening: false)
        defer { #expect(server.shutDown()) }
        let fired = DispatchSemaphore(value: 0)
        let start = EventLoop.monotonicNanoseconds()
        _ = server.onLoop { loop in loop.schedule(after: 30_000_000) { fired.signal() } }
        #expect(fired.wait(timeout: .now() + TestTime.seconds(2)) == .success)
        let elapsed = EventLoop.monotonicNanoseconds() - start
        #expect(elapsed >= 30_000_000 && elapsed < TestTime.nanoseconds(1_000_000_000))
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
        let message = pattern(10 * 1024, seed: 5)
        #expect(message.withUnsafeBytes { send(b, $0.baseAddress, $0.count, 0) } == message.count)
        backend.prepareReceive(socket: a, userData: 7)
        var received: [UInt8] = []
        var turns = 0
        var ended = false
        while !ended && turns < 20 {
            turns += 1
            var inThisTurn = 0
            try backend.submitAndWait(timeoutNanoseconds: 1_000_000_000)
            backend.drainCompletions(limit: .max) { completion in
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
            let reader = Unchecked(value: b)
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
        let clients = try (0..<5).map { _ in try TestClient(port: port) }
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
        let working = { () throws(SystemError) -> any LoopBackend in try CountingBackend(wrapping: EpollBackend()) }

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
        #expect(preferred is CountingBackend)
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
        #expect(unknown is CountingBackend)
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
        let server = try LoopHarness(backend: backend)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        #expect(client.send([1, 2, 3]))
        #expect(client.receive(exactly: 3) == [1, 2, 3])
    }
}

// MARK: - Helpers (private to this file)

/// Prepares nothing, runs one submit-and-wait and returns the completions (buffers recycled).
private func epollTurn(_ backend: EpollBackend, timeout: Int64?) throws -> [Completion] {
    var completions: [Completion] = []
    try backend.submitAndWait(timeoutNanoseconds: timeout)
    backend.drainCompletions(limit: .max) { completion in
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
