// The shared segment's layout, checked byte by byte against the memfd (the table in
// SharedSegment.swift), and attach's refusal of descriptors that are not a usable segment.
import ShoalTestSupport
import Foundation
import Glibc
@testable import ShoalCluster
import ShoalPosix
import Testing

@Suite("Shared segment layout and attach")
struct SharedSegmentTests {
    @Test("the header holds magic, version, sizes and the creator's pid at the documented offsets")
    func headerFields() throws {
        let segment = try SharedSegment.create(workerSlots: 3, registryCapacity: 10)
        defer { segment.unmap(); segment.closeDescriptor() }
        let fd = segment.descriptor

        #expect(readBytes(fd, at: 0, count: 8) == Array("SHOALSEG".utf8))
        #expect(readU64(fd, at: SegmentLayout.magicOffset) == SharedSegment.magic)
        #expect(readU32(fd, at: 8) == SharedSegment.version)
        #expect(readU32(fd, at: 12) == 3)
        #expect(readU32(fd, at: 16) == 10)
        #expect(readU32(fd, at: 20) == 0, "padding before segmentSize")
        #expect(readU64(fd, at: 24) == UInt64(segment.segmentSize))
        #expect(readU32(fd, at: 32) == UInt32(getpid()))
        #expect(segment.supervisorPID == Int(getpid()))
        #expect(readBytes(fd, at: 36, count: 20).allSatisfy { $0 == 0 }, "padding and server table of a new segment")
        #expect(readU64(fd, at: 56) != 0 && readU64(fd, at: 56) == segment.instanceID, "instance id")
        #expect(readBytes(fd, at: 64, count: 64).allSatisfy { $0 == 0 }, "reserved header bytes")
        #expect(segment.workerSlots == 3 && segment.registryCapacity == 10)

        var info = stat()
        #expect(fstat(fd, &info) == 0)
        #expect(Int(info.st_size) == segment.segmentSize)
    }

