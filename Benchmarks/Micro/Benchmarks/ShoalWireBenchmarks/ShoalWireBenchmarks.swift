// Micro-benchmarks of ShoalWire's hot paths (docs/micro-benchmarks.md): frame parse, unmask, UTF-8
// validation, frame encode and the upgrade handshake, each with the number of malloc calls it makes.
//
// Conventions:
// - Inputs are built outside the measured region (in the benchmark's setup, or before
//   `startMeasurement()`), so only ShoalWire's own work is timed and its own mallocs counted.
// - A benchmark with scalingFactor .kilo does 1,000 operations per iteration (`scaledIterations`); the
//   tool prints per-operation figures for those (marked `*`), while the checked-in thresholds hold
//   per-iteration values (so 0 mallocs per iteration means 0 for each of the 1,000 messages).
// - mallocCountTotal counts malloc/calloc/realloc/posix_memalign/aligned_alloc calls seen by the
//   malloc-interposer (the `MallocInterposer` trait of ordo-one/benchmark) between the start and the
//   end of the measurement: Swift class instances, arrays, strings and UnsafeMutableRawPointer.allocate
//   all end up there.

import Benchmark
import ShoalWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Tolerances

/// Time on a shared, noisy 2-core machine: only a slowdown beyond these fails (p90 of the run against
/// the checked-in p90; 200 % = three times as slow: other builds on the machine move p90 by up to 3x
/// here, so this catches gross regressions such as a byte-at-a-time or quadratic path, not 10 %). Allocation counts are exact: one more malloc per
/// iteration than checked in fails, one fewer is reported as an improvement.
var timeTolerance: BenchmarkThresholds { BenchmarkThresholds(relative: [.p90: 200.0]) }
var exactCount: BenchmarkThresholds { BenchmarkThresholds(absolute: [.p90: 0]) }

func configuration(scaling: BenchmarkScalingFactor = .kilo, maxIterations: Int = 5_000) -> Benchmark.Configuration {
    .init(
        metrics: [.wallClock, .mallocCountTotal, .mallocBytesCount],
        timeUnits: .nanoseconds,
        warmupIterations: 3,
        scalingFactor: scaling,
        maxDuration: .seconds(2),
        maxIterations: maxIterations,
        thresholds: [
            .wallClock: timeTolerance,
            .mallocCountTotal: exactCount,
            .mallocBytesCount: exactCount,
        ]
    )
}

// MARK: - Inputs

/// Raw memory owned for the whole run (benchmark closures may not capture non-Sendable pointers).
final class Bytes: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer

    init(count: Int) {
        buffer = .allocate(byteCount: max(count, 1), alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
    }

    init(_ bytes: [UInt8]) {
        buffer = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }

    var count: Int { buffer.count }

    deinit { buffer.deallocate() }
}

/// Deterministic pseudo-random bytes (xorshift), so every run sees the same input.
func pseudoRandomBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

/// ASCII chat-like text of exactly `count` bytes.
func asciiText(_ count: Int) -> [UInt8] {
    let sample = Array("The quick brown fox jumps over the lazy dog; {\"seq\":42,\"ok\":true} ".utf8)
    return (0..<count).map { sample[$0 % sample.count] }
}

/// Text made only of multi-byte UTF-8 (2-, 3- and 4-byte sequences), cut on a code point boundary and
/// padded with ASCII spaces to exactly `count` bytes.
func multiByteText(_ count: Int) -> [UInt8] {
    let sample = Array("ŜĥőàĺŴëƀŝőçķëţ ウェブソケットの魚群 🐟🐠🐡 Ελληνικά Кириллица ".utf8)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count + sample.count)
    while bytes.count < count { bytes += sample }
    var end = count
    while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
    return Array(bytes[..<end]) + [UInt8](repeating: 0x20, count: count - end)
}

/// `frames` client frames (masked, FIN) of one opcode and payload size, back to back, each with its own
/// mask key, as a socket read would deliver them.
func maskedFrames(opcode: Opcode, payloadSize: Int, frames: Int) -> Bytes {
    let payload = opcode == .text ? asciiText(payloadSize) : pseudoRandomBytes(payloadSize)
    var stream: [UInt8] = []
    stream.reserveCapacity(frames * (payloadSize + 14))
    for index in 0..<frames {
        let key = UInt32(truncatingIfNeeded: 0x3779_B97F &* UInt32(index + 1)) | 1
        stream += FrameWriter.frame(opcode: opcode, payload: payload, maskKey: key)
    }
    return Bytes(stream)
}

func sizeName(_ bytes: Int) -> String {
    bytes >= 1024 && bytes % 1024 == 0 ? "\(bytes / 1024)KiB" : "\(bytes)B"
}

/// What Chrome sends to open a WebSocket (headers as captured from Chrome 120, key made up).
let browserUpgradeRequest = Array(
    """
    GET /chat?room=lobby HTTP/1.1\r
    Host: localhost:8080\r
    Connection: Upgrade\r
    Pragma: no-cache\r
    Cache-Control: no-cache\r
    User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r
    Upgrade: websocket\r
    Origin: http://localhost:8080\r
    Sec-WebSocket-Version: 13\r
    Accept-Encoding: gzip, deflate, br\r
    Accept-Language: en-US,en;q=0.9\r
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
    Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r
    \r

    """.utf8)

// MARK: - Benchmarks

