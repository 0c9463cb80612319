// TLS as the event loop's stream transform, on a loop whose kernel is in memory: the socket's
// delegate reads and writes plaintext while the far end speaks real TLS.
import ShoalRing
import ShoalTLS
import ShoalTestSupport
import Testing

@Suite("TLS stream transform on the loop")
struct TLSStreamTransformTests {
    let certificates = TestCertificates.shared

    private func serverContext() throws -> TLSContext {
        try TLSContext.server(
            identity: TLSIdentity(certificateChainPath: certificates.localhostChain, privateKeyPath: certificates.localhostKey))
    }

    private func clientContext() throws -> TLSContext {
        try TLSContext.client(trustedCertificatesPath: certificates.caCertificate)
    }

    /// A loop socket serving TLS to a client session the test drives.
    private func serving() throws -> (LoopPeer, TLSStreamTransform) {
        let rig = try LoopPeer(peer: try TLSSession(context: try clientContext(), role: .client(serverName: "localhost")))
        let tls = try TLSStreamTransform(context: try serverContext(), role: .server)
        rig.loop.setTransform(tls, for: rig.handle)
        return (rig, tls)
    }

    @Test func theDelegateReadsAndWritesPlaintextWhileTheWireCarriesTLS() throws {
        let (rig, tls) = try serving()
        rig.delegate.onReceive = { [unowned rig] bytes, handle in
            let answer = Array("echo: ".utf8) + Array(bytes)
            answer.withUnsafeBytes { rig.loop.write(handle, $0) }
        }
        rig.pump()
        #expect(tls.isEstablished && rig.peer.isHandshakeComplete)
        #expect(rig.peer.negotiatedProtocol == "http/1.1")
        try rig.peerWrites("GET / HTTP/1.1\r\n\r\n")
        rig.pump()
        #expect(rig.delegate.received == Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(rig.peerReceived == Array("echo: GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(!rig.wire.contains(subsequence: Array("echo".utf8)), "plaintext leaked onto the wire")
        #expect(rig.peerErrors.isEmpty)
    }

    @Test func writesOfOneTurnAreSealedTogetherIntoOneRecord() throws {
        let (rig, _) = try serving()
        rig.pump()
        let before = rig.wire.count
        rig.delegate.onReceive = { [unowned rig] _, handle in
            for n in 0..<100 { Array("frame \(n % 10)!".utf8).withUnsafeBytes { rig.loop.write(handle, $0) } }
        }
        try rig.peerWrites("go")
        rig.pump()
        #expect(rig.peerReceived.count == 800)
        // One TLS 1.3 record costs 22 bytes around its payload; a record per write would be 3,000.
        #expect(rig.wire.count - before - 800 < 100, "\(rig.wire.count - before) bytes on the wire for 800 of plaintext")
    }

    @Test func recordsCutIntoOneBytePiecesStillArriveWhole() throws {
        let (rig, _) = try serving()
        rig.pump(chunk: 1)  // the ClientHello, one byte per loop turn
        try rig.peerWrites(String(repeating: "abcdefgh", count: 300))
        rig.pump(chunk: 7)
        #expect(rig.delegate.received == Array(String(repeating: "abcdefgh", count: 300).utf8))
    }

    @Test func closeNotifyFromThePeerEndsTheReadAndAGracefulCloseSendsOne() throws {
        let (rig, _) = try serving()
        rig.pump()
        rig.peer.close()
        rig.pump()
        #expect(rig.delegate.readEnds == [nil])
        rig.delegate.onReceive = nil
        rig.loopWrites("ok")
        rig.loop.close(rig.handle, mode: .graceful(lingerNanoseconds: 1_000_000_000))
        rig.pump()
        #expect(rig.peerReceived == Array("ok".utf8))  // what was queued left before the end
        #expect(rig.peerProgress.last == .closedByPeer && rig.peer.isClosedByPeer)
    }

    @Test func aMalformedClientHelloGetsAnAlertThenTheSocketCloses() throws {
        let rig = try LoopPeer(peer: try TLSSession(context: try clientContext(), role: .client(serverName: "localhost")))
        let tls = try TLSStreamTransform(context: try serverContext(), role: .server)
        var failures: [(TLSFailureKind, Bool)] = []
        tls.onFailure = { error, duringHandshake in failures.append((error.kind, duringHandshake)) }
        rig.loop.setTransform(tls, for: rig.handle)
        rig.peerSendsRaw([0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0xAA, 0xBB])
        #expect(rig.wire.first == 0x15, "an alert record first: \(rig.wire)")
        #expect(failures.count == 1 && failures.first?.1 == true)
        #expect(rig.delegate.received.isEmpty && rig.delegate.closedCount == 0)
        #expect(!rig.loop.isWritable(rig.handle))
        rig.backend.peerClosed(rig.socket)  // the peer reads the alert and hangs up
        rig.turn()
        #expect(rig.delegate.closedCount == 1)
    }

    @Test func plainHTTPToTheTLSSocketReachesNoDelegateAndIsCountedAsPlainHTTP() throws {
        let rig = try LoopPeer(peer: try TLSSession(context: try clientContext(), role: .client(serverName: "localhost")))
        let tls = try TLSStreamTransform(context: try serverContext(), role: .server)
        var kinds: [TLSFailureKind] = []
        tls.onFailure = { error, _ in kinds.append(error.kind) }
        rig.loop.setTransform(tls, for: rig.handle)
        rig.peerSendsRaw(Array("GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n".utf8))
        #expect(kinds == [.plainHTTP])
        #expect(rig.delegate.received.isEmpty)
        #expect(!rig.loop.isWritable(rig.handle))
    }

    @Test func bytesReadPastAHeaderAreFedToTheTransformWhenItIsSet() throws {
        // What a PROXY header reader does: it read the header and the start of the ClientHello.
        let rig = try LoopPeer(peer: try TLSSession(context: try clientContext(), role: .client(serverName: "localhost")))
        var hello = [UInt8](repeating: 0, count: rig.peer.pendingOutputCount)
        hello.withUnsafeMutableBytes { _ = rig.peer.takeOutput(into: $0) }
        let tls = try TLSStreamTransform(context: try serverContext(), role: .server)
        hello.withUnsafeBytes { rig.loop.setTransform(tls, for: rig.handle, feeding: $0) }
        rig.pump()
        #expect(tls.isEstablished && rig.peer.isHandshakeComplete)
    }

    @Test func aClientTransformSendsItsHelloFirstAndHoldsWhatIsWrittenUntilTheHandshakeEnds() throws {
        // The client side, as the WebSocket client uses it: the loop's socket is the client.
        let rig = try LoopPeer(peer: try TLSSession(context: try serverContext(), role: .server))
        let tls = try TLSStreamTransform(context: try clientContext(), role: .client(serverName: "localhost"))
        var established = 0
        tls.onEstablished = { _ in established += 1 }
        rig.loop.setTransform(tls, for: rig.handle)
        let request = Array("GET /chat HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        request.withUnsafeBytes { rig.loop.write(rig.handle, $0) }
        rig.pump()
        #expect(established == 1)
        #expect(rig.peerReceived == request)
        #expect(rig.wire.first == 0x16, "a handshake record first")
        try rig.peerWrites("HTTP/1.1 101 Switching Protocols\r\n\r\n")
        rig.pump()
        #expect(rig.delegate.received == Array("HTTP/1.1 101 Switching Protocols\r\n\r\n".utf8))
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<($0 + subsequence.count)]) == subsequence }
    }
}
