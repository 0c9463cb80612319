// Cross-site WebSocket hijacking (RFC 6455 §10.2): a browser attaches the page's Origin to every
// upgrade and lets any page open a WebSocket to any host, cookies included. The server is the only
// party that can refuse a foreign page, so it compares the Origin against the sites it trusts.
// Clients that are not browsers send no Origin (and could forge one): the check is about browsers.

/// Origins a server accepts upgrades from: exact origins ("https://app.example.com",
/// "http://localhost:8080") and subdomain patterns ("*.example.com", "https://*.example.com").
public struct OriginAllowList: Sendable, Equatable {
    /// One accepted origin or pattern, parsed once.
    struct Entry: Sendable, Equatable {
        /// Scheme to match ("https"), or nil for any.
        var scheme: String?
        /// Host for an exact entry; the domain suffix (".example.com") for a pattern.
        var host: String
        var isPattern: Bool
        /// Port to match, or nil: the scheme's default (exact entries) or any (entries without scheme).
        var port: Int?
    }

    let entries: [Entry]

    /// Parses `patterns`; throws a message naming the first malformed one.
    public init(_ patterns: [String]) throws(OriginPatternError) {
        entries = try patterns.map { pattern throws(OriginPatternError) in
            guard let entry = Self.parse(pattern) else { throw OriginPatternError(pattern: pattern) }
            return entry
        }
    }

    /// Whether a browser page at `origin` (the request's Origin header) may connect.
    /// "null" (sandboxed frames, file: pages) and malformed values are refused.
    public func allows(_ origin: String) -> Bool {
        guard let page = Self.parse(origin), !page.isPattern, let scheme = page.scheme else { return false }
        let port = page.port ?? Self.defaultPort(scheme)
        return entries.contains { entry in
            if let wanted = entry.scheme, wanted != scheme { return false }
            if entry.isPattern {
                guard page.host.hasSuffix(entry.host), page.host.count > entry.host.count else { return false }
            } else if entry.host != page.host {
                return false
            }
            if let wanted = entry.port ?? entry.scheme.map(Self.defaultPort) { return wanted == port }
            return true
        }
    }

    private static func defaultPort(_ scheme: String) -> Int {
        scheme == "https" || scheme == "wss" ? 443 : 80
    }

    /// "[scheme://]host[:port]" or "[scheme://]*.domain[:port]", lowercased; nil if malformed
    /// (a path, user info, an empty host, a bad port).
    private static func parse(_ text: String) -> Entry? {
        var rest = Substring(text.lowercased())
        var scheme: String?
        if let colon = rest.firstIndex(of: ":"), rest[rest.index(after: colon)...].hasPrefix("//") {
            let name = rest[..<colon]
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }) else {
                return nil
            }
            scheme = String(name)
            rest = rest[rest.index(colon, offsetBy: 3)...]
        }
        var port: Int?
        // The last colon starts a port unless it sits inside an IPv6 literal ("[::1]").
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("]") {
            guard let number = Int(rest[rest.index(after: colon)...]), (1...65535).contains(number) else { return nil }
            port = number
            rest = rest[..<colon]
        }
        var isPattern = false
        if rest.hasPrefix("*.") {
            isPattern = true
            rest = rest.dropFirst()  // keep the dot: ".example.com" matches only real subdomains
        }
        let allowed = { (c: Character) in c.isLetter || c.isNumber || c == "-" || c == "." || c == "[" || c == "]" || c == ":" }
        guard !rest.isEmpty, rest != ".", rest.allSatisfy(allowed) else { return nil }
        return Entry(scheme: scheme, host: String(rest), isPattern: isPattern, port: port)
    }
}

/// A configured origin that is not "[scheme://]host[:port]" or "[scheme://]*.domain[:port]".
public struct OriginPatternError: Error, CustomStringConvertible, Sendable {
    public let pattern: String
    public var description: String {
        "\"\(pattern)\" is not an origin (scheme://host[:port]) or a pattern (*.example.com)"
    }
}
