// Who the client is when a request came through reverse proxies we trust: the address they name
// in Forwarded (RFC 7239), X-Forwarded-For or X-Real-IP. Headers from any other peer are the
// client's own words and are ignored, or any client could choose the address it is limited as.

/// The address ranges of the proxies in front of the server (`--trusted-proxy`), and the rule
/// that finds a request's client address from what they forwarded.
public struct TrustedProxies: Sendable {
    public let ranges: [AddressRange]

    /// Trusts the proxies in `ranges`; none (the default) means every peer is the client.
    public init(_ ranges: [AddressRange] = []) {
        self.ranges = ranges
    }

    public var isEmpty: Bool { ranges.isEmpty }

    /// Whether `address` is one of the trusted proxies.
    public func contains(_ address: IPAddress) -> Bool {
        ranges.contains { $0.contains(address) }
    }

    /// The client address of a request that arrived from `peer` (the TCP peer, or the source a
    /// PROXY protocol header gave) with `headers`, in canonical text.
    ///
    /// From a trusted peer, the first of these headers present decides: `Forwarded` (its `for=`
    /// nodes), `X-Forwarded-For`, `X-Real-IP`. In a list, proxies append what they saw, so the
    /// client is the rightmost entry that is not itself a trusted proxy (entries further left
    /// came from the client, unchecked); when every entry is trusted, the leftmost. A header
    /// whose deciding entry is not an IP address ("unknown", an obfuscated name, garbage) gives
    /// the peer: the proxy did not know, and a later header must not get a say then. A peer that
    /// is not trusted (or not an IP address) is the client itself, whatever its headers claim.
    public func clientAddress(peer: String, headers: HTTPHeaders) -> String {
        guard !ranges.isEmpty, let peerAddress = IPAddress(peer) else { return peer }
        guard contains(peerAddress) else { return peerAddress.description }
        let forwarded = headers.values("forwarded")
        if !forwarded.isEmpty {
            return rightmostUntrusted(forwarded.flatMap(ForwardedHeader.forNodes)) ?? peerAddress.description
        }
        let forwardedFor = headers.values("x-forwarded-for")
        if !forwardedFor.isEmpty {
            let entries = forwardedFor.flatMap { $0.split(separator: ",").map { ForwardedHeader.trimmed($0) } }
            return rightmostUntrusted(entries) ?? peerAddress.description
        }
        if let realIP = headers["x-real-ip"], let address = ForwardedHeader.nodeAddress(ForwardedHeader.trimmed(realIP[...])) {
            return address.description
        }
        return peerAddress.description
    }

    /// The client in a list of node texts, leftmost first, or nil when the deciding entry is not an address.
    private func rightmostUntrusted(_ nodes: [Substring]) -> String? {
        var leftmost: IPAddress?
        for node in nodes.reversed() {
            guard let address = ForwardedHeader.nodeAddress(node) else { return nil }
            if !contains(address) { return address.description }
            leftmost = address
        }
        return leftmost?.description
    }
}

/// The syntax of the forwarding headers: RFC 7239 elements and the nodes of every header.
enum ForwardedHeader {
    /// The `for=` values of one Forwarded field, in order, unquoted (an element without one is skipped).
    /// `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"` gives both nodes.
    static func forNodes(_ value: String) -> [Substring] {
        var nodes: [Substring] = []
        for element in splitOutsideQuotes(value[...], on: ",") {
            for pair in splitOutsideQuotes(element, on: ";") {
                let trimmedPair = trimmed(pair)
                guard let equals = trimmedPair.firstIndex(of: "=") else { continue }
                let name = trimmedPair[..<equals]
                guard name.lowercased() == "for" else { continue }
                nodes.append(unquoted(trimmed(trimmedPair[trimmedPair.index(after: equals)...])))
            }
        }
        return nodes
    }

    /// The address a node names: "192.0.2.1", "192.0.2.1:80", "[2001:db8::1]", "[2001:db8::1]:80",
    /// or a bare IPv6 address (X-Forwarded-For writes those); nil for "unknown", "_hidden" and garbage.
    static func nodeAddress(_ node: Substring) -> IPAddress? {
        if node.hasPrefix("[") {
            guard let close = node.firstIndex(of: "]") else { return nil }
            let after = node[node.index(after: close)...]
            guard after.isEmpty || isPortSuffix(after) else { return nil }
            let inside = node[node.index(after: node.startIndex)..<close]
            guard inside.contains(":") else { return nil }
            return IPAddress(inside)
        }
        if let colon = node.firstIndex(of: ":"), node[node.index(after: colon)...].firstIndex(of: ":") == nil {
            guard isPortSuffix(node[colon...]) else { return nil }
            let host = node[..<colon]
            return host.contains(".") ? IPAddress(host) : nil
        }
        return IPAddress(node)
    }

    /// ":PORT" with 1 to 5 digits (RFC 7239 also allows an obfuscated port, "_x"; the address stands).
    private static func isPortSuffix(_ text: Substring) -> Bool {
        guard text.first == ":" else { return false }
        let port = text.dropFirst()
        if port.first == "_" { return port.count > 1 }
        return (1...5).contains(port.count) && port.allSatisfy { $0.isASCII && $0.isNumber } && Int(port)! <= 65535
    }

    static func trimmed(_ text: Substring) -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) }) else {
            return text[text.endIndex...]
        }
        return text[first...last]
    }

    /// The value of a quoted-string without its quotes and escapes, or the token as it is.
    private static func unquoted(_ text: Substring) -> Substring {
        guard text.count >= 2, text.first == "\"", text.last == "\"" else { return text }
        let inner = text.dropFirst().dropLast()
        guard inner.contains("\\") else { return inner }
        var result = ""
        var escaped = false
        for character in inner {
            if !escaped && character == "\\" { escaped = true; continue }
            escaped = false
            result.append(character)
        }
        return result[...]
    }

    /// Splits on `separator` where it is not inside a quoted-string (RFC 9110 §5.6.4).
    private static func splitOutsideQuotes(_ text: Substring, on separator: Character) -> [Substring] {
        var parts: [Substring] = []
        var start = text.startIndex
        var inQuotes = false
        var escaped = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if escaped {
                escaped = false
            } else if inQuotes && character == "\\" {
                escaped = true
            } else if character == "\"" {
                inQuotes.toggle()
            } else if !inQuotes && character == separator {
                parts.append(text[start..<index])
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        parts.append(text[start...])
        return parts
    }
}
