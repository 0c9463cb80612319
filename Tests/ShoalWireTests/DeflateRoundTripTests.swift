// MessageDeflater and MessageInflater on their own: RFC 7692 §7.2.3's byte vectors, round trips over
// every window size, context takeover, the hard output cap against a zip bomb, corrupt input, and what
// the compressors hold in memory.

import ShoalTestSupport
import ShoalWire
import Testing

/// Compresses `payload` with `deflater` into an array.
func compressed(_ payload: [UInt8], with deflater: MessageDeflater) -> [UInt8] {
    payload.withUnsafeBytes { deflater.compress($0) }
}

/// Inflates `payload` with `inflater` and copies the result out.
func inflated(
    _ payload: [UInt8], with inflater: MessageInflater, maxMessageSize: Int = Limits.defaultMaxMessageSize
) -> Result<[UInt8], ProtocolViolation> {
    payload.withUnsafeBytes { bytes in
        do throws(ProtocolViolation) {
            return .success(Array(try inflater.inflate(bytes, maxMessageSize: maxMessageSize)))
        } catch {
            return .failure(error)
        }
    }
}

/// Text that compresses like real JSON: repeated keys, varying values.
func jsonLikeText(records: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    var text = "["
    for index in 0..<records {
        let value = Int.random(in: 0..<1_000_000, using: &rng)
        text += #"{"id":\#(index),"user":"user\#(value % 977)","score":\#(value),"active":\#(value % 2 == 0)},"#
    }
    text += "{}]"
    return Array(text.utf8)
}

/// Bytes zlib cannot shrink.
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

let hello = Array("Hello".utf8)

@Suite struct DeflateRFCVectors {
    /// §7.2.3.1: "Hello" compressed on its own is f2 48 cd c9 c9 07 00.
    @Test func compressesAndInflatesTheHelloExample() {
        let deflater = MessageDeflater(noContextTakeover: true)
        #expect(compressed(hello, with: deflater) == [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        let inflater = MessageInflater(noContextTakeover: true)
        #expect(inflated([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], with: inflater) == .success(hello))
    }

    /// §7.2.3.2: with context takeover the second "Hello" is a back reference, f2 00 11 00 00.
    @Test func compressesTheSecondHelloAsABackReferenceWithContextTakeover() {
        let deflater = MessageDeflater(noContextTakeover: false)
        #expect(compressed(hello, with: deflater) == [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        #expect(compressed(hello, with: deflater) == [0xf2, 0x00, 0x11, 0x00, 0x00])
        let inflater = MessageInflater(noContextTakeover: false)
        #expect(inflated([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], with: inflater) == .success(hello))
        #expect(inflated([0xf2, 0x00, 0x11, 0x00, 0x00], with: inflater) == .success(hello))
    }

    @Test func rejectsABackReferenceWithoutContextTakeoverWith1007() {
        let inflater = MessageInflater(noContextTakeover: true)
        _ = inflated([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], with: inflater)
        #expect(inflated([0xf2, 0x00, 0x11, 0x00, 0x00], with: inflater).failure?.closeCode == 1007)
    }

    /// §7.2.3.3: a stored (uncompressed) block.
    @Test func inflatesAStoredBlock() {
        let stored: [UInt8] = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]
        #expect(inflated(stored, with: MessageInflater(noContextTakeover: true)) == .success(hello))
    }

    /// §7.2.3.4: a block with BFINAL set, followed by the padding of the sender's empty stored block;
    /// with context takeover the next message may still refer back into it.
    @Test func inflatesABlockWithBFINALAndKeepsItsWindow() {
        let final: [UInt8] = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]
        #expect(inflated(final, with: MessageInflater(noContextTakeover: true)) == .success(hello))
        let inflater = MessageInflater(noContextTakeover: false)
        #expect(inflated(final, with: inflater) == .success(hello))
        #expect(inflated([0xf2, 0x00, 0x11, 0x00, 0x00], with: inflater) == .success(hello))
    }

    /// §7.2.3.5: two DEFLATE blocks in one message.
    @Test func inflatesTwoBlocksInOneMessage() {
        let twoBlocks: [UInt8] = [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00]
        #expect(inflated(twoBlocks, with: MessageInflater(noContextTakeover: true)) == .success(hello))
    }

    @Test func compressesAnEmptyMessageToOneByteAndInflatesItBack() {
        let deflater = MessageDeflater(noContextTakeover: false)
        #expect(compressed([], with: deflater) == [0x00])
        #expect(deflater.memoryHeld == 0, "an empty message needs no zlib stream")
        let inflater = MessageInflater(noContextTakeover: false)
        #expect(inflated([0x00], with: inflater) == .success([]))
        // A sender whose flush had nothing to emit sends no bytes at all; that is the empty message too.
        #expect(inflated([], with: inflater) == .success([]))
        // Neither disturbs the window.
        #expect(inflated(compressed(hello, with: deflater), with: inflater) == .success(hello))
        #expect(inflated(compressed([], with: deflater), with: inflater) == .success([]))
        #expect(inflated(compressed(hello, with: deflater), with: inflater) == .success(hello))
    }
}

