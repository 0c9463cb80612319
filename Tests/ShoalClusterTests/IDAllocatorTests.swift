// Connection ids from the shared counter: 1, 2, 3, ... with no id handed out twice, whether the
// takers are threads of one process or separate processes mapping the same memfd.
import ShoalTestSupport
import Foundation
import Glibc
import ShoalCluster
import ShoalPosix
import Testing

@Suite("Connection ids from the shared counter")
struct IDAllocatorTests {
    @Test("the first id is 1 and ids strictly increase")
    func startsAtOne() throws {
        let segment = try SharedSegment.create(workerSlots: 1, registryCapacity: 1)
        defer { segment.unmap(); segment.closeDescriptor() }
        #expect(segment.lastConnectionID == 0)
        let ids = (0..<1000).map { _ in segment.nextConnectionID() }
        #expect(ids == Array(1...1000))
        #expect(segment.lastConnectionID == 1000)
    }

    @Test("threads taking ids at once get every id exactly once")
    func threadsGetDistinctIDs() throws {
        let segment = try SharedSegment.create(workerSlots: 4, registryCapacity: 1)
        defer { segment.unmap(); segment.closeDescriptor() }
        let threads = 4
        let perThread = 50_000
        let taken = Locked<[[Int]]>(Array(repeating: [], count: threads))
        runOnThreads((0..<threads).map { thread in
            {
                var mine: [Int] = []
                mine.reserveCapacity(perThread)
                for _ in 0..<perThread { mine.append(segment.nextConnectionID()) }
                taken.withLock { $0[thread] = mine }
            }
        })
        let all = taken.withLock { $0 }
        for ids in all {
            #expect(ids.count == perThread)
            #expect(increaseProblem(ids) == nil, "each taker's ids strictly increase")
        }
        #expect(exactlyOnceProblem(all.flatMap { $0 }, total: threads * perThread) == nil)
        #expect(segment.nextConnectionID() == threads * perThread + 1)
    }

    /// The helper: maps the segment through /proc/<test pid>/fd/<n> and checks its magic; waits
    /// at a spin barrier in a second shared file until every helper is ready (so they really run
    /// at once), then takes `count` ids with the same fetch-add as SharedSegment and writes them,
    /// as native u64s, to the output file.
    static let helperSource = #"""
        #include <fcntl.h>
        #include <sched.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>

        static void *map(const char *path, size_t length) {
            int fd = open(path, O_RDWR);
            if (fd < 0) { perror(path); exit(3); }
            void *base = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) { perror("mmap"); exit(4); }
            return base;
        }

        int main(int argc, char **argv) {
            if (argc != 7) {
                fprintf(stderr, "usage: helper SEGMENT COUNTER_OFFSET COUNT OUTPUT BARRIER PARTIES\n");
                return 2;
            }
            long offset = atol(argv[2]), count = atol(argv[3]), parties = atol(argv[6]);
            char *base = map(argv[1], (size_t)offset + 8);
            if (memcmp(base, "SHOALSEG", 8) != 0) { fprintf(stderr, "no SHOALSEG magic\n"); return 5; }
            uint64_t *counter = (uint64_t *)(base + offset);
            uint64_t *ids = malloc((size_t)count * sizeof *ids);
            if (ids == NULL) return 6;
            uint64_t *barrier = map(argv[5], 8);
            __atomic_fetch_add(barrier, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(barrier, __ATOMIC_ACQUIRE) < (uint64_t)parties) sched_yield();
            for (long i = 0; i < count; i++) ids[i] = __atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST) + 1;
            FILE *out = fopen(argv[4], "wb");
            if (out == NULL || fwrite(ids, sizeof *ids, (size_t)count, out) != (size_t)count || fclose(out) != 0) {
                perror("write ids"); return 7;
            }
            return 0;
        }
        """#

    @Test(
        "processes taking ids at once through one memfd get every id exactly once",
        .enabled(if: cCompiler != nil, "needs a C compiler (cc) on PATH to build the helper process"),
        .timeLimit(.minutes(5)))  // ThreadSanitizer on a loaded 2-core machine took over 2
    func processesGetDistinctIDs() throws {
        let compiler = try #require(cCompiler)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("take_ids.c")
        let helper = directory.appendingPathComponent("take_ids").path
        try Self.helperSource.write(to: source, atomically: true, encoding: .utf8)
        try runToCompletion(compiler, ["-O2", "-o", helper, source.path])

        let segment = try SharedSegment.create(workerSlots: 4, registryCapacity: 1)
        defer { segment.unmap(); segment.closeDescriptor() }
        let processes = 4
        let perProcess = 100_000
        let segmentPath = "/proc/\(getpid())/fd/\(segment.descriptor)"

        let barrier = directory.appendingPathComponent("barrier")
        try Data(count: 8).write(to: barrier)

        var helpers: [(ChildProcess, URL)] = []
        for index in 0..<processes {
            let output = directory.appendingPathComponent("ids-\(index)")
            let arguments = [segmentPath, String(SegmentLayout.counterOffset), String(perProcess), output.path,
                             barrier.path, String(processes)]
            let process = try ChildProcess(helper, arguments)
            helpers.append((process, output))
        }
        // Take ids in this process too while the helpers run.
        let ours = (0..<perProcess).map { _ in segment.nextConnectionID() }

        var all = ours
        for (process, output) in helpers {
            try process.wait(seconds: 60)
            #expect(process.succeeded, "helper \(process.pid) \(Spawn.describe(status: process.status ?? 0))")
            let data = try Data(contentsOf: output)
            let ids = data.withUnsafeBytes { raw in
                (0..<raw.count / 8).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
            }
            #expect(ids.count == perProcess)
            #expect(increaseProblem(ids) == nil, "each process's ids strictly increase")
            all += ids
        }
        #expect(increaseProblem(ours) == nil)
        let total = (processes + 1) * perProcess
        #expect(all.count == total)
        #expect(exactlyOnceProblem(all, total: total) == nil, "every id in 1...\(total) exactly once")
        // The helpers are gone; the counter continues where they left it (as after a worker's death).
        #expect(segment.nextConnectionID() == total + 1)
    }
}
