// The client side of the opening handshake (RFC 6455 §4.1): a request per key, and the minimal check
// of the server's answer (status 101, Upgrade and Connection tokens, Sec-WebSocket-Accept, and with
// --deflate the permessage-deflate answer, if any).
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

/// Validation of a server's handshake response head (bytes up to and including the blank line).
enum HandshakeResponse {
    /// Largest response head accepted; a server sending more is not answering a WebSocket upgrade.
    static let maxHeadSize = 16 * 1024

    /// The offset just past "\r\n\r\n" in `bytes`, searching from `from`, or nil.
    static func headEnd(in bytes: [UInt8], from: Int) -> Int? {
        var i = max(0, from)
        while i + 3 < bytes.count {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i + 4 }
            i += 1
        }
        return nil
    }

    /// What the check of a response head found.
    enum Outcome {
        /// A valid 101; `deflate` is the accepted permessage-deflate agreement, nil without one.
        case accepted(deflate: ClientDeflateAgreement?, answer: String?)
        case failed(String)
    }

    /// Checks that `head` is a valid 101 answer carrying `expectedAccept`. With `deflateOffered`, a
    /// Sec-WebSocket-Extensions answer must accept permessage-deflate as RFC 7692 allows; without the
    /// offer, any extension in the answer fails the handshake. A Sec-WebSocket-Protocol answer must be
    /// the `subprotocol` asked for (RFC 6455 §4.1: the client fails on one it did not ask for).
    static func check(_ head: ArraySlice<UInt8>, expectedAccept: String, deflateOffered: Bool, subprotocol: String? = nil) -> Outcome {
        let text = String(decoding: head, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: true)[...]
        guard let status = lines.popFirst() else { return .failed("empty response") }
        let parts = status.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1.") else { return .failed("not an HTTP response: \(status.prefix(80))") }
        guard parts[1] == "101" else { return .failed("status \(status.dropFirst(parts[0].count + 1).prefix(80)) instead of 101") }
        var upgrade = false, connection = false
        var accept: Substring?
        var extensions: [Substring] = []
        var protocolAnswer: Substring?
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { return .failed("malformed header line: \(line.prefix(80))") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            let trimmed = value.prefix(value.count - value.reversed().prefix { $0 == " " || $0 == "\t" }.count)
            switch name {
            case "upgrade": upgrade = trimmed.lowercased().split(separator: ",").contains { $0.trimmingSpaces() == "websocket" }
            case "connection": connection = trimmed.lowercased().split(separator: ",").contains { $0.trimmingSpaces() == "upgrade" }
            case "sec-websocket-accept": accept = trimmed
            case "sec-websocket-extensions": extensions.append(trimmed)
            case "sec-websocket-protocol": protocolAnswer = trimmed
            default: break
            }
        }
        guard upgrade else { return .failed("missing Upgrade: websocket") }
        guard connection else { return .failed("missing Connection: Upgrade") }
        guard let accept else { return .failed("missing Sec-WebSocket-Accept") }
        guard accept == expectedAccept else { return .failed("Sec-WebSocket-Accept \(accept) does not match the key (expected \(expectedAccept))") }
        if let protocolAnswer, String(protocolAnswer) != subprotocol {
            return .failed("server selected subprotocol \(protocolAnswer), we asked for \(subprotocol ?? "none")")
        }
        guard !extensions.isEmpty else { return .accepted(deflate: nil, answer: nil) }
        let answer = extensions.joined(separator: ", ")
        guard deflateOffered else { return .failed("server selected an extension we did not offer: \(answer)") }
        switch ClientDeflateAgreement.parse(answer) {
        case .success(let agreement): return .accepted(deflate: agreement, answer: answer)
        case .failure(let error): return .failed(error.reason)
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        let start = drop { $0 == " " || $0 == "\t" }
        return start.prefix(start.count - start.reversed().prefix { $0 == " " || $0 == "\t" }.count)
    }
}
