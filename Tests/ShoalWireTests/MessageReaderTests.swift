// RFC 6455 examples and every rule MessageReader enforces, each fed under every chunking.

import ShoalWire
import Testing

@Suite struct MessageReaderRFCExamples {
    @Test func readsTheUnmaskedHelloExampleWhenMaskingIsNotRequired() {
        let outcome = readEverySplit([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], requireMasking: false)
        #expect(outcome == ReadOutcome(events: [.text("Hello")]))
    }

    @Test func readsTheMaskedHelloExample() {
        let input: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        #expect(clientFrame(.text, "Hello") == input)
        #expect(readEverySplit(input) == ReadOutcome(events: [.text("Hello")]))
    }

    @Test func reassemblesTheFragmentedHelloExample() {
        let unmasked: [UInt8] = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
        #expect(readEverySplit(unmasked, requireMasking: false) == ReadOutcome(events: [.text("Hello")]))
        let masked = clientFrame(.text, "Hel", fin: false) + clientFrame(.continuation, "lo")
        #expect(readEverySplit(masked) == ReadOutcome(events: [.text("Hello")]))
    }

    @Test func readsThePingExampleAndItsMaskedForm() {
        let unmasked: [UInt8] = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        #expect(readEverySplit(unmasked, requireMasking: false) == ReadOutcome(events: [.ping(Array("Hello".utf8))]))
        #expect(readEverySplit(clientFrame(.ping, "Hello")) == ReadOutcome(events: [.ping(Array("Hello".utf8))]))
    }

    @Test func readsThe256ByteBinaryExampleWithA16BitLength() {
        let payload = (0..<256).map { UInt8(truncatingIfNeeded: $0) }
        let unmasked: [UInt8] = [0x82, 0x7E, 0x01, 0x00] + payload
        #expect(readEverySplit(unmasked, requireMasking: false) == ReadOutcome(events: [.binary(payload)]))
        #expect(readEverySplit(clientFrame(.binary, payload)) == ReadOutcome(events: [.binary(payload)]))
    }

    @Test func readsThe64KiBBinaryExampleWithA64BitLength() {
        let payload = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let unmasked: [UInt8] = [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00] + payload
        #expect(readEverySplit(unmasked, requireMasking: false) == ReadOutcome(events: [.binary(payload)]))
        #expect(readEverySplit(clientFrame(.binary, payload)) == ReadOutcome(events: [.binary(payload)]))
    }
}

