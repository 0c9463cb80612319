// The bus codec is the only thing between two workers' memory: every message must survive any split of the
// byte stream, large payloads must cross in fragments byte-identical, and garbage must only ever cost counters.

import ShoalTestSupport
import Testing

@testable import ShoalCluster

// MARK: - Helpers

/// A small seeded generator so random chunks and fuzz inputs are reproducible.

/// Deterministic bytes that differ from offset to offset, so a misplaced fragment cannot go unnoticed.
private func pattern(_ count: Int, seed: UInt32 = 1) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        var x = seed &* 2_654_435_761 | 1
        for i in 0..<count {
            x ^= x << 13
            x ^= x >> 17
            x ^= x << 5
            buffer[i] = UInt8(truncatingIfNeeded: x)
        }
        initialized = count
    }
}

/// Encodes `message` into its frames, checking what the send queue relies on: every frame fits
/// `maxFrameSize`, and its header announces exactly the size the encoder reserved.
private func frames(
    of message: BusMessage, generation: UInt32 = 1, sourceLocation: SourceLocation = #_sourceLocation
) -> [[UInt8]] {
    var result: [[UInt8]] = []
    BusEncoder.encode(message, generation: generation) { size, fill in
        result.append(frame(size: size, fill: fill, sourceLocation: sourceLocation))
    }
    return result
}

/// Plays the caller's send queue: reserves `size` bytes, pre-set to a marker, and lets `fill` write them.
private func frame(
    size: Int, fill: (UnsafeMutableRawBufferPointer) -> Void, sourceLocation: SourceLocation = #_sourceLocation
) -> [UInt8] {
    #expect(size <= BusEncoder.maxFrameSize, "frame of \(size) bytes", sourceLocation: sourceLocation)
    #expect(size >= BusWire.headerSize, sourceLocation: sourceLocation)
    var bytes = [UInt8](repeating: 0xEE, count: size)
    bytes.withUnsafeMutableBytes { fill($0) }
    let announced = bytes.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
    #expect(announced + BusWire.headerSize == size, sourceLocation: sourceLocation)
    return bytes
}

/// What a decoder made of some input: the messages in order and its counters.
private struct Outcome: Equatable, CustomStringConvertible {
    var messages: [BusMessage] = []
    var stale = 0
    var discarded = 0
    var malformed = 0

    /// A summary, so a failing expectation does not print megabytes of payload.
    var description: String {
        let list = messages.map { message -> String in
            switch message {
            case .broadcast(let server, let except, let opcode, let payload):
                return "broadcast(\(server), except \(except), op \(opcode), \(summary(payload)))"
            case .send(let connection, let opcode, let payload):
                return "send(\(connection), op \(opcode), \(summary(payload)))"
            case .sendMany(let connections, let opcode, let payload):
                return "sendMany(\(connections.count) connections, op \(opcode), \(summary(payload)))"
            case .publish(let server, let topic, let except, let opcode, let payload):
                return "publish(\(server), \(topic), except \(except), op \(opcode), \(summary(payload)))"
            case .terminate, .terminateServer, .topicCounts, .topicSync:
                return "\(message)"
            }
        }
        return "[\(list.joined(separator: ", "))] stale \(stale) discarded \(discarded) malformed \(malformed)"
    }

    private func summary(_ payload: [UInt8]) -> String {
        let hash = payload.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
        return "\(payload.count) bytes, fnv \(hash)"
    }
}

/// Feeds `chunks` in order to one fresh decoder.
private func decode(_ chunks: [[UInt8]], generation: UInt32 = 1, maxMessageSize: Int? = nil) -> Outcome {
    var decoder =
        maxMessageSize.map { BusDecoder(generation: generation, maxMessageSize: $0) }
        ?? BusDecoder(generation: generation)
    var outcome = Outcome()
    for chunk in chunks {
        chunk.withUnsafeBytes { decoder.feed($0) { outcome.messages.append($0) } }
    }
    outcome.stale = decoder.staleFrames
    outcome.discarded = decoder.discardedMessages
    outcome.malformed = decoder.malformedFrames
    return outcome
}