@Suite struct DeflateRoundTrips {
    @Test(arguments: [8, 9, 10, 12, 15])
    func roundTripsEveryKindOfPayloadAtEveryWindowSize(_ windowBits: Int) {
        for takeover in [false, true] {
            let deflater = MessageDeflater(windowBits: windowBits, memoryLevel: 4, noContextTakeover: !takeover)
            let inflater = MessageInflater(windowBits: windowBits, noContextTakeover: !takeover)
            let payloads = [
                [], hello, [0x00], jsonLikeText(records: 2_000, seed: 1), randomBytes(70_000, seed: 2),
                [UInt8](repeating: 0x61, count: 300_000), jsonLikeText(records: 50, seed: 3), hello,
            ]
            for payload in payloads {
                let result = inflated(compressed(payload, with: deflater), with: inflater)
                #expect(result == .success(payload), "window \(windowBits), takeover \(takeover), \(payload.count) B")
            }
        }
    }

    @Test func compressesRepeatedMessagesBetterWithContextTakeover() {
        let message = jsonLikeText(records: 5, seed: 9)
        let forgetting = MessageDeflater(noContextTakeover: true)
        let remembering = MessageDeflater(noContextTakeover: false)
        let first = compressed(message, with: remembering).count
        #expect(compressed(message, with: forgetting).count == first)
        #expect(compressed(message, with: forgetting).count == first, "each message starts from an empty window")
        #expect(compressed(message, with: remembering).count < first / 4, "the whole message is one back reference")
    }

    @Test func compressesJSONLikeTextSeveralFold() {
        let text = jsonLikeText(records: 1_000, seed: 4)
        let size = compressed(text, with: MessageDeflater(noContextTakeover: true)).count
        #expect(size * 3 < text.count, "\(text.count) B -> \(size) B")
    }

    /// Ratios for the docs: one large JSON-like message, and a stream of small chat-like messages with and
    /// without context takeover (what the shared mode gives up).
    @Test func reportsCompressionRatios() {
        let large = jsonLikeText(records: 2_000, seed: 21)
        let largeSize = compressed(large, with: MessageDeflater(noContextTakeover: true)).count
        let chat = (0..<200).map { jsonLikeText(records: 1, seed: 100 + UInt64($0)) }
        let chatSize = chat.reduce(0) { $0 + $1.count }
        let forgetting = MessageDeflater(noContextTakeover: true)
        let remembering = MessageDeflater(noContextTakeover: false)
        let sharedSize = chat.reduce(0) { $0 + compressed($1, with: forgetting).count }
        let takeoverSize = chat.reduce(0) { $0 + compressed($1, with: remembering).count }
        #expect(takeoverSize < sharedSize)
        print(
            "ratio: \(large.count) B JSON -> \(largeSize) B; 200 chat messages \(chatSize) B -> \(sharedSize) B "
                + "without context takeover, \(takeoverSize) B with")
    }

    @Test func withCompressedHandsOutAViewAndPassesErrorsThrough() {
        struct Stop: Error {}
        let deflater = MessageDeflater(noContextTakeover: true)
        let count = hello.withUnsafeBytes { deflater.withCompressed($0) { $0.count } }
        #expect(count == 7)
        let threw = hello.withUnsafeBytes { bytes -> Bool in
            do {
                try deflater.withCompressed(bytes) { _ in throw Stop() }
                return false
            } catch {
                return error is Stop
            }
        }
        #expect(threw)
        // The stream was still reset for the next message after a body that threw.
        #expect(compressed(hello, with: deflater) == [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
    }
}