@Suite struct MessageReaderFrameRules {
    @Test func rejectsAnUnmaskedClientFrameWith1002() {
        let outcome = readEverySplit([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
        #expect(protocolError(outcome) == 1002)
        #expect(outcome.events.isEmpty)
    }

    @Test func acceptsMaskedFramesWhenMaskingIsNotRequired() {
        #expect(readEverySplit(clientFrame(.text, "Hi"), requireMasking: false) == ReadOutcome(events: [.text("Hi")]))
    }

    @Test(arguments: [UInt8(0x40), 0x20, 0x10, 0x70])
    func rejectsReservedBitsWith1002(_ bits: UInt8) {
        #expect(protocolError(readEverySplit(rawClientFrame(byte0: 0x81 | bits, payload: [0x41]))) == 1002)
    }

    @Test(arguments: [UInt8(3), 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
    func rejectsUnknownOpcodesWith1002(_ opcode: UInt8) {
        #expect(protocolError(readEverySplit(rawClientFrame(byte0: 0x80 | opcode, payload: [1, 2]))) == 1002)
    }

    @Test func rejectsAFragmentedControlFrameWith1002() {
        #expect(protocolError(readEverySplit(clientFrame(.ping, "a", fin: false))) == 1002)
    }

    @Test(arguments: [Opcode.ping, .pong, .close])
    func rejectsAControlFrameOver125BytesWith1002(_ opcode: Opcode) {
        let payload = [0x03, 0xE8] + [UInt8](repeating: 0x61, count: 124)
        let outcome = readEverySplit(clientFrame(opcode, payload))
        #expect(protocolError(outcome) == 1002)
        // 125 bytes is still fine.
        let fits = readEverySplit(clientFrame(opcode, Array(payload.prefix(125))))
        #expect(fits.error == nil)
        #expect(fits.events.count == 1)
    }

    @Test func rejectsAContinuationWithoutAMessageWith1002() {
        #expect(protocolError(readEverySplit(clientFrame(.continuation, "x"))) == 1002)
    }

    @Test(arguments: [Opcode.text, .binary])
    func rejectsANewMessageInsideAFragmentedOneWith1002(_ opcode: Opcode) {
        let input = clientFrame(.text, "a", fin: false) + clientFrame(opcode, "b")
        #expect(protocolError(readEverySplit(input)) == 1002)
    }

    @Test func rejectsA64BitLengthWithTheTopBitSetWith1002() {
        let input: [UInt8] = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]
        #expect(protocolError(readEverySplit(input)) == 1002)
    }

    @Test func acceptsNonMinimalLengthEncodings() {
        let payload = Array("Hello".utf8)
        var masked = payload
        masked.withUnsafeMutableBytes { _ = Masking.apply(maskKey: exampleKey, keyOffset: 0, to: $0) }
        let key: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
        let sixteen: [UInt8] = [0x81, 0xFE, 0x00, 0x05] + key + masked
        let sixtyFour: [UInt8] = [0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5] + key + masked
        #expect(readEverySplit(sixteen) == ReadOutcome(events: [.text("Hello")]))
        #expect(readEverySplit(sixtyFour) == ReadOutcome(events: [.text("Hello")]))
    }

    @Test func readsEmptyMessagesAndControlFrames() {
        let input =
            clientFrame(.text, []) + clientFrame(.binary, []) + clientFrame(.ping, [])
            + clientFrame(.pong, []) + clientFrame(.text, [], fin: false) + clientFrame(.continuation, [])
        #expect(
            readEverySplit(input)
                == ReadOutcome(events: [.text([]), .binary([]), .ping([]), .pong([]), .text([])]))
    }

    @Test func readsSeveralMessagesFromOneInput() {
        let input = clientFrame(.text, "one") + clientFrame(.binary, [1, 2, 3]) + clientFrame(.pong, "p")
        #expect(
            readEverySplit(input)
                == ReadOutcome(events: [.text("one"), .binary([1, 2, 3]), .pong(Array("p".utf8))]))
    }
}

@Suite struct MessageReaderFragmentation {
    @Test func deliversAPingInterleavedInAFragmentedMessageFirst() {
        let input =
            clientFrame(.text, "Hel", fin: false) + clientFrame(.ping, "ping!")
            + clientFrame(.continuation, "l", fin: false) + clientFrame(.pong, "")
            + clientFrame(.continuation, "o")
        #expect(
            readEverySplit(input)
                == ReadOutcome(events: [.ping(Array("ping!".utf8)), .pong([]), .text("Hello")]))
    }

    @Test func deliversACloseInterleavedInAFragmentedMessageAndIgnoresTheRest() {
        let input =
            clientFrame(.binary, [1, 2], fin: false)
            + clientFrame(.close, FrameWriter.closePayload(code: 1000, reason: "bye"))
            + clientFrame(.continuation, [3])
        #expect(readEverySplit(input) == ReadOutcome(events: [.close(1000, Array("bye".utf8))]))
    }

    @Test func reassemblesABinaryMessageFromManyFragments() {
        let payload = (0..<300).map { UInt8(truncatingIfNeeded: $0) }
        var input = clientFrame(.binary, Array(payload[0..<100]), fin: false)
        input += clientFrame(.continuation, Array(payload[100..<101]), fin: false)
        input += clientFrame(.continuation, [], fin: false)
        input += clientFrame(.continuation, Array(payload[101...]))
        #expect(readEverySplit(input) == ReadOutcome(events: [.binary(payload)]))
    }

