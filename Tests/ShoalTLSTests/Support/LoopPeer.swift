// An event loop on a MemoryBackend with one socket whose far end is a TLSSession the test drives:
// what the loop sends reaches the peer session, what the peer session writes reaches the loop,
// in pieces the test chooses. No descriptor is involved.
import ShoalRing
import ShoalTLS

/// A socket delegate that keeps what happens to it, and can answer what it reads.
final class RecordingDelegate: SocketDelegate {
    var handle: SocketHandle?
    var received: [UInt8] = []
    var readEnds: [Int32?] = []
    var closedCount = 0
    /// Called with each piece of plaintext, after it was recorded.
    var onReceive: ((UnsafeMutableRawBufferPointer, SocketHandle) -> Void)?

    func opened(on handle: SocketHandle) { self.handle = handle }
    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) {
        received.append(contentsOf: bytes)
        onReceive?(bytes, handle)
    }
    func readEnded(on handle: SocketHandle, error: Int32?) { readEnds.append(error) }
    func closed(on handle: SocketHandle) { closedCount += 1 }
}

final class LoopPeer {
    let backend = MemoryBackend()
    let loop: EventLoop
    let socket: Int32
    let delegate = RecordingDelegate()
    let peer: TLSSession
    /// Ciphertext the loop sent, as the peer saw it.
    private(set) var wire: [UInt8] = []
    private(set) var peerReceived: [UInt8] = []
    private(set) var peerProgress: [TLSSession.Progress] = []
    private(set) var peerErrors: [any Error] = []
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
    /// Whether this run of the loop was already asked to stop (a box: deinit turns the loop too,
    /// when `self` can no longer be captured).
    private final class StopFlag { var requested = false }
    private let stop = StopFlag()

    init(peer: TLSSession) throws {
        self.peer = peer
        loop = try EventLoop(backend: backend)
        socket = backend.makeSocket()
        backend.whenIdle = { [stop, weak loop] in
            guard !stop.requested else { return }
            stop.requested = true
            loop?.stop()
        }
        loop.register(socket: socket, delegate: delegate)
    }

    deinit {
        if delegate.closedCount == 0, let handle = delegate.handle { loop.close(handle, mode: .abort) }
        turn()
        loop.shutdown()
        scratch.deallocate()
    }

    var handle: SocketHandle { delegate.handle! }

    /// Runs the loop until it has nothing left to do.
    func turn() {
        stop.requested = false
        try? loop.run()
    }

    /// Moves bytes both ways until neither side has more; the peer's bytes reach the loop in
    /// pieces of at most `chunk` bytes, one piece per loop turn.
    func pump(chunk: Int = 16 * 1024) {
        var moved = true
        while moved {
            moved = false
            turn()
            let sent = backend.takeSent(on: socket)
            if !sent.isEmpty {
                wire += sent
                moved = true
                do {
                    peerProgress.append(try sent.withUnsafeBytes { try peer.receive($0, scratch: scratch) { peerReceived += $0 } })
                } catch {
                    peerErrors.append(error)
                }
            }
            var out = [UInt8](repeating: 0, count: peer.pendingOutputCount)
            if !out.isEmpty {
                out.withUnsafeMutableBytes { _ = peer.takeOutput(into: $0) }
                for start in stride(from: 0, to: out.count, by: chunk) {
                    backend.peerSent(Array(out[start..<min(out.count, start + chunk)]), on: socket)
                    turn()
                }
                moved = true
            }
        }
    }

    /// The socket's delegate writes `text` (plaintext, through the loop).
    func loopWrites(_ text: String) {
        Array(text.utf8).withUnsafeBytes { loop.write(handle, $0) }
    }

    /// The peer writes plaintext (sealed into records at once).
    func peerWrites(_ text: String) throws {
        try Array(text.utf8).withUnsafeBytes { try peer.send($0) }
    }

    /// Raw bytes from the peer, not TLS (garbage, plain HTTP).
    func peerSendsRaw(_ bytes: [UInt8]) {
        backend.peerSent(bytes, on: socket)
        turn()
        wire += backend.takeSent(on: socket)
    }
}
