// Outbound bytes live in chunks taken from a per-loop pool: an idle connection holds no send
// memory at all, a busy one holds a chain of chunks until the kernel has taken the bytes.
//
// Chunk memory layout (one malloc block):
//   [ChunkHeader: next, capacity, start, end, isPooled][capacity bytes of data]
// Bytes [start, end) are queued and not yet sent; [end, capacity) is free for appends.
import Glibc

/// Header at the front of every chunk.
struct ChunkHeader {
    var next: UnsafeMutablePointer<ChunkHeader>?
    var capacity: Int
    var start: Int
    var end: Int
    var isPooled: Bool

    /// The data area that follows the header.
    static func data(_ chunk: UnsafeMutablePointer<ChunkHeader>) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(chunk) + MemoryLayout<ChunkHeader>.stride
    }
}

/// A free list of standard-size chunks. Chunks larger than the standard size (one big frame)
/// are allocated for their message and freed when sent.
final class ChunkPool {
    /// Data bytes in a standard chunk: 16 KiB, the size uWebSockets corks into.
    let standardCapacity: Int
    /// Free chunks kept for reuse beyond which released chunks are freed (bounds idle memory).
    let maxRetained: Int
    private var free: UnsafeMutablePointer<ChunkHeader>?
    private(set) var retained = 0
    private(set) var outstanding = 0

    init(standardCapacity: Int = 16 * 1024 - MemoryLayout<ChunkHeader>.stride, maxRetained: Int = 256) {
        self.standardCapacity = standardCapacity
        self.maxRetained = maxRetained
    }

    /// A chunk with room for at least `minimum` bytes.
    func take(minimum: Int) -> UnsafeMutablePointer<ChunkHeader> {
        outstanding += 1
        if minimum <= standardCapacity {
            if let chunk = free {
                free = chunk.pointee.next
                retained -= 1
                chunk.pointee.next = nil
                chunk.pointee.start = 0
                chunk.pointee.end = 0
                return chunk
            }
            return Self.allocate(capacity: standardCapacity, pooled: true)
        }
        return Self.allocate(capacity: minimum, pooled: false)
    }

    /// Returns a chunk whose bytes were all sent (or dropped).
    func give(_ chunk: UnsafeMutablePointer<ChunkHeader>) {
        outstanding -= 1
        if chunk.pointee.isPooled && retained < maxRetained {
            chunk.pointee.next = free
            free = chunk
            retained += 1
        } else {
            Glibc.free(chunk)
        }
    }

    private static func allocate(capacity: Int, pooled: Bool) -> UnsafeMutablePointer<ChunkHeader> {
        guard let raw = malloc(MemoryLayout<ChunkHeader>.stride + capacity) else {
            fatalError("out of memory allocating a \(capacity)-byte send chunk")
        }
        let chunk = raw.bindMemory(to: ChunkHeader.self, capacity: 1)
        chunk.initialize(to: ChunkHeader(next: nil, capacity: capacity, start: 0, end: 0, isPooled: pooled))
        return chunk
    }

    deinit {
        while let chunk = free {
            free = chunk.pointee.next
            Glibc.free(chunk)
        }
    }
}
