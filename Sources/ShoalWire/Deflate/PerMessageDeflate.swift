// Server-side negotiation of permessage-deflate (RFC 7692 §5.1, §7.1): walk the client's offers in
// order, decline any that is malformed or asks for what the policy cannot give, accept the first
// other one and build the answer.

/// Negotiation of the permessage-deflate extension.
public enum PerMessageDeflate {
    /// The extension's registered name.
    public static let extensionName = "permessage-deflate"

    /// Answers the Sec-WebSocket-Extensions request headers (every line, in order): the agreement for
    /// the first acceptable permessage-deflate offer, or nil to run without compression (and send no
    /// Sec-WebSocket-Extensions header).
    ///
    /// An offer is declined (RFC 7692 §7) when it is malformed, has a parameter this extension does not
    /// define, has a parameter twice, or has an invalid value: a window size must be a decimal 8...15
    /// without leading zeros (a quoted "10" is fine), server_max_window_bits needs one, the
    /// *_no_context_takeover parameters take none. Offers of other extensions are skipped. Extension
    /// and parameter names compare ASCII case-insensitively. Every well-formed offer can be honoured
    /// (a window of 8 is compressed with zlib's 9, see DeflatePolicy), so only malformed ones are declined.
    public static func negotiate(headerValues: [String], policy: DeflatePolicy) -> DeflateAgreement? {
        for offer in ExtensionOffer.parse(headerValues) where asciiCaseInsensitiveEquals(offer.name, extensionName) {
            if let parameters = OfferedParameters(offer) {
                return answer(parameters, policy: policy)
            }
        }
        return nil
    }

    /// The largest window: 32 KiB, and what a client may use when the response does not limit it.
    static let largestWindowBits = 15

    private static func answer(_ offered: OfferedParameters, policy: DeflatePolicy) -> DeflateAgreement {
        var response = [extensionName]
        let serverNoContextTakeover: Bool
        let clientNoContextTakeover: Bool
        let serverWindowBits: Int
        let clientWindowBits: Int
        let memoryLevel: Int
        switch policy.mode {
        case .shared:
            // Both directions forget between messages, whatever was offered; the client keeps its window
            // (the shared decompressor accepts any), and the server honours a server_max_window_bits offer.
            serverNoContextTakeover = true
            clientNoContextTakeover = true
            serverWindowBits = offered.serverMaxWindowBits ?? largestWindowBits
            clientWindowBits = largestWindowBits
            memoryLevel = SharedDeflateCodecs.memoryLevel
        case .dedicated(let windowBits, let level):
            // Context takeover unless asked otherwise; windows as small as the policy wants where the
            // offer lets the server choose. Without client_max_window_bits in the offer the client may
            // use 32 KiB, and the response may not say otherwise (§7.1.2.2).
            serverNoContextTakeover = offered.serverNoContextTakeover
            clientNoContextTakeover = offered.clientNoContextTakeover
            serverWindowBits = min(offered.serverMaxWindowBits ?? largestWindowBits, windowBits)
            switch offered.clientMaxWindowBits {
            case .absent: clientWindowBits = largestWindowBits
            case .withoutValue: clientWindowBits = windowBits
            case .value(let bits): clientWindowBits = min(bits, windowBits)
            }
            memoryLevel = level
        }
        if serverNoContextTakeover {
            response.append("server_no_context_takeover")
        }
        if clientNoContextTakeover {
            response.append("client_no_context_takeover")
        }
        // Announced only when offered: a value never above the offer's (§7.1.2.1); a smaller server
        // window is otherwise the server's private choice, which the client needs no word of.
        if offered.serverMaxWindowBits != nil {
            response.append("server_max_window_bits=\(serverWindowBits)")
        }
        // Announced only when offered (§7.1.2.2 forbids it otherwise) and only when it limits the client.
        if offered.clientMaxWindowBits != .absent && clientWindowBits < largestWindowBits {
            response.append("client_max_window_bits=\(clientWindowBits)")
        }
        return DeflateAgreement(
            serverNoContextTakeover: serverNoContextTakeover, clientNoContextTakeover: clientNoContextTakeover,
            serverMaxWindowBits: serverWindowBits, clientMaxWindowBits: clientWindowBits, memoryLevel: memoryLevel,
            responseHeaderValue: response.joined(separator: "; "))
    }
}

/// The parameters of one permessage-deflate offer, validated (RFC 7692 §7.1).
struct OfferedParameters: Equatable {
    enum ClientWindow: Equatable {
        case absent
        /// client_max_window_bits without a value: the client can honour a limit, any limit.
        case withoutValue
        case value(Int)
    }

    var serverNoContextTakeover = false
    var clientNoContextTakeover = false
    var serverMaxWindowBits: Int?
    var clientMaxWindowBits = ClientWindow.absent

    /// nil when the offer must be declined: unknown or repeated parameters, invalid values.
    init?(_ offer: ExtensionOffer) {
        var seen: [String] = []
        for parameter in offer.parameters {
            let name = String(decoding: parameter.name.utf8.map(asciiLower), as: UTF8.self)
            guard !seen.contains(name) else { return nil }
            seen.append(name)
            switch name {
            case "server_no_context_takeover":
                guard parameter.value == nil else { return nil }
                serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard parameter.value == nil else { return nil }
                clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let bits = parameter.value.flatMap(Self.windowBits) else { return nil }
                serverMaxWindowBits = bits
            case "client_max_window_bits":
                if let value = parameter.value {
                    guard let bits = Self.windowBits(value) else { return nil }
                    clientMaxWindowBits = .value(bits)
                } else {
                    clientMaxWindowBits = .withoutValue
                }
            default:
                return nil
            }
        }
    }

    /// 8...15 written as a decimal without leading zeros ("9", "10" ... "15").
    static func windowBits(_ value: String) -> Int? {
        let digits = Array(value.utf8)
        guard (1...2).contains(digits.count), digits[0] != UInt8(ascii: "0"),
            digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        let bits = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        return (8...15).contains(bits) ? bits : nil
    }
}
