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

    init(head: HTTPRequestHead, target: RequestTarget, remoteAddress: String) {
        headers = head.headers
        queryItems = target.query
        var firstValues: [String: String] = [:]
        for item in target.query where firstValues[item.key] == nil { firstValues[item.key] = item.value }
        query = firstValues
        url = target.raw
        path = target.path
        self.remoteAddress = remoteAddress
    }
}
