// The one helper every parser test goes through: the same input fed whole, one byte at a time, split
// in two at every offset and split at random places must give the same outcome.

import ShoalTestSupport
import Testing

/// A small seeded generator so random splits are reproducible.

/// Every way we cut `input` into chunks: whole, bytewise, every two-way split (sampled above
/// `everyOffsetLimit` bytes so large frames stay fast in debug builds) and seeded random multi-splits.
func chunkings(of input: [UInt8], everyOffsetLimit: Int = 2048, randomRounds: Int = 24) -> [(String, [[UInt8]])] {
    var result: [(String, [[UInt8]])] = [("whole", [input])]
    if input.count > 1 {
        result.append(("one byte at a time", input.map { [$0] }))
    }
    var offsets = Array(1..<max(1, input.count))
    if input.count > everyOffsetLimit {
        // Every offset near both ends (where headers live), a stride through the middle.
        offsets = offsets.filter { $0 < 64 || $0 > input.count - 64 || $0 % 997 == 0 }
    }
    for cut in offsets {
        result.append(("split at \(cut)", [Array(input[..<cut]), Array(input[cut...])]))
    }
    var rng = SplitMix64(seed: UInt64(input.count) &* 31 &+ 7)
    for round in 0..<randomRounds where input.count > 2 {
        let pieces = Int.random(in: 2...min(12, input.count), using: &rng)
        let cuts = Set((0..<(pieces - 1)).map { _ in Int.random(in: 1..<input.count, using: &rng) }).sorted()
        var chunks: [[UInt8]] = []
        var start = 0
        for cut in cuts + [input.count] {
            chunks.append(Array(input[start..<cut]))
            start = cut
        }
        result.append(("random split #\(round) at \(cuts)", chunks))
    }
    return result
}

/// Runs `run` for every chunking of `input`, expects the same outcome each time, and returns the
/// outcome of the whole input so the test can check its content.
@discardableResult
func expectSameOutcomeForEverySplit<Outcome: Equatable>(
    _ input: [UInt8],
    everyOffsetLimit: Int = 2048,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ run: ([[UInt8]]) -> Outcome
) -> Outcome {
    let reference = run([input])
    for (label, chunks) in chunkings(of: input, everyOffsetLimit: everyOffsetLimit).dropFirst() {
        let outcome = run(chunks)
        if outcome != reference {
            Issue.record("\(label): \(outcome) differs from whole-input \(reference)", sourceLocation: sourceLocation)
            break  // one report is enough; the rest would repeat it
        }
    }
    return reference
}
