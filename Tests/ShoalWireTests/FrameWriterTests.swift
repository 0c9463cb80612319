// Frame encoding: header sizes, round trips through MessageReader, and close payload truncation.

import ShoalWire
import Testing

@Suite struct FrameWriterTests {
    @Test func computesHeaderSizesAtTheLengthBoundaries() {
        #expect(FrameWriter.headerSize(payloadLength: 0) == 2)
        #expect(FrameWriter.headerSize(payloadLength: 125) == 2)
        #expect(FrameWriter.headerSize(payloadLength: 126) == 4)
        #expect(FrameWriter.headerSize(payloadLength: 65535) == 4)
        #expect(FrameWriter.headerSize(payloadLength: 65536) == 10)
        #expect(FrameWriter.headerSize(payloadLength: 125, masked: true) == 6)
        #expect(FrameWriter.headerSize(payloadLength: 65536, masked: true) == 14)
    }

    @Test func writesTheRFCExampleHeaders() {
        #expect(
            FrameWriter.frame(opcode: .text, payload: Array("Hello".utf8)) == [
                0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f,
            ])
        #expect(
            Array(FrameWriter.frame(opcode: .binary, payload: [UInt8](repeating: 0, count: 256)).prefix(4)) == [
                0x82, 0x7E, 0x01, 0x00,
            ])
        #expect(
            Array(FrameWriter.frame(opcode: .binary, payload: [UInt8](repeating: 0, count: 65536)).prefix(10))
                == [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00])
        #expect(FrameWriter.frame(opcode: .ping, fin: true, rsv1: true, payload: []) == [0xC9, 0x00])
        #expect(FrameWriter.frame(opcode: .text, fin: false, payload: []) == [0x01, 0x00])
    }

    /// RFC 7692 §7.2.3.1: a compressed "Hello" in one frame, and the first of two fragments.
    @Test func writesCompressedFrameHeadersWithRSV1() {
        let compressedHello: [UInt8] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        #expect(FrameWriter.frame(opcode: .text, rsv1: true, payload: compressedHello) == [0xc1, 0x07] + compressedHello)
        var header = [UInt8](repeating: 0, count: 10)
        let written = header.withUnsafeMutableBytes {
            FrameWriter.writeHeader(opcode: .binary, fin: false, rsv1: true, payloadLength: 70_000, into: $0.baseAddress!)
        }
        #expect(Array(header.prefix(written)) == [0x42, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70])
    }

    @Test func writeHeaderReturnsHeaderSize() {
        var storage = [UInt8](repeating: 0, count: 14)
        for length in [0, 125, 126, 65535, 65536] {
            for key in [nil, UInt32(1)] {
                let written = storage.withUnsafeMutableBytes {
                    FrameWriter.writeHeader(opcode: .binary, payloadLength: length, maskKey: key, into: $0.baseAddress!)
                }
                #expect(written == FrameWriter.headerSize(payloadLength: length, masked: key != nil))
            }
        }
    }

    @Test(arguments: [0, 125, 126, 65535, 65536])
    func roundTripsThroughTheReader(_ length: Int) {
        let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let masked = FrameWriter.frame(opcode: .binary, payload: payload, maskKey: 0x0102_0304)
        #expect(readEverySplit(masked, everyOffsetLimit: 512) == ReadOutcome(events: [.binary(payload)]))
        let unmasked = FrameWriter.frame(opcode: .binary, payload: payload)
        #expect(
            readEverySplit(unmasked, requireMasking: false, everyOffsetLimit: 512)
                == ReadOutcome(events: [.binary(payload)]))
    }

    @Test func buildsNoClosePayloadWithoutACode() {
        #expect(FrameWriter.closePayload(code: nil, reason: "ignored").isEmpty)
    }

    @Test func putsTheCodeInNetworkOrderBeforeTheReason() {
        #expect(FrameWriter.closePayload(code: 1000, reason: "ok") == [0x03, 0xE8, 0x6F, 0x6B])
    }

    @Test func truncatesACloseReasonTo125BytesOnAUTF8Boundary() {
        let ascii = String(repeating: "a", count: 200)
        #expect(FrameWriter.closePayload(code: 4000, reason: ascii).count == 125)
        // 122 ASCII bytes then a 3-byte "€": 125 would cut the euro sign, so it is dropped whole.
        let reason = String(repeating: "a", count: 122) + "€"
        let payload = FrameWriter.closePayload(code: 4000, reason: reason)
        #expect(payload.count == 124)
        #expect(String(validating: payload.dropFirst(2), as: UTF8.self) == String(repeating: "a", count: 122))
        // Exactly 123 bytes of reason fits.
        let exact = String(repeating: "a", count: 120) + "€"
        #expect(FrameWriter.closePayload(code: 4000, reason: exact).count == 125)
        for emojiCount in 1...40 {
            let payload = FrameWriter.closePayload(code: 3000, reason: String(repeating: "🦀", count: emojiCount))
            #expect(payload.count <= 125)
            #expect(String(validating: payload.dropFirst(2), as: UTF8.self) != nil)
        }
    }
}