/// The one helper every stream test goes through: the frames of `messages` fed one frame per feed (what the
/// seqpacket transport does), as one whole stream, one byte at a time, split in two at every offset (when
/// `everyOffset`) and in seeded random chunks must all give back exactly `messages`, in order, with zero counters.
private func expectRoundTrip(
    _ messages: [BusMessage], everyOffset: Bool = true, bytewise: Bool = true, randomRounds: Int = 32,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let perFrame = messages.flatMap { frames(of: $0, sourceLocation: sourceLocation) }
    let stream = perFrame.flatMap { $0 }
    let expected = Outcome(messages: messages)
    var chunkings: [(String, [[UInt8]])] = [("one frame per feed", perFrame), ("whole stream", [stream])]
    if bytewise {
        chunkings.append(("one byte at a time", stream.map { [$0] }))
    }
    if everyOffset {
        for cut in 0...stream.count {
            chunkings.append(("split at \(cut)", [Array(stream[..<cut]), Array(stream[cut...])]))
        }
    }
    var rng = SplitMix64(seed: UInt64(stream.count))
    for round in 0..<randomRounds where stream.count > 2 {
        let pieces = Int.random(in: 2...min(40, stream.count), using: &rng)
        let cuts = Set((1..<pieces).map { _ in Int.random(in: 1..<stream.count, using: &rng) }).sorted()
        var chunks: [[UInt8]] = []
        var start = 0
        for cut in cuts + [stream.count] {
            chunks.append(Array(stream[start..<cut]))
            start = cut
        }
        chunkings.append(("random chunks #\(round) at \(cuts.prefix(8))…", chunks))
    }
    for (label, chunks) in chunkings {
        let outcome = decode(chunks)
        #expect(outcome == expected, "\(label)", sourceLocation: sourceLocation)
        if outcome != expected { return }  // one failing chunking is enough to report
    }
}

/// A hand-made frame, for inputs the encoder would never produce.
private func rawFrame(kind: UInt8, flags: UInt8, generation: UInt32 = 1, reserved: UInt16 = 0, body: [UInt8]) -> [UInt8]
{
    rawHeader(length: UInt32(body.count), kind: kind, flags: flags, generation: generation, reserved: reserved) + body
}

private func rawHeader(length: UInt32, kind: UInt8, flags: UInt8, generation: UInt32 = 1, reserved: UInt16 = 0)
    -> [UInt8]
{
    le(length) + [kind, flags] + le(reserved) + le(generation)
}

private func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

private let firstRoomBroadcast = BusWire.maxBodySize - BusWire.broadcastFieldsSize
private let firstRoomSend = BusWire.maxBodySize - BusWire.sendFieldsSize

private let smallMessages: [BusMessage] = [
    .broadcast(server: 3, except: 42, opcode: 1, payload: Array("hello, everyone".utf8)),
    .send(connection: 7, opcode: 2, payload: [0, 1, 2, 0xFF]),
    .terminate(connection: 9, code: 4000, reason: "bye ✓"),
    .send(connection: 7, opcode: 1, payload: []),
    .terminateServer(server: 2),
    .terminate(connection: 10, code: nil, reason: ""),
    .broadcast(server: 0, except: 0, opcode: 2, payload: pattern(300)),
]

// MARK: - Tests

@Suite("Bus codec")
struct BusCodecTests {
    @Test func everyMessageKindRoundTripsWithExtremeFieldValues() {
        let messages: [BusMessage] = [
            .broadcast(server: 0, except: 0, opcode: 1, payload: Array("hi".utf8)),
            .broadcast(server: .max, except: .max, opcode: 0x0F, payload: [1]),
            .broadcast(server: 1, except: .min, opcode: 2, payload: [2, 3]),
            .send(connection: 1, opcode: 2, payload: pattern(100)),
            .send(connection: .max, opcode: 0, payload: [9]),
            .send(connection: -1, opcode: 1, payload: Array("x".utf8)),
            .terminate(connection: 5, code: 1000, reason: "normal"),
            .terminate(connection: .max, code: .max, reason: "émoji 🎉 ok"),
            .terminate(connection: 6, code: nil, reason: ""),
            .terminate(connection: 7, code: 4999, reason: String(repeating: "a", count: BusEncoder.maxReasonLength)),
            .terminateServer(server: 0),
            .terminateServer(server: .max),
            .sendMany(connections: [1], opcode: 1, payload: Array("one".utf8)),
            .sendMany(connections: [.max, .min, 0, 42], opcode: 0x0F, payload: []),
            .sendMany(
                connections: (1...Int64(BusEncoder.maxConnectionsPerMessage)).map { $0 }, opcode: 2, payload: pattern(300)),
        ]
        for message in messages {
            let encoded = frames(of: message)
            #expect(encoded.count == 1)
            #expect(decode(encoded) == Outcome(messages: [message]), "\(message)")
        }
        expectRoundTrip(messages, everyOffset: false)
    }

