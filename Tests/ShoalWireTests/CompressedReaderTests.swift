// MessageReader with permessage-deflate negotiated: compressed messages under every chunking, where RSV1
// may appear, the limits on compressed and inflated bytes, and an inflater shared by two readers.

import ShoalWire
import Testing

/// A fresh inflater per chunking: context takeover unless `forgetting`.
private func inflaterFactory(forgetting: Bool = false, windowBits: Int = 15) -> () -> MessageInflater {
    { MessageInflater(windowBits: windowBits, noContextTakeover: forgetting) }
}

/// The frames of one compressed message split into `fragments` frames (RSV1 on the first only).
private func compressedMessage(
    _ opcode: Opcode, _ payload: [UInt8], with deflater: MessageDeflater, fragments: Int = 1
) -> [UInt8] {
    let bytes = compressed(payload, with: deflater)
    return fragmentFrames(opcode, bytes, fragments: fragments, rsv1: true)
}

/// `payload` as `fragments` masked frames of about equal size (some may be empty).
private func fragmentFrames(_ opcode: Opcode, _ payload: [UInt8], fragments: Int, rsv1: Bool) -> [UInt8] {
    var frames: [UInt8] = []
    let step = (payload.count + fragments - 1) / max(fragments, 1)
    for index in 0..<fragments {
        let piece = Array(payload.dropFirst(index * step).prefix(step))
        frames += clientFrame(
            index == 0 ? opcode : .continuation, piece, fin: index == fragments - 1, rsv1: rsv1 && index == 0)
    }
    return frames
}

@Suite struct CompressedReaderRFCExamples {
    /// RFC 7692 §7.2.3.1: "Hello" as one compressed frame, c1 07 f2 48 cd c9 c9 07 00, and masked.
    @Test func readsTheCompressedHelloExample() {
        let unmasked: [UInt8] = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        #expect(
            readEverySplit(unmasked, requireMasking: false, makeInflater: inflaterFactory())
                == ReadOutcome(events: [.text("Hello")]))
        let masked = clientFrame(.text, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], rsv1: true)
        #expect(readEverySplit(masked, makeInflater: inflaterFactory()) == ReadOutcome(events: [.text("Hello")]))
    }

    /// RFC 7692 §7.2.3.1: the same message in two fragments, RSV1 on the first only.
    @Test func readsTheFragmentedCompressedHelloExample() {
        let unmasked: [UInt8] = [0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]
        #expect(
            readEverySplit(unmasked, requireMasking: false, makeInflater: inflaterFactory())
                == ReadOutcome(events: [.text("Hello")]))
    }

    /// RFC 7692 §7.2.3.2: the second "Hello" refers back into the first with context takeover.
    @Test func readsTwoMessagesSharingTheWindow() {
        let input: [UInt8] = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]
        #expect(
            readEverySplit(input, requireMasking: false, makeInflater: inflaterFactory())
                == ReadOutcome(events: [.text("Hello"), .text("Hello")]))
        #expect(
            protocolError(readEverySplit(input, requireMasking: false, makeInflater: inflaterFactory(forgetting: true)))
                == 1007)
    }
}

