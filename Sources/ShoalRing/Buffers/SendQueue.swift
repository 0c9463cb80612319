// A connection's queue of bytes waiting for the kernel: a chain of pool chunks. Appends within a
// loop turn land in the same chunk, so many small frames leave in one send.

/// Per-socket outbound queue. Only the loop thread touches it.
///
/// While a send is in flight the kernel reads [head.start, inFlightEnd) of the head chunk; appends
/// only ever write past `end`, so they never touch bytes the kernel is reading.
///
/// The queue itself is one pointer (an idle socket's slot stays small); its tail and byte count
/// are kept in the head chunk's header, and move to the next chunk when the head is done.
struct SendQueue {
    private(set) var head: UnsafeMutablePointer<ChunkHeader>?

    /// Bytes queued and not yet confirmed sent.
    var queuedBytes: Int { head?.pointee.queuedBytes ?? 0 }

    var isEmpty: Bool { queuedBytes == 0 }

    /// Reserves `count` contiguous bytes at the end of the queue, lets `body` fill them, and queues them.
    @discardableResult
    mutating func append<R>(count: Int, pool: ChunkPool, _ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
        let chunk: UnsafeMutablePointer<ChunkHeader>
        if let first = head {
            let last = first.pointee.queueTail!
            if last.pointee.capacity - last.pointee.end >= count {
                chunk = last
            } else {
                chunk = pool.take(minimum: count)
                last.pointee.next = chunk
                first.pointee.queueTail = chunk
            }
        } else {
            chunk = pool.take(minimum: count, preferSmall: true)
            chunk.pointee.queueTail = chunk
            head = chunk
        }
        let region = UnsafeMutableRawBufferPointer(start: ChunkHeader.data(chunk) + chunk.pointee.end, count: count)
        let result = body(region)
        chunk.pointee.end += count
        head!.pointee.queuedBytes += count
        return result
    }

    /// Queues a copy of `bytes`, split over chunks as needed.
    mutating func append(_ bytes: UnsafeRawBufferPointer, pool: ChunkPool) {
        var offset = 0
        while offset < bytes.count {
            let room = head.map { $0.pointee.queueTail!.pointee.capacity - $0.pointee.queueTail!.pointee.end } ?? 0
            let piece = room > 0 ? min(room, bytes.count - offset) : min(pool.standardCapacity, bytes.count - offset)
            append(count: piece, pool: pool) { region in
                region.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + piece)]))
            }
            offset += piece
        }
    }

    /// The bytes to hand to the kernel next: the unsent part of the head chunk.
    var nextSendable: UnsafeRawBufferPointer? {
        guard let chunk = head, chunk.pointee.end > chunk.pointee.start else { return nil }
        return UnsafeRawBufferPointer(start: ChunkHeader.data(chunk) + chunk.pointee.start,
                                      count: chunk.pointee.end - chunk.pointee.start)
    }

    /// Records that the kernel took `count` bytes from the head; frees chunks that are done.
    mutating func consume(_ count: Int, pool: ChunkPool) {
        guard let chunk = head else { return }
        chunk.pointee.start += count
        chunk.pointee.queuedBytes -= count
        if chunk.pointee.start == chunk.pointee.end {
            // A drained chunk goes back to the pool even when it is the tail: idle sockets hold nothing.
            head = chunk.pointee.next
            if let next = head {
                next.pointee.queueTail = chunk.pointee.queueTail
                next.pointee.queuedBytes = chunk.pointee.queuedBytes
            }
            pool.give(chunk)
        }
    }

    /// Drops everything queued except the head chunk, which an in-flight send is still reading:
    /// the kernel owns those bytes until the send's completion (then `discardAll`).
    mutating func discardAllButHead(pool: ChunkPool) {
        guard let first = head else { return }
        while let chunk = first.pointee.next {
            first.pointee.next = chunk.pointee.next
            pool.give(chunk)
        }
        first.pointee.queueTail = first
        first.pointee.queuedBytes = first.pointee.end - first.pointee.start
    }

    /// Hands every queued byte to `body`, chunk by chunk in order, then empties the queue (a
    /// transform's plaintext queue, sealed at flush; no send ever reads it).
    mutating func drainAll(pool: ChunkPool, _ body: (UnsafeRawBufferPointer) -> Void) {
        var chunk = head
        while let current = chunk {
            if current.pointee.end > current.pointee.start {
                body(UnsafeRawBufferPointer(start: ChunkHeader.data(current) + current.pointee.start,
                                            count: current.pointee.end - current.pointee.start))
            }
            chunk = current.pointee.next
        }
        discardAll(pool: pool)
    }

    /// Drops everything queued (the socket is gone and no send is in flight).
    mutating func discardAll(pool: ChunkPool) {
        while let chunk = head {
            head = chunk.pointee.next
            pool.give(chunk)
        }
    }
}
