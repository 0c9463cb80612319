// A received message handed to the handler where the reader left it (the loop's receive buffer for a
// message in one frame), before any String or [UInt8] is made of it: the way in for handlers that
// forward or inspect bytes, with no copy and no allocation per message.

/// A received message's bytes in place, given to `onMessageView`; valid only during that call.
public struct WebSocketMessageView {
    /// The payload: unmasked, inflated when it was compressed, valid UTF-8 for text. The memory is the
    /// loop's and is reused after `onMessageView` returns: copy what must outlive the call.
    public let bytes: UnsafeRawBufferPointer
    /// Whether the message came in a binary frame (rather than a text frame).
    public let isBinary: Bool

    public init(bytes: UnsafeRawBufferPointer, isBinary: Bool) {
        self.bytes = bytes
        self.isBinary = isBinary
    }
}
