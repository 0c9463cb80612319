// The send-chunk pool's retention: up to its cap per size, all freed by releaseRetained (after a
// storm, before the heap is trimmed), and usable again afterwards.
import Testing
@testable import ShoalRing

@Suite struct ChunkPoolTests {
    @Test func releasedChunksAreKeptUpToTheCapAndFreedOnRelease() {
        let pool = ChunkPool(maxRetained: 4, smallCapacity: 100)
        let standard = (0..<6).map { _ in pool.take(minimum: 1) }
        let small = (0..<2).map { _ in pool.take(minimum: 1, preferSmall: true) }
        standard.forEach(pool.give)
        small.forEach(pool.give)
        #expect(pool.retained == 4)  // the other two standard chunks were freed
        #expect(pool.retainedSmall == 2)
        #expect(pool.outstanding == 0)

        pool.releaseRetained()
        #expect(pool.retained == 0)
        #expect(pool.retainedSmall == 0)

        // the pool still hands out chunks (newly allocated) and keeps them again
        let again = pool.take(minimum: 10)
        #expect(again.pointee.capacity == pool.standardCapacity)
        pool.give(again)
        #expect(pool.retained == 1)
    }
}
