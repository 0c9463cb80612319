// One TLS connection driven through memory (two memory BIOs): the event loop feeds it the bytes a
// socket received and sends the bytes it produces, so the loop keeps its own I/O (io_uring or
// epoll) and nothing here touches a descriptor. The same engine serves wss:// in a worker and the
// WebSocket client's wss:// URLs.
import COpenSSL

/// A session ticket a client kept from an earlier connection, to resume instead of a full handshake.
public final class TLSResumption: @unchecked Sendable {
    let session: OpaquePointer

    init(taking session: OpaquePointer) { self.session = session }
    deinit { SSL_SESSION_free(session) }
}

/// The TLS state of one connection. Use it from one thread at a time (its loop's).
public final class TLSSession {
    public enum Role: Sendable {
        case server
        /// `serverName` is checked against the server's certificate (as an address when it is an
        /// IPv4 or IPv6 literal), and sent as SNI unless it is such a literal (RFC 6066 §3 allows
        /// host names only).
        case client(serverName: String?)
    }

    /// What a call to `receive` ended with.
    public enum Progress: Equatable, Sendable {
        /// Waiting for more bytes from the peer (the handshake is not done, or a record is partial).
        case needMoreInput
        /// The handshake has just completed; application data may flow.
        case handshakeCompleted
        /// Application data was delivered (or nothing new arrived) on an established session.
        case established
        /// The peer sent close_notify: it will send nothing more.
        case closedByPeer
    }

    private let ssl: OpaquePointer
    private let input: OpaquePointer
    private let output: OpaquePointer
    // The context must outlive the SSL object (it also owns the SNI contexts).
    private let context: TLSContext
    public private(set) var isHandshakeComplete = false
    public private(set) var isClosedByPeer = false