    @Test func reusesItsBufferForConsecutiveFragmentedMessagesAfterALargeOne() {
        let big = [UInt8](repeating: 0x61, count: 70_000)
        var input =
            clientFrame(.text, Array(big[..<35_000]), fin: false) + clientFrame(.continuation, Array(big[35_000...]))
        input += clientFrame(.text, "a", fin: false) + clientFrame(.continuation, "b")
        input += clientFrame(.binary, [9], fin: false) + clientFrame(.ping, [7]) + clientFrame(.continuation, [8])
        let outcome = readEverySplit(input, everyOffsetLimit: 0)
        #expect(outcome == ReadOutcome(events: [.text(big), .text("ab"), .ping([7]), .binary([9, 8])]))
    }
}

@Suite struct MessageReaderUTF8 {
    @Test func acceptsACodePointSplitAcrossFragments() {
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        let input =
            clientFrame(.text, [0x41, euro[0]], fin: false) + clientFrame(.continuation, [euro[1]], fin: false)
            + clientFrame(.continuation, [euro[2], 0x42])
        #expect(readEverySplit(input) == ReadOutcome(events: [.text("A€B")]))
    }

    @Test func rejectsInvalidUTF8InASingleFrameWith1007() {
        #expect(protocolError(readEverySplit(clientFrame(.text, [0x41, 0xC0, 0xAF]))) == 1007)
    }

    @Test func rejectsABadContinuationSplitAcrossFragmentsBeforeTheLastFrameArrives() {
        // E2 82 opens a 3-byte sequence; 28 cannot continue it. The final frame never arrives.
        let input =
            clientFrame(.text, [0x41, 0xE2, 0x82], fin: false) + clientFrame(.continuation, [0x28, 0x41], fin: false)
        let outcome = readEverySplit(input)
        #expect(protocolError(outcome) == 1007)
        #expect(outcome.events.isEmpty)
    }

    @Test func failsAtTheFirstBadByteEvenWhenTheFrameIsIncomplete() {
        let good = [UInt8](repeating: 0x61, count: 40)
        let frame = clientFrame(.text, good + [0xFF] + good, fin: false)
        let headerLength = 6
        let upToBadByte = Array(frame[..<(headerLength + 41)])
        let beforeBadByte = Array(frame[..<(headerLength + 40)])
        #expect(protocolError(readEverySplit(upToBadByte)) == 1007)
        #expect(readEverySplit(beforeBadByte) == ReadOutcome())
    }

    @Test func rejectsATextMessageEndingInsideACodePointWith1007() {
        let input = clientFrame(.text, [0x41, 0xE2], fin: false) + clientFrame(.continuation, [0x82])
        #expect(protocolError(readEverySplit(input)) == 1007)
    }

    @Test func doesNotValidateBinaryMessages() {
        #expect(readEverySplit(clientFrame(.binary, [0xFF, 0xC0])) == ReadOutcome(events: [.binary([0xFF, 0xC0])]))
    }
}

@Suite struct MessageReaderLimits {
    @Test func rejectsAnOversizedMessageFromItsHeaderWith1009() {
        // Only the header: the reader must not wait for the payload.
        let header = Array(clientFrame(.binary, [UInt8](repeating: 0, count: 11)).prefix(2))
        #expect(protocolError(readEverySplit(header, maxMessageSize: 10)) == 1009)
        let huge: [UInt8] = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        #expect(protocolError(readEverySplit(huge, maxMessageSize: 10)) == 1009)
    }

    @Test func rejectsAFragmentedMessageWhoseSumExceedsTheLimitWith1009() {
        let input =
            clientFrame(.binary, [UInt8](repeating: 1, count: 6), fin: false)
            + Array(clientFrame(.continuation, [UInt8](repeating: 2, count: 5)).prefix(2))
        #expect(protocolError(readEverySplit(input, maxMessageSize: 10)) == 1009)
    }

