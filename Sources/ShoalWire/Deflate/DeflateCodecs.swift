// A connection's permessage-deflate codecs behind one reference: its reader inflates with one, its
// sends compress with the other. Every idle connection holds the reference for its whole life, and
// one reference instead of two (a deflater beside the reader's inflater) is 8 bytes of each.

/// The decompressor and compressor one connection uses; under the shared policy, many connections
/// with the same agreement hold the same pair (`SharedDeflateCodecs.codecs(for:)`).
public final class DeflateCodecs {
    /// Inflates the peer's compressed messages (in the connection's `MessageReader`).
    public let inflater: MessageInflater
    /// Compresses what the connection sends; nil for a reader made with only an inflater.
    public let deflater: MessageDeflater?

    public init(inflater: MessageInflater, deflater: MessageDeflater?) {
        self.inflater = inflater
        self.deflater = deflater
    }
}
