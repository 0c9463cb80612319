// permessage-deflate (RFC 7692) from the client's side: the offer a client's opening handshake
// carries (what Chromium offers) and the check of the server's answer. Shared by shoal-bench and
// the WebSocket client class.

/// What the server's Sec-WebSocket-Extensions answer agreed to (RFC 7692 §7.1), from the client's side.
public struct ClientDeflateAgreement: Equatable, Sendable {
    /// The server starts every message from an empty window (a client may share one inflater).
    public var serverNoContextTakeover = false
    /// The server asks the client to start every message from an empty window.
    public var clientNoContextTakeover = false
    /// The window the server compresses with (8...15): the client's inflater window for it.
    public var serverMaxWindowBits = 15
    /// The largest window the client may compress with (8...15).
    public var clientMaxWindowBits = 15

    /// The offer, as a Sec-WebSocket-Extensions value: what Chromium sends.
    public static let offer = "permessage-deflate; client_max_window_bits"

    /// Parses the server's Sec-WebSocket-Extensions value(s) (several header lines joined by ", ").
    /// The answer must accept exactly one permessage-deflate element of our offer, with each parameter
    /// at most once and window sizes 8...15 (token or quoted string); anything else fails the
    /// connection (RFC 7692 §5.1, §7.1: another extension, or a parameter we cannot honour).
    public init() {}

    public static func parse(_ value: String) -> Result<ClientDeflateAgreement, AnswerError> {
        let elements = splitOutsideQuotes(value, on: ",").map(trimmed).filter { !$0.isEmpty }
        guard elements.count == 1 else {
            return .failure(AnswerError("the server selected \(elements.count) extensions, we offered one: \(value)"))
        }
        var parts = splitOutsideQuotes(elements[0], on: ";").map(trimmed)
        let name = parts.removeFirst()
        guard name.lowercased() == "permessage-deflate" else {
            return .failure(AnswerError("the server selected an extension we did not offer: \(value)"))
        }
        var agreement = ClientDeflateAgreement()
        var seen: Set<String> = []
        for part in parts {
            let pieces = part.split(separator: "=", maxSplits: 1).map { trimmed(String($0)) }
            // `permessage-deflate;` or `; =`: a parameter with no name.
            guard let first = pieces.first, !first.isEmpty else {
                return .failure(AnswerError("a parameter without a name in \(value)"))
            }
            let key = first.lowercased()
            guard seen.insert(key).inserted else { return .failure(AnswerError("\(key) twice in \(value)")) }
            var parameterValue: String?
            if pieces.count == 2 {
                var v = pieces[1]
                if v.count >= 2 && v.hasPrefix("\"") && v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
                parameterValue = v
            }
            switch key {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard parameterValue == nil else { return .failure(AnswerError("\(key) takes no value: \(value)")) }
                if key == "server_no_context_takeover" { agreement.serverNoContextTakeover = true } else { agreement.clientNoContextTakeover = true }
            case "server_max_window_bits", "client_max_window_bits":
                guard let text = parameterValue, let bits = Int(text), (8...15).contains(bits), text.first != "0" else {
                    return .failure(AnswerError("\(key) needs a value 8...15: \(value)"))
                }
                if key == "server_max_window_bits" { agreement.serverMaxWindowBits = bits } else { agreement.clientMaxWindowBits = bits }
            default:
                return .failure(AnswerError("unknown permessage-deflate parameter \(key): \(value)"))
            }
        }
        return .success(agreement)
    }

    public struct AnswerError: Error, Sendable {
        public let reason: String
        public init(_ reason: String) { self.reason = reason }
    }

    private static func splitOutsideQuotes(_ text: String, on separator: Character) -> [String] {
        var out: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for c in text {
            if escaped {
                escaped = false
            } else if quoted && c == "\\" {
                escaped = true
            } else if c == "\"" {
                quoted.toggle()
            } else if c == separator && !quoted {
                out.append(current)
                current = ""
                continue
            }
            current.append(c)
        }
        out.append(current)
        return out
    }

    private static func trimmed(_ s: String) -> String {
        var sub = Substring(s)
        while let f = sub.first, f == " " || f == "\t" { sub.removeFirst() }
        while let l = sub.last, l == " " || l == "\t" { sub.removeLast() }
        return String(sub)
    }
}

