// What went wrong in TLS, in words an operator can act on: OpenSSL's error queue is read out
// (and emptied) into the message, so the next operation does not inherit a stale error.
import COpenSSL

/// A TLS failure: bad configuration at start, or a handshake or record the peer got wrong.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    /// What Shoal was doing, then OpenSSL's reasons.
    public let description: String

    init(_ what: String) {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            reasons.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        description = reasons.isEmpty ? what : "\(what): \(reasons.joined(separator: "; "))"
    }

    /// Empties OpenSSL's error queue (errors another operation left behind).
    static func clearQueue() { ERR_clear_error() }
}
