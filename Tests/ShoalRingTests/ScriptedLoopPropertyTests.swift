// Seeded random scripts against the loop on a scripted kernel: sockets open, write, pause, close
// in either mode and react to their events, while the kernel completes whatever it holds in any
// order with any plausible result and the clock jumps. After every script the kernel returns what
// it still holds and the properties are checked: `closed(on:)` exactly once per socket, every
// descriptor closed exactly once and never with an operation on it, no chunk released while a
// send reads it (the backend compares the bytes), bytes leave in the order written, and nothing
// (chunks, receive buffers, sockets) is left. A failing seed reproduces alone.
import ShoalTestSupport
import Glibc
import Testing

@testable import ShoalRing

@Suite struct ScriptedLoopPropertyTests {
    /// The generator, shared by the script and the delegates' reactions.
    final class Dice {
        var generator: SplitMix64
        /// Random bytes that messages are cut from (generating each message byte by byte is slow in debug builds).
        private let table: [UInt8]
        init(seed: UInt64) {
            generator = SplitMix64(seed: seed)
            var bytes = [UInt8](repeating: 0, count: 8192)
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: generator.next()) }
            table = bytes
        }
        func roll(_ sides: Int) -> Int { Int.random(in: 0..<sides, using: &generator) }
        func chance(_ percent: Int) -> Bool { roll(100) < percent }
        func bytes(_ maxCount: Int) -> [UInt8] {
            let count = 1 + roll(maxCount), start = roll(table.count - count)
            return Array(table[start..<(start + count)])
        }
    }

    /// One socket of the script: what was written and what the kernel read, in order.
    final class Peer {
        let socket: ScriptedSocket
        var written: [UInt8] = []
        var wire: [UInt8] = []
        init(_ socket: ScriptedSocket) { self.socket = socket }
    }

    static func run(seed: UInt64, steps: Int) throws -> [String] {
        let dice = Dice(seed: seed)
        let backend = ScriptedBackend(receiveBuffers: 1 + dice.roll(4))
        backend.submissionCapacity = dice.chance(50) ? 2 + dice.roll(4) : .max
        backend.cancelsCompleteAtOnce = dice.chance(30)
        var failures: [String] = []
        var peers: [Peer] = []
        do {
            let script = try ScriptedLoop(backend: backend)
            let loop = script.loop

            func queue(_ peer: Peer, _ bytes: [UInt8]) {
                if loop.isWritable(peer.socket.handle) { peer.written += bytes }
                script.write(peer.socket, bytes)
            }
            func end(_ peer: Peer) {
                let mode: CloseMode = dice.chance(50) ? .abort : .graceful(lingerNanoseconds: UInt64(dice.roll(3)) * 1_000_000_000)
                loop.close(peer.socket.handle, mode: mode)
            }
            func openPeer() throws {
                let peer = Peer(try script.open())
                // Reactions a WebSocket layer has: answer, close on an end, close from a timer.
                peer.socket.onReceived = { _ in
                    if dice.chance(30) { queue(peer, dice.bytes(200)) }
                    if dice.chance(5) { end(peer) }
                    if dice.chance(5) { loop.pauseReceiving(peer.socket.handle) }
                }
                peer.socket.onReadEnded = { _ in if dice.chance(80) { end(peer) } }
                peer.socket.onTimer = { _, _ in end(peer) }
                peers.append(peer)
            }

            func completeSomething() {
                guard !backend.inFlight.isEmpty else { return }
                let index = dice.roll(backend.inFlight.count)
                let operation = backend.inFlight[index]
                guard let peer = peers.first(where: { $0.socket.fd == operation.fd }) else { return }
                switch operation.kind {
                case .receive:
                    switch dice.roll(10) {
                    case 0...4: backend.receive(dice.bytes(100), on: operation.fd, more: dice.chance(80))
                    case 5: backend.complete(at: index, result: -ENOBUFS)
                    case 6: backend.endReceive(on: operation.fd, result: 0)
                    case 7: backend.endReceive(on: operation.fd, result: -ECONNRESET)
                    default:
                        if operation.cancelRequested { backend.completeCancelled(at: index) }
                    }
                case .send:
                    let length = operation.bytes!.count
                    switch dice.roll(10) {
                    case 0...4: peer.wire += backend.completeSend(on: operation.fd) ?? []
                    case 5, 6: peer.wire += backend.completeSend(on: operation.fd, sent: 1 + dice.roll(length)) ?? []
                    case 7: backend.completeSend(on: operation.fd, error: EAGAIN)
                    case 8: backend.completeSend(on: operation.fd, error: EPIPE)
                    default:
                        if operation.cancelRequested { backend.completeSend(on: operation.fd, error: ECANCELED) }
                    }
                default:
                    break
                }
            }

            try openPeer()
            for _ in 0..<steps {
                switch dice.roll(20) {
                case 0: if peers.count < 6 { try openPeer() }
                case 1...3: if let peer = peers.randomElement(using: &dice.generator) { queue(peer, dice.bytes(3000)) }
                case 4: if let peer = peers.randomElement(using: &dice.generator) { end(peer) }
                case 5: if let peer = peers.randomElement(using: &dice.generator) { loop.pauseReceiving(peer.socket.handle) }
                case 6: if let peer = peers.randomElement(using: &dice.generator) { loop.resumeReceiving(peer.socket.handle) }
                case 7:
                    if let peer = peers.randomElement(using: &dice.generator) {
                        loop.setTimer(peer.socket.handle, after: UInt64(dice.roll(3)) * 1_000_000_000, kind: 1)
                    }
                case 8: script.clock.now += UInt64(dice.roll(2_000)) * 1_000_000
                case 9...13: completeSomething()
                default: try script.turn()
                }
            }

            // Quiesce: every socket is aborted, the kernel gives back everything it holds.
            for peer in peers { loop.close(peer.socket.handle, mode: .abort) }
            for _ in 0..<50 {
                try script.turn()
                while let index = backend.inFlight.indices.last {
                    if backend.inFlight[index].kind == .send {
                        backend.completeSend(on: backend.inFlight[index].fd, error: ECANCELED)
                    } else {
                        backend.completeCancelled(at: index)
                    }
                }
                if backend.ready.isEmpty && backend.submissionQueue.isEmpty && loop.openSockets == 0 { break }
            }
            for peer in peers {
                if !peer.written.starts(with: peer.wire) {
                    failures.append("seed \(seed): bytes on \(peer.socket.fd) left out of order")
                }
                if peer.socket.closedCount != 1 { failures.append("seed \(seed): closed(on:) \(peer.socket.closedCount) times for \(peer.socket.fd)") }
                let closes = backend.closed.filter { $0 == peer.socket.fd }.count
                if closes != 1 { failures.append("seed \(seed): descriptor \(peer.socket.fd) closed \(closes) times") }
                if peer.socket.events.last != .closed(peer.socket.handle) { failures.append("seed \(seed): an event after closed(on:)") }
            }
            for peer in peers {  // the reactions hold the script: let it go
                peer.socket.onReceived = { _ in }
                peer.socket.onReadEnded = { _ in }
                peer.socket.onTimer = { _, _ in }
            }
            if loop.openSockets != 0 { failures.append("seed \(seed): \(loop.openSockets) sockets left open") }
            if loop.chunksOutstanding != 0 { failures.append("seed \(seed): \(loop.chunksOutstanding) send chunks not released") }
            if backend.buffersLent != 0 { failures.append("seed \(seed): \(backend.buffersLent) receive buffers not recycled") }
        }
        return failures + backend.violations.map { "seed \(seed): \($0)" }
    }

    @Test func randomScriptsKeepEveryLifecycleProperty() throws {
        for seed in UInt64(1)...1000 {
            let failures = try Self.run(seed: seed, steps: 400)
            #expect(failures.isEmpty, "\(failures.prefix(3))")
            if !failures.isEmpty { break }
        }
    }
}
