// Accepted sockets named by an index into the io_uring ring's registered file table (direct
// descriptors): the bookkeeping alone, then the real ring on this kernel (6.18): bytes reach the
// right socket while indices and descriptor numbers are reused, a full table leaves the rest on
// ordinary descriptors, a closed socket is really let go, and the switch turns it all off.
import Foundation
import Glibc
import ShoalPosix
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite struct DirectDescriptorTableTests {
    @Test func indicesAreHandedOutLowestFirstUntilTheTableIsFull() {
        var table = DirectDescriptorTable(capacity: 2)
        #expect(table.assign(40) == 0)
        #expect(table.assign(7) == 1)
        #expect(table.assign(41) == nil)  // full: descriptor 41 stays an ordinary one
        #expect(table.index(of: 40) == 0)
        #expect(table.index(of: 7) == 1)
        #expect(table.index(of: 41) == nil)
        #expect(table.count == 2)
    }

    @Test func aReleasedIndexIsReusedAndItsDescriptorForgotten() {
        var table = DirectDescriptorTable(capacity: 2)
        _ = table.assign(5)
        _ = table.assign(6)
        #expect(table.release(5) == 0)
        #expect(table.release(5) == nil)  // released once only
        #expect(table.index(of: 5) == nil)
        #expect(table.count == 1)
        // The kernel hands descriptor 5 out again: it gets a fresh assignment.
        #expect(table.assign(5) == 0)
        #expect(table.assign(6) == nil)  // already in the table
        #expect(table.release(99) == nil)
        #expect(table.release(-1) == nil)
    }
}

@Suite(.serialized) struct DirectDescriptorTests {
    /// The configuration with the table asked for (it is off by default).
    private func withTable(capacity: Int32? = nil) -> URingConfiguration {
        var configuration = URingConfiguration()
        configuration.directDescriptors = true
        if let capacity { configuration.directDescriptorCapacity = capacity }
        return configuration
    }

    /// (in use, enabled) read on the loop thread.
    private func direct(_ server: LoopHarness) -> (inUse: Int, enabled: Bool)? {
        server.onLoop { loop in
            (loop.backend as? URingBackend).map { ($0.directDescriptorsInUse, $0.usesDirectDescriptors) }
        } ?? nil
    }

