// The client side of the opening handshake (RFC 6455 §4.1): a request per key; ShoalWire's
// HandshakeResponse checks the server's answer.
// Keys are drawn once at start-up (a pool of 64) so a handshake costs no SHA-1 on the client.
import ShoalWire

/// Prepared handshake requests and the Sec-WebSocket-Accept each must be answered with.
struct HandshakeKeys {
    /// Full request bytes, one per key.
    let requests: [[UInt8]]
    /// The accept value expected for each request.
    let accepts: [String]
    /// The subprotocol asked for (Sec-WebSocket-Protocol), if any: the server may pick it or none.
    let subprotocol: String?

    /// `deflate`: offer permessage-deflate (ClientDeflateAgreement.offer). `path` replaces the
    /// URL's; `headers` are added as they are (scenario files).
    init(target: Target, deflate: Bool = false, path: String? = nil, headers: [(String, String)] = [], subprotocol: String? = nil,
         count: Int = 64) {
        self.subprotocol = subprotocol
        var generator = SystemRandomNumberGenerator()
        var requests: [[UInt8]] = []
        var accepts: [String] = []
        for _ in 0..<count {
            let key = Base64.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let request = "GET \(path ?? target.path) HTTP/1.1\r\n"
                + "Host: \(target.hostHeader)\r\n"
                + "Upgrade: websocket\r\n"
                + "Connection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\n"
                + "Sec-WebSocket-Version: 13\r\n"
                + (deflate ? "Sec-WebSocket-Extensions: \(ClientDeflateAgreement.offer)\r\n" : "")
                + (subprotocol.map { "Sec-WebSocket-Protocol: \($0)\r\n" } ?? "")
                + headers.map { "\($0.0): \($0.1)\r\n" }.joined()
                + "User-Agent: shoal-bench\r\n\r\n"
            requests.append(Array(request.utf8))
            accepts.append(WebSocketUpgrade.acceptValue(forKey: key))
        }
        self.requests = requests
        self.accepts = accepts
    }
}
