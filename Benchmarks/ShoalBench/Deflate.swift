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
