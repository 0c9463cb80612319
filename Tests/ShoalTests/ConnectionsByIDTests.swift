// The id -> connection table of a worker (bus deliveries to local connections): every member is
// found, removed ones are not, through growth and removals in the middle of probe runs.
import ShoalTestSupport
import Testing
@testable import Shoal

@Suite struct ConnectionsByIDTests {
    /// Connection objects need a server; proxies are the lightest ones (no socket).
    private typealias Fixture = DetachedServer

    @Test func agreesWithADictionaryThroughRandomInsertsAndRemovals() throws {
        let fixture = try Fixture()
        var table = ConnectionsByID()
        var reference: [Int: WebSocketConnection] = [:]
        var random = SplitMix64(seed: 42)
        var nextID = 1
        for step in 0..<20_000 {
            // Mostly consecutive ids (as the shared counter hands them out), removals at random.
            if reference.isEmpty || random.next() % 100 < 55 {
                let id = nextID
                nextID += 1 + Int(random.next() % 3)  // other workers take ids in between
                let connection = fixture.connection(id)
                table.insert(connection)
                reference[id] = connection
            } else {
                let id = reference.keys.randomElement(using: &random)!
                table.remove(id: id)
                reference[id] = nil
            }
            if step % 500 == 0 || step == 19_999 {
                #expect(table.count == reference.count)
                for (id, connection) in reference { #expect(table.connection(id: id) === connection) }
                for id in stride(from: 1, to: nextID, by: 1) where reference[id] == nil {
                    #expect(table.connection(id: id) == nil)
                }
            }
        }
    }

    /// Through every growth every member is still there, and the table holds
    /// each one exactly once (released with the table, none kept alive, none released early).
    @Test func growthNeitherLeaksNorReleasesAMember() throws {
        let fixture = try Fixture()
        var weakMembers: [Weak] = []
        do {
            var table = ConnectionsByID()
            // 16 buckets grown twofold, thirteen times, to 131,072.
            for id in 1...60_000 {
                let connection = fixture.connection(id)
                weakMembers.append(Weak(connection))
                table.insert(connection)
            }
            #expect(weakMembers.allSatisfy { $0.object != nil })
            #expect(table.count == 60_000)
            #expect((1...60_000).allSatisfy { table.connection(id: $0)?.id == $0 })
            #expect(table.connection(id: 60_001) == nil)
            table.remove(id: 500)
            #expect(weakMembers[499].object == nil)
            #expect(weakMembers.enumerated().allSatisfy { $0.offset == 499 || $0.element.object != nil })
        }
        #expect(weakMembers.allSatisfy { $0.object == nil })
    }

    private final class Weak {
        weak var object: WebSocketConnection?
        init(_ object: WebSocketConnection) { self.object = object }
    }

    @Test func removingAnAbsentIdChangesNothing() throws {
        let fixture = try Fixture()
        var table = ConnectionsByID()
        table.remove(id: 5)
        let a = fixture.connection(5)
        table.insert(a)
        table.remove(id: 6)
        #expect(table.count == 1)
        #expect(table.connection(id: 5) === a)
        table.remove(id: 5)
        #expect(table.count == 0)
        #expect(table.connection(id: 5) == nil)
    }
}
