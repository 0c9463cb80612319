// Decompresses incoming permessage-deflate messages (RFC 7692 §7.2.2) under a hard cap: a few KiB of
// compressed data can expand to gigabytes, so output is produced a chunk at a time and inflation stops
// as soon as the message would exceed the limit, before any more memory is committed.

import CZlib

/// Inflates whole compressed messages; one per connection with client context takeover, or one per
/// worker shared by every connection when `noContextTakeover`.
///
/// Sharing is safe only with `noContextTakeover` (the agreement must carry client_no_context_takeover):
/// the stream is then reset before every message, whatever state a previous message, of this or another
/// connection, left it in. Messages are inflated whole, at completion, so connections never interleave
/// inside one inflation. The z_stream is created on the first compressed message; the output buffer is
/// reused and dropped after a message that made it grow beyond `ReassemblyBuffer.retainLimit` (4 KiB). Not thread-safe.
public final class MessageInflater {
    /// The largest LZ77 window the peer may use (8...15), as agreed.
    public let windowBits: Int
    /// Whether every message starts from an empty window (client_no_context_takeover).
    public let noContextTakeover: Bool
    private var zlib: ZlibStream?
    private var output: ReassemblyBuffer?
    /// The largest output buffer this inflater has held, for tests and metrics: at most the largest
    /// `maxMessageSize` passed to `inflate` plus one byte.
    public private(set) var largestOutputCapacity = 0

    /// Output produced per zlib call: small enough that the cap is checked often, large enough that a
    /// big message needs few calls.
    public static let chunkSize = 16 * 1024

    /// Creates a decompressor; nothing is allocated until the first compressed message.
    public init(windowBits: Int = 15, noContextTakeover: Bool) {
        precondition((8...15).contains(windowBits), "window bits must be 8...15")
        self.windowBits = windowBits
        self.noContextTakeover = noContextTakeover
    }

    /// Bytes this decompressor holds now: zlib's state and window, and the retained output buffer.
    public var memoryHeld: Int {
        (zlib?.allocatedBytes ?? 0) + (output?.capacity ?? 0)
    }

    /// Inflates one whole message (its payload with the 00 00 FF FF tail removed, as sent). The result
    /// is a view into this inflater's buffer, valid until the next `inflate` or `releaseLargeBuffer` on
    /// it (by any connection sharing it).
    ///
    /// Throws 1009 as soon as the output would exceed `maxMessageSize` (the buffer never grows beyond
    /// `maxMessageSize + 1` bytes), 1007 for data that is not a valid DEFLATE stream or stops inside a
    /// block, and 1011 if zlib runs out of memory.
    public func inflate(
        _ compressed: UnsafeRawBufferPointer,
        maxMessageSize: Int
    ) throws(ProtocolViolation) -> UnsafeRawBufferPointer {
        // An empty payload carries no blocks at all (a sender whose flush had nothing new to emit, e.g.
        // Python's zlib with context takeover): it is the empty message, and zlib need not see it.
        guard compressed.count > 0 else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        let stream = zlibStream().stream
        if noContextTakeover {
            inflateReset(stream)
        }
        // One byte over the cap is how an oversized message shows itself without a larger buffer.
        let limit = maxMessageSize == .max ? maxMessageSize : maxMessageSize + 1
        let buffer = outputBuffer(initialCapacity: min(ReassemblyBuffer.initialCapacity, limit))
        defer {
            // Input left unread (after an error, or padding after BFINAL) must not reach the next call.
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
            stream.pointee.next_out = nil
            stream.pointee.avail_out = 0
            largestOutputCapacity = max(largestOutputCapacity, buffer.capacity)
        }
        var ended = try feed(compressed, stream: stream, into: buffer, maxMessageSize: maxMessageSize, limit: limit)
        if !ended {
            var tail = Self.tail
            ended = try withUnsafeBytes(of: &tail) { tail throws(ProtocolViolation) in
                try feed(tail, stream: stream, into: buffer, maxMessageSize: maxMessageSize, limit: limit)
            }
        }
        if ended {
            // A block with BFINAL set ended the DEFLATE stream (RFC 7692 §7.2.3.4); what follows it in
            // the message is padding the sender's flush left. The next message starts a new stream.
            if !noContextTakeover {
                restartKeepingWindow(stream)
            }
        } else if stream.pointee.data_type & Self.atBlockBoundary == 0 {
            // The tail completes an empty stored block only when the message ended on a block boundary.
            throw ProtocolViolation(
                closeCode: CloseCode.invalidPayload, reason: "compressed message ends inside a DEFLATE block")
        }
        return buffer.view(0..<buffer.count)
    }

