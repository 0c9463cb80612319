// The TLS engine without sockets: a client and a server session joined in memory, with real
// certificates made by openssl for the run.
import ShoalTLS
import ShoalTestSupport
import Testing

@Suite("TLS session")
struct TLSSessionTests {
    let certificates = TestCertificates.shared

    private func serverContext(keys: TLSTicketKeys? = nil, additional: [TLSIdentity] = []) throws -> TLSContext {
        try TLSContext.server(
            identity: TLSIdentity(certificateChainPath: certificates.localhostChain, privateKeyPath: certificates.localhostKey),
            additional: additional, tickets: keys)
    }

    private func clientContext() throws -> TLSContext {
        try TLSContext.client(trustedCertificatesPath: certificates.caCertificate)
    }

    private func connect(_ client: TLSContext, _ server: TLSContext, name: String? = "localhost",
                         resuming: TLSResumption? = nil) throws -> MemoryPipe {
        let pipe = MemoryPipe(
            client: try TLSSession(context: client, role: .client(serverName: name), resuming: resuming),
            server: try TLSSession(context: server, role: .server))
        try pipe.pump()
        return pipe
    }

    private func keys(_ seed: UInt64, rotationSeconds: Int = 3600) throws -> TLSTicketKeys {
        var rng = SplitMix64(seed: seed)
        return try TLSTicketKeys(secret: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }, rotationSeconds: rotationSeconds)
    }

    @Test func aHandshakeAgreesOnTLS13AndHTTP11AndDataCrossesBothWaysInRecords() throws {
        let pipe = try connect(try clientContext(), try serverContext())
        #expect(pipe.client.isHandshakeComplete && pipe.server.isHandshakeComplete)
        #expect(pipe.serverProgress.contains(.handshakeCompleted) && pipe.clientProgress.contains(.handshakeCompleted))
        #expect(pipe.client.protocolVersion == "TLSv1.3" && pipe.server.protocolVersion == "TLSv1.3")
        #expect(pipe.server.negotiatedProtocol == "http/1.1" && pipe.client.negotiatedProtocol == "http/1.1")
        #expect(pipe.server.requestedServerName == "localhost")
        #expect(pipe.client.peerCertificateSubject == "/CN=localhost")

        var rng = SplitMix64(seed: 7)
        let upload = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        try upload.withUnsafeBytes { try pipe.client.send($0) }
        try Array("HTTP/1.1 101".utf8).withUnsafeBytes { try pipe.server.send($0) }
        try pipe.pump(chunk: 1_000)  // records cut across many reads
        #expect(pipe.serverReceived == upload)
        #expect(pipe.clientReceived == Array("HTTP/1.1 101".utf8))
    }

    @Test func aClientCappedAtTLS12GetsAnIntermediateCipherAndStillWorks() throws {
        let client = try clientContext()
        client.limitToTLS12()
        let pipe = try connect(client, try serverContext())
        #expect(pipe.server.protocolVersion == "TLSv1.2")
        try Array("ping".utf8).withUnsafeBytes { try pipe.client.send($0) }
        try pipe.pump()
        #expect(pipe.serverReceived == Array("ping".utf8))
    }

    @Test func aTicketFromOneWorkerResumesOnAnotherThatSharesTheKeysAndNotOnOneThatDoesNot() throws {
        let client = try clientContext()
        let first = try connect(client, try serverContext(keys: try keys(1)))
        #expect(!first.client.isResumed)
        let ticket = try #require(first.client.resumption())

        let sameKeys = try connect(client, try serverContext(keys: try keys(1)), resuming: ticket)
        #expect(sameKeys.client.isResumed && sameKeys.server.isResumed)

        let otherKeys = try connect(client, try serverContext(keys: try keys(2)), resuming: ticket)
        #expect(!otherKeys.server.isResumed)
        #expect(otherKeys.client.isHandshakeComplete)
    }

    @Test func ticketKeysRotateATicketOpensInTheNextPeriodAndNotTheOneAfter() throws {
        let client = try clientContext()
        let rotating = try keys(3, rotationSeconds: 600)
        let server = try serverContext(keys: rotating)
        let ticket = try #require(try connect(client, server).client.resumption())
        #expect(try connect(client, server, resuming: ticket).server.isResumed)
        rotating.advanceClock(bySeconds: 600)
        let nextPeriod = try connect(client, server, resuming: ticket)
        #expect(nextPeriod.server.isResumed)
        rotating.advanceClock(bySeconds: 600)
        let periodAfter = try connect(client, server, resuming: ticket)
        #expect(!periodAfter.server.isResumed && periodAfter.client.isHandshakeComplete)
    }

    @Test func sniPicksTheCertificateThatCoversTheNameAndTheFirstOneOtherwise() throws {
        let other = TLSIdentity(certificateChainPath: certificates.otherChain, privateKeyPath: certificates.otherKey)
        let server = try serverContext(additional: [other])
        let client = try clientContext()
        #expect(try connect(client, server, name: "www.other.example").server.localCertificateSubject == "/CN=other.example")
        #expect(try connect(client, server, name: "localhost").server.localCertificateSubject == "/CN=localhost")
        #expect(try connect(client, server, name: nil).server.localCertificateSubject == "/CN=localhost")
    }

    @Test func aClientSendsAHostNameAsSNIButNeverAnAddress() throws {
        let server = try serverContext()
        let client = try clientContext()
        #expect(try connect(client, server, name: "localhost").server.requestedServerName == "localhost")
        // The certificate covers 127.0.0.1 (an IP entry): checked as an address, not named in SNI.
        let byAddress = try connect(client, server, name: "127.0.0.1")
        #expect(byAddress.client.isHandshakeComplete)
        #expect(byAddress.server.requestedServerName == nil)
        // ::1 is not in the certificate: the handshake fails, but only after the ClientHello was read.
        let pipe = MemoryPipe(client: try TLSSession(context: client, role: .client(serverName: "::1")),
                              server: try TLSSession(context: server, role: .server))
        #expect(throws: TLSError.self) { try pipe.pump() }
        #expect(pipe.server.requestedServerName == nil)
    }

    @Test func anRSACertificateServesToo() throws {
        let server = try TLSContext.server(
            identity: TLSIdentity(certificateChainPath: certificates.rsaChain, privateKeyPath: certificates.rsaKey))
        let pipe = try connect(try clientContext(), server)
        #expect(pipe.client.isHandshakeComplete)
    }

    @Test func aClientRefusesACertificateItDoesNotTrustOrThatNamesAnotherHost() throws {
        let server = try serverContext()
        let systemTrust = try TLSContext.client()
        let untrusted = #expect(throws: TLSError.self) { _ = try connect(systemTrust, server) }
        #expect(untrusted?.description.contains("certificate verify failed") == true, "\(String(describing: untrusted))")
        #expect(throws: TLSError.self) { _ = try connect(try clientContext(), server, name: "wrong.example") }
    }

    private func feedServer(_ bytes: [UInt8]) throws -> TLSSession {
        let session = try TLSSession(context: try serverContext(), role: .server)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
        defer { scratch.deallocate() }
        _ = try bytes.withUnsafeBytes { try session.receive($0, scratch: scratch) { _ in } }
        return session
    }

    @Test func plainHTTPOnTheTLSPortFailsTheHandshakeWithAMessageThatSaysSo() throws {
        let request = Array("GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n".utf8)
        let error = #expect(throws: TLSError.self) { _ = try feedServer(request) }
        #expect(error?.description.hasPrefix("TLS handshake failed") == true)
        #expect(error?.description.contains("http request") == true, "\(String(describing: error))")
    }

    @Test func aMalformedClientHelloGetsAnAlertBeforeTheEnd() throws {
        let session = try TLSSession(context: try serverContext(), role: .server)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
        defer { scratch.deallocate() }
        // A handshake record holding a ClientHello whose body is cut short.
        let record: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0xAA, 0xBB]
        #expect(throws: TLSError.self) { _ = try record.withUnsafeBytes { try session.receive($0, scratch: scratch) { _ in } } }
        #expect(session.pendingOutputCount >= 7)  // one alert record: 5-byte header, level, description
        #expect(!session.isHandshakeComplete)
    }

    @Test func aHandshakeFedOneByteAtATimeCompletes() throws {
        let pipe = MemoryPipe(
            client: try TLSSession(context: try clientContext(), role: .client(serverName: "localhost")),
            server: try TLSSession(context: try serverContext(), role: .server))
        try pipe.pump(chunk: 1)
        #expect(pipe.client.isHandshakeComplete && pipe.server.isHandshakeComplete)
    }

    @Test func closeNotifyTellsThePeerThatTheEndIsTheEnd() throws {
        let pipe = try connect(try clientContext(), try serverContext())
        pipe.client.close()
        try pipe.pump()
        #expect(pipe.serverProgress.last == .closedByPeer)
        #expect(pipe.server.isClosedByPeer)
    }

    @Test func badCertificatesAndKeysAreClearErrorsThatNameTheFile() throws {
        func message(_ chain: String, _ key: String) -> String {
            do {
                _ = try TLSContext.server(identity: TLSIdentity(certificateChainPath: chain, privateKeyPath: key))
                return "no error"
            } catch {
                return error.description
            }
        }
        let missing = certificates.directory + "/missing.pem"
        #expect(message(missing, certificates.localhostKey).hasPrefix("certificate \(missing): No such file or directory"))
        #expect(message(certificates.localhostChain, missing).hasPrefix("private key \(missing): No such file or directory"))
        #expect(message(certificates.localhostKey, certificates.localhostKey).hasPrefix(
            "certificate \(certificates.localhostKey) is not a PEM certificate chain"))
        #expect(message(certificates.localhostChain, certificates.localhostChain).hasPrefix(
            "private key \(certificates.localhostChain) is not a PEM private key"))
        #expect(message(certificates.localhostChain, certificates.strayKey).hasPrefix(
            "private key \(certificates.strayKey) does not belong to certificate \(certificates.localhostChain)"))
        let shortKeys = #expect(throws: TLSError.self) { _ = try TLSTicketKeys(secret: [1, 2, 3]) }
        #expect(shortKeys?.description == "session ticket secret must be 32 bytes, not 3")
    }
}
