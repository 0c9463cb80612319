// Compresses outgoing messages for permessage-deflate (RFC 7692 §7.2.1): each message is deflated and
// sync-flushed on its own, and the flush's trailing empty stored block (00 00 FF FF) is cut off
// because the receiver puts it back.

import CZlib

/// Compresses whole messages; one per connection with context takeover, or one per worker shared by
/// every connection when `noContextTakeover` (each message then starts from an empty window).
///
/// The z_stream is created on the first non-empty message, so a connection that negotiated
/// compression but never sends pays nothing. The output buffer is reused from message to message and
/// dropped after a message that made it grow beyond `ReassemblyBuffer.retainLimit` (4 KiB). Not thread-safe: use it from one loop.
public final class MessageDeflater {
    /// The LZ77 window announced for this direction (8...15).
    public let windowBits: Int
    /// zlib's memLevel (1...9): the size of its hash table, 2^(memoryLevel + 9) bytes of it.
    public let memoryLevel: Int
    /// Whether every message starts from an empty window (server_no_context_takeover).
    public let noContextTakeover: Bool
    private let compressionLevel: Int32
    private var zlib: ZlibStream?
    private var output: ReassemblyBuffer?

    /// Creates a compressor; nothing is allocated until the first message.
    ///
    /// `windowBits` 8 is compressed with zlib's 9 (zlib refuses 8 for raw deflate): zlib never emits a
    /// match further back than its window minus 262 bytes, 250 for a 512-byte window, so the output
    /// still decodes with a 256-byte window and announcing 8 stays true. `compressionLevel` is zlib's
    /// 0...9; 6 is zlib's own default, a good ratio for the CPU it costs.
    public init(windowBits: Int = 15, memoryLevel: Int = 8, noContextTakeover: Bool, compressionLevel: Int = 6) {
        precondition((8...15).contains(windowBits), "window bits must be 8...15")
        precondition((1...9).contains(memoryLevel), "memory level must be 1...9")
        precondition((0...9).contains(compressionLevel), "compression level must be 0...9")
        self.windowBits = windowBits
        self.memoryLevel = memoryLevel
        self.noContextTakeover = noContextTakeover
        self.compressionLevel = Int32(compressionLevel)
    }

    /// Bytes this compressor holds now: zlib's state (window, hash chains, pending buffer) and the
    /// retained output buffer.
    public var memoryHeld: Int {
        (zlib?.allocatedBytes ?? 0) + (output?.capacity ?? 0)
    }

    /// Compresses one whole message and passes the compressed payload to `body`; the view is valid only
    /// inside `body`. Send it with RSV1 set on the message's first frame (FrameWriter `rsv1: true`).
    ///
    /// With context takeover the message is in the window once this returns, sent or not: a connection
    /// that does not send it (body threw, send failed) no longer matches its peer and must be closed.
    ///
    /// An empty message compresses to the single byte 00 (an empty stored block, which leaves the
    /// window as it was) without touching zlib: zlib would emit nothing for a flush with no new input.
    public func withCompressed<Result, Failure: Error>(
        _ payload: UnsafeRawBufferPointer,
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        guard payload.count > 0 else {
            var emptyStoredBlock: UInt8 = 0
            return try withUnsafeBytes(of: &emptyStoredBlock) { bytes throws(Failure) in try body(bytes) }
        }
        let stream = zlibStream().stream
        let buffer = outputBuffer(reserving: Int(deflateBound(stream, UInt(payload.count))) + Self.flushSlack)
        deflateSyncFlushed(payload, stream: stream, into: buffer)
        // A sync flush ends with an empty stored block: 00 00 FF FF after the block header's bits.
        precondition(buffer.count > Self.tail.count, "deflate produced no sync-flush tail")
        let cut = buffer.count - Self.tail.count
        defer { finishMessage(stream) }
        return try body(buffer.view(0..<cut))
    }

    /// Compresses one whole message into a new array (convenient for tests and cold paths; the send
    /// path uses `withCompressed` and copies nothing).
    public func compress(_ payload: UnsafeRawBufferPointer) -> [UInt8] {
        withCompressed(payload) { Array($0) }
    }

    /// The four bytes a sync flush ends with; RFC 7692 §7.2.1 removes them, §7.2.2 appends them again.
    static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
    /// deflateBound covers Z_FINISH; a sync flush adds at most an empty stored block (5 bytes) and the
    /// pending bits of the last block, so 16 bytes spare avoid a regrow in practice.
    private static let flushSlack = 16

    private func deflateSyncFlushed(
        _ payload: UnsafeRawBufferPointer, stream: UnsafeMutablePointer<z_stream>, into buffer: ReassemblyBuffer
    ) {
        var input = payload.baseAddress!
        var remaining = payload.count
        repeat {
            // avail_in is 32 bits: feed a larger payload in slices, flushing only after the last one.
            let slice = min(remaining, Int(UInt32.max))
            stream.pointee.next_in = UnsafeMutablePointer(mutating: input.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = UInt32(slice)
            input += slice
            remaining -= slice
            let flush = remaining == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH
            // zlib stops when the input is used up or the output is full; with a sync flush, output
            // left over means the flush is complete.
            repeat {
                buffer.reserve(extra: Self.flushSlack)
                let room = min(buffer.capacity - buffer.count, Int(UInt32.max))
                stream.pointee.next_out = (buffer.base + buffer.count).assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = UInt32(room)
                let result = CZlib.deflate(stream, flush)
                // Z_BUF_ERROR only says no progress was possible; anything else is a misuse of zlib.
                precondition(result == Z_OK || result == Z_BUF_ERROR, "deflate failed: \(result)")
                buffer.count += room - Int(stream.pointee.avail_out)
            } while stream.pointee.avail_out == 0
        } while remaining > 0
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
    }

    /// After a message: forget the window if no context takeover, and free a buffer a large message grew.
    private func finishMessage(_ stream: UnsafeMutablePointer<z_stream>) {
        if noContextTakeover {
            deflateReset(stream)
        }
        if let output, output.capacity > ReassemblyBuffer.retainLimit {
            self.output = nil
        }
    }

    private func zlibStream() -> ZlibStream {
        if let zlib {
            return zlib
        }
        // zlib refuses 8 for raw deflate; 9 keeps matches within 250 bytes (see init).
        let created = ZlibStream(
            deflateLevel: compressionLevel, windowBits: max(windowBits, 9), memoryLevel: memoryLevel)
        zlib = created
        return created
    }

    private func outputBuffer(reserving capacity: Int) -> ReassemblyBuffer {
        let buffer = output ?? ReassemblyBuffer(capacity: capacity)
        output = buffer
        buffer.count = 0
        buffer.reserve(extra: capacity)
        return buffer
    }
}