let benchmarks: @Sendable () -> Void = {
    // Canary: exactly one malloc per operation, 1,000 per iteration. If the interposer stopped counting
    // (trait off, backend missing), this drops to 0 and the threshold check fails instead of every other
    // benchmark silently passing with 0 mallocs.
    Benchmark("Canary.oneMallocPerOp", configuration: configuration(maxIterations: 1_000)) { benchmark in
        for _ in benchmark.scaledIterations {
            let memory = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
            blackHole(memory)
            memory.deallocate()
        }
    }

    // Frame parse: MessageReader over 1,000 masked single-frame messages in one buffer. Each iteration
    // restores the masked bytes (outside the measurement: the reader unmasks in place) and uses a new
    // reader, then reads all 1,000 messages: header parse, unmask, UTF-8 validation for text.
    for opcode in [Opcode.text, .binary] {
        for size in [16, 125, 4096] {
            let pristine = maskedFrames(opcode: opcode, payloadSize: size, frames: 1_000)
            let work = Bytes(count: pristine.count)
            Benchmark(
                "MessageReader.\(opcode == .text ? "text" : "binary").\(sizeName(size))",
                configuration: configuration(maxIterations: size >= 4096 ? 1_000 : 5_000)
            ) { benchmark in
                work.buffer.copyMemory(from: UnsafeRawBufferPointer(pristine.buffer))
                var reader = MessageReader()
                let rules = MessageReader.Configuration()
                var offset = 0
                var messages = 0
                var bytes = 0
                benchmark.startMeasurement()
                do {
                    while let event = try reader.next(work.buffer, &offset, rules) {
                        switch event {
                        case .text(let payload), .binary(let payload):
                            messages += 1
                            bytes += payload.count
                        default:
                            break
                        }
                    }
                } catch {
                    benchmark.error("unexpected protocol violation: \(error)")
                }
                benchmark.stopMeasurement()
                if messages != benchmark.scaledIterations.count || bytes != messages * size {
                    benchmark.error("read \(messages) messages (\(bytes) B), expected 1000 of \(size) B")
                }
                blackHole(bytes)
            }
        }
    }

    // Unmask: Masking.apply on a payload of each size, at an odd address like a payload after a header.
    for size in [1, 16, 125, 1024, 16 * 1024, 64 * 1024] {
        let storage = Bytes(pseudoRandomBytes(size + 8))
        let payload = UnsafeMutableRawBufferPointer(rebasing: storage.buffer[2..<(2 + size)])
        let scaling: BenchmarkScalingFactor = size >= 16 * 1024 ? .one : .kilo
        let box = Box(payload, owner: storage)
        Benchmark("Masking.apply.\(sizeName(size))", configuration: configuration(scaling: scaling, maxIterations: 20_000)) {
            benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(Masking.apply(maskKey: 0x1234_5678, keyOffset: 0, to: box.buffer))
            }
        }
    }

    // UTF-8 validation of a whole message, ASCII (8-byte fast path) and multi-byte text.
    for (kind, make) in [("ascii", asciiText), ("multibyte", multiByteText)] as [(String, (Int) -> [UInt8])] {
        for size in [1024, 64 * 1024] {
            let text = Bytes(make(size))
            var check = UTF8Validator()
            precondition(check.feed(UnsafeRawBufferPointer(text.buffer)) && check.isAtBoundary, "invalid \(kind) input")
            let scaling: BenchmarkScalingFactor = size >= 16 * 1024 ? .one : .kilo
            Benchmark("UTF8Validator.\(kind).\(sizeName(size))", configuration: configuration(scaling: scaling, maxIterations: 20_000)) {
                benchmark in
                for _ in benchmark.scaledIterations {
                    var validator = UTF8Validator()
                    blackHole(validator.feed(UnsafeRawBufferPointer(text.buffer)) && validator.isAtBoundary)
                }
            }
        }
    }

    // Frame encode: FrameWriter.writeHeader + copy of the payload, 1,000 server frames (unmasked) into
    // one preallocated send buffer, as the send path does.
    for size in [16, 125, 4096] {
        let payload = Bytes(asciiText(size))
        let output = Bytes(count: 1_000 * (FrameWriter.headerSize(payloadLength: size) + size))
        Benchmark("FrameWriter.text.\(sizeName(size))", configuration: configuration(maxIterations: size >= 4096 ? 2_000 : 5_000)) {
            benchmark in
            var offset = 0
            let base = output.buffer.baseAddress!
            for _ in benchmark.scaledIterations {
                offset += FrameWriter.writeHeader(opcode: .text, payloadLength: size, into: base + offset)
                (base + offset).copyMemory(from: payload.buffer.baseAddress!, byteCount: size)
                offset += size
            }
            blackHole(offset)
        }
    }

    // Handshake: HTTPHeadParser on a browser's upgrade request (delivered in one read), then
    // WebSocketUpgrade.validate; and separately the Sec-WebSocket-Accept value (SHA-1 + base64).
    let request = Bytes(browserUpgradeRequest)
    Benchmark("Handshake.parse+validate", configuration: configuration(scaling: .one, maxIterations: 100_000)) { benchmark in
        var parser = HTTPHeadParser()
        do {
            guard case .complete(let head, let consumed) = try parser.feed(UnsafeRawBufferPointer(request.buffer)),
                consumed == request.count
            else {
                benchmark.error("request head not complete")
                return
            }
            blackHole(try WebSocketUpgrade.validate(head))
        } catch {
            benchmark.error("rejected: \(error)")
        }
    }
    Benchmark("Handshake.acceptValue", configuration: configuration(scaling: .one, maxIterations: 100_000)) { _ in
        blackHole(WebSocketUpgrade.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ=="))
    }
}

/// A view into a `Bytes`, made Sendable for capture; keeps its owner alive.
final class Box: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    let owner: Bytes
    init(_ buffer: UnsafeMutableRawBufferPointer, owner: Bytes) {
        self.buffer = buffer
        self.owner = owner
    }
}