    @Test func emptyPayloadsRoundTripAsOneFrameHoldingOnlyTheFields() {
        let broadcast = BusMessage.broadcast(server: 1, except: 2, opcode: 1, payload: [])
        let send = BusMessage.send(connection: 3, opcode: 2, payload: [])
        #expect(frames(of: broadcast).map(\.count) == [BusWire.headerSize + BusWire.broadcastFieldsSize])
        #expect(frames(of: send).map(\.count) == [BusWire.headerSize + BusWire.sendFieldsSize])
        expectRoundTrip([broadcast, send, broadcast])
    }

    @Test func payloadsAroundEveryFrameBoundaryRoundTripWithTheExpectedFrameCount() {
        for (name, firstRoom) in [("broadcast", firstRoomBroadcast), ("send", firstRoomSend)] {
            let make: ([UInt8]) -> BusMessage = { payload in
                name == "broadcast"
                    ? .broadcast(server: 4, except: 5, opcode: 2, payload: payload)
                    : .send(connection: 6, opcode: 2, payload: payload)
            }
            let boundaries = [
                firstRoom, BusEncoder.maxFrameSize, firstRoom + BusWire.maxBodySize,
                firstRoom + 2 * BusWire.maxBodySize,
            ]
            for boundary in boundaries {
                for count in [boundary - 1, boundary, boundary + 1] {
                    let message = make(pattern(count, seed: UInt32(count)))
                    let encoded = frames(of: message)
                    let expectedFrames =
                        count <= firstRoom ? 1 : 1 + (count - firstRoom + BusWire.maxBodySize - 1) / BusWire.maxBodySize
                    #expect(encoded.count == expectedFrames, "\(name) of \(count) bytes")
                    #expect(encoded.reduce(0) { $0 + $1.count } == BusEncoder.encodedSize(of: message))
                    let outcome = decode(encoded)
                    #expect(outcome == Outcome(messages: [message]), "\(name) of \(count) bytes")
                }
            }
        }
        // A payload that exactly fills the first frame makes a frame of exactly maxFrameSize.
        let full = frames(of: .send(connection: 1, opcode: 2, payload: pattern(firstRoomSend)))
        #expect(full.map(\.count) == [BusEncoder.maxFrameSize])
    }

    @Test(arguments: [4 * 1024 * 1024, 16 * 1024 * 1024])
    func largePayloadsCrossInFragmentsByteIdentical(size: Int) {
        let payload = pattern(size, seed: UInt32(size))
        for message in [
            BusMessage.broadcast(server: 1, except: 99, opcode: 2, payload: payload),
            BusMessage.send(connection: 123_456_789, opcode: 1, payload: payload),
        ] {
            let encoded = frames(of: message)
            #expect(encoded.count > size / BusEncoder.maxFrameSize)
            #expect(encoded.allSatisfy { $0.count <= BusEncoder.maxFrameSize })
            // One frame per feed (the transport), then the whole stream at once.
            for chunks in [encoded, [encoded.flatMap { $0 }]] {
                #expect(decode(chunks) == Outcome(messages: [message]), "\(size) bytes in \(chunks.count) chunks")
            }
        }
    }

    @Test func aStreamOfSmallMessagesDecodesTheSameHoweverItIsSplit() {
        expectRoundTrip(smallMessages)
    }