    @Test("every block starts on a 128-byte boundary at the documented offset")
    func blockOffsets() throws {
        #expect(SegmentLayout.headerSize == 128)
        #expect(SegmentLayout.counterOffset == 128)
        #expect(SegmentLayout.statsOffset == 256)
        #expect(SegmentLayout.statsStride == 1024)
        #expect(SegmentLayout.metricsOffsetInSlot + WorkerMetrics.size == SegmentLayout.statsStride)
        #expect(SegmentLayout.entrySize == 16)
        for slots in [1, 2, 3, 7, 64] {
            let registry = SegmentLayout.registryOffset(workerSlots: slots)
            #expect(registry == 256 + 1024 * slots + 8192 * slots)
            #expect(registry % 128 == 0)
            for capacity in [1, 3, 4, 1000] {
                #expect(SegmentLayout.partitionOffset(slot: 1, workerSlots: slots, registryCapacity: capacity)
                    == registry + 16 * capacity)
                #expect(SegmentLayout.layoutEnd(workerSlots: slots, registryCapacity: capacity)
                    == registry + slots * capacity * 16)
            }
        }
        let segment = try SharedSegment.create(workerSlots: 2, registryCapacity: 1000)
        defer { segment.unmap(); segment.closeDescriptor() }
        let end = SegmentLayout.layoutEnd(workerSlots: 2, registryCapacity: 1000)
        #expect(end == 256 + 2 * 1024 + 2 * 8192 + 2 * 1000 * 16)
        #expect(segment.segmentSize >= end)
        #expect(segment.segmentSize % Int(sysconf(Int32(_SC_PAGESIZE))) == 0)
        #expect(segment.segmentSize - end < Int(sysconf(Int32(_SC_PAGESIZE))), "rounded up to one page at most")
    }

    @Test("the id counter is the u64 at byte 128, alone on its line")
    func counterOffset() throws {
        let segment = try SharedSegment.create(workerSlots: 1, registryCapacity: 1)
        defer { segment.unmap(); segment.closeDescriptor() }
        #expect(readU64(segment.descriptor, at: 128) == 0)
        for _ in 0..<3 { _ = segment.nextConnectionID() }
        #expect(readU64(segment.descriptor, at: 128) == 3)
        #expect(segment.lastConnectionID == 3)
        #expect(readBytes(segment.descriptor, at: 136, count: 120).allSatisfy { $0 == 0 })
    }

    @Test("worker statistics land at their documented offsets in their own slot's block")
    func statsOffsets() throws {
        let segment = try SharedSegment.create(workerSlots: 3, registryCapacity: 2)
        defer { segment.unmap(); segment.closeDescriptor() }
        let fd = segment.descriptor
        let stats = segment.stats(slot: 1)
        stats.pid = 4242
        stats.generation = 7
        stats.progress = 123_456_789
        stats.progressSeenNanoseconds = 987_654_321
        stats.watchdogKills = 3
        stats.accepting = true
        stats.connections = 12
        stats.add(messagesIn: 1, messagesOut: 2, bytesIn: 3, bytesOut: 4, drops: 5)
        stats.add(messagesIn: 10, bytesOut: 40)
        stats.restarts = 6
        stats.add(.slowConsumerClose, 7)
        stats.add(.idleTimeout, 9)
        stats.add(.idleTimeout, 1)

        let block = 256 + 1024
        let expected: [(Int, UInt64)] = [(0, 4242), (8, 7), (16, 123_456_789), (24, 1), (32, 12),
                                         (40, 11), (48, 2), (56, 3), (64, 44), (72, 5), (80, 6),
                                         (88, 987_654_321), (104, 3), (128, 7), (136, 0), (168, 10)]
        for (field, value) in expected {
            #expect(readU64(fd, at: block + field) == value, "field at +\(field)")
        }
        #expect(readBytes(fd, at: 256, count: 1024).allSatisfy { $0 == 0 }, "slot 0 untouched")
        #expect(readBytes(fd, at: 256 + 2 * 1024, count: 1024).allSatisfy { $0 == 0 }, "slot 2 untouched")
        #expect(stats[.slowConsumerClose] == 7 && stats[.idleTimeout] == 10 && stats[.rejectedOrigin] == 0)
        #expect(stats.messagesIn == 11 && stats.messagesOut == 2 && stats.bytesIn == 3)
        #expect(stats.bytesOut == 44 && stats.drops == 5 && stats.accepting)

        stats.reset()
        #expect(stats.restarts == 6 && stats.watchdogKills == 3, "reset keeps the supervisor's counts")
        #expect(stats.pid == 0 && stats.generation == 0 && stats.progress == 0 && stats.progressSeenNanoseconds == 0)
        #expect(!stats.accepting && stats.connections == 0 && stats.messagesIn == 0 && stats.drops == 0)
        #expect(readBytes(fd, at: block, count: 80).allSatisfy { $0 == 0 })
    }

    @Test("the TLS failure counters take words no other field uses, inside the block, and reset")
    func tlsFailureCounterOffsets() throws {
        let segment = try SharedSegment.create(workerSlots: 2, registryCapacity: 2)
        defer { segment.unmap(); segment.closeDescriptor() }
        let stats = segment.stats(slot: 1)
        let tls: [(WorkerStats.LimitEvent, Int)] = [(.tlsPlainHTTP, 184), (.tlsProtocol, 192), (.tlsMalformed, 112), (.tlsTimeout, 248)]
        for (n, (event, _)) in tls.enumerated() { stats.add(event, n + 1) }
        for (n, (event, offset)) in tls.enumerated() {
            #expect(readU64(segment.descriptor, at: 256 + 1024 + offset) == UInt64(n + 1), "\(event) at +\(offset)")
            #expect(stats[event] == n + 1)
        }
        // Every limit counter has its own 8-byte word inside the 256-byte block, clear of the
        // documented fields (0-104, 120) and of the words 200-247 the Redis link's counters take on main.
        let offsets = WorkerStats.LimitEvent.allCases.map(\.offset)
        #expect(Set(offsets).count == offsets.count)
        for offset in offsets {
            #expect(offset % 8 == 0 && offset + 8 <= 256 && !(offset < 112) && offset != 120 && !(200..<248).contains(offset),
                    "limit counter at +\(offset)")
        }
        stats.reset()
        #expect(tls.allSatisfy { stats[$0.0] == 0 })
    }

    @Test("worker metrics land at their documented offsets, after the slot's stats; a new worker zeroes only its process figures")
    func metricsOffsets() throws {
        let segment = try SharedSegment.create(workerSlots: 3, registryCapacity: 2)
        defer { segment.unmap(); segment.closeDescriptor() }
        let fd = segment.descriptor
        let metrics = segment.metrics(slot: 1)
        metrics.store(ProcessSample(cpuMicroseconds: 11, residentBytes: 22, openDescriptors: 33, startMilliseconds: 44),
                      queuedSendBytes: 55)
        metrics.countClose(code: 1000)
        metrics.countClose(code: 1009)
        metrics.countClose(code: 4000)
        metrics.count(.notFound)
        metrics.observeHandshake(microseconds: 100)  // bucket 1 (<= 256 µs)
        metrics.observeMessage(bytes: 5)  // bucket 0 (<= 16 B)
        metrics.observeMessage(bytes: 1 << 30)  // +Inf (above 64 MiB)
        segment.supervisorProcess = ProcessSample(cpuMicroseconds: 1, residentBytes: 2, openDescriptors: 3, startMilliseconds: 4)

        let block = 256 + 1024 + 256
        let expected: [(Int, UInt64)] = [(0, 11), (8, 22), (16, 33), (24, 44), (32, 55), (40, 1), (40 + 8 * 8, 1),
                                         (40 + 8 * 10, 1), (128 + 16, 1), (192 + 8, 1), (192 + 88, 100),
                                         (288, 1), (288 + 8 * 12, 1), (288 + 8 * 13, 5 + (1 << 30))]
        for (field, value) in expected {
            #expect(readU64(fd, at: block + field) == value, "metrics field at +\(field)")
        }
        #expect(readU64(fd, at: 64) == 1 && readU64(fd, at: 88) == 4, "the supervisor's figures in the header")
        #expect(readBytes(fd, at: 256 + 1024, count: 256).allSatisfy { $0 == 0 }, "the slot's stats untouched")
        #expect(readBytes(fd, at: 256 + 2 * 1024, count: 1024).allSatisfy { $0 == 0 }, "slot 2 untouched")
        #expect(metrics.closes == [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
        #expect(metrics[.notFound] == 1 && metrics[.badRequest] == 0)
        #expect(metrics.handshakes.buckets[1] == 1 && metrics.handshakes.sum == 100)
        #expect(metrics.process.residentBytes == 22 && metrics.queuedSendBytes == 55)
        metrics.resetProcess()
        #expect(readBytes(fd, at: block, count: 40).allSatisfy { $0 == 0 }, "a new worker's process figures start at zero")
        #expect(metrics.closes[0] == 1 && metrics.messageSizes.buckets[0] == 1, "the slot's counters go on")
    }

    @Test("a registry entry lands at its partition's offset with id, server and status")
    func registryOffsets() throws {
        let segment = try SharedSegment.create(workerSlots: 3, registryCapacity: 5)
        defer { segment.unmap(); segment.closeDescriptor() }
        let fd = segment.descriptor
        let first = try #require(segment.registry.insert(id: 77, server: 9, slot: 2))
        let second = try #require(segment.registry.insert(id: 78, server: 4, slot: 2))
        segment.registry.setStatus(second, .closing)
        #expect(first.index == 0 && second.index == 1)

        let partition = SegmentLayout.partitionOffset(slot: 2, workerSlots: 3, registryCapacity: 5)
        #expect(partition == 256 + 3 * 1024 + 3 * 8192 + 2 * 5 * 16)
        #expect(readU64(fd, at: partition) == 77)
        #expect(readU32(fd, at: partition + 8) == 9)
        #expect(readU32(fd, at: partition + 12) == Registry.Status.connected.rawValue)
        #expect(readU64(fd, at: partition + 16) == 78)
        #expect(readU32(fd, at: partition + 24) == 4)
        #expect(readU32(fd, at: partition + 28) == Registry.Status.closing.rawValue)
        // The partition's high-water mark and live count, in its stats block's reserved bytes.
        #expect(readU32(fd, at: 256 + 2 * 1024 + 96) == 2)
        #expect(readU32(fd, at: 256 + 2 * 1024 + 100) == 2)
        let otherPartitions = SegmentLayout.registryOffset(workerSlots: 3)
        #expect(readBytes(fd, at: otherPartitions, count: 2 * 5 * 16).allSatisfy { $0 == 0 })
    }

    @Test("attach in the same process maps the same segment and shares the counter")
    func attachSharesCounter() throws {
        let segment = try SharedSegment.create(workerSlots: 2, registryCapacity: 4)
        defer { segment.unmap(); segment.closeDescriptor() }
        #expect(segment.nextConnectionID() == 1)
        #expect(segment.nextConnectionID() == 2)

        let attached = try SharedSegment.attach(descriptor: dup(segment.descriptor))
        defer { attached.unmap(); attached.closeDescriptor() }
        #expect(attached.workerSlots == 2 && attached.registryCapacity == 4)
        #expect(attached.segmentSize == segment.segmentSize)
        #expect(attached.nextConnectionID() == 3)
        #expect(segment.nextConnectionID() == 4)
        #expect(attached.nextConnectionID() == 5)

        segment.stats(slot: 1).connections = 3
        #expect(attached.stats(slot: 1).connections == 3)
        _ = try #require(segment.registry.insert(id: 4, server: 1, slot: 1))
        #expect(attached.registry.status(id: 4, slot: 1) == .connected)
        #expect(attached.registry.count(server: 1, excludingSlot: 0) == 1)
    }

    /// Attaches `fd` expecting a refusal of `kind` whose message mentions `phrase`.
    private func expectRefusal(_ fd: Int32, _ kind: SegmentError.Kind, mentioning phrase: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let segment = try SharedSegment.attach(descriptor: fd)
            segment.unmap()
            Issue.record("attach accepted a bad descriptor (expected \(kind))", sourceLocation: sourceLocation)
        } catch let error as SegmentError {
            #expect(error.kind == kind, sourceLocation: sourceLocation)
            #expect(error.description.contains(phrase), "message: \(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains("fd \(fd)"), sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected a SegmentError, got \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("attach refuses a descriptor shorter than the header")
    func attachRefusesShort() {
        let fd = makeMemfd(size: 16)
        defer { close(fd) }
        expectRefusal(fd, .tooSmall, mentioning: "smaller than the 128-byte header")

        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        expectRefusal(ends[0], .tooSmall, mentioning: "0 bytes")
    }

    @Test("attach refuses a descriptor that is not a Shoal segment")
    func attachRefusesForeign() {
        let zeros = makeMemfd(size: 4096)
        defer { close(zeros) }
        expectRefusal(zeros, .wrongMagic, mentioning: "not a Shoal segment")

        let text = makeMemfd(size: 4096, contents: Array("#!/bin/sh\necho hello\n".utf8))
        defer { close(text) }
        expectRefusal(text, .wrongMagic, mentioning: "expected \"SHOALSEG\"")
    }

    @Test("attach refuses a segment of another layout version")
    func attachRefusesVersion() throws {
        let segment = try SharedSegment.create(workerSlots: 1, registryCapacity: 1)
        defer { segment.unmap(); segment.closeDescriptor() }
        writeInteger(segment.descriptor, at: SegmentLayout.versionOffset, 99, size: 4)
        expectRefusal(segment.descriptor, .versionMismatch, mentioning: "layout version 99, this binary needs version \(SharedSegment.version)")
    }

    @Test("attach refuses a segment truncated below its header's size")
    func attachRefusesTruncated() throws {
        let segment = try SharedSegment.create(workerSlots: 2, registryCapacity: 1000)
        defer { segment.unmap(); segment.closeDescriptor() }
        let copy = makeMemfd(size: 4096, contents: readBytes(segment.descriptor, at: 0, count: 4096))
        defer { close(copy) }
        expectRefusal(copy, .tooSmall, mentioning: "4096 bytes, header says \(segment.segmentSize)")
    }

    @Test("attach refuses a header whose sizes are impossible")
    func attachRefusesCorrupt() throws {
        let segment = try SharedSegment.create(workerSlots: 2, registryCapacity: 8)
        defer { segment.unmap(); segment.closeDescriptor() }
        let noSlots = makeMemfd(size: 4096, contents: readBytes(segment.descriptor, at: 0, count: 128))
        defer { close(noSlots) }
        writeInteger(noSlots, at: SegmentLayout.workerSlotsOffset, 0, size: 4)
        expectRefusal(noSlots, .corruptHeader, mentioning: "0 worker slots")

        let tooManyEntries = makeMemfd(size: 4096, contents: readBytes(segment.descriptor, at: 0, count: 128))
        defer { close(tooManyEntries) }
        writeInteger(tooManyEntries, at: SegmentLayout.registryCapacityOffset, 1_000_000, size: 4)
        expectRefusal(tooManyEntries, .corruptHeader, mentioning: "below the")
    }
}
