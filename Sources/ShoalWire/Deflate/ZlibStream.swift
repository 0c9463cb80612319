// One zlib stream at a fixed heap address (zlib keeps pointers into its z_stream, so Swift must not
// move it) with its allocations routed through counting callbacks: the compressors can then report
// what they really hold, whatever the zlib version's internal sizes are.

import CZlib

/// Owns a raw-deflate or raw-inflate `z_stream`; `deinit` ends it.
///
/// Raw means negative windowBits: permessage-deflate carries bare DEFLATE blocks, without the zlib
/// header and Adler-32 trailer (RFC 7692 §7.2.1).
final class ZlibStream {
    enum Direction {
        case deflate, inflate
    }

    let stream: UnsafeMutablePointer<z_stream>
    let direction: Direction
    /// Bytes zlib holds through `zalloc`, our 16-byte size prefix per block included; the callbacks
    /// reach it through `opaque` (a plain counter, so they never touch this object while it deinits).
    private let allocated: UnsafeMutablePointer<Int>

    /// Bytes zlib currently holds for this stream.
    var allocatedBytes: Int { allocated.pointee }

    /// Each block zalloc hands out is preceded by its size, because zfree is not told the size.
    fileprivate static let prefix = 16

    /// Starts a raw deflate stream. `windowBits` 9...15: zlib refuses 8 for raw deflate.
    init(deflateLevel level: Int32, windowBits: Int, memoryLevel: Int) {
        precondition((9...15).contains(windowBits), "raw deflate window bits must be 9...15")
        precondition((1...9).contains(memoryLevel), "memory level must be 1...9")
        direction = .deflate
        (stream, allocated) = Self.makeStream()
        let result = shoal_deflateInit2(stream, level, Int32(-windowBits), Int32(memoryLevel))
        // Only Z_MEM_ERROR is possible with valid arguments, and Swift treats running out of memory as fatal too.
        precondition(result == Z_OK, "deflateInit2 failed: \(result)")
    }

    /// Starts a raw inflate stream accepting windows up to `windowBits` (8...15).
    init(inflateWindowBits windowBits: Int) {
        precondition((8...15).contains(windowBits), "raw inflate window bits must be 8...15")
        direction = .inflate
        (stream, allocated) = Self.makeStream()
        let result = shoal_inflateInit2(stream, Int32(-windowBits))
        precondition(result == Z_OK, "inflateInit2 failed: \(result)")
    }

    deinit {
        switch direction {
        case .deflate: deflateEnd(stream)
        case .inflate: inflateEnd(stream)
        }
        assert(allocatedBytes == 0, "zlib kept \(allocatedBytes) bytes after its end call")
        stream.deinitialize(count: 1)
        stream.deallocate()
        allocated.deallocate()
    }

    private static func makeStream() -> (UnsafeMutablePointer<z_stream>, UnsafeMutablePointer<Int>) {
        let allocated = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        allocated.initialize(to: 0)
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        stream.pointee.zalloc = countingAlloc
        stream.pointee.zfree = countingFree
        stream.pointee.opaque = UnsafeMutableRawPointer(allocated)
        return (stream, allocated)
    }
}

/// zalloc: `items * size` bytes behind a size prefix, counted in the Int that `opaque` points to.
private func countingAlloc(_ opaque: UnsafeMutableRawPointer?, _ items: UInt32, _ size: UInt32) -> UnsafeMutableRawPointer? {
    let (bytes, overflow) = Int(items).multipliedReportingOverflow(by: Int(size))
    guard !overflow, let opaque else { return nil }
    let total = bytes + ZlibStream.prefix
    let block = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: ZlibStream.prefix)
    block.storeBytes(of: total, as: Int.self)
    opaque.assumingMemoryBound(to: Int.self).pointee += total
    return block + ZlibStream.prefix
}

/// zfree: the inverse of countingAlloc.
private func countingFree(_ opaque: UnsafeMutableRawPointer?, _ address: UnsafeMutableRawPointer?) {
    guard let opaque, let address else { return }
    let block = address - ZlibStream.prefix
    opaque.assumingMemoryBound(to: Int.self).pointee -= block.load(as: Int.self)
    block.deallocate()
}
