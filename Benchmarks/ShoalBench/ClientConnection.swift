// One client WebSocket connection on the bench's loop: sends the upgrade request, checks the 101,
// then reads server frames (fragmented or not, control frames interleaved) and writes masked frames
// straight into the loop's send queue. With --deflate it offers permessage-deflate, reads compressed
// messages through an inflater and can send compressed ones (RSV1). What to do with messages is the
// scenario's business.
import Glibc
import ShoalRing
import ShoalWire

/// Why a connection failed or ended unexpectedly; the keys of the report's `errors`.
enum FailureKind: String, CaseIterable {
    /// connect() failed (refused, no ports left, descriptor limit).
    case connect
    /// The server did not answer the upgrade with a valid 101.
    case handshake
    /// The server broke RFC 6455 (the reader's ProtocolViolation).
    case protocolViolation = "protocol"
    /// The server sent a close frame while the bench was not closing.
    case closedByServer = "closed_by_server"
    /// TCP ended (EOF, reset) without a close handshake.
    case dropped
    /// An echoed message did not have the size sent.
    case unexpectedSize = "unexpected_size"
    /// Our close was not answered in time, or the handshake took too long.
    case timeout
    /// A scenario file's expect step: no message within its timeout.
    case expectTimeout = "expect_timeout"
    /// A scenario file's expect step: the next message did not match.
    case expectMismatch = "expect_mismatch"
}

/// What a scenario gets from its connections. Every call runs on the loop thread.
protocol ConnectionOwner: AnyObject {
    /// The 101 was received and validated.
    func connectionOpened(_ connection: ClientConnection)
    /// A complete text or binary message; `payload` is valid only during the call.
    func connectionReceived(_ connection: ClientConnection, _ payload: UnsafeRawBufferPointer, binary: Bool)
    /// Something went wrong; the connection is being closed.
    func connectionFailed(_ connection: ClientConnection, _ kind: FailureKind, _ detail: String)
    /// The socket is closed; the last call for this connection.
    func connectionClosed(_ connection: ClientConnection)
}

/// A client connection. Created by a scenario, which keeps it alive until `connectionClosed`.
final class ClientConnection: SocketDelegate {
    enum State { case handshaking, open, closing, closed }

    /// The scenario. Unowned(unsafe): scenarios outlive their connections (they hold them until
    /// closed), and this is read on every message.
    unowned(unsafe) let owner: any ConnectionOwner
    let loop: EventLoop
    /// The scenario's number for this connection (index into its per-connection state).
    let tag: Int
    /// Monotonic time the connect started (handshake latency).
    let startedAt: UInt64
    private(set) var handle = SocketHandle(index: .max, generation: .max)
    private(set) var state = State.handshaking
    /// The 101 was received and validated (stays true after the connection closes).
    private(set) var handshakeDone = false
    private var reader = MessageReader()
    /// A client reads the server's unmasked frames.
    private static let readerConfiguration = MessageReader.Configuration(requireMasking: false)
    /// The bench's compression state; nil without --deflate (then nothing is offered).
    private let deflate: DeflateSupport?
    /// What the server accepted, nil when it declined (or nothing was offered).
    private(set) var agreement: ClientDeflateAgreement?
    /// The compressor for this connection's sends (shared, starts each message afresh); nil when
    /// compression was not negotiated.
    private(set) var deflater: MessageDeflater?
    /// This connection's own inflater when the server keeps its context (nil: the shared one or none).
    private(set) var ownInflater: MessageInflater?
    private var head: [UInt8] = []
    private let expectedAccept: String
    private let subprotocol: String?
    /// xorshift64 state for mask keys: every frame gets its own key, as RFC 6455 §5.3 asks.
    private var random: UInt64
    private static let closeTimerKind: UInt8 = 1
    /// How long our close may wait for the server's close frame and FIN.
    static let closeTimeout: UInt64 = 3_000_000_000

