// The frame on the Redis channel: round trips, and everything else refused with its reason.
import ShoalTestSupport
import Testing
@testable import ShoalRedis

@Suite struct RedisEnvelopeTests {
    func encode(_ payload: [UInt8], kind: RedisEnvelope.Kind = .broadcast, opcode: UInt8 = 1, topic: String = "") -> [UInt8] {
        payload.withUnsafeBytes {
            RedisEnvelope.encode(kind: kind, opcode: opcode, instance: 0x0102_0304_0506_0708, server: 3, topic: topic, payload: $0)!
        }
    }

    func decode(_ bytes: [UInt8]) throws(RedisEnvelope.DecodeError) -> RedisEnvelope {
        var result: Result<RedisEnvelope, RedisEnvelope.DecodeError>!
        bytes.withUnsafeBytes { raw in
            do throws(RedisEnvelope.DecodeError) { result = .success(try RedisEnvelope.decode(raw)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    func refusal(_ bytes: [UInt8]) -> RedisEnvelope.DecodeError? {
        do { _ = try decode(bytes); return nil } catch { return error }
    }

    @Test func broadcastAndPublishRoundTrip() throws {
        let text = try decode(encode(Array("héllo".utf8)))
        #expect(text == RedisEnvelope(kind: .broadcast, opcode: 1, instance: 0x0102_0304_0506_0708, server: 3, payload: Array("héllo".utf8)))
        let binary = try decode(encode([0, 255, 7], kind: .publish, opcode: 2, topic: "room/1"))
        #expect(binary.kind == .publish && binary.topic == "room/1" && binary.payload == [0, 255, 7] && binary.opcode == 2)
        #expect(try decode(encode([])).payload == [])
    }

    @Test func layoutIsTheDocumentedOne() {
        let bytes = encode(Array("hi".utf8))
        #expect(Array(bytes[0..<4]) == Array("SHRB".utf8))
        #expect(bytes[4] == 1 && bytes[5] == 1 && bytes[6] == 1 && bytes[7] == 0)
        #expect(bytes[8] == 0x08 && bytes[15] == 0x01, "instance little-endian")
        #expect(bytes[16] == 3 && bytes[20] == 0 && bytes[21] == 0)
        #expect(bytes[22] == 2 && bytes.count == 28)
    }

    @Test func everyTruncationIsRefused() {
        let whole = encode(Array("payload".utf8), kind: .publish, topic: "t")
        for cut in 0..<whole.count {
            let error = refusal(Array(whole[0..<cut]))
            #expect(error == .truncated || (cut == 0 && error == .notOurs), "cut at \(cut): \(String(describing: error))")
        }
    }

    @Test func foreignVersionedOversizedAndMalformedAreRefused() {
        #expect(refusal(Array("hello from redis-cli".utf8)) == .notOurs)
        #expect(refusal([]) == .notOurs)
        var future = encode([1])
        future[4] = 2
        #expect(refusal(future) == .unsupportedVersion(2))
        var huge = encode([])
        huge[22...25] = [0xFF, 0xFF, 0xFF, 0x7F][...]
        #expect(refusal(huge) == .oversized)
        #expect(refusal(encode([1, 2]) + [0]) == .malformed("bytes after the payload"))
        var badOpcode = encode([1])
        badOpcode[6] = 9
        #expect(refusal(badOpcode) == .malformed("opcode 9"))
        #expect(refusal(encode([0xC3, 0x28], opcode: 1)) == .malformed("text payload is not UTF-8"))
        var topicOnBroadcast = encode([1], kind: .publish, topic: "t")
        topicOnBroadcast[5] = 1
        #expect(refusal(topicOnBroadcast) == .malformed("a broadcast with a topic"))
    }

    @Test func encodeRefusesWhatNoReceiverWouldAccept() {
        let big = [UInt8](repeating: 0, count: RedisEnvelope.maxPayload + 1)
        #expect(big.withUnsafeBytes { RedisEnvelope.encode(kind: .broadcast, opcode: 2, instance: 1, server: 0, payload: $0) } == nil)
        let longTopic = String(repeating: "x", count: RedisEnvelope.maxTopic + 1)
        #expect([UInt8]().withUnsafeBytes { RedisEnvelope.encode(kind: .publish, opcode: 1, instance: 1, server: 0, topic: longTopic, payload: $0) } == nil)
    }

    @Test func mutatedFramesDecodeToWhatTheyHoldOrAreRefusedNeverCrash() {
        var random = SplitMix64(seed: 14)
        let originals = [encode(Array("héllo".utf8)), encode([0, 1, 2, 255], kind: .publish, opcode: 2, topic: "room/é"),
                         encode([])]
        var refused = 0
        for round in 0..<20_000 {
            var bytes = originals[round % originals.count]
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                switch Int.random(in: 0..<3, using: &random) {
                case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes.removeLast(Int.random(in: 0...min(bytes.count, 8), using: &random))
                default: bytes.append(UInt8.random(in: 0...255, using: &random))
                }
            }
            do {
                let envelope = try decode(bytes)
                // Whatever decodes re-encodes to the same bytes: nothing was guessed or skipped.
                let again = envelope.payload.withUnsafeBytes {
                    RedisEnvelope.encode(kind: envelope.kind, opcode: envelope.opcode, instance: envelope.instance,
                                         server: envelope.server, topic: envelope.topic, payload: $0)
                }
                #expect(again == bytes, "round \(round)")
            } catch {
                refused += 1
            }
        }
        #expect(refused > 10_000, "most mutations break the frame")
    }
}
