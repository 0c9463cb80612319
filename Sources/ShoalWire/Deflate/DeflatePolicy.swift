// What the server is willing to spend on permessage-deflate: the input to negotiation. Compression
// state is the dominant cost (a zlib stream at its defaults holds over 256 KiB), so the choice is
// between sharing it per worker and giving each connection its own.

/// The server's compression policy, from which PerMessageDeflate answers a client's offers.
public struct DeflatePolicy: Sendable, Equatable {
    /// How compression state is held.
    public enum Mode: Sendable, Equatable {
        /// One compressor and one decompressor per worker, shared by all its connections: every
        /// message is compressed and decompressed on its own, so the server always answers
        /// server_no_context_takeover and client_no_context_takeover (RFC 7692 §7.1.1.1 and §7.1.1.2
        /// let it add both to any offer). Memory per connection: nothing. Ratio: lower for streams
        /// of similar small messages, which can no longer refer back to earlier ones.
        case shared
        /// A compressor and decompressor per connection, with context takeover unless the client
        /// asks otherwise, and windows of at most 2^windowBits (8...15) bytes where the offer lets
        /// the server choose. `memoryLevel` (1...9) sizes zlib's hash table, 2^(memoryLevel + 9) bytes.
        ///
        /// windowBits 8 is honoured by compressing with zlib's 9 (zlib refuses 8 for raw deflate); its
        /// matches stay within 250 bytes, so a client inflating with a 256-byte window decodes them.
        case dedicated(windowBits: Int, memoryLevel: Int)
    }

    /// How compression state is held.
    public let mode: Mode

    /// Creates a policy; window bits must be 8...15 and the memory level 1...9.
    public init(mode: Mode) {
        if case .dedicated(let windowBits, let memoryLevel) = mode {
            precondition((8...15).contains(windowBits), "window bits must be 8...15")
            precondition((1...9).contains(memoryLevel), "memory level must be 1...9")
        }
        self.mode = mode
    }

    /// Shared per-worker state with no context takeover in either direction.
    public static let shared = DeflatePolicy(mode: .shared)

    /// Per-connection state; 15 and 8 are zlib's defaults (the best ratio, about 256 KiB per compressor).
    public static func dedicated(windowBits: Int = 15, memoryLevel: Int = 8) -> DeflatePolicy {
        DeflatePolicy(mode: .dedicated(windowBits: windowBits, memoryLevel: memoryLevel))
    }
}