    @Test func aStreamWithFragmentedMessagesDecodesTheSameHoweverItIsSplit() {
        // Splitting at every one of ~70,000 offsets would be slow in debug builds: bytewise, per frame and random
        // chunks cover fragments; every offset is covered by the small-message stream.
        let messages: [BusMessage] =
            smallMessages.prefix(3) + [
                .broadcast(server: 8, except: 1, opcode: 2, payload: pattern(3 * BusEncoder.maxFrameSize + 17)),
                .send(connection: 77, opcode: 1, payload: pattern(firstRoomSend + 1, seed: 9)),
            ] + smallMessages.suffix(3)
        expectRoundTrip(messages, everyOffset: false, randomRounds: 64)
    }

    @Test func theRawBufferVariantsEncodeTheSameBytesAsTheMessageVariant() {
        for count in [0, 10, firstRoomBroadcast + 1, 40_000] {
            let payload = pattern(count)
            var raw: [[UInt8]] = []
            payload.withUnsafeBytes { bytes in
                BusEncoder.encodeBroadcast(server: 3, except: 4, opcode: 1, payload: bytes, generation: 1) {
                    size, fill in
                    raw.append(frame(size: size, fill: fill))
                }
                BusEncoder.encodeSend(connection: 5, opcode: 2, payload: bytes, generation: 1) { size, fill in
                    raw.append(frame(size: size, fill: fill))
                }
            }
            let viaMessage =
                frames(of: .broadcast(server: 3, except: 4, opcode: 1, payload: payload))
                + frames(of: .send(connection: 5, opcode: 2, payload: payload))
            #expect(raw == viaMessage, "\(count) bytes")
            #expect(
                BusEncoder.encodedSize(broadcastPayloadCount: count) + BusEncoder.encodedSize(sendPayloadCount: count)
                    == raw.reduce(0) { $0 + $1.count })
        }
    }

    @Test func framesNeverExceedMaxFrameSize() {
        var sizes = Array(0...300) + Array(stride(from: 301, to: 5 * BusEncoder.maxFrameSize, by: 997))
        for k in 1...4 {
            sizes += [k * BusWire.maxBodySize - 1, k * BusWire.maxBodySize, k * BusWire.maxBodySize + 1]
        }
        for count in sizes {
            let payload = [UInt8](repeating: 0xAB, count: count)
            for message in [
                BusMessage.broadcast(server: 1, except: 2, opcode: 2, payload: payload),
                BusMessage.send(connection: 1, opcode: 2, payload: payload),
            ] {
                // `frames(of:)` checks each frame against maxFrameSize and its announced length.
                let encoded = frames(of: message)
                #expect(encoded.reduce(0) { $0 + $1.count } == BusEncoder.encodedSize(of: message))
                // Every frame but the last is full: no wasted records on the socket.
                #expect(encoded.dropLast().allSatisfy { $0.count == BusEncoder.maxFrameSize })
            }
        }
        let longReason = BusMessage.terminate(connection: 1, code: 4000, reason: String(repeating: "é", count: 500))
        #expect(frames(of: longReason).allSatisfy { $0.count <= BusEncoder.maxFrameSize })
    }

    @Test func aLongCloseReasonIsCutOnACharacterBoundaryAndCodeZeroMeansNone() {
        // "é" is 2 bytes: 123 bytes would split one, so 122 bytes (61 characters) remain.
        let long = String(repeating: "é", count: 100)
        let outcome = decode(frames(of: .terminate(connection: 1, code: 4001, reason: long)))
        #expect(outcome.messages == [.terminate(connection: 1, code: 4001, reason: String(repeating: "é", count: 61))])
        let ascii = String(repeating: "b", count: 200)
        #expect(
            decode(frames(of: .terminate(connection: 2, code: 0, reason: ascii))).messages
                == [.terminate(connection: 2, code: nil, reason: String(repeating: "b", count: 123))])
        #expect(BusEncoder.encodedSize(of: .terminate(connection: 1, code: nil, reason: ascii)) == 12 + 10 + 123)
    }

    @Test func framesStampedForAnotherGenerationAreSkippedAndCounted() {
        let big = BusMessage.send(connection: 1, opcode: 2, payload: pattern(2 * BusEncoder.maxFrameSize))
        let stale = frames(of: smallMessages[0], generation: 6) + frames(of: big, generation: 6)
        let current = frames(of: smallMessages[1], generation: 7)
        // Stale frames (even a whole stale fragmented message) between the current ones change nothing.
        let outcome = decode(current + stale + current, generation: 7)
        #expect(outcome.messages == [smallMessages[1], smallMessages[1]])
        #expect(outcome.stale == stale.count)
        #expect(outcome.discarded == 0 && outcome.malformed == 0)
        // A stale frame in the middle of a current fragmented message does not disturb it.
        let currentBig = frames(of: big, generation: 7)
        let interleaved = [currentBig[0]] + stale.prefix(1) + currentBig.dropFirst()
        #expect(decode(interleaved, generation: 7) == Outcome(messages: [big], stale: 1))

        // The generation can be changed on a live decoder (a worker learning its new generation).
        var decoder = BusDecoder(generation: 6)
        var delivered: [BusMessage] = []
        for frame in current { frame.withUnsafeBytes { decoder.feed($0) { delivered.append($0) } } }
        decoder.generation = 7
        for frame in current { frame.withUnsafeBytes { decoder.feed($0) { delivered.append($0) } } }
        #expect(delivered == [smallMessages[1]])
        #expect(decoder.staleFrames == current.count)
    }

    @Test func aTruncatedFragmentedMessageIsDiscardedWhenTheNextMessageStarts() {
        let big = BusMessage.broadcast(server: 1, except: 0, opcode: 2, payload: pattern(3 * BusEncoder.maxFrameSize))
        let truncated = Array(frames(of: big).prefix(2))  // its sender died after two fragments
        let next = frames(of: smallMessages[1]) + frames(of: big)
        let expected = Outcome(messages: [smallMessages[1], big], discarded: 1)
        #expect(decode(truncated + next) == expected)
        #expect(decode([(truncated + next).flatMap { $0 }]) == expected)
        #expect(decode((truncated + next).flatMap { $0 }.map { [$0] }) == expected)
    }

    @Test func corruptHeadersAreCountedAndTheNextFeedDecodesNormally() {
        let valid = frames(of: smallMessages[0]) + frames(of: smallMessages[4])
        let corrupt: [(String, [UInt8])] = [
            ("huge length", rawHeader(length: .max, kind: 2, flags: 3) + [1, 2, 3]),
            ("length one past the limit", rawHeader(length: UInt32(BusWire.maxBodySize + 1), kind: 2, flags: 3)),
            ("unknown kind 0", rawFrame(kind: 0, flags: 3, body: [0, 0, 0, 0])),
            ("unknown kind 9", rawFrame(kind: 9, flags: 3, body: [0, 0, 0, 0])),
            ("unknown flag bit", rawFrame(kind: 4, flags: 0b111, body: [0, 0, 0, 0])),
            ("reserved bytes set", rawFrame(kind: 4, flags: 3, reserved: 1, body: [0, 0, 0, 0])),
        ]
        for (label, bytes) in corrupt {
            // The corrupt header poisons the rest of its feed (valid frames after it in the same feed are lost,
            // their boundaries cannot be trusted) but nothing after.
            let outcome = decode([bytes + valid.flatMap { $0 }] + valid)
            #expect(outcome == Outcome(messages: [smallMessages[0], smallMessages[4]], malformed: 1), "\(label)")
            // The same header arriving byte by byte (stream style) is caught as soon as its 12 bytes are in.
            var decoder = BusDecoder(generation: 1)
            for byte in bytes { [byte].withUnsafeBytes { decoder.feed($0) { _ in Issue.record("\(label)") } } }
            #expect(decoder.malformedFrames == 1, "\(label)")
        }
        // A corrupt header in the middle of a fragmented message discards that message too.
        let big = frames(of: .send(connection: 1, opcode: 2, payload: pattern(2 * BusEncoder.maxFrameSize)))
        let outcome = decode([big[0], rawHeader(length: .max, kind: 1, flags: 0)] + valid)
        #expect(outcome == Outcome(messages: [smallMessages[0], smallMessages[4]], discarded: 1, malformed: 1))
    }

    @Test func framesBreakingBodyRulesAreSkippedAloneAndTheFramesAfterThemStillDecode() {
        let small = 1000
        let total = le(UInt32(100))
        let broadcastFields: (UInt8, [UInt8]) -> [UInt8] = { opcode, total in
            le(UInt32(1)) + le(Int64(2)) + [opcode] + total
        }
        let sendFields = le(Int64(3)) + [2] + total
        let bad: [(String, [[UInt8]], Int)] = [
            ("continuation without a first fragment", [rawFrame(kind: 2, flags: 0b10, body: [1, 2])], 0),
            ("broadcast body shorter than its fields", [rawFrame(kind: 1, flags: 3, body: [1, 2, 3])], 0),
            ("send body shorter than its fields", [rawFrame(kind: 2, flags: 3, body: Array(sendFields.prefix(12)))], 0),
            (
                "opcode wider than 4 bits",
                [rawFrame(kind: 1, flags: 3, body: broadcastFields(0x20, le(UInt32(1))) + [7])], 0
            ),
            ("single frame shorter than its total", [rawFrame(kind: 2, flags: 3, body: sendFields + [1, 2])], 0),
            (
                "single frame longer than its total",
                [rawFrame(kind: 2, flags: 3, body: le(Int64(3)) + [2] + le(UInt32(1)) + [1, 2])], 0
            ),
            (
                "first fragment already holding the total",
                [rawFrame(kind: 2, flags: 1, body: sendFields + pattern(100))], 0
            ),
            (
                "total beyond maxMessageSize",
                [rawFrame(kind: 2, flags: 1, body: le(Int64(3)) + [2] + le(UInt32(small + 1)) + [1])], 0
            ),
            (
                "continuation of another kind",
                [
                    rawFrame(kind: 2, flags: 1, body: sendFields + [1]),
                    rawFrame(kind: 1, flags: 0b10, body: pattern(99)),
                ], 1
            ),
            (
                "continuation past the total",
                [
                    rawFrame(kind: 2, flags: 1, body: sendFields + [1]),
                    rawFrame(kind: 2, flags: 0b10, body: pattern(100)),
                ], 1
            ),
            (
                "completing continuation without the last flag",
                [rawFrame(kind: 2, flags: 1, body: sendFields + [1]), rawFrame(kind: 2, flags: 0, body: pattern(99))], 1
            ),
            (
                "last flag before the total",
                [
                    rawFrame(kind: 2, flags: 1, body: sendFields + [1]),
                    rawFrame(kind: 2, flags: 0b10, body: pattern(50)),
                ], 1
            ),
            (
                "empty continuation",
                [rawFrame(kind: 2, flags: 1, body: sendFields + [1]), rawFrame(kind: 2, flags: 0, body: [])], 1
            ),
            ("fragmented terminate", [rawFrame(kind: 3, flags: 1, body: le(Int64(1)) + le(UInt16(0)))], 0),
            ("terminate body shorter than its fields", [rawFrame(kind: 3, flags: 3, body: [1, 2, 3])], 0),
            (
                "terminate reason too long",
                [rawFrame(kind: 3, flags: 3, body: le(Int64(1)) + le(UInt16(0)) + pattern(124))], 0
            ),
            (
                "terminate reason not UTF-8",
                [rawFrame(kind: 3, flags: 3, body: le(Int64(1)) + le(UInt16(0)) + [0xC3, 0x28])], 0
            ),
            ("terminateServer body of 3 bytes", [rawFrame(kind: 4, flags: 3, body: [1, 2, 3])], 0),
            ("terminateServer body of 5 bytes", [rawFrame(kind: 4, flags: 3, body: [1, 2, 3, 4, 5])], 0),
            ("fragmented terminateServer", [rawFrame(kind: 4, flags: 1, body: [1, 2, 3, 4])], 0),
        ]
        let valid = frames(of: smallMessages[1]) + frames(of: smallMessages[2])
        for (label, badFrames, discarded) in bad {
            let expected = Outcome(
                messages: [smallMessages[1], smallMessages[2]], discarded: discarded, malformed: 1)
            // Trusted lengths: the good frames in the very same feed survive.
            #expect(
                decode([(badFrames + valid).flatMap { $0 }], maxMessageSize: small) == expected, "\(label), one feed")
            #expect(decode(badFrames + valid, maxMessageSize: small) == expected, "\(label), frame per feed")
        }
    }

    @Test func aSendManyWithAFragmentedPayloadCarriesItsConnectionsOnceAndRoundTrips() {
        let connections = (0..<Int64(BusEncoder.maxConnectionsPerMessage)).map { $0 * 7 - 3 }
        let message = BusMessage.sendMany(connections: connections, opcode: 2, payload: pattern(3 * BusEncoder.maxFrameSize))
        let encoded = frames(of: message)
        #expect(encoded.count == 4)
        #expect(encoded.allSatisfy { $0.count <= BusEncoder.maxFrameSize })
        #expect(encoded.map(\.count).reduce(0, +) == BusEncoder.encodedSize(of: message))
        expectRoundTrip([message, .send(connection: 1, opcode: 1, payload: [1]), message], everyOffset: false, bytewise: false)
    }

    @Test func aSendManyWhoseCountIsZeroTooLargeOrBeyondItsBodyIsSkippedAlone() {
        let valid = BusMessage.terminateServer(server: 9)
        func body(count: UInt16, ids: Int) -> [UInt8] {
            [1] + le(UInt32(0)) + le(count) + (0..<ids).flatMap { le(Int64($0)) }
        }
        let bad: [(String, [UInt8])] = [
            ("no recipients", body(count: 0, ids: 0)),
            ("too many recipients", body(count: UInt16(BusEncoder.maxConnectionsPerMessage + 1), ids: 1025)),
            ("ids cut short", body(count: 3, ids: 2)),
            ("fields cut short", [1, 0, 0]),
        ]
        for (label, bytes) in bad {
            let outcome = decode([rawFrame(kind: 5, flags: 0b11, body: bytes)] + frames(of: valid))
            #expect(outcome == Outcome(messages: [valid], malformed: 1), "\(label)")
        }
    }

    @Test func tenThousandRandomInputsNeverCrashTheDecoder() {
        var rng = SplitMix64(seed: 0x5EED)
        let seeds =
            smallMessages.flatMap { frames(of: $0) }
            + frames(of: .send(connection: 1, opcode: 2, payload: pattern(BusEncoder.maxFrameSize)))
        var longLived = BusDecoder(generation: 1)
        var delivered = 0
        for i in 0..<10_000 {
            var input: [UInt8]
            switch i % 3 {
            case 0:  // pure noise
                input = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:  // a valid frame with a few bytes mutated: reaches the body checks
                input = seeds.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            default:  // plausible headers with random kind/flags/lengths and short random bodies
                let body = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                input = rawFrame(
                    kind: UInt8.random(in: 0...6, using: &rng), flags: UInt8.random(in: 0...3, using: &rng), body: body)
                if Bool.random(using: &rng) { input.removeLast(Int.random(in: 0...input.count, using: &rng)) }
            }
            var fresh = BusDecoder(generation: 1, maxMessageSize: 1 << 20)
            input.withUnsafeBytes { bytes in
                fresh.feed(bytes) { _ in delivered += 1 }
                longLived.feed(bytes) { _ in delivered += 1 }
            }
        }
        // Only checks that the counters moved; the point is reaching here without a trap.
        #expect(longLived.malformedFrames > 0)
        #expect(delivered > 0)
        // A long-lived decoder that swallowed all of it still decodes valid frames after a corrupt header reset it.
        // Two frames' worth of 0xFF is sure to end in one: whatever partial frame the noise left is completed by at
        // most maxFrameSize of it, and the next header read is all 0xFF (an impossible length).
        let reset = [UInt8](repeating: 0xFF, count: 2 * BusEncoder.maxFrameSize)
        var after: [BusMessage] = []
        reset.withUnsafeBytes { longLived.feed($0) { _ in } }
        for frame in frames(of: smallMessages[2]) { frame.withUnsafeBytes { longLived.feed($0) { after.append($0) } } }
        #expect(after == [smallMessages[2]])
    }
}

