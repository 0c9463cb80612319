// Outbound bytes live in chunks taken from a per-loop pool: an idle connection holds no send
// memory at all, a busy one holds a chain of chunks until the kernel has taken the bytes.
//
// Chunk memory layout (one malloc block):
//   [ChunkHeader: next, capacity, start, end, queue tail and bytes, isPooled][capacity bytes of data]
// Bytes [start, end) are queued and not yet sent; [end, capacity) is free for appends.
import Glibc

/// Header at the front of every chunk.
struct ChunkHeader {
    var next: UnsafeMutablePointer<ChunkHeader>?
    var capacity: Int
    var start: Int
    var end: Int
    /// Meaningful in a queue's head chunk only: the queue's last chunk and its byte count. They
    /// live here rather than in `SendQueue`, so every socket slot holds one pointer, not three words.
    var queueTail: UnsafeMutablePointer<ChunkHeader>?
    var queuedBytes: Int
    var isPooled: Bool

    /// The data area that follows the header.
    static func data(_ chunk: UnsafeMutablePointer<ChunkHeader>) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(chunk) + MemoryLayout<ChunkHeader>.stride
    }
}

/// Free lists of chunks in two sizes. A connection's first chunk is small (most sockets hold one
/// small frame at a time, and a broadcast to 10,000 idle sockets must not pin 16 KiB each); once
/// more is queued, chunks are standard-size. Chunks larger than standard (one big frame) are
/// allocated for their message and freed when sent.
final class ChunkPool {
    /// Data bytes in a standard chunk: 16 KiB, the size uWebSockets corks into.
    let standardCapacity: Int
    /// Data bytes in a small first chunk (0: no small chunks).
    let smallCapacity: Int
    /// Free chunks kept for reuse per size beyond which released chunks are freed (bounds idle memory).
    let maxRetained: Int
    private var free: UnsafeMutablePointer<ChunkHeader>?
    private var freeSmall: UnsafeMutablePointer<ChunkHeader>?
    private(set) var retained = 0
    private(set) var retainedSmall = 0
    private(set) var outstanding = 0

    init(standardCapacity: Int = 16 * 1024 - MemoryLayout<ChunkHeader>.stride, maxRetained: Int = 256, smallCapacity: Int = 0) {
        self.standardCapacity = standardCapacity
        self.maxRetained = maxRetained
        self.smallCapacity = smallCapacity
    }

    /// A chunk with room for at least `minimum` bytes; a small one when `preferSmall` and it fits.
    func take(minimum: Int, preferSmall: Bool = false) -> UnsafeMutablePointer<ChunkHeader> {
        outstanding += 1
        if preferSmall && minimum <= smallCapacity {
            if let chunk = freeSmall {
                freeSmall = chunk.pointee.next
                retainedSmall -= 1
                return Self.reset(chunk)
            }
            return Self.allocate(capacity: smallCapacity, pooled: true)
        }
        if minimum <= standardCapacity {
            if let chunk = free {
                free = chunk.pointee.next
                retained -= 1
                return Self.reset(chunk)
            }
            return Self.allocate(capacity: standardCapacity, pooled: true)
        }
        return Self.allocate(capacity: minimum, pooled: false)
    }

    /// Returns a chunk whose bytes were all sent (or dropped).
    func give(_ chunk: UnsafeMutablePointer<ChunkHeader>) {
        outstanding -= 1
        #if DEBUG
        // Scribble over released bytes, so a send still reading them sends garbage a test notices.
        memset(ChunkHeader.data(chunk), 0xDD, chunk.pointee.capacity)
        #endif
        guard chunk.pointee.isPooled else { return Glibc.free(chunk) }
        if chunk.pointee.capacity == standardCapacity && retained < maxRetained {
            chunk.pointee.next = free
            free = chunk
            retained += 1
        } else if chunk.pointee.capacity == smallCapacity && retainedSmall < maxRetained {
            chunk.pointee.next = freeSmall
            freeSmall = chunk
            retainedSmall += 1
        } else {
            Glibc.free(chunk)
        }
    }

    private static func reset(_ chunk: UnsafeMutablePointer<ChunkHeader>) -> UnsafeMutablePointer<ChunkHeader> {
        chunk.pointee.next = nil
        chunk.pointee.start = 0
        chunk.pointee.end = 0
        chunk.pointee.queueTail = nil
        chunk.pointee.queuedBytes = 0
        return chunk
    }

    private static func allocate(capacity: Int, pooled: Bool) -> UnsafeMutablePointer<ChunkHeader> {
        guard let raw = malloc(MemoryLayout<ChunkHeader>.stride + capacity) else {
            fatalError("out of memory allocating a \(capacity)-byte send chunk")
        }
        let chunk = raw.bindMemory(to: ChunkHeader.self, capacity: 1)
        chunk.initialize(to: ChunkHeader(next: nil, capacity: capacity, start: 0, end: 0, queueTail: nil, queuedBytes: 0,
                                         isPooled: pooled))
        return chunk
    }

    /// Frees every retained chunk: after a storm the free lists can hold `maxRetained` of each
    /// size (4.25 MiB per loop) that an idle worker has no use for.
    func releaseRetained() {
        for var list in [free, freeSmall] {
            while let chunk = list {
                list = chunk.pointee.next
                Glibc.free(chunk)
            }
        }
        free = nil
        freeSmall = nil
        retained = 0
        retainedSmall = 0
    }

    deinit {
        releaseRetained()
    }
}
