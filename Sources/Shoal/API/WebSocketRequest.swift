// The `request` of onConnection's event: what the client's upgrade request said.
public import ShoalWire

/// The client's HTTP upgrade request (4D: headers, query, url, remoteAddress).
public struct WebSocketRequest: Sendable {
    /// The request headers; `headers["name"]` is the first value, `headers.values("name")` every value
    /// of a repeated header (4D gives a list then).
    public let headers: HTTPHeaders
    /// URL parameters, percent-decoded: `?key1=value1` gives `query["key1"] == "value1"` (first value of a repeated key).
    public let query: [String: String]
    /// Every URL parameter in order, repeated keys included.
    public let queryItems: [(key: String, value: String)]
    /// The request target exactly as sent, e.g. `/status?name=ryan`.
    public let url: String
    /// The percent-decoded path of the target.
    public let path: String
    /// The client's IP address.
    public let remoteAddress: String
    /// The subprotocols the client offered (Sec-WebSocket-Protocol, in its order of preference);
    /// onConnection may pick one with `event.selectProtocol(_:)`.
    public let protocols: [String]

    init(head: HTTPRequestHead, target: RequestTarget, remoteAddress: String) {
        self.init(headers: head.headers, target: target, remoteAddress: remoteAddress)
    }

    /// A request as a client would send it, for tests: `url` is the request target ("/chat?room=1").
    public init(url: String, headers: [(String, String)] = [], remoteAddress: String = "127.0.0.1") {
        self.init(headers: HTTPHeaders(headers), target: RequestTarget(url), remoteAddress: remoteAddress)
    }

    private init(headers: HTTPHeaders, target: RequestTarget, remoteAddress: String) {
        self.headers = headers
        protocols = headers.values("sec-websocket-protocol").flatMap { $0.split(separator: ",") }
            .map { $0.trimmingSpacesAndTabs() }.filter { !$0.isEmpty }
        queryItems = target.query
        var firstValues: [String: String] = [:]
        for item in target.query where firstValues[item.key] == nil { firstValues[item.key] = item.value }
        query = firstValues
        url = target.raw
        path = target.path
        self.remoteAddress = remoteAddress
    }
}

extension Substring {
    /// The text without leading and trailing spaces and tabs (HTTP's optional whitespace).
    fileprivate func trimmingSpacesAndTabs() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