    @Test func acceptedSocketsEchoThroughTheTableAndLeaveItWhenClosed() throws {
        let server = try LoopHarness(backend: URingBackend(configuration: withTable()))
        defer { #expect(server.shutDown()) }
        #expect(try everyClientEchoesAtOnce(port: server.port, clientCount: 16, size: 64 * 1024))
        #expect(direct(server)?.enabled == true)
        // The clients closed: every socket ended and left the table.
        #expect(waitUntil { server.closedTotal == 16 })
        #expect(direct(server)?.inUse == 0)
        let backend = try #require(server.loop.backend as? URingBackend)
        #expect(server.onLoop { _ in backend.directDescriptorFailures } == 0)
    }

    @Test func bytesReachTheRightSocketWhileIndicesAndDescriptorsAreReused() throws {
        // Waves of clients that connect, echo their own pattern and leave: the kernel reuses the
        // descriptor numbers at once, the table its indices; a socket named by a stale index would
        // receive or send another client's bytes.
        let server = try LoopHarness(backend: URingBackend(configuration: withTable(capacity: 8)))
        defer { #expect(server.shutDown()) }
        for wave in 0..<25 {
            let clients = try (0..<6).map { _ in try TestClient(port: server.port) }
            let results = concurrently(clients, seconds: 30) { index, client in
                let message = pattern(3000 + index, seed: wave * 6 + index)
                return client.send(message) && client.receive(exactly: message.count) == message
            }
            #expect(results == [Bool](repeating: true, count: 6), "wave \(wave)")
            for client in clients { client.close() }
            #expect(waitUntil { server.closedTotal == (wave + 1) * 6 }, "wave \(wave)")
        }
        #expect(direct(server)?.inUse == 0)
    }

    @Test func socketsBeyondAFullTableUseTheirDescriptors() throws {
        let server = try LoopHarness(backend: URingBackend(configuration: withTable(capacity: 2)))
        defer { #expect(server.shutDown()) }
        let clients = try (0..<5).map { _ in try TestClient(port: server.port) }
        defer { for client in clients { client.close() } }
        for (index, client) in clients.enumerated() {
            let message = pattern(500, seed: index)
            #expect(client.send(message))
            #expect(client.receive(exactly: message.count) == message)
        }
        #expect(direct(server)?.inUse == 2)
    }

    @Test func aClosedSocketIsLetGoOfNotHeldByTheTable() throws {
        // The table holds its own reference to the socket: unless the close also removes it, the
        // socket outlives its descriptor, still owned (/proc/net/tcp gives a socket a process no
        // longer holds inode 0). A graceful close that gives up waiting for the peer's FIN leaves
        // our end in FIN_WAIT2, listed until the kernel's FIN timeout (an abort resets it at once).
        var behaviour = Behaviour()
        behaviour.received = { connection, _ in connection.close(.graceful(lingerNanoseconds: 10_000_000)) }
        let server = try LoopHarness(backend: URingBackend(configuration: withTable()), behaviour: behaviour)
        defer { #expect(server.shutDown()) }
        let client = try TestClient(port: server.port)
        defer { client.close() }
        let clientPort = Socket.localPort(client.fd)
        #expect(client.send([1]))
        let handle = try #require(server.connection(1)).handle
        #expect(waitUntil { server.closedCount(handle) == 1 })
        #expect(direct(server)?.enabled == true)
        // The loop's next turn submits the removal; give it a wake-up to be sure it runs.
        server.loop.execute {}
        #expect(waitUntil(seconds: 5) { !serverSocketIsOwned(serverPort: server.port, clientPort: clientPort) })
        #expect(serverSocketIsListed(serverPort: server.port, clientPort: clientPort))

    }

    @Test func byDefaultSocketsStayOnTheirDescriptors() throws {
        let backend = try URingBackend()
        #expect(!backend.usesDirectDescriptors)
        #expect(!backend.features.contains("FIXED_FILES"))
        let server = try LoopHarness(backend: backend)
        defer { #expect(server.shutDown()) }
        #expect(try everyClientEchoesAtOnce(port: server.port, clientCount: 4, size: 10_000))
        #expect(direct(server)?.inUse == 0)
    }

    @Test func theFeaturesNameTheTable() throws {
        let backend = try URingBackend(configuration: withTable())
        defer { backend.shutdown() }
        #expect(backend.usesDirectDescriptors)
        #expect(backend.directDescriptorRefusal == nil)
        let plain = try URingBackend()
        defer { plain.shutdown() }
        #expect(plain.features.hasPrefix("SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL|RECV_BUNDLE"))
        #expect(backend.features == plain.features + "|FIXED_FILES")
    }
}

/// Whether /proc/net/tcp lists the server's end of the connection (local port `serverPort`,
/// remote port `clientPort`) with an inode, i.e. still held by a process.
private func serverSocketIsOwned(serverPort: Int, clientPort: Int) -> Bool {
    serverSocketInodes(serverPort: serverPort, clientPort: clientPort).contains { $0 != "0" }
}

/// Whether /proc/net/tcp lists the server's end of the connection at all.
private func serverSocketIsListed(serverPort: Int, clientPort: Int) -> Bool {
    !serverSocketInodes(serverPort: serverPort, clientPort: clientPort).isEmpty
}

/// The inode column of every /proc/net/tcp line for that connection's server end.
private func serverSocketInodes(serverPort: Int, clientPort: Int) -> [Substring] {
    // Read to the end: /proc files report size 0, and a read by size stops after the first page.
    guard let file = FileHandle(forReadingAtPath: "/proc/net/tcp") else { return [] }
    defer { try? file.close() }
    let table = String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
    var inodes: [Substring] = []
    for line in table.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        guard fields.count > 9,
              let local = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
              let remote = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) })
        else { continue }
        if local == serverPort && remote == clientPort { inodes.append(fields[9]) }
    }
    return inodes
}
