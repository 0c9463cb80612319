// permessage-deflate (RFC 7692) on the bench's side, with --deflate: the offer the opening handshake
// carries (what Chromium offers), the check of the server's answer, the codecs, and what was seen.
//
// Receiving: a server that forgets between messages (server_no_context_takeover) is read through one
// inflater shared by every connection; a server with context takeover needs an inflater (and its
// window) per connection, which is what a browser holds too. Sending: the bench compresses every
// message on its own, from an empty window, which any agreement allows (context takeover lets the
// sender refer back, it never obliges it to), so one compressor per window size serves every
// connection and a fixed message (echo) is compressed once. The server's inflating work is the same.
import ShoalWire

/// What the server's Sec-WebSocket-Extensions answer agreed to (RFC 7692 §7.1), from the client's side.
struct ClientDeflateAgreement: Equatable {
    /// The server starts every message from an empty window: the bench may share one inflater.
    var serverNoContextTakeover = false
    /// The server asks the bench to start every message from an empty window (it always does).
    var clientNoContextTakeover = false
    /// The window the server compresses with (8...15): the bench's inflater window for it.
    var serverMaxWindowBits = 15
    /// The largest window the bench may compress with (8...15).
    var clientMaxWindowBits = 15

    /// The offer, as a Sec-WebSocket-Extensions value: what Chromium sends.
    static let offer = "permessage-deflate; client_max_window_bits"

    /// Parses the server's Sec-WebSocket-Extensions value(s) (several header lines joined by ", ").
    /// The answer must accept exactly one permessage-deflate element of our offer, with each parameter
    /// at most once and window sizes 8...15 (token or quoted string); anything else fails the
    /// connection (RFC 7692 §5.1, §7.1: another extension, or a parameter we cannot honour).
    static func parse(_ value: String) -> Result<ClientDeflateAgreement, AnswerError> {
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
            let key = pieces[0].lowercased()
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

    struct AnswerError: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
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

/// The bench's compression state for one invocation (one loop: not thread-safe) and its tallies.
final class DeflateSupport {
    /// Inflates for every connection whose server forgets between messages; accepts any window.
    let sharedInflater = MessageInflater(windowBits: 15, noContextTakeover: true)
    /// One compressor per client window size (index bits - 8), each forgetting between messages.
    private var deflaters = [MessageDeflater?](repeating: nil, count: 8)
    /// Messages compressed once (echo's fixed payload), per client window size.
    private var precompressed = [[UInt8]?](repeating: nil, count: 8)

    var negotiated = 0
    var declined = 0
    /// Connections per distinct Sec-WebSocket-Extensions answer.
    var answers: [String: Int] = [:]
    var compressedSent = 0
    /// Bytes of WebSocket frames received after the handshake (compressed where negotiated).
    var wireBytesReceived = 0
    /// Text and binary messages received, and their (inflated) payload bytes.
    var messagesReceived = 0
    var messageBytesReceived = 0

    @inline(__always)
    func countMessage(_ bytes: Int) {
        messagesReceived += 1
        messageBytesReceived += bytes
    }

    /// The inflater for a connection with this agreement: the shared one, or a new one of its own.
    func inflater(for agreement: ClientDeflateAgreement) -> MessageInflater {
        if agreement.serverNoContextTakeover { return sharedInflater }
        return MessageInflater(windowBits: agreement.serverMaxWindowBits, noContextTakeover: false)
    }

    /// A compressor for the agreed client window (it starts every message from an empty window).
    func deflater(windowBits: Int) -> MessageDeflater {
        if let d = deflaters[windowBits - 8] { return d }
        let d = MessageDeflater(windowBits: windowBits, noContextTakeover: true)
        deflaters[windowBits - 8] = d
        return d
    }

    /// `payload` compressed once for this window size (the caller's payload must not change).
    func precompressed(_ payload: UnsafeRawBufferPointer, windowBits: Int) -> [UInt8] {
        if let bytes = precompressed[windowBits - 8] { return bytes }
        let bytes = deflater(windowBits: windowBits).compress(payload)
        precompressed[windowBits - 8] = bytes
        return bytes
    }

    /// Bytes the shared inflater and the compressors hold now (connections' own inflaters apart).
    var sharedMemoryHeld: Int {
        deflaters.reduce(sharedInflater.memoryHeld) { $0 + ($1?.memoryHeld ?? 0) }
    }

    /// The most the bench's zlib state (shared codecs and every live connection's own inflater) held
    /// at the end of a measured window.
    var peakMemoryHeld = 0

    var report: DeflateReport {
        DeflateReport(offer: ClientDeflateAgreement.offer, negotiatedConnections: negotiated, declinedConnections: declined,
                      answers: answers, compressedMessagesSent: compressedSent, messagesReceived: messagesReceived,
                      messageBytesReceived: messageBytesReceived, wireBytesReceived: wireBytesReceived,
                      benchZlibBytesPeak: peakMemoryHeld)
    }
}

/// The `deflate` part of the report (present with --deflate).
struct DeflateReport: Codable {
    /// The Sec-WebSocket-Extensions value the bench sent.
    var offer: String
    /// Connections whose 101 accepted permessage-deflate.
    var negotiatedConnections: Int
    /// Connections whose 101 carried no Sec-WebSocket-Extensions (the server declined).
    var declinedConnections: Int
    /// The server's answers, with how many connections got each.
    var answers: [String: Int]
    var compressedMessagesSent: Int
    /// Over the whole invocation (warm-up and closing included): messages, their payload bytes after
    /// inflating, and the frame bytes that carried them (headers and control frames included).
    var messagesReceived: Int
    var messageBytesReceived: Int
    var wireBytesReceived: Int
    /// zlib state and inflate buffers the bench held, at most, at the end of a measured window
    /// (what compression cost the client in memory).
    var benchZlibBytesPeak: Int
}
