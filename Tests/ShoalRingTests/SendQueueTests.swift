// The outbound queue and its chunk pool, without a loop: chunk boundaries, dedicated chunks for
// large reservations, freeing on consume, the pool's retention bound and discarding.
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite struct SendQueueTests {
    /// Takes every byte out of `queue` the way the loop does: the next sendable span, then consume.
    private func drain(_ queue: inout SendQueue, pool: ChunkPool, step: Int = .max) -> [UInt8] {
        var sent: [UInt8] = []
        while let span = queue.nextSendable {
            let n = min(step, span.count)
            sent += span.prefix(n)
            queue.consume(n, pool: pool)
        }
        return sent
    }

    @Test func splitsAnAppendLargerThanAChunkAcrossChunksInOrder() {
        let pool = ChunkPool(standardCapacity: 16, maxRetained: 8)
        var queue = SendQueue()
        let bytes = pattern(40, seed: 1)
        bytes.withUnsafeBytes { queue.append($0, pool: pool) }
        #expect(queue.queuedBytes == 40)
        #expect(pool.outstanding == 3)
        #expect(queue.nextSendable?.count == 16)
        #expect(drain(&queue, pool: pool) == bytes)
        #expect(queue.isEmpty && queue.nextSendable == nil)
        #expect(pool.outstanding == 0)
    }

    @Test func fillsTheTailChunkBeforeTakingANewOne() {
        let pool = ChunkPool(standardCapacity: 16, maxRetained: 8)
        var queue = SendQueue()
        let first = pattern(10, seed: 2), second = pattern(10, seed: 3)
        first.withUnsafeBytes { queue.append($0, pool: pool) }
        second.withUnsafeBytes { queue.append($0, pool: pool) }
        // 6 bytes complete the first chunk, 4 start the second.
        #expect(pool.outstanding == 2)
        #expect(queue.nextSendable?.count == 16)
        #expect(drain(&queue, pool: pool) == first + second)
    }

    @Test func manySmallAppendsShareOneChunk() {
        let pool = ChunkPool()
        var queue = SendQueue()
        var expected: [UInt8] = []
        for i in 0..<1000 {
            let piece = [UInt8(i & 0xFF), UInt8(i >> 8), 0xA5]
            expected += piece
            piece.withUnsafeBytes { queue.append($0, pool: pool) }
        }
        #expect(pool.outstanding == 1)
        #expect(queue.nextSendable?.count == 3000)
        #expect(drain(&queue, pool: pool) == expected)
    }

    @Test func givesALargeReservationADedicatedChunkThatIsFreedNotPooled() {
        let pool = ChunkPool(standardCapacity: 16, maxRetained: 8)
        var queue = SendQueue()
        let bytes = pattern(100, seed: 4)
        queue.append(count: 100, pool: pool) { region in
            #expect(region.count == 100)
            bytes.withUnsafeBytes { region.copyMemory(from: $0) }
        }
        #expect(pool.outstanding == 1)
        // Contiguous: the whole reservation leaves in one send.
        #expect(queue.nextSendable.map { Array($0) } == bytes)
        queue.consume(100, pool: pool)
        #expect(pool.outstanding == 0)
        #expect(pool.retained == 0)
    }

    @Test func startsANewChunkForAReservationThatDoesNotFitTheTail() {
        let pool = ChunkPool(standardCapacity: 16, maxRetained: 8)
        var queue = SendQueue()
        let first = pattern(10, seed: 5), second = pattern(10, seed: 6)
        first.withUnsafeBytes { queue.append($0, pool: pool) }
        queue.append(count: 10, pool: pool) { region in second.withUnsafeBytes { region.copyMemory(from: $0) } }
        #expect(pool.outstanding == 2)
        #expect(queue.nextSendable?.count == 10)
        #expect(drain(&queue, pool: pool) == first + second)
    }

    @Test func partialConsumesAdvanceTheHeadAndFreeChunksOnlyWhenDone() {
        let pool = ChunkPool(standardCapacity: 16, maxRetained: 8)
        var queue = SendQueue()
        let bytes = pattern(32, seed: 7)
        bytes.withUnsafeBytes { queue.append($0, pool: pool) }
        queue.consume(5, pool: pool)
        #expect(queue.queuedBytes == 27)
        #expect(queue.nextSendable.map { Array($0) } == Array(bytes[5..<16]))
        #expect(pool.outstanding == 2)
        queue.consume(11, pool: pool)
        #expect(pool.outstanding == 1)
        #expect(pool.retained == 1)
        #expect(drain(&queue, pool: pool, step: 3) == Array(bytes[16...]))
        #expect(pool.outstanding == 0 && pool.retained == 2)
    }

    @Test func appendsWhileASendIsInFlightDoNotDisturbTheInFlightBytes() {
        let pool = ChunkPool(standardCapacity: 64, maxRetained: 8)
        var queue = SendQueue()
        let first = pattern(20, seed: 8), second = pattern(20, seed: 9)
        first.withUnsafeBytes { queue.append($0, pool: pool) }
        let inFlight = queue.nextSendable!
        second.withUnsafeBytes { queue.append($0, pool: pool) }
        #expect(Array(inFlight) == first)
        queue.consume(inFlight.count, pool: pool)
        #expect(queue.nextSendable.map { Array($0) } == second)
        #expect(drain(&queue, pool: pool) == second)
    }

    @Test func aDrainedQueueHoldsNoChunk() {
        let pool = ChunkPool()
        var queue = SendQueue()
        pattern(100, seed: 10).withUnsafeBytes { queue.append($0, pool: pool) }
        _ = drain(&queue, pool: pool)
        #expect(queue.head == nil)
        #expect(pool.outstanding == 0 && pool.retained == 1)
        // The next append reuses the retained chunk.
        pattern(5, seed: 11).withUnsafeBytes { queue.append($0, pool: pool) }
        #expect(pool.retained == 0 && pool.outstanding == 1)
        queue.discardAll(pool: pool)
    }

    @Test func thePoolRetainsAtMostItsBoundOfFreeChunks() {
        let pool = ChunkPool(standardCapacity: 16, maxRetained: 2)
        let chunks = (0..<5).map { _ in pool.take(minimum: 8) }
        #expect(pool.outstanding == 5)
        for chunk in chunks { pool.give(chunk) }
        #expect(pool.outstanding == 0)
        #expect(pool.retained == 2)
        // Dedicated chunks are never retained.
        pool.give(pool.take(minimum: 17))
        #expect(pool.retained == 2)
    }

    @Test func discardAllDropsEveryChunkAndLeavesAnEmptyReusableQueue() {
        let pool = ChunkPool(standardCapacity: 16, maxRetained: 8)
        var queue = SendQueue()
        pattern(40, seed: 12).withUnsafeBytes { queue.append($0, pool: pool) }
        queue.append(count: 100, pool: pool) { $0.initializeMemory(as: UInt8.self, repeating: 1) }
        queue.consume(3, pool: pool)
        #expect(pool.outstanding == 4)
        queue.discardAll(pool: pool)
        #expect(queue.isEmpty && queue.queuedBytes == 0)
        #expect(queue.nextSendable == nil && queue.head == nil)
        #expect(pool.outstanding == 0)
        #expect(pool.retained == 3)
        let again = pattern(20, seed: 13)
        again.withUnsafeBytes { queue.append($0, pool: pool) }
        #expect(drain(&queue, pool: pool) == again)
    }

    @Test func aQueuesFirstChunkIsSmallAndLaterOnesAreStandardSoIdleSocketsPinLittleMemory() {
        let pool = ChunkPool(standardCapacity: 64, maxRetained: 8, smallCapacity: 16)
        var queue = SendQueue()
        queue.append(count: 10, pool: pool) { $0.initializeMemory(as: UInt8.self, repeating: 1) }
        #expect(queue.head?.pointee.capacity == 16)
        // What no longer fits the small chunk goes to a standard one.
        queue.append(count: 10, pool: pool) { $0.initializeMemory(as: UInt8.self, repeating: 2) }
        #expect(pool.outstanding == 2)
        #expect(queue.head?.pointee.next?.pointee.capacity == 64)
        #expect(drain(&queue, pool: pool) == [UInt8](repeating: 1, count: 10) + [UInt8](repeating: 2, count: 10))
        #expect(pool.retainedSmall == 1 && pool.retained == 1)
        // A first frame larger than the small size starts with a standard chunk.
        queue.append(count: 20, pool: pool) { $0.initializeMemory(as: UInt8.self, repeating: 3) }
        #expect(queue.head?.pointee.capacity == 64)
        queue.discardAll(pool: pool)
        #expect(pool.outstanding == 0)
    }

    @Test func appendsWhileTheHeadIsBeingSentJoinTheTailAndTheCountFollowsTheHead() {
        let pool = ChunkPool(standardCapacity: 16, maxRetained: 8)
        var queue = SendQueue()
        var expected: [UInt8] = []
        func append(_ count: Int, seed: Int) {
            let piece = pattern(count, seed: seed)
            expected += piece
            piece.withUnsafeBytes { queue.append($0, pool: pool) }
        }
        var sent: [UInt8] = []
        append(40, seed: 1)  // three chunks: 16 + 16 + 8
        // The kernel takes the first chunk in two pieces; the second chunk becomes the head.
        for n in [10, 6] {
            sent += queue.nextSendable!.prefix(n)
            queue.consume(n, pool: pool)
        }
        #expect(queue.queuedBytes == 24)
        append(5, seed: 2)  // fills the last chunk, not the new head
        #expect(pool.outstanding == 2)
        #expect(queue.queuedBytes == 29)
        append(20, seed: 3)
        #expect(queue.queuedBytes == 49)
        sent += drain(&queue, pool: pool, step: 7)
        #expect(sent == expected)
        #expect(queue.isEmpty && queue.queuedBytes == 0 && pool.outstanding == 0)
    }

    @Test func releasingTheRetainedChunksEmptiesTheFreeListsAndTheyRefillOnDemand() {
        let pool = ChunkPool(standardCapacity: 16, maxRetained: 8, smallCapacity: 4)
        var queue = SendQueue()
        let bytes = [UInt8](repeating: 7, count: 60)
        bytes.withUnsafeBytes { queue.append($0, pool: pool) }
        _ = drain(&queue, pool: pool)
        #expect(pool.retained > 0 && pool.outstanding == 0)
        pool.releaseRetained()
        #expect(pool.retained == 0 && pool.retainedSmall == 0)
        bytes.withUnsafeBytes { queue.append($0, pool: pool) }
        #expect(drain(&queue, pool: pool) == bytes)
        #expect(pool.outstanding == 0 && pool.retained > 0)
    }
}
