// What went wrong in TLS, in words an operator can act on: OpenSSL's error queue is read out
// (and emptied) into the message, so the next operation does not inherit a stale error.
import COpenSSL

/// A TLS failure: bad configuration at start, or a handshake or record the peer got wrong.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    /// What Shoal was doing, then OpenSSL's reasons.
    public let description: String
    /// The class of the first reason OpenSSL gave (what /metrics counts a handshake failure as).
    public let kind: TLSFailureKind

    init(_ what: String) {
        var reasons: [String] = []
        var kind: TLSFailureKind?
        while case let code = ERR_get_error(), code != 0 {
            if kind == nil { kind = TLSFailureKind(rawValue: Int(shoal_tls_failure_kind(code))) }
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            reasons.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        self.kind = kind ?? .malformed
        description = reasons.isEmpty ? what : "\(what): \(reasons.joined(separator: "; "))"
    }

    /// Empties OpenSSL's error queue (errors another operation left behind).
    static func clearQueue() { ERR_clear_error() }
}

/// Why a peer's TLS failed, in classes an operator can act on (the `reason` label of
/// `shoal_tls_handshake_failures_total`).
public enum TLSFailureKind: Int, CaseIterable, Sendable {
    /// Garbage, a malformed or forged record, anything not named below.
    case malformed = 0
    /// Plain HTTP (or a plain WebSocket upgrade) sent to the TLS port.
    case plainHTTP = 1
    /// A protocol version we refuse (TLS 1.1 and older, SSL 3).
    case protocolVersion = 2
    /// No cipher suite in common.
    case noSharedCipher = 3
    /// The client offered ALPN without http/1.1.
    case alpn = 4
    /// The peer sent an alert (it refused our certificate, or gave up).
    case peerAlert = 5

    /// The label /metrics shows.
    public var label: String {
        switch self {
        case .malformed: "malformed"
        case .plainHTTP: "plain_http"
        case .protocolVersion: "protocol_version"
        case .noSharedCipher: "no_shared_cipher"
        case .alpn: "alpn"
        case .peerAlert: "peer_alert"
        }
    }
}