    /// Registers the connected socket `fd` with the loop and queues the upgrade request.
    init(fd: Int32, owner: any ConnectionOwner, loop: EventLoop, tag: Int, keys: HandshakeKeys, startedAt: UInt64,
         deflate: DeflateSupport? = nil) {
        self.owner = owner
        self.deflate = deflate
        self.loop = loop
        self.tag = tag
        self.startedAt = startedAt
        let key = tag % keys.requests.count
        expectedAccept = keys.accepts[key]
        subprotocol = keys.subprotocol
        random = 0x9E37_79B9_7F4A_7C15 &* UInt64(tag &+ 1) ^ startedAt
        if random == 0 { random = 1 }
        handle = loop.register(socket: fd, delegate: self)
        keys.requests[key].withUnsafeBytes { loop.write(handle, $0) }
    }

    var isOpen: Bool { state == .open }

    // MARK: Sending

    /// A fresh mask key (xorshift64: a few instructions, no syscall).
    @inline(__always)
    private func nextMaskKey() -> UInt32 {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return UInt32(truncatingIfNeeded: random >> 16)
    }

    /// Queues one masked frame: the header and the payload are written once, into the send queue.
    /// `fill` writes the payload in clear; it is masked in place afterwards.
    @inline(__always)
    func send(_ opcode: Opcode, payloadLength: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) {
        guard state == .open else { return }
        let key = nextMaskKey()
        let headerLength = FrameWriter.headerSize(payloadLength: payloadLength, masked: true)
        loop.write(handle, reserving: headerLength + payloadLength) { region in
            _ = FrameWriter.writeHeader(opcode: opcode, payloadLength: payloadLength, maskKey: key, into: region.baseAddress!)
            let payload = UnsafeMutableRawBufferPointer(rebasing: region[headerLength...])
            fill(payload)
            Masking.apply(maskKey: key, keyOffset: 0, to: payload)
        }
    }

    /// Queues a masked copy of `template` as one message.
    @inline(__always)
    func send(_ opcode: Opcode, copying template: UnsafeRawBufferPointer) {
        send(opcode, payloadLength: template.count) { $0.copyMemory(from: template) }
    }

    /// Queues an already compressed message (RSV1 set, one frame), masked.
    func send(_ opcode: Opcode, compressed: UnsafeRawBufferPointer) {
        guard state == .open else { return }
        let key = nextMaskKey()
        let headerLength = FrameWriter.headerSize(payloadLength: compressed.count, masked: true)
        loop.write(handle, reserving: headerLength + compressed.count) { region in
            _ = FrameWriter.writeHeader(opcode: opcode, rsv1: true, payloadLength: compressed.count, maskKey: key,
                                        into: region.baseAddress!)
            let payload = UnsafeMutableRawBufferPointer(rebasing: region[headerLength...])
            if compressed.count > 0 { payload.copyMemory(from: compressed) }
            Masking.apply(maskKey: key, keyOffset: 0, to: payload)
        }
        deflate?.compressedSent += 1
    }

    /// Queues `message`: compressed when permessage-deflate was negotiated, as it is otherwise.
    func send(_ opcode: Opcode, message: UnsafeRawBufferPointer) {
        if let deflater {
            deflater.withCompressed(message) { send(opcode, compressed: $0) }
        } else {
            send(opcode, copying: message)
        }
    }

    /// Bytes this connection's own inflater holds (0 when it has none).
    var ownInflaterMemory: Int { ownInflater?.memoryHeld ?? 0 }

