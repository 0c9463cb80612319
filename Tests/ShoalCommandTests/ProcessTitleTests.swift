// The names ps and top show for the cluster's processes, and how a title is cut to its room.
import ShoalCluster
import ShoalPosix
import Testing

@Suite struct ProcessTitleTests {
    @Test func supervisorAndWorkersAreToldApart() {
        let supervisor = ClusterProcessName.supervisor(program: "shoal")
        #expect(supervisor.title == "shoal: supervisor")
        #expect(supervisor.name == "shoal: super")
        let worker = ClusterProcessName.worker(WorkerRole(slot: 1, generation: 4, workers: 2), program: "shoal")
        #expect(worker.title == "shoal: worker 1 (generation 4)")
        #expect(worker.name == "shoal: w1 g4")
        #expect(ClusterProcessName.program("/usr/local/bin/shoal") == "shoal")
        #expect(ClusterProcessName.program("") == "shoal")
    }

    @Test func aLongTitleIsCutWithoutSplittingACharacter() {
        #expect(ProcessTitle.truncated("shoal: supervisor", capacity: 100) == Array("shoal: supervisor".utf8))
        #expect(ProcessTitle.truncated("shoal: supervisor", capacity: 5) == Array("shoal".utf8))
        // "é" is two bytes: a cut after its first byte drops it whole.
        #expect(ProcessTitle.truncated("abé", capacity: 3) == Array("ab".utf8))
        #expect(ProcessTitle.truncated("abé", capacity: 4) == Array("abé".utf8))
        #expect(ProcessTitle.truncated("abc", capacity: 0) == [])
    }
}
