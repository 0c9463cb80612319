// Frame opcodes of RFC 6455 §5.2; the values the wire may carry without a negotiated extension.

/// The 4-bit opcode in the first byte of a frame.
public enum Opcode: UInt8, Sendable {
    /// A later fragment of a text or binary message.
    case continuation = 0x0
    /// The first (or only) frame of a UTF-8 text message.
    case text = 0x1
    /// The first (or only) frame of a binary message.
    case binary = 0x2
    /// Starts the closing handshake (RFC 6455 §5.5.1).
    case close = 0x8
    /// Keepalive probe; the peer answers with a pong carrying the same payload.
    case ping = 0x9
    /// Answer to a ping, or an unsolicited heartbeat.
    case pong = 0xA

    /// Whether this is a control frame (close, ping, pong): the high bit of the opcode is set.
    public var isControl: Bool { rawValue & 0x8 != 0 }
}