@Suite struct InflateLimits {
    /// A zip bomb: 16 MiB of zeros is about 16 KiB compressed. With a 1 MiB cap the inflater stops at the
    /// first byte over the cap and never holds more than the cap plus one chunk.
    @Test func stopsAZipBombAtTheCap() {
        let bomb = compressed([UInt8](repeating: 0, count: 16 << 20), with: MessageDeflater(noContextTakeover: true))
        #expect(bomb.count < 20 * 1024)
        let inflater = MessageInflater(noContextTakeover: true)
        let cap = 1 << 20
        let result = inflated(bomb, with: inflater, maxMessageSize: cap)
        #expect(result.failure?.closeCode == 1009)
        #expect(inflater.largestOutputCapacity <= cap + MessageInflater.chunkSize)
        #expect(inflater.largestOutputCapacity <= cap + 1)
        // It recovers for the next message (no context takeover) and frees the large buffer when told to.
        inflater.releaseLargeBuffer()
        #expect(inflater.memoryHeld < 64 * 1024)
        #expect(inflated(compressed(hello, with: MessageDeflater(noContextTakeover: true)), with: inflater) == .success(hello))
    }

    @Test func acceptsAMessageExactlyAtTheCap() {
        let payload = jsonLikeText(records: 300, seed: 5)
        let bytes = compressed(payload, with: MessageDeflater(noContextTakeover: true))
        let inflater = MessageInflater(noContextTakeover: true)
        #expect(inflated(bytes, with: inflater, maxMessageSize: payload.count) == .success(payload))
        #expect(inflated(bytes, with: inflater, maxMessageSize: payload.count - 1).failure?.closeCode == 1009)
    }

    @Test func rejectsCorruptDataWith1007() {
        let inflater = MessageInflater(noContextTakeover: true)
        // BTYPE 11 is reserved.
        #expect(inflated([0xff, 0xff, 0xff], with: inflater).failure?.closeCode == 1007)
        // A stored block whose length and its complement disagree.
        #expect(inflated([0x00, 0x05, 0x00, 0x00, 0x00, 0x48], with: inflater).failure?.closeCode == 1007)
        // A message cut inside a block: the tail cannot complete it.
        #expect(inflated([0xf2, 0x48, 0xcd], with: inflater).failure?.closeCode == 1007)
        // Flipped bits somewhere in a real stream.
        var damaged = compressed(jsonLikeText(records: 200, seed: 6), with: MessageDeflater(noContextTakeover: true))
        damaged[damaged.count / 2] ^= 0x5a
        damaged[damaged.count / 3] ^= 0xa5
        let outcome = inflated(damaged, with: inflater)
        #expect(outcome.failure?.closeCode == 1007 || outcome != .success(jsonLikeText(records: 200, seed: 6)))
        // A shared (forgetting) inflater is usable again after a failure.
        #expect(inflated([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], with: inflater) == .success(hello))
    }
}

@Suite struct DeflateMemory {
    @Test func allocatesNothingBeforeTheFirstMessage() {
        #expect(MessageDeflater(noContextTakeover: false).memoryHeld == 0)
        #expect(MessageInflater(noContextTakeover: false).memoryHeld == 0)
    }

    /// What one z_stream holds after a small message; the figures go to the log for docs.
    @Test(arguments: [(15, 8), (10, 4), (9, 1)])
    func reportsWhatAStreamHolds(_ windowBits: Int, _ memoryLevel: Int) {
        let deflater = MessageDeflater(windowBits: windowBits, memoryLevel: memoryLevel, noContextTakeover: false)
        let inflater = MessageInflater(windowBits: windowBits, noContextTakeover: false)
        _ = inflated(compressed(hello, with: deflater), with: inflater)
        // zlib's documented formulas: deflate (1 << (windowBits + 2)) + (1 << (memLevel + 9)) plus its
        // state; inflate 1 << windowBits plus about 7 KiB of state. The output buffers start at 1 KiB.
        let deflateFormula = (1 << (max(windowBits, 9) + 2)) + (1 << (memoryLevel + 9))
        #expect(deflater.memoryHeld >= deflateFormula)
        #expect(deflater.memoryHeld <= deflateFormula + 16 * 1024)
        #expect(inflater.memoryHeld >= 1 << windowBits)
        #expect(inflater.memoryHeld <= (1 << windowBits) + 12 * 1024 + MessageInflater.chunkSize)
        print("deflate window \(windowBits) memLevel \(memoryLevel): \(deflater.memoryHeld) B; inflate: \(inflater.memoryHeld) B")
    }

    @Test func dropsLargeOutputBuffersAfterTheMessage() {
        let deflater = MessageDeflater(noContextTakeover: true)
        let small = compressed(hello, with: deflater).count
        _ = compressed(randomBytes(1 << 20, seed: 7), with: deflater)
        #expect(deflater.memoryHeld < 512 * 1024, "the 1 MiB output buffer is gone after the message")
        #expect(compressed(hello, with: deflater).count == small)
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
