// maxFragments: a message may have at most this many data frames, empty ones included (1009 beyond).

import ShoalWire
import Testing

/// A message of `count` empty masked frames (text, then continuations, FIN on the last).
private func emptyFragments(_ count: Int) -> [UInt8] {
    var input = clientFrame(.text, [], fin: count == 1)
    input.reserveCapacity(count * 6)
    let middle = clientFrame(.continuation, [], fin: false)
    for _ in 1..<max(count - 1, 1) where count > 2 {
        input += middle
    }
    if count > 1 {
        input += clientFrame(.continuation, [])
    }
    return input
}

@Suite struct FragmentLimitTests {
    @Test func defaultsAboveAutobahnsLargestFragmentedMessage() {
        #expect(Limits.defaultMaxFragments == 100_000)
        #expect(Limits.defaultMaxFragments > 65_536)
    }

    @Test func acceptsExactlyTheDefaultNumberOfFragments() {
        #expect(read([emptyFragments(100_000)]) == ReadOutcome(events: [.text([])]))
    }

    @Test func rejectsOneFragmentMoreThanTheDefaultWith1009() {
        let outcome = read([emptyFragments(100_001)])
        #expect(outcome.error == ProtocolViolation(closeCode: 1009, reason: "message has more than 100000 fragments"))
        #expect(outcome.events.isEmpty)
    }

    /// Autobahn 9.3.1: a 4 MiB text message in 65,536 fragments of 64 bytes.
    @Test func acceptsAutobahns65536Fragments() {
        let chunk = [UInt8](repeating: UInt8(ascii: "*"), count: 64)
        var input = clientFrame(.text, chunk, fin: false)
        let middle = clientFrame(.continuation, chunk, fin: false)
        for _ in 1..<65_535 {
            input += middle
        }
        input += clientFrame(.continuation, chunk)
        let outcome = read([input])
        #expect(outcome.error == nil)
        guard case .text(let text)? = outcome.events.first else {
            Issue.record("no message: \(outcome)")
            return
        }
        #expect(text.count == 4 << 20)
    }

    @Test func countsEmptyFramesButNotControlFramesAndRestartsPerMessage() {
        let three = clientFrame(.binary, [1], fin: false) + clientFrame(.ping, []) + clientFrame(.continuation, [], fin: false)
            + clientFrame(.pong, []) + clientFrame(.continuation, [2])
        let input = three + three
        #expect(
            readEverySplit(input, maxFragments: 3)
                == ReadOutcome(events: [.ping([]), .pong([]), .binary([1, 2]), .ping([]), .pong([]), .binary([1, 2])]))
        let four = clientFrame(.binary, [1], fin: false) + clientFrame(.continuation, [], fin: false)
            + clientFrame(.continuation, [], fin: false) + clientFrame(.continuation, [2])
        #expect(readEverySplit(four, maxFragments: 3).error?.closeCode == 1009)
        #expect(readEverySplit(clientFrame(.text, "single"), maxFragments: 1) == ReadOutcome(events: [.text("single")]))
    }

    @Test func countsTheFragmentsOfCompressedMessagesToo() {
        let deflater = MessageDeflater(noContextTakeover: true)
        let bytes = compressed(Array("Hello".utf8), with: deflater)
        let input = clientFrame(.text, Array(bytes.prefix(3)), fin: false, rsv1: true)
            + clientFrame(.continuation, [], fin: false) + clientFrame(.continuation, Array(bytes.dropFirst(3)))
        let makeInflater = { MessageInflater(noContextTakeover: true) }
        #expect(readEverySplit(input, maxFragments: 3, makeInflater: makeInflater) == ReadOutcome(events: [.text("Hello")]))
        #expect(readEverySplit(input, maxFragments: 2, makeInflater: makeInflater).error?.closeCode == 1009)
    }
}
