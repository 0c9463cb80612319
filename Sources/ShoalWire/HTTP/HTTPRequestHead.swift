// The parsed request line and headers of one HTTP/1.x request: what the upgrade check and the small
// web server look at to decide how to answer.

/// Request line and header fields of an HTTP/1.x request.
public struct HTTPRequestHead: Sendable {
    /// The method token, case-sensitive ("GET").
    public var method: String
    /// The request target as received ("/chat?room=1"); see `RequestTarget` to split it.
    public var target: String
    /// 1 for every head the parser accepts.
    public var versionMajor: Int
    /// 0 or 1 in practice.
    public var versionMinor: Int
    /// Header fields in the order received.
    public var headers: HTTPHeaders

    /// Creates a head, for instance in tests of code that consumes heads.
    public init(
        method: String, target: String, versionMajor: Int = 1, versionMinor: Int = 1,
        headers: HTTPHeaders = HTTPHeaders()
    ) {
        self.method = method
        self.target = target
        self.versionMajor = versionMajor
        self.versionMinor = versionMinor
        self.headers = headers
    }

    /// Whether the connection stays open after the response (RFC 9112 §9.3): HTTP/1.1 unless the client
    /// sent `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    public var keepAlive: Bool {
        if versionMajor == 1 && versionMinor == 0 {
            return headers.containsToken("keep-alive", in: "Connection")
        }
        return !headers.containsToken("close", in: "Connection")
    }
}
