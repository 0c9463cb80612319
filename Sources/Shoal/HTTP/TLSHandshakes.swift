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
        let event = kind.map { Self.tlsFailureEvents[$0.rawValue].1 } ?? .tlsTimeout
        limits.count(event)
        logger.debug("TLS handshake failed: \(message)", metadata: ["peer": "\(peer)"])
        reportToEveryServer(.tlsHandshakeFailed, status: nil, message: "TLS handshake from \(peer) failed: \(message)")
    }

    /// The /metrics label of each handshake failure, in `TLSFailureKind` order, then the deadline.
    static let tlsFailureEvents: [(String, WorkerStats.LimitEvent)] = {
        let byKind: [TLSFailureKind: WorkerStats.LimitEvent] = [
            .malformed: .tlsMalformed, .plainHTTP: .tlsPlainHTTP, .protocolVersion: .tlsProtocolVersion,
            .noSharedCipher: .tlsNoSharedCipher, .alpn: .tlsALPN, .peerAlert: .tlsPeerAlert,
        ]
        return TLSFailureKind.allCases.map { ($0.label, byKind[$0]!) } + [("timeout", .tlsTimeout)]
    }()
}
