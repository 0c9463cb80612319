// The frame reader as a server runs it (requireMasking true): every read handed to MessageReader.next until
// it returns nil, under split plans the input itself chooses, so the fuzzer explores splits at every offset.

import ShoalWire

/// Invariants of `MessageReader` for arbitrary bytes; shared by the libFuzzer target and the corpus replay.
///
/// Input layout (the first bytes steer the run, the rest is what the client sends):
///
/// | byte      | meaning                                                                                  |
/// |-----------|------------------------------------------------------------------------------------------|
/// | 0         | bits 0-2: maxMessageSize, an index into `messageLimits`; bits 3-5: n, the plan's length; |
/// |           | bit 6: permessage-deflate negotiated (an inflater with context takeover, window 15);     |
/// |           | bit 7: maxFragments 3 instead of the default                                             |
/// | 1...n     | piece sizes, cycled (0 counts as 1)                                                      |
/// | n+1...    | the wire bytes                                                                           |
///
/// The wire bytes are read whole, one byte at a time and in the planned pieces, each piece in a heap block of
/// its own size. Each read must consume within its piece (all of it when `next` returns nil, at least one byte
/// per event), events must respect the limits (data ≤ maxMessageSize, control ≤ 125 bytes, text and close
/// reasons valid UTF-8, close codes valid on the wire), errors must carry 1002/1007/1009 (or 1011, zlib out of
/// memory, when inflating), and the three chunkings must give the same events and the same error.
public enum FrameCheck {
    /// maxMessageSize by the low three bits of byte 0: the default first, then the edges of the length forms.
    public static let messageLimits = [Limits.defaultMaxMessageSize, 0, 1, 125, 126, 1024, 65_535, 65_536]

    /// maxFragments when bit 7 of byte 0 is set: small enough that short inputs reach the limit.
    public static let fewFragments = 3

    /// How one run's readers are configured.
    struct Setup {
        var maxMessageSize: Int
        var maxFragments: Int
        var deflate: Bool

        /// A reader of its own (and an inflater of its own: with context takeover it carries state).
        func makeReader() -> MessageReader {
            MessageReader(inflater: deflate ? MessageInflater(windowBits: 15, noContextTakeover: false) : nil)
        }

        /// The rules every call of the run's readers gets.
        var configuration: MessageReader.Configuration {
            MessageReader.Configuration(maxMessageSize: maxMessageSize, requireMasking: true, maxFragments: maxFragments)
        }
    }

    public static func check(_ input: [UInt8]) throws(InvariantViolation) {
        guard let control = input.first else { return }
        let setup = Setup(
            maxMessageSize: messageLimits[Int(control & 7)],
            maxFragments: control & 0x80 != 0 ? fewFragments : Limits.defaultMaxFragments, deflate: control & 0x40 != 0)
        let planLength = min(Int(control >> 3 & 7), input.count - 1)
        let plan = input[1..<(1 + planLength)].map(Int.init)
        let wire = Array(input[(1 + planLength)...])

        let whole = try read(wire, Chunking.ranges(count: wire.count, sizes: []), setup: setup)
        let bytewise = try read(wire, Chunking.ranges(count: wire.count, sizes: [1]), setup: setup)
        try require(whole == bytewise, "whole input gave \(whole), one byte at a time \(bytewise)")
        if !plan.isEmpty {
            let planned = try read(wire, Chunking.ranges(count: wire.count, sizes: plan), setup: setup)
            try require(whole == planned, "whole input gave \(whole), pieces of \(plan) gave \(planned)")
        }
    }

    /// A copied event, so outcomes can be compared after the reader's views expired.
    enum Event: Equatable {
        case text([UInt8]), binary([UInt8]), ping([UInt8]), pong([UInt8]), close(UInt16?, [UInt8])
    }

    struct Outcome: Equatable, CustomStringConvertible {
        var events: [Event] = []
        var error: ProtocolViolation?

        var description: String {
            let list = events.map { event -> String in
                switch event {
                case .text(let b): "text(\(b.count))"
                case .binary(let b): "binary(\(b.count))"
                case .ping(let b): "ping(\(b.count))"
                case .pong(let b): "pong(\(b.count))"
                case .close(let code, let b): "close(\(code.map(String.init) ?? "nil"), \(b.count))"
                }
            }
            return "[\(list.joined(separator: ", "))] \(error.map { "error \($0.closeCode) \($0.reason)" } ?? "no error")"
        }
    }

    private static func read(
        _ wire: [UInt8], _ pieces: [Range<Int>], setup: Setup
    ) throws(InvariantViolation) -> Outcome {
        var reader = setup.makeReader()
        let configuration = setup.configuration
        let maxMessageSize = setup.maxMessageSize
        let closeCodes: [UInt16] = setup.deflate ? [1002, 1007, 1009, 1011] : [1002, 1007, 1009]
        var outcome = Outcome()
        for range in pieces {
            let failed = try withExactCopy(of: wire, range) { (piece) throws(InvariantViolation) -> Bool in
                var offset = 0
                while true {
                    let before = offset
                    let event: InboundEvent?
                    do throws(ProtocolViolation) {
                        event = try reader.next(piece, &offset, configuration)
                    } catch {
                        try require(closeCodes.contains(error.closeCode), "violation with close code \(error.closeCode)")
                        try require(!error.reason.isEmpty, "violation \(error.closeCode) without a reason")
                        outcome.error = error
                        return true
                    }
                    try require(offset >= before && offset <= piece.count, "offset \(before) -> \(offset) in a piece of \(piece.count)")
                    guard let event else {
                        try require(offset == piece.count, "nil with \(piece.count - offset) bytes left")
                        return false
                    }
                    try require(offset > before, "an event without consuming a byte")
                    outcome.events.append(try checked(event, maxMessageSize: maxMessageSize))
                }
            }
            if failed { break }
        }
        return outcome
    }

    /// Copies the event's bytes (so ASan checks the view lies in live memory) and checks its limits.
    private static func checked(_ event: InboundEvent, maxMessageSize: Int) throws(InvariantViolation) -> Event {
        switch event {
        case .text(let view):
            let bytes = Array(view)
            try require(bytes.count <= maxMessageSize, "text of \(bytes.count) > \(maxMessageSize) bytes")
            try require(String(validating: bytes, as: UTF8.self) != nil, "text message is not UTF-8: \(bytes.prefix(64))")
            return .text(bytes)
        case .binary(let view):
            let bytes = Array(view)
            try require(bytes.count <= maxMessageSize, "binary of \(bytes.count) > \(maxMessageSize) bytes")
            return .binary(bytes)
        case .ping(let view):
            try require(view.count <= Limits.maxControlPayload, "ping of \(view.count) bytes")
            return .ping(Array(view))
        case .pong(let view):
            try require(view.count <= Limits.maxControlPayload, "pong of \(view.count) bytes")
            return .pong(Array(view))
        case .close(let code, let view):
            let reason = Array(view)
            if let code {
                try require(CloseCode.isValidOnWire(code), "close code \(code)")
                try require(reason.count <= Limits.maxControlPayload - 2, "close reason of \(reason.count) bytes")
                try require(String(validating: reason, as: UTF8.self) != nil, "close reason is not UTF-8")
            } else {
                try require(reason.isEmpty, "close without a code but with \(reason.count) reason bytes")
            }
            return .close(code, reason)
        }
    }
}
