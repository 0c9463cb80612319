// UTF-8 validation of well-known good and bad sequences, fed whole and split at every byte.

import ShoalWire
import Testing

@Suite struct UTF8ValidatorTests {
    /// Whether the validator accepts `bytes` as a complete text: fed in the given chunks, then at a boundary.
    private func accepts(_ chunks: [[UInt8]]) -> Bool {
        var validator = UTF8Validator()
        for chunk in chunks {
            guard chunk.withUnsafeBytes({ validator.feed($0) }) else { return false }
        }
        return validator.isAtBoundary
    }

    private func checkEverySplit(_ bytes: [UInt8], valid: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        let outcome = expectSameOutcomeForEverySplit(bytes, sourceLocation: sourceLocation) { accepts($0) }
        #expect(outcome == valid, "\(bytes)", sourceLocation: sourceLocation)
    }

    @Test(arguments: [
        "", "plain ASCII long enough for the word-wise path", "é", "€uro", "日本語テキスト", "🦀🦀 emoji",
        "\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}", "\u{D7FF}\u{E000}",
    ])
    func acceptsValidText(_ text: String) {
        checkEverySplit(Array(text.utf8), valid: true)
    }

    @Test(
        arguments: [
            [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],
            [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xF0, 0x80, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF],
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFE], [0xFF], [0xC2, 0x41], [0xE2, 0x82, 0x41],
            [0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0xFF],
            [0xE2, 0x82], [0xF0, 0x9F, 0xA6], [0xC2],
        ] as [[UInt8]])
    func rejectsInvalidOrTruncatedSequences(_ bytes: [UInt8]) {
        checkEverySplit(bytes, valid: false)
    }

    /// The 32-byte ASCII step against the standard library's validation: a bad or a multi-byte sequence
    /// at every position of ASCII text up to 100 bytes long, so across every 8-, 16- and 32-byte
    /// boundary, fed whole and in two pieces split at every offset.
    @Test(arguments: [
        [0xFF], [0x80], [0xC0, 0x80], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x41],
        [0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0xA6, 0x80],
    ] as [[UInt8]])
    func agreesWithTheStandardLibraryAtEveryPositionInASCII(_ sequence: [UInt8]) {
        for length in [31, 32, 33, 47, 63, 64, 65, 100] {
            for position in 0...length {
                let ascii = (0..<length).map { UInt8(0x20 + $0 % 95) }
                let bytes = Array(ascii[..<position]) + sequence + Array(ascii[position...])
                let expected = String(validating: bytes, as: UTF8.self) != nil
                #expect(accepts([bytes]) == expected, "\(sequence) at \(position) of \(length)")
                for split in stride(from: 0, through: bytes.count, by: 7) {
                    #expect(accepts([Array(bytes[..<split]), Array(bytes[split...])]) == expected)
                }
            }
        }
    }

    @Test func reportsABoundaryOnlyBetweenCodePoints() {
        var validator = UTF8Validator()
        #expect(validator.isAtBoundary)
        #expect(([0xE2, 0x82] as [UInt8]).withUnsafeBytes { validator.feed($0) })
        #expect(!validator.isAtBoundary)
        #expect(([0xAC] as [UInt8]).withUnsafeBytes { validator.feed($0) })
        #expect(validator.isAtBoundary)
    }

    @Test func keepsFailingAfterABadByteUntilReset() {
        var validator = UTF8Validator()
        #expect(!([0xFF] as [UInt8]).withUnsafeBytes { validator.feed($0) })
        #expect(!([0x41] as [UInt8]).withUnsafeBytes { validator.feed($0) })
        #expect(!validator.isAtBoundary)
        validator.reset()
        #expect(([0x41] as [UInt8]).withUnsafeBytes { validator.feed($0) })
        #expect(validator.isAtBoundary)
    }
}
