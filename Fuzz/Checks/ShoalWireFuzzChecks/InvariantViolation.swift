// What the fuzz checks share: the error a broken invariant raises (a libFuzzer target traps on it, a unit
// test records it), and the chunkings every check feeds its parser with.

/// A parser broke one of the invariants a fuzz check asserts. Not a parser error: parser errors are expected
/// outcomes; this means the parser (or the check) has a bug.
public struct InvariantViolation: Error, CustomStringConvertible {
    /// Which invariant, with the values that broke it.
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Throws an `InvariantViolation` with `message` unless `condition` holds.
@inline(__always)
public func require(
    _ condition: Bool, _ message: @autoclosure () -> String
) throws(InvariantViolation) {
    if !condition { throw InvariantViolation(message()) }
}

/// How to cut an input into the pieces successive reads deliver.
public enum Chunking {
    /// `count` bytes cut into pieces of `sizes[0]`, `sizes[1]`, ... (cycled; a size of 0 counts as 1), the last
    /// piece shorter. Returns the ranges, in order, covering `0..<count`.
    public static func ranges(count: Int, sizes: [Int]) -> [Range<Int>] {
        guard !sizes.isEmpty else { return count == 0 ? [] : [0..<count] }
        var result: [Range<Int>] = []
        var start = 0
        var index = 0
        while start < count {
            let size = max(1, sizes[index % sizes.count])
            let end = min(count, start + size)
            result.append(start..<end)
            start = end
            index += 1
        }
        return result
    }

    /// Piece sizes derived from the bytes themselves (FNV-1a seeding SplitMix64), for inputs that carry no split
    /// plan of their own: mostly 1-8 bytes so every kind of boundary is hit, sometimes up to 256.
    public static func sizesDerived(from bytes: [UInt8], count: Int = 64) -> [Int] {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        var state = hash
        return (0..<count).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return z & 3 == 0 ? 1 + Int((z >> 8) % 256) : 1 + Int((z >> 8) % 8)
        }
    }
}

/// Runs `body` with a heap copy of `bytes[range]` of exactly that size, so AddressSanitizer reports any access
/// past either end of the piece (a slice of a larger array would hide it).
public func withExactCopy<R, E: Error>(
    of bytes: [UInt8], _ range: Range<Int>, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
) throws(E) -> R {
    let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 1)
    defer { piece.deallocate() }
    if !range.isEmpty {
        bytes.withUnsafeBytes { piece.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[range])) }
    }
    return try body(piece)
}
