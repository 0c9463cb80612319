// 4D's WebSocketConnection: the public face of one client (id, handler, status, send,
// terminate, wss). `send` and `terminate` may be called from any thread; everything else
// belongs to the worker's loop thread, where the callbacks run. A connection owned by another
// worker appears as a `RemoteConnection` (a subclass) in `wss.connections`.
import ShoalCluster
import ShoalRing
import ShoalWire

/// One WebSocket client of a server.
public class WebSocketConnection: @unchecked Sendable {
    /// Where the connection is in its life; `status` is its 4D name.
    enum Phase {
        case open
        /// We sent a close frame and wait for the peer's.
        case closeSent
        /// The peer's close frame arrived (and ours is queued); the TCP connection is ending.
        case closeReceived
        case closed
    }

    /// Unique identifier of the connection across every worker (4D: `id`).
    public let id: Int
    /// The connection handler onConnection returned (4D: `handler`); nil for a connection owned
    /// by another worker process (its handler lives there).
    public let handler: (any WebSocketConnectionHandler)?
    /// The server this connection belongs to: the worker's own server object (4D: `wss`).
    public let wss: WebSocketServer
    /// The worker's loop, the server's (not stored per connection: every idle client holds its fields).
    var loop: EventLoop { wss.loop }

    // Every idle client holds the stored fields below for its whole life: 152 bytes with the header
    // and the fields above, a 160-byte malloc chunk. Swift lays them out in declaration order, so
    // they go from 8-byte to 1-byte alignment; state needed only while closing or paused goes in `cold`.
    let socket: SocketHandle
    /// The compressor for this client when it negotiated permessage-deflate: the worker's shared one
    /// (`.shared`) or its own (`.dedicated`).
    let deflater: MessageDeflater?
    /// State needed only while closing or paused, allocated on first need (`coldState()`).
    var cold: ConnectionColdState?
    // Unchecked exclusivity (loop thread only; `reader.next` calls nothing that reaches the connection):
    // the dynamic check showed in the per-message profile.
    @exclusivity(unchecked) var reader: MessageReader
    /// Idle clock (`IdleClock`, milliseconds): when the client was last heard from, or, while
    /// `pingOutstanding`, when the idle ping went out (nothing heard since then, or it would be clear).
    @exclusivity(unchecked) var idleSince: UInt32
    /// Position in the server's live list (see `WebSocketServer.connectionClosed`); -1 outside it.
    var indexInServer: Int32 = -1
    /// The index of the connection's entry in this worker's registry partition when running in a
    /// cluster (the entry's other parts, worker slot and id, are known already).
    var registryIndex: UInt32 = 0
    /// The client's address as counted for `maxConnectionsPerAddress` (an `AddressCounts` index).
    var addressIndex: UInt32 = 0
    @exclusivity(unchecked) var phase = Phase.open
    /// The idle ping went out and nothing was heard since.
    var pingOutstanding = false
    /// Reading is paused until the send queue drains (inbound backpressure).
    var readPaused = false
    /// The send queue grew past `drainNotifyThreshold` (or reading was paused): onDrain runs once
    /// it has emptied.
    var awaitingDrain = false

    /// A queue this large is worth an onDrain when it empties; smaller ones drain within a turn
    /// or two and would only make onDrain a per-message call.
    static let drainNotifyThreshold = 64 * 1024

    init(id: Int, handler: (any WebSocketConnectionHandler)?, wss: WebSocketServer, socket: SocketHandle,
         compression agreement: DeflateAgreement? = nil) {
        self.id = id
        self.handler = handler
        self.wss = wss
        self.socket = socket
        idleSince = IdleClock.milliseconds(wss.loop.now)
        var inflater: MessageInflater?
        if let agreement {
            if wss.options.compression == .shared {
                deflater = wss.sharedDeflateCodecs.deflater(for: agreement)
                inflater = wss.sharedDeflateCodecs.inflater
            } else {
                deflater = agreement.makeDeflater(compressionLevel: wss.options.compressionLevel)
                inflater = agreement.makeInflater()
            }
        } else {
            deflater = nil
        }
        reader = MessageReader(inflater: inflater)
    }

