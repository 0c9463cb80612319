// An `EventLoop` on a `ScriptedBackend` and a manual clock, turned by the test on its own thread:
// `turn()` runs one loop turn (flush, submit, drain what the script completed, timers, tasks).
// Sockets are fake descriptors registered with a recording delegate.
import Glibc
@testable import ShoalRing

/// The delegate of one scripted socket: records what the loop told it, bytes included.
final class ScriptedSocket: SocketDelegate {
    let fd: Int32
    private(set) var handle = SocketHandle(index: .max, generation: .max)
    private(set) var received: [UInt8] = []
    private(set) var events: [LoopEvent] = []
    /// Runs inside `received(_:on:)`, `readEnded(on:error:)` and `timerFired(on:kind:)` (on the loop).
    var onReceived: (ScriptedSocket) -> Void = { _ in }
    var onReadEnded: (ScriptedSocket) -> Void = { _ in }
    var onTimer: (ScriptedSocket, UInt8) -> Void = { _, _ in }

    init(fd: Int32) { self.fd = fd }

    var closedCount: Int { events.filter { $0 == .closed(handle) }.count }
    var readEndedCount: Int { events.filter { if case .readEnded = $0 { true } else { false } }.count }
    var timersFired: [UInt8] { events.compactMap { if case .timerFired(_, let kind) = $0 { kind } else { nil } } }

    func opened(on handle: SocketHandle) {
        self.handle = handle
        events.append(.opened(handle))
    }

    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) {
        received += bytes
        onReceived(self)
    }

    func readEnded(on handle: SocketHandle, error: Int32?) {
        events.append(.readEnded(handle, error: error))
        onReadEnded(self)
    }

    func timerFired(on handle: SocketHandle, kind: UInt8) {
        events.append(.timerFired(handle, kind: kind))
        onTimer(self, kind)
    }

    func drained(on handle: SocketHandle) { events.append(.drained(handle)) }

    func closed(on handle: SocketHandle) { events.append(.closed(handle)) }
}

/// A loop, its scripted kernel and its clock.
final class ScriptedLoop {
    let backend: ScriptedBackend
    let clock = ManualClock()
    let loop: EventLoop
    private var nextDescriptor = 0

    init(backend: ScriptedBackend = ScriptedBackend()) throws {
        self.backend = backend
        let clock = clock
        loop = try EventLoop(backend: backend, clock: { clock.now })
    }

    deinit { loop.shutdown() }

    /// Registers a new fake socket and runs a turn, so its receive is armed.
    func open() throws -> ScriptedSocket {
        let socket = ScriptedSocket(fd: ScriptedBackend.fakeDescriptor(nextDescriptor))
        nextDescriptor += 1
        loop.register(socket: socket.fd, delegate: socket)
        try turn()
        return socket
    }

    /// One loop turn.
    func turn() throws {
        try loop.runTurn()
    }

    /// `count` loop turns.
    func turns(_ count: Int) throws {
        for _ in 0..<count { try turn() }
    }

    /// Turns until the kernel holds nothing but armed receives and accepts and no completion is waiting
    /// (at most `limit` turns).
    func settle(limit: Int = 100) throws {
        for _ in 0..<limit {
            try turn()
            if backend.ready.isEmpty && backend.submissionQueue.isEmpty { return }
        }
    }

    func write(_ socket: ScriptedSocket, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { loop.write(socket.handle, $0) }
    }
}
