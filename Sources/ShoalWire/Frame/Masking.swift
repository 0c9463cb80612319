// Client-to-server payloads are XOR-masked (RFC 6455 §5.3); unmasking touches every inbound byte, so it
// works a word at a time like uWebSockets instead of byte by byte.

/// XOR masking of frame payloads.
public enum Masking {
    /// XORs `buffer` with the 4-byte key (network order bytes of maskKey as they appear on the wire),
    /// starting at key index `keyOffset % 4`; word-wise (8 bytes at a time). Returns the key offset for
    /// the byte after the buffer.
    ///
    /// Masking is its own inverse, so the same call masks and unmasks. `keyOffset` lets a payload split
    /// across reads be unmasked chunk by chunk.
    @discardableResult
    public static func apply(maskKey: UInt32, keyOffset: Int, to buffer: UnsafeMutableRawBufferPointer) -> Int {
        let start = keyOffset & 3
        let count = buffer.count
        guard count > 0, let base = buffer.baseAddress else { return start }
        // Rotate so the key byte for buffer[0] is the most significant one; `.bigEndian` then lays the
        // four bytes out in memory in wire order on any host, and both halves of the word are equal, so
        // the 64-bit pattern is endian-independent too.
        let rotated = start == 0 ? maskKey : (maskKey << (8 * UInt32(start))) | (maskKey >> (32 - 8 * UInt32(start)))
        let memoryOrder = rotated.bigEndian
        let word = UInt64(memoryOrder) | (UInt64(memoryOrder) << 32)
        var index = 0
        // Unaligned loads and stores: the payload starts wherever the header ended.
        while count - index >= 8 {
            let value = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            base.storeBytes(of: value ^ word, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        // A multiple of 8 bytes keeps the key phase, so the tail starts at key byte `start` again.
        var keyIndex = start
        while index < count {
            let keyByte = UInt8(truncatingIfNeeded: maskKey >> (24 - 8 * UInt32(keyIndex)))
            base.storeBytes(
                of: base.load(fromByteOffset: index, as: UInt8.self) ^ keyByte, toByteOffset: index, as: UInt8.self)
            index += 1
            keyIndex = (keyIndex + 1) & 3
        }
        return (start + count) & 3
    }
}
