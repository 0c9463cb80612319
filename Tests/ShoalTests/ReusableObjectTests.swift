// How `wss.connections` hands out the other workers' connections: one proxy reused while the caller
// keeps none, a new one as soon as it keeps one, and a kept element never changes under its holder.
import Testing
@testable import Shoal

@Suite struct ReusableObjectTests {
    private final class Box {
        var value: Int
        init(_ value: Int) { self.value = value }
    }

    /// The box for `value`: the reused one set to it, or a new one (counted in `made`).
    private static func box(for value: Int, from reusable: inout ReusableObject<Box>, counting made: inout Int) -> Box {
        reusable.next(reuse: { $0.value = value }, make: { made += 1; return Box(value) })
    }

    @Test func anObjectNobodyKeptIsHandedOutAgain() {
        var reusable = ReusableObject<Box>()
        var made = 0
        let seen = (1...5).map { Self.box(for: $0, from: &reusable, counting: &made).value }
        #expect(seen == [1, 2, 3, 4, 5])
        #expect(made == 1)
    }

    @Test func aKeptObjectStaysWhatItWasAndTheNextIsNew() {
        var reusable = ReusableObject<Box>()
        var made = 0
        var kept: [Box] = []
        for value in 1...4 {
            let box = Self.box(for: value, from: &reusable, counting: &made)
            if value.isMultiple(of: 2) { kept.append(box) }
        }
        // 1 made, reused for 2 (kept), 3 made, reused for 4 (kept).
        #expect(made == 2)
        #expect(kept.map(\.value) == [2, 4])
        #expect(kept[0] !== kept[1])
    }

    /// A snapshot listing local connections and remote entries as a cluster's registry would.
    private func snapshot(_ server: DetachedServer, local: [Int], remote: [(id: Int, slot: Int)]) -> WebSocketServer.Connections {
        WebSocketServer.Connections(
            server: server.wss,
            local: ContiguousArray(local.map { server.connection($0, ownerSlot: 0) }),
            remote: ContiguousArray(remote.map { WebSocketServer.Connections.RemoteEntry(id: $0.id, slot: $0.slot) }))
    }

    private static let remote = [(id: 11, slot: 1), (id: 12, slot: 2), (id: 13, slot: 1), (id: 14, slot: 3)]

    @Test func aLoopOverConnectionsSeesEveryRemoteConnectionWithItsOwner() throws {
        let server = try DetachedServer()
        var listed: [Int] = []
        var owners: [Int] = []
        for connection in snapshot(server, local: [1, 2], remote: Self.remote) {
            listed.append(connection.id)
            owners.append((connection as? RemoteConnection)?.ownerSlot ?? -1)
        }
        #expect(listed == [1, 2, 11, 12, 13, 14])
        #expect(owners == [0, 0, 1, 2, 1, 3])
    }

    @Test func connectionsKeptFromALoopKeepTheirIds() throws {
        let server = try DetachedServer()
        let connections = snapshot(server, local: [1], remote: Self.remote)
        var kept: [WebSocketConnection] = []
        for connection in connections where connection.id != 12 { kept.append(connection) }
        let everything = Array(connections)
        #expect(kept.map(\.id) == [1, 11, 13, 14])
        #expect(kept.map { ($0 as? RemoteConnection)?.ownerSlot ?? -1 } == [0, 1, 1, 3])
        #expect(everything.map(\.id) == [1, 11, 12, 13, 14])
        #expect(Set(everything.map(ObjectIdentifier.init)).count == 5)
        // Index access still gives each its own proxy.
        #expect(connections[3].id == 13 && connections[4].id == 14)
    }
}
