// The server words of the segment: workers of one generation must create the same servers, and a
// terminated server stays terminated for workers that start later.
import Testing
@testable import ShoalCluster

@Suite struct ServerTableTests {
    private func withSegment(_ body: (ServerTable) -> Void) throws {
        let segment = try SharedSegment.create(workerSlots: 4, registryCapacity: 8)
        defer {
            segment.unmap()
            segment.closeDescriptor()
        }
        body(segment.servers)
    }

    @Test func workersOfAGenerationMustRecordTheSameSetup() throws {
        try withSegment { table in
            let chatThenUpper = ServerTable.signature(of: ["0 /chat text", "1 /upper text"])
            let upperThenChat = ServerTable.signature(of: ["0 /upper text", "1 /chat text"])
            #expect(chatThenUpper != upperThenChat)
            #expect(table.agreesOnSetup(chatThenUpper, generation: 1))
            #expect(table.agreesOnSetup(chatThenUpper, generation: 1))
            #expect(!table.agreesOnSetup(upperThenChat, generation: 1))
            // A reload may change the servers: the new generation records its own setup.
            #expect(table.agreesOnSetup(upperThenChat, generation: 2))
            #expect(!table.agreesOnSetup(chatThenUpper, generation: 2))
            // A worker of the old generation restarted during the reload is not compared.
            #expect(table.agreesOnSetup(chatThenUpper, generation: 1))
        }
    }

    @Test func terminatedFlagsLastWhileTheSetupStaysTheSame() throws {
        try withSegment { table in
            let setup = ServerTable.signature(of: ["0 /chat text", "1 /upper text"])
            #expect(table.agreesOnSetup(setup, generation: 1))
            #expect(!table.isTerminated(server: 1))
            table.markTerminated(server: 1)
            table.markTerminated(server: 63)
            table.markTerminated(server: 64)  // beyond the tracked servers: not kept
            #expect(table.isTerminated(server: 1) && table.isTerminated(server: 63))
            #expect(!table.isTerminated(server: 0) && !table.isTerminated(server: 64))
            // A reload with the same servers keeps the flags; one with other servers clears them.
            #expect(table.agreesOnSetup(setup, generation: 2))
            #expect(table.isTerminated(server: 1))
            #expect(table.agreesOnSetup(ServerTable.signature(of: ["0 /new text"]), generation: 3))
            #expect(!table.isTerminated(server: 1))
        }
    }

    @Test func signaturesAreStableAcrossProcesses() {
        // FNV-1a 64 of "a\0": a fixed value, whatever the process's hash seed.
        #expect(ServerTable.signature(of: ["a"]) == 0x089b_e207_b544_f1e4)
    }
}
