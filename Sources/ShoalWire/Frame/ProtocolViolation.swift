// The single error type of frame reading: it carries the close code so the connection layer can fail
// the connection (RFC 6455 §7.1.7) without mapping error kinds itself.

/// Why the connection must be failed; `closeCode` goes into our close frame.
public struct ProtocolViolation: Error, Equatable, Sendable {
    /// The RFC 6455 §7.4 status code to send in our close frame (1002, 1007 or 1009).
    public var closeCode: UInt16
    /// A short human explanation, for logs and the close frame's reason.
    public var reason: String

    /// Creates a violation with the close code to send and a reason for logs.
    public init(closeCode: UInt16, reason: String) {
        self.closeCode = closeCode
        self.reason = reason
    }

    static func protocolError(_ reason: String) -> ProtocolViolation {
        ProtocolViolation(closeCode: CloseCode.protocolError, reason: reason)
    }
}
