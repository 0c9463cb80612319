// A layer between a socket and its delegate that rewrites the byte stream both ways (TLS): the
// loop hands it what the socket received and gives the delegate the plaintext it yields; what the
// delegate writes waits as plaintext and is sealed once per loop turn, at flush, so the small
// frames of one turn share records. ShoalRing knows only this protocol, never a TLS library.
//
// Use (server or client socket alike):
//   loop.setTransform(transform, for: handle)              // after register, or after a PROXY header
//   loop.setTransform(transform, for: handle, feeding: rest) // with bytes already read past it
// From then on `write` queues plaintext, `received` delivers plaintext, `close(.graceful)` ends
// with the transform's own end (close_notify), and a transform failure sends what the transform
// wrote (an alert) and closes the socket. The delegate hears `readEnded(error: nil)` when the
// peer ended the stream inside the transform (close_notify).

/// What feeding received bytes to a transform led to.
public enum StreamTransformEvent: Equatable, Sendable {
    /// More bytes are needed (a handshake or a record is not complete yet).
    case needMoreInput
    /// The transform is established: plaintext flows both ways (`isEstablished` is true).
    case established
    /// The peer ended the stream inside the transform (TLS close_notify): nothing more will come.
    case endOfStream
    /// The peer broke the protocol; what the transform wrote for it (an alert) is still to be sent,
    /// then the socket closes.
    case failed
}

/// A byte-stream transformation driven by the loop. Used on the loop thread only.
public protocol StreamTransform: AnyObject {
    /// Feeds bytes the socket received. Plaintext they complete goes to `deliver`, zero or more
    /// times, in pieces written to `scratch` (the loop's buffer; valid during the call only).
    func receive(_ bytes: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer,
                 deliver: (UnsafeMutableRawBufferPointer) -> Void) -> StreamTransformEvent
    /// Plaintext may be sealed: until then the loop keeps what the delegate writes queued.
    var isEstablished: Bool { get }
    /// Seals plaintext for the peer (its output then waits in `pendingOutputCount`); false: failed.
    func seal(_ plaintext: UnsafeRawBufferPointer) -> Bool
    /// Bytes waiting to be sent: handshake messages, sealed records, alerts, the end of stream.
    var pendingOutputCount: Int { get }
    /// Moves up to `buffer.count` pending bytes into `buffer`; returns how many.
    func takeOutput(into buffer: UnsafeMutableRawBufferPointer) -> Int
    /// Ends the stream on our side (TLS close_notify); the bytes wait in `pendingOutputCount`.
    func finish()
}
