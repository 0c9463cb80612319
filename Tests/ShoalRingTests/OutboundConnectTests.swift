// Outbound connects on both backends: a loop connects to its own echo listener (the client inside a
// worker), a connect to a port nobody listens on fails with ECONNREFUSED, and a cancelled connect
// reports ECANCELED. The memory backend refuses every connect and closes the real descriptor.
import ShoalTestSupport
import Foundation
import Glibc
import ShoalPosix
import Testing

@testable import ShoalRing

/// Records how a connect ended and what came back on the connected socket.
private final class RecordingConnector: ConnectDelegate, @unchecked Sendable {
    let loop: EventLoop
    let greeting: [UInt8]
    let handle = Locked<SocketHandle?>(nil)
    let failure = Locked<Int32?>(nil)
    let received = Locked<[UInt8]>([])

    init(loop: EventLoop, greeting: [UInt8]) {
        self.loop = loop
        self.greeting = greeting
    }

    func opened(on handle: SocketHandle) {
        self.handle.withLock { $0 = handle }
        greeting.withUnsafeBytes { loop.write(handle, $0) }
    }

    func connectFailed(error: Int32) { failure.withLock { $0 = error } }
    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) { received.withLock { $0 += bytes } }
    func readEnded(on handle: SocketHandle, error: Int32?) { loop.close(handle, mode: .abort) }
    func closed(on handle: SocketHandle) {}
}

/// A port on 127.0.0.1 that nothing listens on: bound, then closed again.
private func unusedPort() throws -> Int {
    let fd = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false)
    let port = Socket.localPort(fd)
    Socket.close(fd)
    return port
}

@Suite(.serialized) struct OutboundConnectTests {
    static let backends: [String] = ["io_uring", "epoll"]

    private func makeBackend(_ name: String) throws -> any LoopBackend {
        name == "epoll" ? try EpollBackend() : try URingBackend()
    }

    @Test(arguments: backends) func aLoopConnectsToItsOwnListenerAndGetsItsBytesEchoed(backend: String) throws {
        let server = try LoopHarness(backend: makeBackend(backend))
        defer { #expect(server.shutDown()) }
        let greeting = Array("hello from the loop".utf8)
        let connector = RecordingConnector(loop: server.loop, greeting: greeting)
        let address = try #require(SocketAddress.numeric(host: "127.0.0.1", port: server.port))
        _ = server.onLoop { $0.connect(to: address, delegate: connector) }
        #expect(waitUntil { connector.received.value == greeting })
        #expect(connector.failure.value == nil)
        #expect(server.onLoop { $0.openSockets } == 2)  // the accepted side and ours
    }

    @Test(arguments: backends) func aConnectToAPortNobodyListensOnIsRefused(backend: String) throws {
        let server = try LoopHarness(backend: makeBackend(backend), listening: false)
        defer { #expect(server.shutDown()) }
        let connector = RecordingConnector(loop: server.loop, greeting: [])
        let address = try #require(SocketAddress.numeric(host: "127.0.0.1", port: try unusedPort()))
        _ = server.onLoop { $0.connect(to: address, delegate: connector) }
        #expect(waitUntil { connector.failure.value != nil })
        #expect(connector.failure.value == ECONNREFUSED)
        #expect(connector.handle.value == nil)
        #expect(server.onLoop { $0.openSockets } == 0)
    }

    @Test(arguments: backends) func aCancelledConnectReportsECANCELED(backend: String) throws {
        let server = try LoopHarness(backend: makeBackend(backend), listening: false)
        defer { #expect(server.shutDown()) }
        // A listener that never accepts, with a backlog of 0: once one connection waits in its queue,
        // the kernel drops the next SYNs, so the second connect hangs until the cancel.
        let listener = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false, backlog: 0)
        defer { Socket.close(listener) }
        let address = try #require(SocketAddress.numeric(host: "127.0.0.1", port: Socket.localPort(listener)))
        let first = RecordingConnector(loop: server.loop, greeting: [])
        _ = server.onLoop { $0.connect(to: address, delegate: first) }
        #expect(waitUntil { first.handle.value != nil })
        let second = RecordingConnector(loop: server.loop, greeting: [])
        _ = server.onLoop { loop in
            if let handle = loop.connect(to: address, delegate: second) {
                loop.schedule(after: 100_000_000) { loop.cancelConnect(handle) }
            }
        }
        #expect(waitUntil { second.failure.value != nil })
        #expect(second.failure.value == ECANCELED)
        #expect(second.handle.value == nil)
    }

    @Test func theMemoryBackendRefusesConnects() throws {
        let backend = MemoryBackend()
        let loop = try EventLoop(backend: backend)
        defer { loop.shutdown() }
        let connector = RecordingConnector(loop: loop, greeting: [])
        let address = try #require(SocketAddress.numeric(host: "127.0.0.1", port: 9))
        loop.connect(to: address, delegate: connector)
        backend.whenIdle = { [unowned loop] in loop.stop() }  // the loop holds the backend
        try loop.run()
        #expect(connector.failure.value == ECONNREFUSED)
    }

    @Test func namesResolveAndBadNamesSayWhy() throws {
        #expect(SocketAddress.numeric(host: "localhost", port: 80) == nil)
        #expect(SocketAddress.numeric(host: "::1", port: 8080)?.description == "[::1]:8080")
        #expect(try SocketAddress.resolve(host: "localhost", port: 80).isEmpty == false)
        #expect(throws: ResolutionError.self) { try SocketAddress.resolve(host: "no-such-host.invalid", port: 80) }
    }
}
