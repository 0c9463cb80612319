// The one growable buffer per connection that holds a message spanning several frames or reads (and a
// control frame split across reads). A class so its memory is freed with the connection; raw memory so
// the reader can hand out views that stay valid until its next call without copying. The compressors
// (Deflate/) use the same type as their output buffer, for the same reasons.

/// Owned, growable byte storage reused from message to message.
final class ReassemblyBuffer {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    /// Bytes in use, from `base`.
    var count = 0

    /// Capacity above which the buffer is dropped once empty, so idle connections stay small: a
    /// connection that once received a 60 KiB message kept 64 KiB for the rest of its life before
    /// (640 MiB for 10,000 such connections), while one malloc per larger message costs little next
    /// to copying it.
    static let retainLimit = 4 * 1024
    /// First allocation: enough for typical chat-sized messages without regrowing.
    static let initialCapacity = 1024

    init(capacity: Int) {
        self.capacity = max(capacity, Self.initialCapacity)
        base = .allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit {
        base.deallocate()
    }

    /// Makes room for `extra` more bytes, doubling so appends stay amortised O(1), but not beyond
    /// `limit` unless `extra` itself needs more (the inflater's hard cap on a message's size).
    func reserve(extra: Int, limit: Int = .max) {
        let needed = count + extra
        guard needed > capacity else { return }
        let newCapacity = max(needed, min(capacity * 2, limit))
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newBase.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(extra: bytes.count)
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    /// A view of `range`; valid until the next append or deallocation.
    func view(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }
}