    /// Frees an output buffer that a large message grew beyond `ReassemblyBuffer.retainLimit`; MessageReader calls it at the
    /// next frame boundary, once the event that pointed into the buffer has been handled.
    public func releaseLargeBuffer() {
        if let output, output.capacity > ReassemblyBuffer.retainLimit {
            self.output = nil
        }
    }

    /// The tail RFC 7692 §7.2.2 appends before inflating (what the sender's sync flush ended with).
    private static let tail: (UInt8, UInt8, UInt8, UInt8) = (0x00, 0x00, 0xFF, 0xFF)
    /// data_type bit zlib sets when inflate stopped right after a block, ready for the next block header.
    private static let atBlockBoundary: Int32 = 128

    /// Runs zlib over `input`, a chunk of output at a time. Returns true if the DEFLATE stream ended.
    private func feed(
        _ input: UnsafeRawBufferPointer, stream: UnsafeMutablePointer<z_stream>, into buffer: ReassemblyBuffer,
        maxMessageSize: Int, limit: Int
    ) throws(ProtocolViolation) -> Bool {
        var next = input.baseAddress!
        var remaining = input.count
        while true {
            if stream.pointee.avail_in == 0 && remaining > 0 {
                // avail_in is 32 bits: hand a larger payload over in slices.
                let slice = min(remaining, Int(UInt32.max))
                stream.pointee.next_in = UnsafeMutablePointer(mutating: next.assumingMemoryBound(to: Bytef.self))
                stream.pointee.avail_in = UInt32(slice)
                next += slice
                remaining -= slice
            }
            // At most one chunk per call, into a buffer that doubles when full but never past the cap plus
            // one byte: however far the data would expand, the buffer cannot outgrow the limit.
            if buffer.count == buffer.capacity {
                buffer.reserve(extra: 1, limit: limit)
            }
            let room = min(Self.chunkSize, buffer.capacity - buffer.count, limit - buffer.count)
            stream.pointee.next_out = (buffer.base + buffer.count).assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = UInt32(room)
            let result = CZlib.inflate(stream, Z_SYNC_FLUSH)
            buffer.count += room - Int(stream.pointee.avail_out)
            if buffer.count > maxMessageSize {
                throw ProtocolViolation(
                    closeCode: CloseCode.messageTooBig,
                    reason: "message inflates to more than \(maxMessageSize) bytes")
            }
            switch result {
            case Z_STREAM_END:
                return true
            case Z_OK, Z_BUF_ERROR:
                // Output room left over means zlib has used all the input it was given (Z_BUF_ERROR: it
                // could make no progress, which with room to write also means the input is used up).
                if stream.pointee.avail_out > 0 && stream.pointee.avail_in == 0 && remaining == 0 {
                    return false
                }
            case Z_MEM_ERROR:
                throw ProtocolViolation(closeCode: CloseCode.internalError, reason: "out of memory inflating a message")
            default:
                // Z_DATA_ERROR (and Z_NEED_DICT, which raw inflate never asks for legitimately).
                let detail = stream.pointee.msg.map { String(cString: $0) } ?? "code \(result)"
                throw ProtocolViolation(
                    closeCode: CloseCode.invalidPayload, reason: "compressed message is corrupt: \(detail)")
            }
        }
    }

    /// After a stream ended with BFINAL under context takeover: start a new stream whose window is the
    /// old one, so the next message may still refer back into this one.
    private func restartKeepingWindow(_ stream: UnsafeMutablePointer<z_stream>) {
        var window = [UInt8](repeating: 0, count: 1 << windowBits)
        var length: UInt32 = 0
        window.withUnsafeMutableBufferPointer { bytes in
            _ = inflateGetDictionary(stream, bytes.baseAddress, &length)
            inflateReset(stream)
            _ = inflateSetDictionary(stream, bytes.baseAddress, length)
        }
    }

    private func zlibStream() -> ZlibStream {
        if let zlib {
            return zlib
        }
        let created = ZlibStream(inflateWindowBits: windowBits)
        zlib = created
        return created
    }

    private func outputBuffer(initialCapacity: Int) -> ReassemblyBuffer {
        let buffer = output ?? ReassemblyBuffer(capacity: initialCapacity)
        output = buffer
        buffer.count = 0
        return buffer
    }
}
