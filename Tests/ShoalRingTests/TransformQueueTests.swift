// A socket with a transform (TLS) on a scripted kernel: what the delegate wrote waits as
// plaintext until the transform is established, and the loop's byte counts see it there.
import Testing

@testable import ShoalRing

/// A transform that passes bytes through unchanged once the test says it is established (a
/// handshake the test finishes by hand).
final class PassThroughTransform: StreamTransform {
    var isEstablished = false
    private var output: [UInt8] = []

    func receive(_ bytes: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer,
                 deliver: (UnsafeMutableRawBufferPointer) -> Void) -> StreamTransformEvent {
        guard isEstablished else { return .needMoreInput }
        let piece = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<bytes.count])
        piece.copyMemory(from: bytes)
        deliver(piece)
        return .needMoreInput
    }

    func seal(_ plaintext: UnsafeRawBufferPointer) -> Bool {
        output += plaintext
        return true
    }

    var pendingOutputCount: Int { output.count }

    func takeOutput(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(buffer.count, output.count)
        buffer.copyMemory(from: UnsafeRawBufferPointer(start: output, count: count))
        output.removeFirst(count)
        return count
    }

    func finish() {}
}

@Suite struct TransformQueueTests {
    @Test func queuedBytesCountsPlaintextWaitingForTheTransform() throws {
        let script = try ScriptedLoop()
        let plain = try script.open(), secured = try script.open()
        let transform = PassThroughTransform()
        script.loop.setTransform(transform, for: secured.handle)
        script.write(plain, pattern(100, seed: 1))
        script.write(secured, pattern(700, seed: 2))
        try script.turn()
        // The plain socket's bytes are in flight; the secured socket's wait for the handshake.
        #expect(script.loop.bufferedAmount(secured.handle) == 700)
        #expect(script.loop.queuedBytes == 800)
        #expect(script.backend.inFlight(.send, on: secured.fd).isEmpty)

        transform.isEstablished = true
        script.write(secured, [9])
        try script.turn()
        #expect(script.loop.queuedBytes == 801)
        #expect(script.backend.completeSend(on: secured.fd) == pattern(700, seed: 2) + [9])
        #expect(script.backend.completeSend(on: plain.fd) == pattern(100, seed: 1))
        try script.turn()
        #expect(script.loop.queuedBytes == 0)
        #expect(script.backend.violations == [])
    }
}

@Suite struct SlotSizeTests {
    /// A plain socket's slot carries nothing for TLS (the transform and its queue live beside the
    /// slots): a slot with them inline took 64 bytes.
    @Test func aSlotTakesAtMost40Bytes() {
        #expect(EventLoop.slotStride <= 40)
    }

    /// The epoll backend's record of each descriptor, which every idle socket also has there:
    /// pending operations flagged in one byte, not seven padded Optionals (152 bytes).
    @Test func anEpollDescriptorTakesAtMost96Bytes() {
        #expect(EpollBackend.descriptorStride <= 96)
    }
}
