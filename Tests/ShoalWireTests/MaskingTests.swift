// Word-wise masking against a byte-by-byte reference, at every key offset, length and alignment.

import ShoalWire
import Testing

@Suite struct MaskingTests {
    /// The RFC's definition: octet i is XORed with key octet (i mod 4).
    private func naive(_ bytes: [UInt8], key: UInt32, keyOffset: Int) -> [UInt8] {
        let keyBytes = [UInt8(key >> 24), UInt8((key >> 16) & 0xFF), UInt8((key >> 8) & 0xFF), UInt8(key & 0xFF)]
        return bytes.enumerated().map { $0.element ^ keyBytes[($0.offset + keyOffset) % 4] }
    }

    /// Masks `length` bytes at `alignment` bytes into a buffer and checks them, the returned key
    /// offset, and that the bytes around the buffer are untouched.
    private func checkAgainstNaive(key: UInt32, keyOffset: Int, length: Int, alignment: Int, pattern: UInt8,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* Int(pattern) &+ 11) }
        var storage = [UInt8](repeating: 0xEE, count: alignment) + payload + [0xEE]
        let next = storage.withUnsafeMutableBytes { raw in
            Masking.apply(
                maskKey: key, keyOffset: keyOffset,
                to: UnsafeMutableRawBufferPointer(rebasing: raw[alignment..<(alignment + length)]))
        }
        #expect(Array(storage[alignment..<(alignment + length)]) == naive(payload, key: key, keyOffset: keyOffset),
                sourceLocation: sourceLocation)
        #expect(next == (keyOffset + length) % 4, sourceLocation: sourceLocation)
        #expect(storage.prefix(alignment).allSatisfy { $0 == 0xEE } && storage.last == 0xEE, sourceLocation: sourceLocation)
    }

    @Test func matchesTheNaiveReferenceAtEveryKeyOffsetLengthAndAlignment() {
        for keyOffset in 0..<8 {
            for length in 0...70 {
                for alignment in 0..<8 {
                    checkAgainstNaive(key: 0x37fa_213d, keyOffset: keyOffset, length: length, alignment: alignment, pattern: 37)
                }
            }
        }
    }

    /// The 32-byte vector steps, then the 8-, 4- and 1-byte tails: every length through several
    /// vector steps, every key phase and alignment, keys whose four bytes all differ (a lane mixed up
    /// with another would show).
    @Test(arguments: [0x37fa_213d, 0x0102_0304, 0xFF00_A55A] as [UInt32])
    func vectorStepsMatchTheNaiveReferenceThroughEveryTailLength(_ key: UInt32) {
        for keyOffset in 0..<4 {
            for length in 0...200 {
                for alignment in [0, 1, 3, 7] {
                    checkAgainstNaive(key: key, keyOffset: keyOffset, length: length, alignment: alignment, pattern: 131)
                }
            }
        }
    }

    @Test func unmasksAPayloadInChunksWithTheReturnedOffset() {
        let key: UInt32 = 0xDEAD_BEEF
        let payload = (0..<53).map { UInt8($0) }
        var masked = naive(payload, key: key, keyOffset: 0)
        masked.withUnsafeMutableBytes { raw in
            var offset = 0
            for range in [0..<3, 3..<4, 4..<21, 21..<53] {
                offset = Masking.apply(
                    maskKey: key, keyOffset: offset, to: UnsafeMutableRawBufferPointer(rebasing: raw[range]))
            }
        }
        #expect(masked == payload)
    }

    @Test func usesTheRFCExampleKeyInWireOrder() {
        var hello = Array("Hello".utf8)
        hello.withUnsafeMutableBytes { _ = Masking.apply(maskKey: 0x37fa_213d, keyOffset: 0, to: $0) }
        #expect(hello == [0x7f, 0x9f, 0x4d, 0x51, 0x58])
    }
}
