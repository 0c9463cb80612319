// The outcome of a successful permessage-deflate negotiation: what each side's compressor may do, and
// the exact response header that tells the client so. The send and receive paths build their
// compressor and decompressor from it.

/// Accepted permessage-deflate parameters (RFC 7692 §7.1) for one connection.
public struct DeflateAgreement: Sendable, Equatable {
    /// The server starts every message it sends from an empty window.
    public var serverNoContextTakeover: Bool
    /// The client starts every message it sends from an empty window, so the decompressor may forget
    /// (and may be shared between connections).
    public var clientNoContextTakeover: Bool
    /// The window (8...15) the server's compressor stays within.
    public var serverMaxWindowBits: Int
    /// The largest window (8...15) the client may compress with: the decompressor's window. 15 unless
    /// the response announced a smaller client_max_window_bits.
    public var clientMaxWindowBits: Int
    /// zlib's memLevel (1...9) for the server's compressor.
    public var memoryLevel: Int
    /// The value of the Sec-WebSocket-Extensions response header, e.g.
    /// "permessage-deflate; server_no_context_takeover; client_no_context_takeover".
    public var responseHeaderValue: String

    /// Creates an agreement; `PerMessageDeflate.negotiate` is the usual source.
    public init(
        serverNoContextTakeover: Bool, clientNoContextTakeover: Bool, serverMaxWindowBits: Int,
        clientMaxWindowBits: Int, memoryLevel: Int, responseHeaderValue: String
    ) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
        self.memoryLevel = memoryLevel
        self.responseHeaderValue = responseHeaderValue
    }

    /// A compressor of this connection's own (the dedicated mode; the shared mode takes its compressor
    /// from the worker's SharedDeflateCodecs instead).
    public func makeDeflater(compressionLevel: Int = 6) -> MessageDeflater {
        MessageDeflater(
            windowBits: serverMaxWindowBits, memoryLevel: memoryLevel, noContextTakeover: serverNoContextTakeover,
            compressionLevel: compressionLevel)
    }

    /// A decompressor of this connection's own (the dedicated mode); hand it to MessageReader.
    public func makeInflater() -> MessageInflater {
        MessageInflater(windowBits: clientMaxWindowBits, noContextTakeover: clientNoContextTakeover)
    }
}
