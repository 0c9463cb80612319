// Which frames a reader accepts by their mask bit (RFC 6455 §5.1): a server refuses unmasked
// frames and a client refuses masked ones, each with 1002; tools that read either side accept both.

/// The mask bit a reader expects on every frame.
public enum FrameMasking: Sendable {
    /// A server reading its clients: an unmasked frame is a protocol error.
    case required
    /// A client reading its server: a masked frame is a protocol error.
    case forbidden
    /// Test and load tools that read frames of either side.
    case either

    /// The violation a frame with mask bit `masked` is, or nil when it is accepted.
    @inline(__always)
    func violation(masked: Bool) -> ProtocolViolation? {
        switch self {
        case .required: masked ? nil : .protocolError("unmasked client frame")
        case .forbidden: masked ? .protocolError("masked server frame") : nil
        case .either: nil
        }
    }
}