    /// Whether this client negotiated permessage-deflate.
    public var isCompressing: Bool { deflater != nil }

    /// "Connected", "Closing" or "Closed" (4D: `status`).
    public var status: String {
        switch phase {
        case .open: return "Connected"
        case .closeSent, .closeReceived: return "Closing"
        case .closed: return "Closed"
        }
    }

    /// Bytes queued for this client and not yet taken by the kernel.
    public var bufferedAmount: Int { loop.bufferedAmount(socket) }

    // MARK: Sending (any thread)

    /// Sends a text message (4D: `send(Text)`).
    public func send(_ message: String) { send(message, compress: nil) }

    /// Sends a binary message (4D: `send(Blob)`).
    public func send(_ message: [UInt8]) { send(message, compress: nil) }

    /// Sends a JSON text message (4D: `send(Object)`, the same text as JSON Stringify).
    public func send(_ message: JSONValue) { send(message, compress: nil) }

    /// `send(String)` choosing compression for this message: true compresses it whatever its size
    /// (when the client negotiated permessage-deflate), false never; nil follows `compressionThreshold`.
    public func send(_ message: String, compress: Bool?) {
        guard loop.inEventLoop else { return loop.execute { self.send(message, compress: compress) } }
        var text = message
        text.withUTF8 { sendFrame(.text, UnsafeRawBufferPointer($0), compress: compress) }
    }

    /// `send([UInt8])` choosing compression for this message (see `send(_:compress:)` for text).
    public func send(_ message: [UInt8], compress: Bool?) {
        guard loop.inEventLoop else { return loop.execute { self.send(message, compress: compress) } }
        message.withUnsafeBytes { sendFrame(.binary, $0, compress: compress) }
    }

    /// `send(JSONValue)` choosing compression for this message (see `send(_:compress:)` for text).
    public func send(_ message: JSONValue, compress: Bool?) {
        guard loop.inEventLoop else { return loop.execute { self.send(message, compress: compress) } }
        var encoded: [UInt8] = []
        message.write(into: &encoded)
        encoded.withUnsafeBytes { sendFrame(.text, $0, compress: compress) }
    }

    /// Closes the connection (4D: `terminate({code; message})`). With a code in 3001...4999 the close
    /// frame carries the code and the message (cut to fit 123 bytes on a character boundary);
    /// otherwise it carries no status and the message is not sent.
    public func terminate(code: Int? = nil, message: String? = nil) {
        guard loop.inEventLoop else { return loop.execute { self.terminate(code: code, message: message) } }
        if let code, (3001...4999).contains(code) {
            close(code: UInt16(code), reason: message ?? "")
        } else {
            close(code: nil, reason: "")
        }
    }

    // MARK: Loop side

