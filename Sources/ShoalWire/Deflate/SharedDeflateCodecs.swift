// One worker's compression state for DeflatePolicy.shared: every connection of the worker that
// negotiated compression uses these, so compression costs a fixed amount per worker instead of a few
// hundred KiB per connection.

/// The shared mode's compressors and decompressor, one set per worker (one event loop: not thread-safe).
///
/// Every shared agreement has no context takeover in both directions, so each message is compressed
/// and inflated on its own and connections can take turns. Compressors are kept per announced
/// server_max_window_bits (a client may ask for a smaller window); the decompressor accepts any
/// client window. Nothing is allocated until first use.
public final class SharedDeflateCodecs {
    /// zlib's default memLevel: memory is per worker here, so it buys the full ratio.
    static let memoryLevel = 8

    /// The decompressor for every connection of the worker; hand it to each MessageReader.
    public let inflater = MessageInflater(windowBits: PerMessageDeflate.largestWindowBits, noContextTakeover: true)
    /// The pair for each announced server_max_window_bits (8...15), made on first use.
    private var pairs = [DeflateCodecs?](repeating: nil, count: 8)
    private let compressionLevel: Int

    /// Creates the (still empty) set; `compressionLevel` is zlib's 0...9.
    public init(compressionLevel: Int = 6) {
        self.compressionLevel = compressionLevel
    }

    /// The codecs for a connection with this agreement (which must come from the shared policy): the
    /// worker's decompressor and the compressor for the agreement's window, one pair per window.
    public func codecs(for agreement: DeflateAgreement) -> DeflateCodecs {
        precondition(
            agreement.serverNoContextTakeover && agreement.clientNoContextTakeover,
            "shared compression state needs no context takeover in both directions")
        let index = agreement.serverMaxWindowBits - 8
        if let pair = pairs[index] {
            return pair
        }
        let created = DeflateCodecs(
            inflater: inflater,
            deflater: MessageDeflater(
                windowBits: agreement.serverMaxWindowBits, memoryLevel: Self.memoryLevel, noContextTakeover: true,
                compressionLevel: compressionLevel))
        pairs[index] = created
        return created
    }

    /// The compressor for a connection with this agreement: `codecs(for:)`'s, for callers that keep
    /// the two apart.
    public func deflater(for agreement: DeflateAgreement) -> MessageDeflater {
        codecs(for: agreement).deflater!  // every pair made here has one
    }

    /// Bytes held by the worker's compressors and decompressor.
    public var memoryHeld: Int {
        pairs.reduce(inflater.memoryHeld) { $0 + ($1?.deflater?.memoryHeld ?? 0) }
    }
}
