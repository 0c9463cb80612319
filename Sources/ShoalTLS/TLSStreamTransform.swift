// A TLS session as the event loop's StreamTransform: the loop feeds it what the socket received
// and sends what it produces, and the socket's delegate (HTTP, WebSocket, a client) reads and
// writes plaintext. Shared by wss:// in the worker and the WebSocket client's wss:// URLs:
//
//   let tls = try TLSStreamTransform(context: .server(identity: ...), role: .server)   // or
//   let tls = try TLSStreamTransform(context: .client(), role: .client(serverName: "example.com"))
//   tls.onFailure = { error, duringHandshake in ... }   // count it, report it
//   loop.setTransform(tls, for: handle)                 // a client's ClientHello leaves this turn
//
// A client may write its upgrade request at once: the loop keeps it until the handshake is done.
public import ShoalRing

/// TLS between a loop's socket and its delegate.
public final class TLSStreamTransform: StreamTransform {
    public let session: TLSSession
    /// Why the peer's TLS failed, once it has.
    public private(set) var failure: TLSError?
    /// Told once when the peer broke TLS (the alert is queued and the socket closes after it);
    /// `duringHandshake`: no application data ever flowed.
    public var onFailure: ((_ error: TLSError, _ duringHandshake: Bool) -> Void)?
    /// Told once when the handshake completes.
    public var onEstablished: ((TLSSession) -> Void)?

    public init(session: TLSSession) {
        self.session = session
    }

    public convenience init(context: TLSContext, role: TLSSession.Role, resuming: TLSResumption? = nil) throws(TLSError) {
        self.init(session: try TLSSession(context: context, role: role, resuming: resuming))
    }

    public func receive(_ bytes: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer,
                        deliver: (UnsafeMutableRawBufferPointer) -> Void) -> StreamTransformEvent {
        guard failure == nil else { return .failed }
        let duringHandshake = !session.isHandshakeComplete
        do {
            // The pieces are written into `scratch`, which is the caller's and mutable.
            let progress = try session.receive(bytes, scratch: scratch) { deliver(UnsafeMutableRawBufferPointer(mutating: $0)) }
            switch progress {
            case .needMoreInput:
                return .needMoreInput
            case .handshakeCompleted:
                onEstablished?(session)
                return .established
            case .established:
                return .established
            case .closedByPeer:
                return .endOfStream
            }
        } catch {
            failure = error
            onFailure?(error, duringHandshake)
            return .failed
        }
    }

    public var isEstablished: Bool { session.isHandshakeComplete && failure == nil }

    public func seal(_ plaintext: UnsafeRawBufferPointer) -> Bool {
        do {
            try session.send(plaintext)
            return true
        } catch {
            failure = error
            return false
        }
    }

    public var pendingOutputCount: Int { session.pendingOutputCount }

    public func takeOutput(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        session.takeOutput(into: buffer)
    }

    public func finish() {
        session.close()
    }
}
