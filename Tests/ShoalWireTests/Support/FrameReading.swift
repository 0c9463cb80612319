// Drives MessageReader over chunked input and records copies of its events, so outcomes of different
// chunkings can be compared after the views have expired.

import ShoalWire
import Testing

/// A copied InboundEvent.
enum ReadEvent: Equatable, CustomStringConvertible {
    case text([UInt8])
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    case close(UInt16?, [UInt8])

    init(_ event: InboundEvent) {
        switch event {
        case .text(let bytes): self = .text(Array(bytes))
        case .binary(let bytes): self = .binary(Array(bytes))
        case .ping(let bytes): self = .ping(Array(bytes))
        case .pong(let bytes): self = .pong(Array(bytes))
        case .close(let code, let reason): self = .close(code, Array(reason))
        }
    }

    static func text(_ string: String) -> ReadEvent { .text(Array(string.utf8)) }

    var description: String {
        switch self {
        case .text(let b): "text(\(b.count)B: \(String(decoding: b.prefix(32), as: UTF8.self)))"
        case .binary(let b): "binary(\(b.count)B)"
        case .ping(let b): "ping(\(b))"
        case .pong(let b): "pong(\(b))"
        case .close(let code, let reason): "close(\(code.map(String.init) ?? "nil"), \(reason))"
        }
    }
}

/// Everything a reader produced for one input: its events and the error that stopped it, if any.
struct ReadOutcome: Equatable {
    var events: [ReadEvent] = []
    var error: ProtocolViolation?
}

/// Feeds `chunks` to one reader, draining each chunk, and stops at the first error.
func read(
    _ chunks: [[UInt8]], maxMessageSize: Int = Limits.defaultMaxMessageSize, requireMasking: Bool = true,
    maxFragments: Int = Limits.defaultMaxFragments, inflater: MessageInflater? = nil
) -> ReadOutcome {
    var reader = MessageReader(inflater: inflater)
    let configuration = MessageReader.Configuration(
        maxMessageSize: maxMessageSize, requireMasking: requireMasking, maxFragments: maxFragments)
    var outcome = ReadOutcome()
    for chunk in chunks {
        var copy = chunk
        let failed = copy.withUnsafeMutableBytes { buffer -> Bool in
            var offset = 0
            do throws(ProtocolViolation) {
                while let event = try reader.next(buffer, &offset, configuration) {
                    outcome.events.append(ReadEvent(event))
                }
                precondition(offset == buffer.count, "reader returned nil before consuming its input")
                return false
            } catch {
                outcome.error = error
                return true
            }
        }
        if failed { break }
    }
    return outcome
}

/// Reads `input` under every chunking and returns the (identical) outcome. `makeInflater` gives each
/// chunking's reader a fresh inflater (compression negotiated), so context takeover starts clean.
func readEverySplit(
    _ input: [UInt8], maxMessageSize: Int = Limits.defaultMaxMessageSize, requireMasking: Bool = true,
    maxFragments: Int = Limits.defaultMaxFragments, makeInflater: (() -> MessageInflater)? = nil,
    everyOffsetLimit: Int = 2048, sourceLocation: SourceLocation = #_sourceLocation
) -> ReadOutcome {
    expectSameOutcomeForEverySplit(input, everyOffsetLimit: everyOffsetLimit, sourceLocation: sourceLocation) {
        chunks in
        read(
            chunks, maxMessageSize: maxMessageSize, requireMasking: requireMasking, maxFragments: maxFragments,
            inflater: makeInflater?())
    }
}

/// The mask key of RFC 6455 §5.7's examples (37 fa 21 3d).
let exampleKey: UInt32 = 0x37fa_213d

/// A masked client frame; `rsv1` marks the first frame of a compressed message.
func clientFrame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv1: Bool = false) -> [UInt8] {
    FrameWriter.frame(opcode: opcode, fin: fin, rsv1: rsv1, payload: payload, maskKey: exampleKey)
}

func clientFrame(_ opcode: Opcode, _ text: String, fin: Bool = true) -> [UInt8] {
    clientFrame(opcode, Array(text.utf8), fin: fin)
}

/// A masked frame with a raw first byte, for opcodes and bits FrameWriter will not produce.
func rawClientFrame(byte0: UInt8, payload: [UInt8] = []) -> [UInt8] {
    var frame = clientFrame(.binary, payload)
    frame[0] = byte0
    return frame
}

func protocolError(_ outcome: ReadOutcome) -> UInt16? { outcome.error?.closeCode }