    @Test func acceptsAMessageExactlyAtTheLimit() {
        let input =
            clientFrame(.binary, [UInt8](repeating: 1, count: 6), fin: false)
            + clientFrame(.continuation, [UInt8](repeating: 2, count: 4))
        let outcome = readEverySplit(input, maxMessageSize: 10)
        #expect(outcome.error == nil)
        #expect(outcome.events.count == 1)
    }

    @Test func doesNotCountControlFramesAgainstTheMessageLimit() {
        let input =
            clientFrame(.text, "abc", fin: false) + clientFrame(.ping, [UInt8](repeating: 0, count: 100))
            + clientFrame(.continuation, "d")
        #expect(
            readEverySplit(input, maxMessageSize: 4).events == [
                .ping([UInt8](repeating: 0, count: 100)), .text("abcd"),
            ])
    }

    /// The framing state (the frame's remaining bytes, not also its length), the buffer and codecs
    /// references and the 32-bit fragment counter; the rules (`Configuration`) are not stored. Every
    /// idle connection holds one of these.
    @Test func staysSmallEnoughToLiveInEveryConnection() {
        #expect(MemoryLayout<MessageReader>.size <= 52)
    }
}

@Suite struct MessageReaderClose {
    @Test func reportsACloseWithoutPayloadAsNoCode() {
        #expect(readEverySplit(clientFrame(.close, [])) == ReadOutcome(events: [.close(nil, [])]))
    }

    @Test(arguments: [UInt16(1000), 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999])
    func acceptsCloseCodesAllowedOnTheWire(_ code: UInt16) {
        let input = clientFrame(.close, FrameWriter.closePayload(code: code, reason: "é"))
        #expect(readEverySplit(input) == ReadOutcome(events: [.close(code, Array("é".utf8))]))
    }

    @Test(arguments: [UInt16(0), 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
    func rejectsCloseCodesNotAllowedOnTheWireWith1002(_ code: UInt16) {
        #expect(
            protocolError(readEverySplit(clientFrame(.close, FrameWriter.closePayload(code: code, reason: "")))) == 1002
        )
    }

    @Test func rejectsAOneByteClosePayloadWith1002() {
        #expect(protocolError(readEverySplit(clientFrame(.close, [0x03]))) == 1002)
    }

    @Test func rejectsACloseReasonThatIsNotUTF8With1007() {
        #expect(protocolError(readEverySplit(clientFrame(.close, [0x03, 0xE8, 0x41, 0xE2, 0x82]))) == 1007)
    }

    @Test func ignoresEverythingAfterAClose() {
        let input =
            clientFrame(.close, FrameWriter.closePayload(code: 1001, reason: "")) + [0xFF, 0x00, 0x12]
            + clientFrame(.continuation, "x")
        #expect(readEverySplit(input) == ReadOutcome(events: [.close(1001, [])]))
    }
}

@Suite struct MessageReaderZeroCopy {
    @Test func returnsASingleFrameMessageAsAViewIntoTheInput() throws {
        var input = clientFrame(.text, "Hello") + clientFrame(.ping, "p")
        input.withUnsafeMutableBytes { buffer in
            var reader = MessageReader()
            var offset = 0
            let base = UnsafeRawPointer(buffer.baseAddress!)
            guard case .text(let text)? = try? reader.next(buffer, &offset, MessageReader.Configuration()) else {
                Issue.record("expected text")
                return
            }
            #expect(text.baseAddress == base + 6)
            #expect(Array(text) == Array("Hello".utf8))
            guard case .ping(let ping)? = try? reader.next(buffer, &offset, MessageReader.Configuration()) else {
                Issue.record("expected ping")
                return
            }
            #expect(ping.baseAddress == base + 17)
            let rest = try? reader.next(buffer, &offset, MessageReader.Configuration())
            #expect(rest == nil)
            #expect(offset == buffer.count)
        }
    }
}
