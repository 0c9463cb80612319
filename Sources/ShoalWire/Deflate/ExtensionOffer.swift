// Sec-WebSocket-Extensions values (RFC 6455 §9.1) split into offers: the header may come as several
// lines, each a comma-separated list of extensions with ";" parameters whose values are tokens or
// quoted strings (RFC 7230 §3.2.6). Negotiation of a particular extension works on the result.

/// One extension offer: its name and its parameters in the order sent.
struct ExtensionOffer: Equatable {
    struct Parameter: Equatable {
        var name: String
        /// nil when the parameter had no "=value"; quoted values are unescaped.
        var value: String?
    }

    var name: String
    var parameters: [Parameter]

    /// The offers in `headerValues`, in order (line by line, left to right).
    ///
    /// An offer with a syntax error is left out and parsing resumes after the next comma that is not
    /// inside a quoted string, so one malformed offer costs only itself (an unterminated quoted string
    /// costs the rest of its line). Empty list elements (", ,") are allowed, as RFC 7230 §7 says, and
    /// optional whitespace may surround ",", ";" and "=". A quoted value must still be a token once
    /// unescaped (RFC 6455 §9.1).
    static func parse(_ headerValues: [String]) -> [ExtensionOffer] {
        var offers: [ExtensionOffer] = []
        for value in headerValues {
            var scanner = Scanner(Array(value.utf8))
            while true {
                scanner.skipWhitespace()
                guard let byte = scanner.peek else { break }
                if byte == Scanner.comma {
                    scanner.index += 1  // an empty element
                    continue
                }
                let start = scanner.index
                if let offer = scanner.extensionOffer() {
                    offers.append(offer)
                } else {
                    scanner.index = start
                    scanner.skipPastNextComma()
                }
            }
        }
        return offers
    }
}

/// A cursor over one header value; every parse method returns nil on a syntax error.
private struct Scanner {
    let bytes: [UInt8]
    var index = 0

    static let comma = UInt8(ascii: ",")
    static let semicolon = UInt8(ascii: ";")
    static let equals = UInt8(ascii: "=")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    /// extension = token *( OWS ";" OWS parameter ); stops before the "," that ends it, or at the end.
    mutating func extensionOffer() -> ExtensionOffer? {
        guard let name = token() else { return nil }
        var offer = ExtensionOffer(name: name, parameters: [])
        while true {
            skipWhitespace()
            guard let byte = peek, byte != Self.comma else { return offer }
            guard byte == Self.semicolon else { return nil }
            index += 1
            skipWhitespace()
            guard let parameterName = token() else { return nil }
            skipWhitespace()
            var value: String?
            if peek == Self.equals {
                index += 1
                skipWhitespace()
                guard let parsed = peek == Self.quote ? quotedToken() : token() else { return nil }
                value = parsed
            }
            offer.parameters.append(ExtensionOffer.Parameter(name: parameterName, value: value))
        }
    }

    /// 1*tchar
    mutating func token() -> String? {
        let start = index
        while let byte = peek, HTTPToken.isTokenCharacter(byte) {
            index += 1
        }
        guard index > start else { return nil }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// A quoted-string whose unescaped content is a token.
    mutating func quotedToken() -> String? {
        index += 1  // the opening quote
        var content: [UInt8] = []
        while let byte = peek {
            index += 1
            switch byte {
            case Self.quote:
                guard !content.isEmpty, content.allSatisfy(HTTPToken.isTokenCharacter) else { return nil }
                return String(decoding: content, as: UTF8.self)
            case Self.backslash:
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                guard let escaped = peek, escaped == 0x09 || escaped >= 0x20 && escaped != 0x7F else { return nil }
                content.append(escaped)
                index += 1
            case 0x09, 0x20, 0x21, 0x23...0x5B, 0x5D...0x7E, 0x80...0xFF:
                content.append(byte)  // qdtext
            default:
                return nil  // control characters
            }
        }
        return nil  // unterminated
    }

    mutating func skipWhitespace() {
        while let byte = peek, byte == 0x20 || byte == 0x09 {
            index += 1
        }
    }

    /// Resynchronises after a syntax error: moves past the next comma outside a quoted string (or to the end).
    mutating func skipPastNextComma() {
        var quoted = false
        while let byte = peek {
            index += 1
            if quoted {
                if byte == Self.backslash {
                    index += 1
                } else if byte == Self.quote {
                    quoted = false
                }
            } else if byte == Self.quote {
                quoted = true
            } else if byte == Self.comma {
                return
            }
        }
        index = bytes.count
    }

}