    /// Queues one data frame if the connection is open (sending after terminate does nothing),
    /// compressed when the client negotiated it and `compress` (nil: the size threshold) says so.
    func sendFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, compress: Bool? = nil) {
        guard let queued = queuedIfAdmitted(payload.count) else { return }
        if let deflater, compress ?? (payload.count >= wss.options.compressionThreshold) {
            deflater.withCompressed(payload) { queue(opcode, $0, compressed: true, messageSize: payload.count, after: queued) }
        } else {
            queue(opcode, payload, compressed: false, messageSize: payload.count, after: queued)
        }
    }

    /// Queues a payload a broadcast already compressed for this connection's window size.
    func sendPrecompressed(_ opcode: Opcode, _ compressed: UnsafeRawBufferPointer, messageSize: Int) {
        guard let queued = queuedIfAdmitted(compressed.count) else { return }
        queue(opcode, compressed, compressed: true, messageSize: messageSize, after: queued)
    }

    /// The bytes already queued, if `count` more may be: the connection is open and its queue stays
    /// within `maxBackpressure`; otherwise the slow-consumer policy applies, this message is not sent,
    /// and the result is nil. Checked before compressing, so a compressor with context takeover never
    /// takes in a message its peer will not see.
    private func queuedIfAdmitted(_ count: Int) -> Int? {
        guard phase == .open else { return nil }
        let queued = loop.bufferedAmount(socket)
        if queued + count > wss.options.maxBackpressure {
            slowConsumer()
            return nil
        }
        return queued
    }

    private func queue(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, compressed: Bool, messageSize: Int,
                       after queued: Int) {
        if loop.writeFrame(socket, opcode: opcode, payload: payload, compressed: compressed) {
            wss.traffic.messagesOut += 1
            wss.traffic.bytesOut += messageSize
            if queued + payload.count >= Self.drainNotifyThreshold { awaitingDrain = true }
        }
    }

    private func slowConsumer() {
        switch wss.options.slowConsumerPolicy {
        case .drop:
            wss.web.limits.count(.slowConsumerDrop)
        case .close:
            wss.web.limits.count(.slowConsumerClose)
            // The close frame waits behind the backlog; a client that does not read it is dropped
            // when the close handshake times out.
            close(code: CloseCode.policyViolation, reason: "slow consumer")
        }
    }

    /// Starts the closing handshake with our close frame.
    func close(code: UInt16?, reason: String) {
        guard phase == .open else { return }
        writeCloseFrame(code: code, reason: reason)
        enterClosing(.closeSent)
        if readPaused {
            // The peer's close frame is what we wait for now. What it sent before and we kept is
            // dropped (RFC 6455 §5.5.1 lets a closing endpoint discard data); this may run inside
            // the reader (a slow-consumer close), so the reader is not run again from here.
            readPaused = false
            cold?.pendingInput = nil
            loop.resumeReceiving(socket)
        }
        loop.setTimer(socket, after: wss.options.closeTimeoutNanoseconds, kind: TimerKind.closeHandshake)
    }

    func writeCloseFrame(code: UInt16?, reason: String) {
        FrameWriter.closePayload(code: code, reason: reason).withUnsafeBytes {
            _ = loop.writeFrame(socket, opcode: .close, payload: $0)
        }
    }

    /// The cold state, allocated now if the connection had none.
    func coldState() -> ConnectionColdState {
        if let cold { return cold }
        let made = ConnectionColdState()
        cold = made
        return made
    }

    /// The connection's registry entry when running in a cluster.
    var registryEntry: Registry.Entry? {
        wss.web.cluster.map { Registry.Entry(slot: $0.slot, index: Int(registryIndex), id: id) }
    }

    /// Moves to a closing phase and tells the other workers (status "Closing" in their listings).
    func enterClosing(_ next: Phase) {
        if phase == .open, let entry = registryEntry {
            wss.web.cluster?.registry.setStatus(entry, .closing)
        }
        phase = next
    }

    /// Called by the server's idle sweep with the idle clock's time: ping a silent client, close one
    /// that did not answer.
    func checkIdle(now: UInt32) {
        guard phase == .open else { return }
        if readPaused {
            // We stopped reading, not the client talking: its pong could not reach us.
            idleSince = now
            pingOutstanding = false
            return
        }
        let silent = now &- idleSince
        if pingOutstanding {
            if silent >= wss.pongTimeoutMilliseconds {
                wss.web.limits.count(.idleTimeout)
                close(code: CloseCode.goingAway, reason: "idle timeout")
            }
        } else if silent >= wss.idleTimeoutMilliseconds {
            idleSince = now
            pingOutstanding = true
            loop.writeFrame(socket, opcode: .ping, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    enum TimerKind {
        static let closeHandshake: UInt8 = 1
    }
}
