// The TLS settings a worker (or a client) holds once and every connection shares: certificates,
// protocol versions, ciphers, ALPN, session tickets. Made at start, where a bad certificate or
// key must stop the program with a clear message rather than fail every handshake later.
import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// A certificate chain and its private key, both PEM files.
public struct TLSIdentity: Sendable, Equatable {
    /// The leaf certificate followed by its intermediates (what certbot calls fullchain.pem).
    public var certificateChainPath: String
    public var privateKeyPath: String

    public init(certificateChainPath: String, privateKeyPath: String) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
    }
}

/// An OpenSSL context (SSL_CTX) configured for Shoal. Use it from one thread at a time.
public final class TLSContext: @unchecked Sendable {
    let raw: OpaquePointer
    /// The SNI contexts and the C table pointing at them; both live as long as this context.
    private let sniContexts: [TLSContext]
    private let sniTable: UnsafeMutablePointer<shoal_sni_table>?
    private let sniPointers: UnsafeMutablePointer<OpaquePointer?>?
    /// Read by OpenSSL's ticket callback for as long as the context lives.
    private let tickets: TLSTicketKeys?

    /// Mozilla's "intermediate" TLS 1.2 suites (forward secrecy, AEAD only); TLS 1.3 keeps
    /// OpenSSL's defaults, which are the same list Mozilla names.
    static let intermediateTLS12Ciphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        + "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

    private init(raw: OpaquePointer, sniContexts: [TLSContext] = [], tickets: TLSTicketKeys? = nil) {
        self.raw = raw
        self.sniContexts = sniContexts
        self.tickets = tickets
        if sniContexts.isEmpty {
            sniTable = nil
            sniPointers = nil
        } else {
            let pointers = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: sniContexts.count)
            for (i, context) in sniContexts.enumerated() { pointers[i] = context.raw }
            let table = UnsafeMutablePointer<shoal_sni_table>.allocate(capacity: 1)
            table.initialize(to: shoal_sni_table(contexts: pointers, count: Int32(sniContexts.count)))
            sniPointers = pointers
            sniTable = table
            shoal_ssl_ctx_set_sni(raw, table)
        }
    }

    deinit {
        SSL_CTX_free(raw)
        sniTable?.deallocate()
        sniPointers?.deallocate()
    }

    /// A server context: TLS 1.2 and 1.3 only, Mozilla intermediate ciphers, ALPN http/1.1, no
    /// renegotiation, no compression. `identity` answers every client; `additional` identities are
    /// chosen by SNI when their certificate covers the name the client asks for.
    /// `tickets` encrypt session tickets; give every worker keys from the same secret so a
    /// reconnect resumes on any of them (without: OpenSSL's own keys, this process only).
    /// Throws, naming the file, when a certificate or key is missing, unreadable, not PEM, or the
    /// key does not belong to the certificate.
    public static func server(identity: TLSIdentity, additional: [TLSIdentity] = [],
                              tickets: TLSTicketKeys? = nil) throws(TLSError) -> TLSContext {
        let others = try additional.map { (extra) throws(TLSError) in try TLSContext(serving: extra, tickets: tickets) }
        let main = try makeServerContext(identity, tickets: tickets)
        return TLSContext(raw: main, sniContexts: others, tickets: tickets)
    }

    private convenience init(serving identity: TLSIdentity, tickets: TLSTicketKeys?) throws(TLSError) {
        self.init(raw: try Self.makeServerContext(identity, tickets: tickets), tickets: tickets)
    }

    private static func makeServerContext(_ identity: TLSIdentity, tickets: TLSTicketKeys?) throws(TLSError) -> OpaquePointer {
        TLSError.clearQueue()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError("SSL_CTX_new") }
        do throws(TLSError) {
            try configureCommon(ctx)
            shoal_ssl_ctx_select_http11(ctx)
            try requireReadable(identity.certificateChainPath, "certificate")
            try requireReadable(identity.privateKeyPath, "private key")
            guard SSL_CTX_use_certificate_chain_file(ctx, identity.certificateChainPath) == 1 else {
                throw TLSError("certificate \(identity.certificateChainPath) is not a PEM certificate chain")
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, identity.privateKeyPath, shoal_ssl_filetype_pem()) == 1 else {
                if shoal_err_is_key_mismatch(ERR_peek_last_error()) != 0 {
                    throw TLSError("private key \(identity.privateKeyPath) does not belong to certificate \(identity.certificateChainPath)")
                }
                throw TLSError("private key \(identity.privateKeyPath) is not a PEM private key")
            }
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                throw TLSError("private key \(identity.privateKeyPath) does not belong to certificate \(identity.certificateChainPath)")
            }
            if let tickets {
                guard shoal_ssl_ctx_set_ticket_keys_rotating(ctx, tickets.raw) == 1 else { throw TLSError("setting session ticket keys") }
            }
            return ctx
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
    }

    /// A client context: TLS 1.2 and 1.3, the peer's certificate verified against the system's
    /// trust store, or against `trustedCertificatesPath` (PEM) when given.
    public static func client(trustedCertificatesPath: String? = nil, verifyPeer: Bool = true) throws(TLSError) -> TLSContext {
        TLSError.clearQueue()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSError("SSL_CTX_new") }
        do throws(TLSError) {
            try configureCommon(ctx)
            if let path = trustedCertificatesPath {
                try requireReadable(path, "trusted certificates")
                guard SSL_CTX_load_verify_locations(ctx, path, nil) == 1 else {
                    throw TLSError("trusted certificates \(path) are not PEM certificates")
                }
            } else {
                guard SSL_CTX_set_default_verify_paths(ctx) == 1 else { throw TLSError("loading the system's trusted certificates") }
            }
            SSL_CTX_set_verify(ctx, verifyPeer ? shoal_ssl_verify_peer() : shoal_ssl_verify_none(), nil)
            _ = shoal_ssl_ctx_enable_client_session_cache(ctx)
            return TLSContext(raw: ctx)
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
    }

    private static func configureCommon(_ ctx: OpaquePointer) throws(TLSError) {
        guard shoal_ssl_ctx_set_min_tls12(ctx) == 1 else { throw TLSError("setting TLS 1.2 as the oldest version") }
        _ = SSL_CTX_set_options(ctx, shoal_ssl_op_no_renegotiation() | shoal_ssl_op_no_compression())
        shoal_ssl_ctx_release_buffers(ctx)
        guard SSL_CTX_set_cipher_list(ctx, intermediateTLS12Ciphers) == 1 else { throw TLSError("setting the TLS 1.2 ciphers") }
    }

    /// OpenSSL's own message for a missing file is "system library"; say which file and why.
    private static func requireReadable(_ path: String, _ what: String) throws(TLSError) {
        guard let file = fopen(path, "r") else {
            let reason = String(cString: strerror(errno))
            throw TLSError("\(what) \(path): \(reason)")
        }
        fclose(file)
    }

    /// Caps the newest version (tests and clients that must speak TLS 1.2).
    public func limitToTLS12() {
        _ = shoal_ssl_ctx_set_max_version(raw, shoal_tls12_version())
    }
}