@Suite struct CompressedReaderRoundTrips {
    @Test func roundTripsMessagesOfEveryShapeUnderEveryChunking() {
        for takeover in [false, true] {
            let deflater = MessageDeflater(noContextTakeover: !takeover)
            let json = jsonLikeText(records: 40, seed: 11)
            let binary = randomBytes(3_000, seed: 12)
            var input = compressedMessage(.text, json, with: deflater)
            input += compressedMessage(.binary, binary, with: deflater, fragments: 3)
            input += clientFrame(.text, "plain")  // uncompressed messages mix with compressed ones
            input += compressedMessage(.text, [], with: deflater)
            input += compressedMessage(.text, json, with: deflater, fragments: 4)
            let outcome = readEverySplit(input, makeInflater: inflaterFactory(forgetting: !takeover))
            #expect(
                outcome == ReadOutcome(events: [.text(json), .binary(binary), .text("plain"), .text([]), .text(json)]),
                "takeover \(takeover)")
        }
    }

    @Test func deliversControlFramesInterleavedInACompressedMessage() {
        let deflater = MessageDeflater(noContextTakeover: true)
        let text = jsonLikeText(records: 20, seed: 13)
        let bytes = compressed(text, with: deflater)
        let input =
            clientFrame(.text, Array(bytes.prefix(10)), fin: false, rsv1: true) + clientFrame(.ping, "p")
            + clientFrame(.continuation, Array(bytes.dropFirst(10).prefix(0)), fin: false) + clientFrame(.pong, [])
            + clientFrame(.continuation, Array(bytes.dropFirst(10)))
        #expect(
            readEverySplit(input, makeInflater: inflaterFactory())
                == ReadOutcome(events: [.ping(Array("p".utf8)), .pong([]), .text(text)]))
    }

    @Test func readsALargeCompressedMessageWithSmallWindows() {
        let deflater = MessageDeflater(windowBits: 9, memoryLevel: 1, noContextTakeover: false)
        let text = jsonLikeText(records: 3_000, seed: 14)
        let input = compressedMessage(.text, text, with: deflater, fragments: 5) + compressedMessage(.text, text, with: deflater)
        let outcome = read([input], inflater: MessageInflater(windowBits: 9, noContextTakeover: false))
        #expect(outcome == ReadOutcome(events: [.text(text), .text(text)]))
    }

    @Test func sharesOneForgettingInflaterBetweenTwoReaders() {
        let inflater = MessageInflater(noContextTakeover: true)
        var first = MessageReader(inflater: inflater)
        var second = MessageReader(inflater: inflater)
        let deflater = MessageDeflater(noContextTakeover: true)
        let a = jsonLikeText(records: 30, seed: 15)
        let b = randomBytes(500, seed: 16)
        var inputA = compressedMessage(.text, a, with: deflater, fragments: 2)
        var inputB = compressedMessage(.binary, b, with: deflater)
        // The first reader's message is half read when the second one's completes.
        let half = inputA.count / 2
        var events: [ReadEvent] = []
        inputA.withUnsafeMutableBytes { bytes in
            var offset = 0
            let head = UnsafeMutableRawBufferPointer(rebasing: bytes[..<half])
            #expect(try! first.next(head, &offset, MessageReader.Configuration()) == nil)
        }
        inputB.withUnsafeMutableBytes { bytes in
            var offset = 0
            if let event = try! second.next(bytes, &offset, MessageReader.Configuration()) { events.append(ReadEvent(event)) }
        }
        inputA.withUnsafeMutableBytes { bytes in
            var offset = 0
            let rest = UnsafeMutableRawBufferPointer(rebasing: bytes[half...])
            if let event = try! first.next(rest, &offset, MessageReader.Configuration()) { events.append(ReadEvent(event)) }
        }
        #expect(events == [.binary(b), .text(a)])
    }
}

@Suite struct CompressedReaderRules {
    @Test func rejectsRSV1OnAContinuationFrameWith1002() {
        let input = clientFrame(.text, "He", fin: false) + clientFrame(.continuation, Array("llo".utf8), rsv1: true)
        #expect(protocolError(readEverySplit(input, makeInflater: inflaterFactory())) == 1002)
        let compressedFirst = clientFrame(.text, [0xf2, 0x48], fin: false, rsv1: true) + clientFrame(.continuation, [0xcd], rsv1: true)
        #expect(protocolError(readEverySplit(compressedFirst, makeInflater: inflaterFactory())) == 1002)
    }

    @Test(arguments: [Opcode.ping, .pong, .close])
    func rejectsRSV1OnAControlFrameWith1002(_ opcode: Opcode) {
        let input = clientFrame(opcode, [0x03, 0xE8], rsv1: true)
        #expect(protocolError(readEverySplit(input, makeInflater: inflaterFactory())) == 1002)
    }

    @Test(arguments: [UInt8(0x20), 0x10, 0x60, 0x70])
    func rejectsRSV2AndRSV3EvenWithAnInflaterWith1002(_ bits: UInt8) {
        let input = rawClientFrame(byte0: 0x81 | bits, payload: [0x00])
        #expect(protocolError(readEverySplit(input, makeInflater: inflaterFactory())) == 1002)
    }