    public init(context: TLSContext, role: Role, resuming resumption: TLSResumption? = nil) throws(TLSError) {
        TLSError.clearQueue()
        guard let ssl = SSL_new(context.raw) else { throw TLSError("SSL_new") }
        guard let input = shoal_bio_new_mem(), let output = shoal_bio_new_mem() else {
            SSL_free(ssl)
            throw TLSError("BIO_new")
        }
        SSL_set_bio(ssl, input, output)
        self.ssl = ssl
        self.input = input
        self.output = output
        self.context = context
        switch role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client(let serverName):
            SSL_set_connect_state(ssl)
            var http11: [UInt8] = [8] + Array("http/1.1".utf8)
            _ = SSL_set_alpn_protos(ssl, &http11, UInt32(http11.count))
            if let name = serverName {
                if !Self.isAddressLiteral(name) { _ = shoal_ssl_set_host_name(ssl, name) }
                // Takes an address literal too, and checks it against the certificate's IP entries.
                guard SSL_set1_host(ssl, name) == 1 else { throw TLSError("checking the certificate against \(name)") }
            }
            // A copy for this connection: an abort would mark the kept one not resumable.
            if let resumption, let copy = SSL_SESSION_dup(resumption.session) {
                _ = SSL_set_session(ssl, copy)
                SSL_SESSION_free(copy)
            }
            // A client speaks first: its ClientHello waits in `output`.
            _ = SSL_do_handshake(ssl)
        }
    }

    deinit {
        SSL_free(ssl)  // frees both BIOs
    }

    /// Whether `name` is an IPv4 or IPv6 address (as `SSL_set1_host` tells them from host names).
    static func isAddressLiteral(_ name: String) -> Bool {
        guard let address = a2i_IPADDRESS(name) else { return false }
        ASN1_OCTET_STRING_free(address)
        return true
    }

    /// Feeds bytes received from the peer. Decrypted application data goes to `plaintext`, in
    /// pieces of at most `scratch.count` bytes (the caller's buffer, shared by its sessions).
    /// Throws when the peer broke TLS (a bad ClientHello, a failed verification, a forged record);
    /// the alert OpenSSL wrote for it is then in `pendingOutput`, to send before closing.
    public func receive(_ bytes: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer,
                        plaintext: (UnsafeRawBufferPointer) -> Void) throws(TLSError) -> Progress {
        TLSError.clearQueue()
        if bytes.count > 0 {
            guard BIO_write(input, bytes.baseAddress, Int32(bytes.count)) == Int32(bytes.count) else {
                throw TLSError("buffering received TLS bytes")
            }
        }
        var progress = Progress.established
        if !isHandshakeComplete {
            let result = SSL_do_handshake(ssl)
            if result != 1 {
                return try progressAfter(failure: result, during: "TLS handshake") ?? .needMoreInput
            }
            isHandshakeComplete = true
            progress = .handshakeCompleted
        }
        while true {
            var read = 0
            let result = SSL_read_ex(ssl, scratch.baseAddress, scratch.count, &read)
            if result == 1 {
                plaintext(UnsafeRawBufferPointer(rebasing: scratch[0..<read]))
                continue
            }
            if let end = try progressAfter(failure: Int32(result), during: "TLS record") { return end }
            return progress
        }
    }

    /// nil: wait for more input; .closedByPeer on close_notify; throws on a TLS failure.
    private func progressAfter(failure result: Int32, during what: String) throws(TLSError) -> Progress? {
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return nil
        case SSL_ERROR_ZERO_RETURN:
            isClosedByPeer = true
            return .closedByPeer
        default:
            throw TLSError("\(what) failed")
        }
    }

    /// Encrypts application data; the records wait in `pendingOutput`.
    public func send(_ plaintext: UnsafeRawBufferPointer) throws(TLSError) {
        guard plaintext.count > 0 else { return }
        TLSError.clearQueue()
        var written = 0
        guard SSL_write_ex(ssl, plaintext.baseAddress, plaintext.count, &written) == 1, written == plaintext.count else {
            throw TLSError("encrypting \(plaintext.count) bytes")
        }
    }

    /// Writes close_notify (the peer learns that the end of data is really the end).
    public func close() {
        TLSError.clearQueue()
        _ = SSL_shutdown(ssl)
    }

    /// Bytes waiting to be sent to the peer (handshake messages, records, alerts).
    public var pendingOutputCount: Int { Int(BIO_ctrl_pending(output)) }

    /// Moves up to `buffer.count` pending bytes into `buffer`; returns how many.
    public func takeOutput(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard pendingOutputCount > 0, buffer.count > 0 else { return 0 }
        return max(0, Int(BIO_read(output, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))))
    }

    /// The protocol ALPN agreed on ("http/1.1"), if any.
    public var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// "TLSv1.3", "TLSv1.2".
    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// The handshake resumed an earlier session (a ticket) instead of a full key exchange.
    public var isResumed: Bool { SSL_session_reused(ssl) == 1 }

    /// The server name the client asked for (SNI), on a server session.
    public var requestedServerName: String? {
        SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
    }

    /// The subject of the certificate this end presents (the one SNI chose, on a server).
    public var localCertificateSubject: String? { Self.subject(of: SSL_get_certificate(ssl)) }

    /// The subject of the peer's certificate.
    public var peerCertificateSubject: String? {
        guard let certificate = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(certificate) }
        return Self.subject(of: certificate)
    }

    private static func subject(of certificate: OpaquePointer?) -> String? {
        guard let certificate, let name = X509_get_subject_name(certificate) else { return nil }
        var text = [CChar](repeating: 0, count: 256)
        X509_NAME_oneline(name, &text, Int32(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A client's ticket for resuming later (TLS 1.3 tickets arrive after the handshake, with the
    /// first records read), or nil when the server gave none.
    /// A copy: OpenSSL marks a connection's own session not resumable when the connection is
    /// freed without a close_notify (any abort), which would spoil a ticket already kept.
    public func resumption() -> TLSResumption? {
        guard let session = SSL_get1_session(ssl) else { return nil }
        defer { SSL_SESSION_free(session) }
        guard SSL_SESSION_is_resumable(session) == 1, let copy = SSL_SESSION_dup(session) else { return nil }
        return TLSResumption(taking: copy)
    }
}