    private func sendControl(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        let key = nextMaskKey()
        let count = min(payload.count, Limits.maxControlPayload)
        let headerLength = FrameWriter.headerSize(payloadLength: count, masked: true)
        loop.write(handle, reserving: headerLength + count) { region in
            _ = FrameWriter.writeHeader(opcode: opcode, payloadLength: count, maskKey: key, into: region.baseAddress!)
            let out = UnsafeMutableRawBufferPointer(rebasing: region[headerLength...])
            if count > 0 { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: payload[..<count])) }
            Masking.apply(maskKey: key, keyOffset: 0, to: out)
        }
    }

    // MARK: Closing

    /// Starts the closing handshake (close 1000); the server answers and closes TCP first, then we
    /// close. Gives up after `closeTimeout`. A connection still handshaking is simply dropped.
    func close() {
        switch state {
        case .open:
            state = .closing
            withUnsafeBytes(of: CloseCode.normal.bigEndian) { sendControl(.close, $0) }
            loop.setTimer(handle, after: Self.closeTimeout, kind: Self.closeTimerKind)
        case .handshaking:
            state = .closing
            loop.close(handle, mode: .abort)
        case .closing, .closed:
            break
        }
    }

    /// Drops the connection now (no closing handshake).
    func abort() {
        guard state != .closed else { return }
        state = .closing
        loop.close(handle, mode: .abort)
    }

    private func fail(_ kind: FailureKind, _ detail: String) {
        guard state == .open || state == .handshaking else { return }
        state = .closing
        owner.connectionFailed(self, kind, detail)
        loop.close(handle, mode: .abort)
    }

    // MARK: SocketDelegate

    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) {
        var offset = 0
        if state == .handshaking {
            let searchFrom = head.count - 3
            head.append(contentsOf: UnsafeRawBufferPointer(bytes))
            guard let end = HandshakeResponse.headEnd(in: head, from: searchFrom) else {
                if head.count > HandshakeResponse.maxHeadSize { fail(.handshake, "response head larger than 16 KiB") }
                return
            }
            switch HandshakeResponse.check(head[..<end], expectedAccept: expectedAccept, deflateOffered: deflate != nil,
                                           subprotocols: subprotocol.map { [$0] } ?? []) {
            case .failed(let problem):
                fail(.handshake, problem)
                return
            case .accepted(let accepted, let answer):
                if let deflate {
                    if let accepted, let answer {
                        agreement = accepted
                        let inflater = deflate.inflater(for: accepted)
                        if inflater !== deflate.sharedInflater { ownInflater = inflater }
                        reader = MessageReader(inflater: inflater)
                        deflater = deflate.deflater(windowBits: accepted.clientMaxWindowBits)
                        deflate.negotiated += 1
                        deflate.answers[answer, default: 0] += 1
                    } else {
                        deflate.declined += 1
                    }
                }
            }
            offset = end - (head.count - bytes.count)
            head = []
            state = .open
            handshakeDone = true
            owner.connectionOpened(self)
        }
        if let deflate { deflate.wireBytesReceived += bytes.count - offset }
        readFrames(bytes, from: offset)
    }

    private func readFrames(_ bytes: UnsafeMutableRawBufferPointer, from start: Int) {
        var offset = start
        while state == .open || state == .closing {
            let event: InboundEvent?
            do {
                event = try reader.next(bytes, &offset, Self.readerConfiguration)
            } catch {
                fail(.protocolViolation, "\(error.reason) (close code \(error.closeCode))")
                return
            }
            guard let event else { return }
            switch event {
            case .text(let payload):
                if let deflate { deflate.countMessage(payload.count) }
                if state == .open { owner.connectionReceived(self, payload, binary: false) }
            case .binary(let payload):
                if let deflate { deflate.countMessage(payload.count) }
                if state == .open { owner.connectionReceived(self, payload, binary: true) }
            case .ping(let payload):
                if state == .open { sendControl(.pong, payload) }
            case .pong:
                break
            case .close(let code, _):
                if state == .open {
                    // The server started the close: answer with its code, then wait for its FIN.
                    state = .closing
                    owner.connectionFailed(self, .closedByServer, "close frame \(code.map(String.init) ?? "without code")")
                    if let code { withUnsafeBytes(of: code.bigEndian) { sendControl(.close, $0) } } else {
                        sendControl(.close, UnsafeRawBufferPointer(start: nil, count: 0))
                    }
                    loop.setTimer(handle, after: Self.closeTimeout, kind: Self.closeTimerKind)
                }
                return
            }
        }
    }

    func readEnded(on handle: SocketHandle, error: Int32?) {
        if state == .open || state == .handshaking {
            let why = error.map { String(cString: strerror($0)) } ?? "EOF"
            fail(state == .handshaking ? .handshake : .dropped, "connection ended (\(why)) without a close handshake")
        } else {
            // Closing: the server's FIN (after its close frame) is the normal end.
            loop.close(handle, mode: .abort)
        }
    }

    func timerFired(on handle: SocketHandle, kind: UInt8) {
        guard kind == Self.closeTimerKind, state == .closing else { return }
        owner.connectionFailed(self, .timeout, "no close answer within \(Self.closeTimeout / 1_000_000_000) s")
        loop.close(handle, mode: .abort)
    }

    func closed(on handle: SocketHandle) {
        state = .closed
        owner.connectionClosed(self)
    }
}
