// What the reader hands to the connection layer: views, not copies, so the hot path never allocates
// for a message that arrived in one piece.

/// One complete inbound event. Buffer views are valid only until the next call to `MessageReader.next`
/// (for an inflated message: of any reader sharing the same MessageInflater).
public enum InboundEvent {
    /// A complete text message; its bytes are already validated as UTF-8.
    case text(UnsafeRawBufferPointer)
    /// A complete binary message.
    case binary(UnsafeRawBufferPointer)
    /// A ping; answer with a pong carrying the same bytes.
    case ping(UnsafeRawBufferPointer)
    /// A pong.
    case pong(UnsafeRawBufferPointer)
    /// A close frame, validated: `code` is nil when the payload was empty; `reason` is valid UTF-8.
    case close(code: UInt16?, reason: UnsafeRawBufferPointer)
}
