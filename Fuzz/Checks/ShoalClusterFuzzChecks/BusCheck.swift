// The bus codec under arbitrary bytes: whatever a peer worker sends, BusDecoder must only deliver messages within
// the limits, count the rest, and everything it delivers must survive BusEncoder and a second decode unchanged.

import ShoalCluster
import ShoalWireFuzzChecks

/// Invariants of `BusDecoder` (and of `BusEncoder` on what it decodes); shared by the libFuzzer target and the corpus
/// replay.
///
/// The input is bytes as they would arrive from a peer, for a receiver of generation `generation`. They are fed as
/// one record and as a stream cut into pieces derived from their hash. Each decode must deliver only messages within
/// the limits (opcode ≤ 0x0F, payload ≤ maxMessageSize, close reason ≤ 123 UTF-8 bytes, code 0 reported as nil),
/// with counters that never go down and never exceed one per 12-byte header fed; when the single-record decode met
/// nothing malformed, the stream decode must agree with it. Then the delivered messages are encoded again (frames
/// ≤ maxFrameSize, sizes as `encodedSize` predicts) and decoded again, frame by frame and as a split stream, to the
/// same messages with zero counters.
public enum BusCheck {
    /// The receiving worker's generation; seeds are encoded for it (and a few for another, to be stale).
    public static let generation: UInt32 = 1
    /// The decoders' message limit: below the server's 16 MiB + 1 KiB, and still above anything an input of fuzzer
    /// size carries. A first fragment makes the decoder reserve its announced total, so a smaller limit keeps that
    /// cheap under ASan (about 20% more execs/s than 16 MiB in a 30 s comparison), and "total beyond the limit" is
    /// reachable with smaller numbers. The code paths are the same as with the default.
    public static let maxMessageSize = 64 * 1024

    public static func check(_ input: [UInt8]) throws(InvariantViolation) {
        let sizes = Chunking.sizesDerived(from: input)
        let record = try decode(input, pieces: Chunking.ranges(count: input.count, sizes: []))
        let stream = try decode(input, pieces: Chunking.ranges(count: input.count, sizes: sizes))
        if record.malformed == 0 {
            try require(record == stream, "one record gave \(record), pieces \(sizes.prefix(8))... gave \(stream)")
        }

        // Round trip what the single record delivered.
        var frames: [[UInt8]] = []
        for message in record.messages {
            var size = 0
            var failure: InvariantViolation?
            BusEncoder.encode(message, generation: generation) { frameSize, fill in
                if frameSize > BusEncoder.maxFrameSize || frameSize < 12 {
                    failure = failure ?? InvariantViolation("encoder emitted a frame of \(frameSize) bytes")
                    return
                }
                var frame = [UInt8](repeating: 0xEE, count: frameSize)
                frame.withUnsafeMutableBytes { fill($0) }
                frames.append(frame)
                size += frameSize
            }
            if let failure { throw failure }
            let predicted = BusEncoder.encodedSize(of: message)
            try require(size == predicted, "encoded \(size) bytes, encodedSize says \(predicted): \(Outcome.summary(message))")
        }
        let expected = Outcome(messages: record.messages)
        let perFrame = try decode(frames)
        try require(perFrame == expected, "re-encoded frames decoded to \(perFrame), expected \(expected)")
        let joined = Array(frames.joined())
        let restream = try decode(joined, pieces: Chunking.ranges(count: joined.count, sizes: sizes))
        try require(restream == expected, "re-encoded stream decoded to \(restream), expected \(expected)")
    }

    /// The messages a decoder delivered, in order, and its counters at the end.
    struct Outcome: Equatable, CustomStringConvertible {
        var messages: [BusMessage] = []
        var stale = 0
        var discarded = 0
        var malformed = 0

        var description: String {
            "[\(messages.map(Self.summary).joined(separator: ", "))] stale \(stale) discarded \(discarded) malformed \(malformed)"
        }

