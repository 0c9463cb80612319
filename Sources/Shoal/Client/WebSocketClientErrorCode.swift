// The `errCode`s of a client's onError that are not close codes (those, 1002, 1007, 1009, are the
// code the connection closes with, as on the server side). docs/api.md lists them.

/// Why a client's connection failed or a call was refused.
public enum WebSocketClientErrorCode: Int, Sendable, CaseIterable {
    /// The URL is not a valid ws:// or wss:// URL, or names something this build cannot do.
    case badURL = 10
    /// The host did not resolve, or the TCP (or TLS) connection could not be made: refused,
    /// unreachable, timed out.
    case connectFailed = 11
    /// The server's answer to the opening handshake is not a valid 101 for our request (status,
    /// Upgrade, Connection, Sec-WebSocket-Accept, extensions, subprotocol), or did not come in time.
    case handshakeFailed = 12
    /// `terminate(code:)` with a code other than 1000 or 3000…4999 (1000 is sent instead).
    case badCloseCode = 13
    /// A request header from the handler's `headers` that cannot be sent (a bad name, a line break
    /// in a value, or one the handshake sets itself).
    case badHeader = 14
}
