// `--workers auto` and the start-up warnings: the least of a worker's limits decides how many
// connections it holds, and enough workers are started for the connections the cluster should hold.
import Shoal
import Testing

@Suite("Worker sizing")
struct WorkerSizingTests {
    private func sizing(cpus: Int = 2, files: Int = 20_000, registry: Int = 262_144, perWorker: Int? = nil,
                        cluster: Int? = nil) -> WorkerSizing {
        WorkerSizing(cpus: cpus, openFilesLimit: files, registryCapacity: registry, maxConnectionsPerWorker: perWorker,
                     clusterConnections: cluster)
    }

    @Test func withoutATargetAutoIsOnePerCPU() {
        #expect(sizing(cpus: 8).automaticWorkers == 8)
        #expect(sizing(cpus: 0).automaticWorkers == 1)
        #expect(sizing(cpus: 8).warnings(workers: 8).isEmpty)
    }

    @Test func aMillionUnderTwentyThousandFilesTakesFiftyThreeWorkers() {
        // 19,639 descriptors each (20,000 - 256 - 105 bus channel ends); the registry (2,097,152 /
        // 106 slots = 19,784) is not the bound
        let s = sizing(registry: 2_097_152, cluster: 1_000_000)
        #expect(s.capacityPerWorker(workers: 53) == 19_639)
        #expect(s.capacityPerWorker(workers: 51) == 19_643)
        // 51 × 19,643 = 1,001,793 hold a million only if the kernel spreads them evenly: the busiest
        // of 51 gets about 19,608 + 2.3 × 140, over 19,643 (measured: two workers refused with 503)
        #expect(WorkerSizing.busiestShare(of: 1_000_000, workers: 51) == 20_169)
        #expect(WorkerSizing.busiestShare(of: 1_000_000, workers: 53) == 19_418)
        #expect(s.automaticWorkers == 53)
        #expect(s.warnings(workers: 53).isEmpty)
        #expect(s.warnings(workers: 51).isEmpty)  // fixed --workers 51: enough in total, not warned
        #expect(s.warnings(workers: 50).count == 1)
    }

    @Test func autoLeavesRoomForTheUnevenSpread() {
        // 2,500 over workers of 1,000: 3 hold them (busiest about 834 + 116 = 950)
        #expect(sizing(perWorker: 1_000, cluster: 2_500).automaticWorkers == 3)
        // 2,900 over 3 workers of 1,000 fits only an even spread (967 + 125): a fourth is started
        #expect(sizing(perWorker: 1_000, cluster: 2_900).automaticWorkers == 4)
    }

    @Test func theRegistryShareAndMaxConnectionsBoundAWorkerToo() {
        // default registry 262,144 over 2 × 4 slots = 32,768, under the 1M-files descriptors
        #expect(sizing(files: 1_048_576).capacityPerWorker(workers: 4) == 32_768)
        #expect(sizing(perWorker: 1_000).capacityPerWorker(workers: 4) == 1_000)
        #expect(sizing(cpus: 2, perWorker: 1_000, cluster: 10_000).automaticWorkers == 12)  // 834 + 116 over 12 (11: 910 + 121)
    }

    @Test func autoStopsAtTheMostWorkersAndThenWarns() {
        let s = sizing(files: 1_048_576, registry: 1 << 30, perWorker: 1_000, cluster: 1_000_000)
        #expect(s.mostWorkers == WorkerSizing.maximumWorkers)
        #expect(s.automaticWorkers == WorkerSizing.maximumWorkers)
        #expect(s.warnings(workers: s.automaticWorkers).count == 1)
    }

    @Test func theSupervisorsBusDescriptorsBoundTheWorkers() {
        // 2w(2w-1) + w + 256 ≤ 20,000: 70 workers (19,786), not 71 (20,349)
        let s = sizing(registry: 1 << 30, cluster: 2_000_000)
        #expect(WorkerSizing.supervisorDescriptors(workers: 70) == 19_786)
        #expect(s.mostWorkers == 70)
        #expect(s.automaticWorkers == 70)  // 70 × 19,744 is short of 2,000,000: warned
        #expect(s.warnings(workers: 70).count == 1)
        let fixed = s.warnings(workers: 80)
        #expect(fixed.count == 2)
        #expect(fixed.first?.contains("80 workers need 25776 descriptors in the supervisor") == true)
    }

    @Test func maxConnectionsAboveTheDescriptorsIsWarnedAbout() {
        let w = sizing(perWorker: 50_000).warnings(workers: 2)
        #expect(w.count == 1)
        #expect(w.first?.contains("--max-connections 50000") == true)
    }
}