        static func summary(_ message: BusMessage) -> String {
            switch message {
            case .broadcast(let server, let except, let opcode, let payload):
                "broadcast(\(server), except \(except), op \(opcode), \(payload.count) bytes)"
            case .send(let connection, let opcode, let payload):
                "send(\(connection), op \(opcode), \(payload.count) bytes)"
            case .sendMany(let connections, let opcode, let payload):
                "sendMany(\(connections.count) connections, op \(opcode), \(payload.count) bytes)"
            case .publish(let server, let topic, let except, let opcode, let payload):
                "publish(\(server), \(topic.utf8.count)-byte topic, except \(except), op \(opcode), \(payload.count) bytes)"
            case .terminate, .terminateServer, .topicCounts, .topicSync:
                "\(message)"
            }
        }
    }

    private static func decode(_ input: [UInt8], pieces: [Range<Int>]) throws(InvariantViolation) -> Outcome {
        try decode(pieces.map { Array(input[$0]) })
    }

    /// Feeds each piece, in a heap block of its own size, to one fresh decoder.
    private static func decode(_ pieces: [[UInt8]]) throws(InvariantViolation) -> Outcome {
        var decoder = BusDecoder(generation: generation, maxMessageSize: maxMessageSize)
        var outcome = Outcome()
        var fed = 0
        var failure: InvariantViolation?
        for piece in pieces {
            try withExactCopy(of: piece, 0..<piece.count) { (bytes) throws(InvariantViolation) in
                decoder.feed(UnsafeRawBufferPointer(bytes)) { message in
                    do throws(InvariantViolation) {
                        try checkLimits(message, maxMessageSize: Self.maxMessageSize)
                    } catch {
                        failure = failure ?? error
                    }
                    outcome.messages.append(message)
                }
            }
            if let failure { throw failure }
            fed += piece.count
            try require(
                decoder.staleFrames >= outcome.stale && decoder.discardedMessages >= outcome.discarded
                    && decoder.malformedFrames >= outcome.malformed,
                "a counter went down: \(decoder.staleFrames) \(decoder.discardedMessages) \(decoder.malformedFrames) after \(outcome)")
            outcome.stale = decoder.staleFrames
            outcome.discarded = decoder.discardedMessages
            outcome.malformed = decoder.malformedFrames
            // Every counted frame had a 12-byte header; a discarded message had a first fragment.
            try require(
                (outcome.stale + outcome.malformed) * 12 <= fed && outcome.discarded * 12 <= fed,
                "counters \(outcome) after \(fed) bytes")
        }
        return outcome
    }

    private static func checkLimits(_ message: BusMessage, maxMessageSize: Int) throws(InvariantViolation) {
        switch message {
        case .sendMany(let connections, let opcode, let payload):
            try require(
                (1...BusEncoder.maxConnectionsPerMessage).contains(connections.count), "sendMany to \(connections.count)")
            try require(opcode <= 0x0F, "opcode \(opcode)")
            try require(payload.count <= maxMessageSize, "payload of \(payload.count) > \(maxMessageSize) bytes")
        case .broadcast(_, _, let opcode, let payload), .send(_, let opcode, let payload):
            try require(opcode <= 0x0F, "opcode \(opcode)")
            try require(payload.count <= maxMessageSize, "payload of \(payload.count) > \(maxMessageSize) bytes")
        case .terminate(_, let code, let reason):
            try require(code != 0, "code 0 delivered instead of nil")
            try require(reason.utf8.count <= BusEncoder.maxReasonLength, "reason of \(reason.utf8.count) bytes")
        case .publish(_, let topic, _, let opcode, let payload):
            try require(topic.utf8.count <= BusEncoder.maxTopicLength, "topic of \(topic.utf8.count) bytes")
            try require(opcode <= 0x0F, "opcode \(opcode)")
            try require(payload.count <= maxMessageSize, "payload of \(payload.count) > \(maxMessageSize) bytes")
        case .topicCounts(_, let counts):
            try require(
                (1...BusEncoder.maxTopicCountsPerMessage).contains(counts.count), "topicCounts with \(counts.count)")
            try require(counts.allSatisfy { $0.topic.utf8.count <= BusEncoder.maxTopicLength }, "a topic too long")
        case .terminateServer, .topicSync:
            break
        }
    }
}