    @Test func rejectsRSV1WithoutAnInflaterWith1002() {
        let input = clientFrame(.text, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], rsv1: true)
        #expect(protocolError(readEverySplit(input)) == 1002)
    }

    @Test func rejectsCorruptCompressedDataWith1007() {
        #expect(protocolError(readEverySplit(clientFrame(.binary, [0xff, 0xff, 0xff], rsv1: true), makeInflater: inflaterFactory())) == 1007)
        // Cut inside a block.
        #expect(protocolError(readEverySplit(clientFrame(.binary, [0xf2, 0x48, 0xcd], rsv1: true), makeInflater: inflaterFactory())) == 1007)
    }

    @Test func rejectsInvalidUTF8InsideACompressedTextMessageWith1007() {
        let deflater = MessageDeflater(noContextTakeover: true)
        let bad: [UInt8] = Array("valid, then ".utf8) + [0xC0, 0xAF] + Array(" overlong slash".utf8)
        let outcome = readEverySplit(compressedMessage(.text, bad, with: deflater, fragments: 2), makeInflater: inflaterFactory())
        #expect(protocolError(outcome) == 1007)
        // Ending inside a code point is caught too.
        let cut = Array("ends in ".utf8) + [0xE2, 0x82]
        #expect(protocolError(readEverySplit(compressedMessage(.text, cut, with: deflater), makeInflater: inflaterFactory())) == 1007)
        // The same bytes are fine as binary.
        #expect(
            readEverySplit(compressedMessage(.binary, bad, with: deflater), makeInflater: inflaterFactory())
                == ReadOutcome(events: [.binary(bad)]))
    }

    @Test func validatesCompressedTextOnlyAfterInflating() {
        // Compressed bytes are rarely UTF-8; the reader must not check them as if they were text.
        let deflater = MessageDeflater(noContextTakeover: true)
        let text = Array("héllo wörld, ünïcode ✓ ".utf8) + jsonLikeText(records: 10, seed: 17)
        let bytes = compressed(text, with: deflater)
        var checker = UTF8Validator()
        let compressedIsUTF8 = bytes.withUnsafeBytes { checker.feed($0) } && checker.isAtBoundary
        #expect(!compressedIsUTF8)
        #expect(readEverySplit(clientFrame(.text, bytes, rsv1: true), makeInflater: inflaterFactory()) == ReadOutcome(events: [.text(text)]))
    }

    /// A zip bomb through the reader: 16 MiB of zeros in about 16 KiB of frames, with a 1 MiB limit.
    @Test func stopsAZipBombWith1009() {
        let bomb = compressedMessage(.binary, [UInt8](repeating: 0, count: 16 << 20), with: MessageDeflater(noContextTakeover: true), fragments: 4)
        let inflater = MessageInflater(noContextTakeover: true)
        let outcome = read([bomb], maxMessageSize: 1 << 20, inflater: inflater)
        #expect(protocolError(outcome) == 1009)
        #expect(inflater.largestOutputCapacity <= (1 << 20) + 1)
    }

    @Test func appliesTheSizeLimitToCompressedBytesToo() {
        let noise = randomBytes(5_000, seed: 18)  // incompressible: a little larger compressed
        let input = compressedMessage(.binary, noise, with: MessageDeflater(noContextTakeover: true))
        #expect(protocolError(readEverySplit(input, maxMessageSize: 5_000, makeInflater: inflaterFactory())) == 1009)
        #expect(readEverySplit(input, maxMessageSize: 5_100, makeInflater: inflaterFactory()) == ReadOutcome(events: [.binary(noise)]))
    }

    @Test func freesTheInflatersLargeBufferAtTheNextFrameBoundary() {
        let inflater = MessageInflater(noContextTakeover: true)
        var reader = MessageReader(inflater: inflater)
        var input = compressedMessage(.binary, [UInt8](repeating: 7, count: 1 << 20), with: MessageDeflater(noContextTakeover: true))
            + clientFrame(.text, "small")
        input.withUnsafeMutableBytes { bytes in
            var offset = 0
            guard case .binary(let big) = try! reader.next(bytes, &offset, MessageReader.Configuration()) else { Issue.record("no message"); return }
            #expect(big.count == 1 << 20)
            #expect(inflater.memoryHeld > 1 << 20)
            guard case .text = try! reader.next(bytes, &offset, MessageReader.Configuration()) else { Issue.record("no text"); return }
            #expect(inflater.memoryHeld < 64 * 1024)
        }
    }
}