@Suite("Bus codec: topics")
struct BusTopicCodecTests {
    private let longestTopic = String(repeating: "é", count: BusEncoder.maxTopicLength / 2)

    @Test func publishTopicCountsAndSyncRoundTripWithExtremeFields() {
        let messages: [BusMessage] = [
            .publish(server: 0, topic: "", except: 0, opcode: 1, payload: []),
            .publish(server: .max, topic: longestTopic, except: .min, opcode: 0x0F, payload: pattern(200)),
            .topicCounts(server: 3, counts: [TopicCount(topic: "a", count: 0)]),
            .topicCounts(server: .max, counts: (0..<BusEncoder.maxTopicCountsPerMessage).map {
                TopicCount(topic: String(longestTopic.dropLast($0 % 3)), count: UInt32.max - UInt32($0))
            }),
            .topicSync,
        ]
        for message in messages {
            #expect(frames(of: message).count == 1, "\(message)")
            #expect(decode(frames(of: message)) == Outcome(messages: [message]))
        }
        expectRoundTrip(messages + smallMessages, everyOffset: false)
    }

    @Test func aPublishLargerThanAFrameCrossesInFragmentsAndKeepsItsTopic() {
        let message = BusMessage.publish(server: 2, topic: longestTopic, except: 9, opcode: 2,
                                         payload: pattern(3 * BusEncoder.maxFrameSize + 17))
        #expect(frames(of: message).count == 4)
        expectRoundTrip([message, .topicSync, message], everyOffset: false, bytewise: false)
    }

