// Text messages must be valid UTF-8 (RFC 6455 §8.1) and a server should fail fast on the first bad byte,
// even mid-message, so validation is incremental and keeps its place across fragments and reads.

/// Incremental UTF-8 validation that fails on the first bad byte, also when a code point spans chunks.
///
/// Follows the well-formed byte sequences of Unicode 15 table 3-7: no overlong forms, no surrogates,
/// nothing above U+10FFFF. The state is three bytes: continuation bytes still expected and the allowed
/// range of the next one (narrower than 80...BF only right after E0, ED, F0 and F4).
public struct UTF8Validator: Sendable {
    /// Continuation bytes still expected; `failedMarker` once a bad byte was seen.
    private var pending: UInt8 = 0
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    private static let failedMarker: UInt8 = 0xFF

    /// Creates a validator at a code point boundary.
    public init() {}

    /// Whether no code point is in progress (and no bad byte was seen): a message may end here.
    public var isAtBoundary: Bool { pending == 0 }

    /// Returns to the initial state, forgetting any code point in progress or earlier failure.
    public mutating func reset() {
        self = UTF8Validator()
    }

    /// Validates the next chunk. Returns false as soon as a byte cannot continue valid UTF-8; once it
    /// has returned false it keeps returning false until `reset()`.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard pending != Self.failedMarker else { return false }
        let count = bytes.count
        guard count > 0, let base = bytes.baseAddress else { return true }
        var index = 0
        if pending == 0 {
            // Most text is ASCII: a leading run goes 32 bytes a step (two 16-byte vectors ORed, one test
            // of the high bits). Only here, at the start of a chunk: tried at every code point boundary
            // inside the loop below, it made multi-byte text slower (Benchmarks/Micro).
            while count - index >= 32 {
                let low = base.loadUnaligned(fromByteOffset: index, as: SIMD2<UInt64>.self)
                let high = base.loadUnaligned(fromByteOffset: index + 16, as: SIMD2<UInt64>.self)
                let either = low | high
                guard (either[0] | either[1]) & 0x8080_8080_8080_8080 == 0 else { break }
                index += 32
            }
        }
        while index < count {
            if pending == 0 {
                // Most text is ASCII: skip it 8 bytes at a time while no code point is open.
                while count - index >= 8,
                    base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0
                {
                    index += 8
                }
                guard index < count else { break }
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                index += 1
                if byte < 0x80 { continue }
                guard startSequence(byte) else {
                    pending = Self.failedMarker
                    return false
                }
            } else {
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                index += 1
                guard byte >= lower && byte <= upper else {
                    pending = Self.failedMarker
                    return false
                }
                pending -= 1
                lower = 0x80
                upper = 0xBF
            }
        }
        return true
    }

    /// Sets up the expectations after a lead byte; false when `byte` cannot start a sequence.
    private mutating func startSequence(_ byte: UInt8) -> Bool {
        switch byte {
        case 0xC2...0xDF: expect(1, 0x80, 0xBF)
        case 0xE0: expect(2, 0xA0, 0xBF)  // excludes overlong 3-byte forms
        case 0xE1...0xEC, 0xEE...0xEF: expect(2, 0x80, 0xBF)
        case 0xED: expect(2, 0x80, 0x9F)  // excludes surrogates D800-DFFF
        case 0xF0: expect(3, 0x90, 0xBF)  // excludes overlong 4-byte forms
        case 0xF1...0xF3: expect(3, 0x80, 0xBF)
        case 0xF4: expect(3, 0x80, 0x8F)  // nothing above U+10FFFF
        default: return false  // continuation byte without a lead, C0/C1 overlongs, F5-FF
        }
        return true
    }

    private mutating func expect(_ count: UInt8, _ low: UInt8, _ high: UInt8) {
        pending = count
        lower = low
        upper = high
    }
}
