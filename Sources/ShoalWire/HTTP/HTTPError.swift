// A failed request as the status to answer with: the parser and the upgrade check say exactly what to
// send, so the connection layer only writes it out and closes.

/// An HTTP error response to send: status, a human reason for the body and logs, and extra headers
/// (such as `Allow` for 405 or `Sec-WebSocket-Version` for 426).
public struct HTTPError: Error, Sendable, Equatable {
    /// The status code to answer with.
    public var status: Int
    /// A short human explanation of what was wrong with the request.
    public var reason: String
    /// Headers the response must carry besides the usual ones.
    public var headers: [(String, String)]

    /// Creates an error response description.
    public init(status: Int, reason: String, headers: [(String, String)] = []) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    /// Equal when status and reason match; headers follow from those and tuples are not Equatable.
    public static func == (lhs: HTTPError, rhs: HTTPError) -> Bool {
        lhs.status == rhs.status && lhs.reason == rhs.reason
    }

    static func badRequest(_ reason: String) -> HTTPError {
        HTTPError(status: 400, reason: reason)
    }
}
