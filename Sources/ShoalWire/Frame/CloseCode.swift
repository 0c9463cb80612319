// Close status codes of RFC 6455 §7.4, kept as plain UInt16 so codes from the registry or the
// application range (3000-4999) need no enum case to pass through.

/// Close status codes (RFC 6455 §7.4) and which may appear on the wire.
public enum CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    public static let normal: UInt16 = 1000
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    public static let goingAway: UInt16 = 1001
    /// 1002: the peer broke the protocol.
    public static let protocolError: UInt16 = 1002
    /// 1003: a data type the endpoint cannot accept.
    public static let unsupportedData: UInt16 = 1003
    /// 1005: no status was present; never sent on the wire, only reported locally.
    public static let noStatus: UInt16 = 1005
    /// 1006: the connection dropped without a close frame; never sent on the wire.
    public static let abnormal: UInt16 = 1006
    /// 1007: message data did not match its type (invalid UTF-8 in a text message).
    public static let invalidPayload: UInt16 = 1007
    /// 1008: a generic policy violation (Origin not allowed, slow consumer).
    public static let policyViolation: UInt16 = 1008
    /// 1009: a message was larger than the endpoint accepts.
    public static let messageTooBig: UInt16 = 1009
    /// 1010: (client) the server did not negotiate an extension the client requires.
    public static let mandatoryExtension: UInt16 = 1010
    /// 1011: the server hit an unexpected condition.
    public static let internalError: UInt16 = 1011

    /// true for 1000-1003, 1007-1014, 3000-4999 (what a peer may send in a close frame).
    ///
    /// 1004 is reserved, 1005/1006/1015 are local-only, 1012-1014 are IANA-registered since the RFC,
    /// 3000-3999 belong to libraries and 4000-4999 to applications. Everything else is unassigned
    /// and a peer sending it is a protocol error.
    public static func isValidOnWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }
}
