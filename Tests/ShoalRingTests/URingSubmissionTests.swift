// The io_uring backend when its submission queue is full: it submits what is there, and when the
// kernel refuses (-EBUSY, -EAGAIN) or is interrupted (-EINTR) it reaps completions to make room
// and retries; the reaped completions are delivered by the next drain, in order, exactly once,
// and a submit-and-wait does not sleep while such completions are waiting.
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

@Suite(.serialized) struct URingSubmissionTests {
    /// A ring with a 4-entry submission queue.
    static func tinyRing() throws -> URingBackend {
        var configuration = URingConfiguration()
        configuration.submissionEntries = 4
        configuration.completionEntries = 16
        configuration.receiveBufferCount = 8
        configuration.receiveBufferSize = 1024
        return try URingBackend(configuration: configuration)
    }

    /// A connected pair of stream sockets.
    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError.last("socketpair")
        }
        return (fds[0], fds[1])
    }

    static func drain(_ backend: URingBackend) -> [Completion] {
        var completions: [Completion] = []
        backend.drainCompletions(limit: .max) { completions.append($0) }
        return completions
    }

    @Test func aFullQueueTheKernelRefusesIsRetriedAndLosesNoCompletion() throws {
        let backend = try Self.tinyRing()
        defer { backend.shutdown() }
        let (a, b) = try Self.socketPair()
        defer { Glibc.close(a); Glibc.close(b) }
        // The kernel refuses the first submits a full queue forces: busy, out of resources, interrupted.
        var refusals: [Int32] = [-EINTR, -EAGAIN, -EBUSY, -EBUSY]
        backend.submitFault = { refusals.popLast() }
        let byte: [UInt8] = [7]
        try byte.withUnsafeBytes { bytes in
            for i in 0..<40 { backend.prepareSend(socket: a, bytes: bytes, userData: UInt64(1000 + i)) }
            try backend.submitAndWait(timeoutNanoseconds: 1_000_000_000)
        }
        #expect(refusals.isEmpty)
        var completions: [Completion] = []
        for _ in 0..<10 where completions.count < 40 {
            completions += Self.drain(backend)
            if completions.count < 40 { try backend.submitAndWait(timeoutNanoseconds: 100_000_000) }
        }
        #expect(completions.map(\.userData) == (0..<40).map { UInt64(1000 + $0) })
        #expect(completions.allSatisfy { $0.result == 1 })
        var received = [UInt8](repeating: 0, count: 64)
        #expect(recv(b, &received, 64, Int32(MSG_DONTWAIT)) == 40)
    }

    @Test func completionsReapedToMakeRoomAreDeliveredWithoutWaiting() throws {
        let backend = try Self.tinyRing()
        defer { backend.shutdown() }
        let pairs = try (0..<5).map { _ in try Self.socketPair() }
        defer { for (a, b) in pairs { Glibc.close(a); Glibc.close(b) } }
        let byte: [UInt8] = [7]
        try byte.withUnsafeBytes { bytes in
            for i in 0..<4 { backend.prepareSend(socket: pairs[0].0, bytes: bytes, userData: UInt64(i)) }
            try backend.submitAndWait(timeoutNanoseconds: 1_000_000_000)
        }
        // Four completions wait in the ring. Reads of silent sockets never complete; the fifth
        // finds the queue full, the kernel says busy, and the backend reaps the four to make room.
        var refusals: [Int32] = [-EBUSY]
        backend.submitFault = { refusals.popLast() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 5 * 8, alignment: 8)
        defer { buffer.deallocate() }
        for i in 0..<5 {
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[(i * 8)..<(i * 8 + 8)])
            backend.prepareRead(descriptor: pairs[i].0, into: slice, userData: UInt64(100 + i))
        }
        #expect(refusals.isEmpty)
        let start = EventLoop.monotonicNanoseconds()
        try backend.submitAndWait(timeoutNanoseconds: 5_000_000_000)
        #expect(EventLoop.monotonicNanoseconds() - start < 2_000_000_000, "slept with completions waiting")
        let completions = Self.drain(backend)
        #expect(completions.map(\.userData) == [0, 1, 2, 3])
        #expect(completions.allSatisfy { $0.result == 1 }, "\(completions.map(\.result))")
    }

    @Test func aFullQueueOnTheRealKernelSubmitsEarlyAndKeepsOrder() throws {
        let backend = try Self.tinyRing()
        defer { backend.shutdown() }
        let (a, b) = try Self.socketPair()
        defer { Glibc.close(a); Glibc.close(b) }
        let byte: [UInt8] = [9]
        try byte.withUnsafeBytes { bytes in
            // More than the completion queue holds too: the kernel keeps the overflow for us.
            for i in 0..<100 { backend.prepareSend(socket: a, bytes: bytes, userData: UInt64(i)) }
            try backend.submitAndWait(timeoutNanoseconds: 1_000_000_000)
        }
        var completions: [Completion] = []
        for _ in 0..<20 where completions.count < 100 {
            completions += Self.drain(backend)
            if completions.count < 100 { try backend.submitAndWait(timeoutNanoseconds: 100_000_000) }
        }
        #expect(completions.map(\.userData) == (0..<100).map { UInt64($0) })
    }
}
