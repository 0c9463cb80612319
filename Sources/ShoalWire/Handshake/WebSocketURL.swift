// The URL a client connects to (RFC 6455 §3): ws://host[:port]/path?query or wss://…, parsed
// without Foundation into what the connect and the opening request need. Anything else (another
// scheme, a fragment, user info, a bad port) is refused with a sentence saying why. Shared by the
// WebSocket client class and shoal-bench.

/// A parsed `ws://` or `wss://` URL.
public struct WebSocketURL: Equatable, Sendable {
    /// Whether the connection runs over TLS (wss://).
    public let secure: Bool
    /// The host as written, without IPv6 brackets ("example.com", "127.0.0.1", "::1").
    public let host: String
    public let port: Int
    /// The request target: path and query ("/chat?room=1"), "/" when the URL has no path.
    public let target: String
    /// host[:port] as the URL spelled it.
    public let authority: String

    /// The Host header's value: the host (bracketed for IPv6) and the port unless it is the scheme's default.
    public var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (secure ? 443 : 80) ? name : "\(name):\(port)"
    }

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public init(_ text: String) throws(Invalid) {
        let lowered = text.lowercased()
        let rest: Substring
        if lowered.hasPrefix("ws://") {
            secure = false
            rest = text.dropFirst(5)
        } else if lowered.hasPrefix("wss://") {
            secure = true
            rest = text.dropFirst(6)
        } else {
            throw Invalid(description: "\"\(text)\" is not a ws:// or wss:// URL")
        }
        guard !text.contains("#") else { throw Invalid(description: "a WebSocket URL may not have a fragment (#): \(text)") }
        guard !text.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            throw Invalid(description: "a WebSocket URL may not contain spaces or control characters")
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        self.authority = String(authority)
        var path = String(rest[authorityEnd...])
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        target = path
        guard !authority.contains("@") else { throw Invalid(description: "user info in a WebSocket URL is not supported: \(text)") }
        var hostPart: Substring
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw Invalid(description: "unclosed [ in \(text)") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw Invalid(description: "unexpected \"\(after)\" after the host in \(text)") }
                portPart = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        } else {
            hostPart = authority
        }
        guard !hostPart.isEmpty else { throw Invalid(description: "no host in \(text)") }
        host = String(hostPart)
        if let portPart {
            guard let number = Int(portPart), (1...65535).contains(number), portPart.allSatisfy(\.isASCII) else {
                throw Invalid(description: "port \"\(portPart)\" is not 1…65535 in \(text)")
            }
            port = number
        } else {
            port = secure ? 443 : 80
        }
    }
}
