// Replays every file of the bus fuzz corpus (seeds from BusEncoder, garbage, minimised crash reproducers) through
// the check the libFuzzer target runs (Fuzz/Checks), so `swift test` keeps them passing without a fuzzer.

import Foundation
import ShoalCluster
import ShoalClusterFuzzChecks
import ShoalTestSupport
import ShoalWireFuzzChecks
import Testing

@Suite struct BusCorpusReplay {
    @Test func everyBusCorpusInputKeepsTheCodecInvariants() throws {
        for input in try FuzzCorpus.inputs("bus") {
            do throws(InvariantViolation) {
                try BusCheck.check(input.bytes)
            } catch {
                Issue.record("bus/\(input.name): \(error)")
            }
        }
    }
}

/// The bus seeds of Fuzz/Corpus/bus are BusEncoder's own output (plus hand-made frames for what it never writes),
/// so they follow the wire format: this test fails when they no longer match, and rewrites them with
/// `SHOAL_WRITE_FUZZ_SEEDS=1 swift test --filter BusCorpusSeeds`.
@Suite struct BusCorpusSeeds {
    @Test func seedsAreWhatBusEncoderWrites() throws {
        let folder = FuzzCorpus.folder("bus")
        let write = ProcessInfo.processInfo.environment["SHOAL_WRITE_FUZZ_SEEDS"] == "1"
        if write {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        for (name, bytes) in Self.seeds {
            let file = folder.appendingPathComponent("seed-" + name)
            if write {
                try Data(bytes).write(to: file)
            } else {
                let stored = try? [UInt8](Data(contentsOf: file))
                #expect(stored == bytes, "seed-\(name) differs from what BusEncoder writes now: regenerate the seeds")
            }
        }
    }

    static let hello = Array("hello everyone".utf8)

    static var seeds: [(String, [UInt8])] {
        let messages: [(String, BusMessage)] = [
            ("broadcast-text", .broadcast(server: 3, except: 42, opcode: 0x1, payload: hello)),
            ("broadcast-empty", .broadcast(server: 0, except: 0, opcode: 0x2, payload: [])),
            ("send-binary", .send(connection: 7, opcode: 0x2, payload: (0..<64).map { UInt8($0) })),
            ("send-negative-connection-opcode-f", .send(connection: -1, opcode: 0xF, payload: [0xFF])),
            ("terminate-1000", .terminate(connection: 9, code: 1000, reason: "bye")),
            ("terminate-no-code", .terminate(connection: 9, code: nil, reason: "")),
            ("terminate-cut-reason", .terminate(connection: 1, code: 4000, reason: String(repeating: "é", count: 70))),
            ("terminate-server", .terminateServer(server: 5)),
        ]
        var seeds = messages.map { ($0.0, encoded([$0.1])) }
        seeds.append(("all-kinds", encoded(messages.map(\.1))))
        // The only way the encoder fragments: a payload beyond one frame (about 17 KB of input).
        let large = (0..<17_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        seeds.append(("broadcast-two-fragments", encoded([.broadcast(server: 1, except: 2, opcode: 0x2, payload: large)])))
        seeds.append(("stale-generation", encoded([.send(connection: 7, opcode: 0x1, payload: hello)], generation: 2)))

        // Hand-made: small fragments the decoder must accept, and what no encoder writes.
        let first = frame(kind: 2, flags: 0b01, body: le64(7) + [0x1] + le32(10) + Array("hell".utf8))
        let middle = frame(kind: 2, flags: 0, body: Array("o, ".utf8))
        let last = frame(kind: 2, flags: 0b10, body: Array("you".utf8))
        seeds.append(("hand-send-three-fragments", first + middle + last))
        seeds.append(("hand-new-first-mid-message", first + encoded([.terminateServer(server: 1)]) + middle + last))
        seeds.append(("hand-continuation-without-first", middle + last))
        seeds.append(("hand-last-too-early", first + last))
        seeds.append(("hand-continuation-of-other-kind", first + frame(kind: 1, flags: 0b10, body: Array("o, you".utf8))))
        seeds.append(("hand-unknown-kind", frame(kind: 9, flags: 0b11, body: [1, 2, 3]) + encoded([.terminateServer(server: 1)])))
        seeds.append(("hand-unknown-flag", frame(kind: 4, flags: 0b111, body: le32(1))))
        seeds.append(("hand-reserved-set", frame(kind: 4, flags: 0b11, body: le32(1), reserved: 1)))
        seeds.append(("hand-length-over-max", frame(kind: 2, flags: 0b11, body: [], length: BusEncoder.maxFrameSize)))
        seeds.append(("hand-truncated", Array(encoded([.send(connection: 3, opcode: 1, payload: hello)]).dropLast(5))))
        seeds.append(("hand-terminate-invalid-utf8", frame(kind: 3, flags: 0b11, body: le64(1) + [0xE8, 0x03, 0xC3, 0x28])))
        seeds.append(("hand-terminate-reason-124", frame(kind: 3, flags: 0b11, body: le64(1) + [0xE8, 0x03] + Array(repeating: 0x72, count: 124))))
        seeds.append(("hand-terminate-not-last", frame(kind: 3, flags: 0b01, body: le64(1) + [0, 0])))
        seeds.append(("hand-opcode-16", frame(kind: 2, flags: 0b11, body: le64(7) + [0x10] + le32(1) + [0x41])))
        seeds.append(("hand-total-over-max", frame(kind: 1, flags: 0b01, body: le32(0) + le64(0) + [0x2] + le32(0x0100_0401) + [0])))
        seeds.append(("hand-short-fields", frame(kind: 1, flags: 0b11, body: le32(0) + le64(0))))
        return seeds
    }

    static func encoded(_ messages: [BusMessage], generation: UInt32 = BusCheck.generation) -> [UInt8] {
        var bytes: [UInt8] = []
        for message in messages {
            BusEncoder.encode(message, generation: generation) { size, fill in
                var frame = [UInt8](repeating: 0, count: size)
                frame.withUnsafeMutableBytes { fill($0) }
                bytes += frame
            }
        }
        return bytes
    }

    /// A frame laid out by hand (BusEncoder.swift's table), `length` overriding the body's real length.
    static func frame(
        kind: UInt8, flags: UInt8, body: [UInt8], length: Int? = nil, reserved: UInt16 = 0,
        generation: UInt32 = BusCheck.generation
    ) -> [UInt8] {
        le32(UInt32(length ?? body.count)) + [kind, flags, UInt8(reserved & 0xFF), UInt8(reserved >> 8)] + le32(generation) + body
    }

    static func le32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
    static func le64(_ value: Int64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
}