    /// Hand-made bodies a broken or foreign peer could send: each is counted and skipped alone, and the message after
    /// it still arrives.
    @Test func malformedTopicMessagesAreCountedAndSkippedAlone() {
        let valid = BusMessage.terminateServer(server: 9)
        func publishBody(topicLength: UInt16, topic: [UInt8]) -> [UInt8] {
            le(UInt32(0)) + le(Int64(0)) + [1] + le(UInt32(0)) + le(topicLength) + topic
        }
        func countsBody(entries: UInt16, _ rest: [UInt8]) -> [UInt8] { le(UInt32(1)) + le(entries) + rest }
        let entry = le(UInt16(1)) + [0x61] + le(UInt32(5))
        let tooLong = [UInt8](repeating: 0x61, count: BusEncoder.maxTopicLength + 1)
        let bad: [(String, UInt8, UInt8, [UInt8])] = [
            ("publish topic too long", 6, 0b11, publishBody(topicLength: UInt16(tooLong.count), topic: tooLong)),
            ("publish topic not UTF-8", 6, 0b11, publishBody(topicLength: 2, topic: [0xC3, 0x28])),
            ("publish topic cut short", 6, 0b11, publishBody(topicLength: 5, topic: [0x61])),
            ("publish fields cut short", 6, 0b11, [1, 2, 3]),
            ("counts with no entry", 7, 0b11, countsBody(entries: 0, [])),
            ("counts with too many entries", 7, 0b11,
             countsBody(entries: UInt16(BusEncoder.maxTopicCountsPerMessage + 1), entry)),
            ("counts entry cut short", 7, 0b11, countsBody(entries: 2, entry)),
            ("counts with bytes left over", 7, 0b11, countsBody(entries: 1, entry + [0])),
            ("counts topic not UTF-8", 7, 0b11, countsBody(entries: 1, le(UInt16(1)) + [0xFF] + le(UInt32(1)))),
            ("counts topic too long", 7, 0b11,
             countsBody(entries: 1, le(UInt16(tooLong.count)) + tooLong + le(UInt32(1)))),
            ("counts not a whole message", 7, 0b01, countsBody(entries: 1, entry)),
            ("sync with a body", 8, 0b11, [0]),
            ("sync not a whole message", 8, 0b01, []),
        ]
        for (label, kind, flags, bytes) in bad {
            let outcome = decode([rawFrame(kind: kind, flags: flags, body: bytes)] + frames(of: valid))
            #expect(outcome == Outcome(messages: [valid], malformed: 1), "\(label)")
        }
        // The well-formed counts body the bad ones derive from does decode.
        let good = decode([rawFrame(kind: 7, flags: 0b11, body: countsBody(entries: 1, entry))])
        #expect(good == Outcome(messages: [.topicCounts(server: 1, counts: [TopicCount(topic: "a", count: 5)])]))
    }
}