/// The secret session-ticket keys are derived from, shared by every worker (the supervisor draws
/// it and passes it on), and the rotation: each period has its own keys, and a ticket opens in its
/// period and the next one (then a new ticket replaces it).
public final class TLSTicketKeys: @unchecked Sendable {
    let raw: UnsafeMutablePointer<shoal_ticket_keys>
    public static let secretLength = 32

    /// `secret`: 32 bytes (`randomSecret()`); `rotationSeconds`: how long one period's keys make tickets.
    public init(secret: [UInt8], rotationSeconds: Int = 3600) throws(TLSError) {
        guard secret.count == Self.secretLength else {
            throw TLSError("session ticket secret must be \(Self.secretLength) bytes, not \(secret.count)")
        }
        guard rotationSeconds >= 1 else { throw TLSError("session ticket rotation must be at least 1 second") }
        raw = .allocate(capacity: 1)
        raw.initialize(to: shoal_ticket_keys())
        withUnsafeMutableBytes(of: &raw.pointee.secret) { $0.copyBytes(from: secret) }
        raw.pointee.period_seconds = Int64(rotationSeconds)
    }

    deinit { raw.deallocate() }

    /// 32 bytes from OpenSSL's random generator.
    public static func randomSecret() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: secretLength)
        precondition(RAND_bytes(&bytes, Int32(secretLength)) == 1, "OpenSSL's random generator failed")
        return bytes
    }

    /// Moves the clock the rotation reads (tests of rotation).
    public func advanceClock(bySeconds seconds: Int) {
        raw.pointee.clock_offset += Int64(seconds)
    }
}
