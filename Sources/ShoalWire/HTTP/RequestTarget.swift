// Splits a request target into the decoded path (for routing to a WebSocket server or a file) and the
// query parameters, the way browsers encode them in URLs and forms.

/// The request target of an HTTP request line, split into path and query.
public struct RequestTarget: Sendable {
    /// The target exactly as received.
    public var raw: String
    /// The path, percent-decoded; "/" for an absolute-form target without a path.
    public var path: String
    /// Query parameters, percent-decoded, '+' read as a space, in order, repeated keys kept.
    public var query: [(key: String, value: String)]

    /// Splits `raw` (origin-form "/a?b", absolute-form "http://host/a?b" or "*").
    /// Malformed escapes such as "%zz" or a trailing "%" are kept as they are instead of failing.
    public init(_ raw: String) {
        self.raw = raw
        var bytes = raw.utf8[...]
        if let fragment = bytes.firstIndex(of: UInt8(ascii: "#")) {
            bytes = bytes[..<fragment]
        }
        bytes = Self.droppingSchemeAndAuthority(bytes)
        let questionMark = bytes.firstIndex(of: UInt8(ascii: "?"))
        let pathBytes = questionMark.map { bytes[..<$0] } ?? bytes
        path = pathBytes.isEmpty ? "/" : Self.percentDecoded(pathBytes, plusIsSpace: false)
        query = []
        if let questionMark {
            let queryBytes = bytes[bytes.index(after: questionMark)...]
            for pair in queryBytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
                if let equals = pair.firstIndex(of: UInt8(ascii: "=")) {
                    query.append(
                        (
                            key: Self.percentDecoded(pair[..<equals], plusIsSpace: true),
                            value: Self.percentDecoded(pair[pair.index(after: equals)...], plusIsSpace: true)
                        ))
                } else {
                    query.append((key: Self.percentDecoded(pair, plusIsSpace: true), value: ""))
                }
            }
        }
    }

    /// For absolute-form targets (RFC 9112 §3.2.2), which proxies send, keep only path and query.
    private static func droppingSchemeAndAuthority(_ bytes: Substring.UTF8View) -> Substring.UTF8View {
        guard bytes.first != UInt8(ascii: "/"), let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else {
            return bytes
        }
        let afterColon = bytes[bytes.index(after: colon)...]
        guard afterColon.starts(with: "//".utf8) else { return bytes }
        let authority = afterColon.dropFirst(2)
        let pathStart = authority.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }
        return pathStart.map { bytes[$0...] } ?? bytes[bytes.endIndex...]
    }

    /// Decodes %XX escapes; invalid escapes stay literal. The bytes are read as UTF-8, with invalid
    /// sequences replaced by U+FFFD, so a bad escape cannot produce an invalid String.
    static func percentDecoded(_ bytes: Substring.UTF8View, plusIsSpace: Bool) -> String {
        guard bytes.contains(UInt8(ascii: "%")) || (plusIsSpace && bytes.contains(UInt8(ascii: "+"))) else {
            return String(Substring(bytes))
        }
        let input = Array(bytes)
        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            let byte = input[index]
            if byte == UInt8(ascii: "%"), index + 2 < input.count,
                let high = hexValue(input[index + 1]), let low = hexValue(input[index + 2])
            {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
