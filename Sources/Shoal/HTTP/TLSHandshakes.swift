// TLS on an HTTP session's socket: the transform put between the socket and the session once
// the connection starts (or once its PROXY header is read, which comes before the ClientHello),
// and what a failed handshake becomes: a /metrics count by reason and an onError report.
import Logging
import ShoalCluster
import ShoalRing
import ShoalTLS

extension HTTPSession {
    /// Starts TLS on the socket; `rest` are bytes already read past a PROXY header.
    /// Returns the transform, or nil when OpenSSL could not make a session (the socket is closed).
    static func startTLS(_ context: TLSContext, web: WebServer, socket: SocketHandle, peer: @escaping () -> String,
                         feeding rest: UnsafeRawBufferPointer? = nil) -> TLSStreamTransform? {
        let transform: TLSStreamTransform
        do {
            transform = try TLSStreamTransform(context: context, role: .server)
        } catch {
            web.logger.error("TLS session could not be made: \(error)")
            web.loop.close(socket, mode: .abort)
            return nil
        }
        transform.onFailure = { [unowned web] error, duringHandshake in
            if duringHandshake {
                web.tlsHandshakeFailed(kind: error.kind, message: "\(error)", peer: peer())
            } else {
                web.logger.debug("TLS record refused: \(error)", metadata: ["peer": "\(peer())"])
            }
        }
        web.loop.setTransform(transform, for: socket, feeding: rest)
        return transform
    }
}

extension WebServer {
    /// Counts a failed TLS handshake (`kind`, or nil: not complete within `requestTimeout`) and
    /// tells every server's onError.
    func tlsHandshakeFailed(kind: TLSFailureKind?, message: String, peer: String) {
        let event = kind.map(Self.tlsFailureEvent) ?? .tlsTimeout
        limits.count(event)
        logger.debug("TLS handshake failed: \(message)", metadata: ["peer": "\(peer)"])
        reportToEveryServer(.tlsHandshakeFailed, status: nil, message: "TLS handshake from \(peer) failed: \(message)")
    }

    /// The /metrics label of each handshake failure counter.
    static let tlsFailureEvents: [(String, WorkerStats.LimitEvent)] = [
        ("plain_http", .tlsPlainHTTP), ("protocol", .tlsProtocol), ("malformed", .tlsMalformed), ("timeout", .tlsTimeout),
    ]

    /// The counter a failure of `kind` goes to (the shared segment has four words for them; the
    /// onError message keeps OpenSSL's own reason).
    static func tlsFailureEvent(_ kind: TLSFailureKind) -> WorkerStats.LimitEvent {
        switch kind {
        case .plainHTTP: .tlsPlainHTTP
        case .protocolVersion, .noSharedCipher, .alpn: .tlsProtocol
        case .malformed, .peerAlert: .tlsMalformed
        }
    }
}
