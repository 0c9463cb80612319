// 4D's WebSocketConnection: the public face of one client (id, handler, status, send,
// terminate, wss). Every public member may be used from any thread: `send` and `terminate` are
// handed to the worker's loop (where the callbacks run), `status` is read from an atomic. A connection owned by another
// worker appears as a `RemoteConnection` (a subclass) in `wss.connections`.
import ShoalCluster
import ShoalRing
import ShoalWire
import Synchronization

/// One WebSocket client of a server.
public class WebSocketConnection: @unchecked Sendable {
    /// Where the connection is in its life; `status` is its 4D name.
    enum Phase: UInt8 {
        case open
        /// We sent a close frame and wait for the peer's.
        case closeSent
        /// The peer's close frame arrived (and ours is queued); the TCP connection is ending.
        case closeReceived
        case closed
    }

    /// Unique identifier of the connection across every worker (4D: `id`). Never changes for a
    /// connection anyone holds (a `RemoteConnection` is retargeted only while no one else does).
    /// Read per recipient of every fan-out: no dynamic exclusivity check.
    @exclusivity(unchecked) public internal(set) final var id: Int
    /// The connection handler onConnection returned (4D: `handler`); nil for a connection owned
    /// by another worker process (its handler lives there).
    public let handler: (any WebSocketConnectionHandler)?
    /// The server this connection belongs to: the worker's own server object (4D: `wss`).
    public let wss: WebSocketServer
    /// The worker's loop, the server's (not stored per connection: every idle client holds its fields).
    var loop: EventLoop { wss.loop }

    // Every idle client holds the stored fields below for its whole life: 136 bytes with the header
    // and the fields above, a 144-byte malloc chunk. Swift lays them out in declaration order, so
    // they go from 8-byte to 1-byte alignment; state needed only while closing or paused goes in `cold`.
    let socket: SocketHandle
    /// State needed only while closing or paused, allocated on first need (`coldState()`).
    var cold: ConnectionColdState?
    // Unchecked exclusivity (loop thread only; `reader.next` calls nothing that reaches the connection):
    // the dynamic check showed in the per-message profile.
    // The reader also holds the client's compression codecs (`deflater` below): one reference for both.
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
    /// `phase`, stored atomically so `status` can read it from any thread; written on the loop thread
    /// only, where a relaxed load is a plain byte load. (A separate atomic copy would cost a byte that
    /// the object does not have: see the size note above.)
    private let phaseByte = Atomic<UInt8>(Phase.open.rawValue)
    /// The idle ping went out and nothing was heard since.
    var pingOutstanding = false
    /// Reading is paused until the send queue drains (inbound backpressure).
    var readPaused = false
    /// Reading is paused, or onTerminate waits, until the bus is no longer backed up (`InputHold`).
    /// In the cold state: the object has no byte to spare (see the size note above).
    var heldForBus: Bool {
        get { cold?.heldForBus ?? false }
        set { if newValue || cold != nil { coldState().heldForBus = newValue } }
    }
    /// The send queue grew past `drainNotifyThreshold` (or reading was paused): onDrain runs once
    /// it has emptied.
    var awaitingDrain = false

    /// A queue this large is worth an onDrain when it empties; smaller ones drain within a turn
    /// or two and would only make onDrain a per-message call.
    static let drainNotifyThreshold = 64 * 1024

    init(id: Int, handler: (any WebSocketConnectionHandler)?, wss: WebSocketServer, socket: SocketHandle,
         compression agreement: DeflateAgreement? = nil, subprotocol: String? = nil) {
        self.id = id
        self.handler = handler
        self.wss = wss
        self.socket = socket
        idleSince = IdleClock.milliseconds(wss.loop.now)
        var codecs: DeflateCodecs?
        if let agreement {
            if wss.options.compression == .shared {
                codecs = wss.sharedDeflateCodecs.codecs(for: agreement)
            } else {
                codecs = DeflateCodecs(inflater: agreement.makeInflater(),
                                       deflater: agreement.makeDeflater(compressionLevel: wss.options.compressionLevel))
            }
        }
        reader = MessageReader(codecs: codecs)
        if let subprotocol { coldState().subprotocol = subprotocol }
    }

    /// The subprotocol onConnection chose from the client's offer (`event.selectProtocol`), nil when
    /// none (RFC 6455 §4.2.2).
    /// Kept in the cold state (few connections have one); from another thread this waits for the loop.
    public var `protocol`: String? {
        if loop.inEventLoop { return cold?.subprotocol }
        return loop.onLoopAndWait { self.cold?.subprotocol }
    }

    /// The compressor for this client when it negotiated permessage-deflate: the worker's shared one
    /// (`.shared`) or its own (`.dedicated`). Set once in `init` and never changed.
    var deflater: MessageDeflater? { reader.codecs?.deflater }

    /// Whether this client negotiated permessage-deflate.
    public var isCompressing: Bool { deflater != nil }

    /// "Connected", "Closing" or "Closed" (4D: `status`).
    public var status: String {
        switch Phase(rawValue: phaseByte.load(ordering: .acquiring)) ?? .closed {
        case .open: return "Connected"
        case .closeSent, .closeReceived: return "Closing"
        case .closed: return "Closed"
        }
    }

    /// Bytes queued for this client and not yet taken by the kernel. From another thread this waits
    /// for the loop's next turn.
    public var bufferedAmount: Int {
        let loop = self.loop, socket = self.socket
        return loop.onLoopAndWait { loop.bufferedAmount(socket) }
    }

    /// Moves to `next` (loop thread), publishing it for `status`.
    func setPhase(_ next: Phase) {
        phaseByte.store(next.rawValue, ordering: .releasing)
    }

    /// Where the connection is in its life (loop thread).
    var phase: Phase {
        @inline(__always) get { unsafeBitCast(phaseByte.load(ordering: .relaxed), to: Phase.self) }
    }

    // MARK: Sending (any thread)

    /// Sends a text message (4D: `send(Text)`). The result says what became of it; it may be ignored.
    @discardableResult
    public func send(_ message: String) -> WebSocketSendResult { send(message, compress: nil) }

    /// Sends a binary message (4D: `send(Blob)`).
    @discardableResult
    public func send(_ message: [UInt8]) -> WebSocketSendResult { send(message, compress: nil) }

    /// Sends a JSON text message (4D: `send(Object)`, the same text as JSON Stringify).
    @discardableResult
    public func send(_ message: JSONValue) -> WebSocketSendResult { send(message, compress: nil) }

    /// Sends a message in the form it arrived (4D's echo idiom `ws.send(event.data)`): `.text` and
    /// `.object` as a text frame, `.blob` as a binary frame.
    @discardableResult
    public func send(_ message: WebSocketData) -> WebSocketSendResult { send(message, compress: nil) }

    /// `send(WebSocketData)` choosing compression for this message (see `send(_:compress:)` for text).
    @discardableResult
    public func send(_ message: WebSocketData, compress: Bool?) -> WebSocketSendResult {
        switch message {
        case .text(let text): return send(text, compress: compress)
        case .blob(let bytes): return send(bytes, compress: compress)
        case .object(let value): return send(value, compress: compress)
        }
    }

    /// `send(String)` choosing compression for this message: true compresses it whatever its size
    /// (when the client negotiated permessage-deflate), false never; nil follows `compressionThreshold`.
    @discardableResult
    public func send(_ message: String, compress: Bool?) -> WebSocketSendResult {
        guard loop.inEventLoop else { return handOver { $0.send(message, compress: compress) } }
        var text = message
        return text.withUTF8 { sendFrame(.text, UnsafeRawBufferPointer($0), compress: compress) }
    }

    /// `send([UInt8])` choosing compression for this message (see `send(_:compress:)` for text).
    @discardableResult
    public func send(_ message: [UInt8], compress: Bool?) -> WebSocketSendResult {
        guard loop.inEventLoop else { return handOver { $0.send(message, compress: compress) } }
        return message.withUnsafeBytes { sendFrame(.binary, $0, compress: compress) }
    }

    /// Sends a received message back out as it came, text as text and binary as binary, straight from
    /// the bytes `onMessageView` was given (on the loop thread: no copy beyond the one into the send
    /// queue). From another thread the bytes are copied first, as the view is only valid during the call.
    @discardableResult
    public func send(_ message: WebSocketMessageView) -> WebSocketSendResult {
        let opcode: Opcode = message.isBinary ? .binary : .text
        guard loop.inEventLoop else {
            let copy = Array(message.bytes)
            return handOver { connection in copy.withUnsafeBytes { connection.sendFrame(opcode, $0) } }
        }
        return sendFrame(opcode, message.bytes)
    }

    /// `send(JSONValue)` choosing compression for this message (see `send(_:compress:)` for text).
    @discardableResult
    public func send(_ message: JSONValue, compress: Bool?) -> WebSocketSendResult {
        guard loop.inEventLoop else { return handOver { $0.send(message, compress: compress) } }
        var encoded: [UInt8] = []
        message.write(into: &encoded)
        return encoded.withUnsafeBytes { sendFrame(.text, $0, compress: compress) }
    }

    /// A send from another thread: run on the loop at its next turn, outcome unknown here.
    private func handOver(_ send: @escaping @Sendable (WebSocketConnection) -> WebSocketSendResult) -> WebSocketSendResult {
        loop.execute { _ = send(self) }
        return .handedToLoop
    }

    /// Runs `body` on the worker's loop thread with this connection and returns its result: the way
    /// for async code (a `Task` that awaited a database call) to act on the connection and learn what
    /// happened, e.g. `let result = await ws.onLoop { $0.send(rows) }` gives `.queued`, or `.closed`
    /// when the client left meanwhile. The server's loop must be running.
    public func onLoop<T: Sendable>(_ body: @escaping @Sendable (WebSocketConnection) -> T) async -> T {
        if loop.inEventLoop { return body(self) }
        return await withCheckedContinuation { continuation in
            loop.execute { continuation.resume(returning: body(self)) }
        }
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
    /// compressed when the client negotiated it and `compress` (nil: the size threshold) says so,
    /// after the broadcasts and publishes sent before it that have not reached this client yet.
    @discardableResult
    func sendFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, compress: Bool? = nil) -> WebSocketSendResult {
        if wss.fanOuts.isWaiting { wss.fanOuts.catchUp(self) }
        return queueFrame(opcode, payload, compress: compress)
    }

    /// `sendFrame` for a fan-out's own delivery (its order is the fan-out queue's).
    @discardableResult
    func queueFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, compress: Bool? = nil) -> WebSocketSendResult {
        let queued: Int
        switch admission(payload.count) {
        case .success(let bytes): queued = bytes
        case .failure(let refusal): return refusal.result
        }
        if let deflater, compress ?? (payload.count >= wss.options.compressionThreshold) {
            return deflater.withCompressed(payload) { queue(opcode, $0, compressed: true, messageSize: payload.count, after: queued) }
        }
        return queue(opcode, payload, compressed: false, messageSize: payload.count, after: queued)
    }

    /// Queues a payload a broadcast already compressed for this connection's window size.
    func sendPrecompressed(_ opcode: Opcode, _ compressed: UnsafeRawBufferPointer, messageSize: Int) {
        guard case .success(let queued) = admission(compressed.count) else { return }
        queue(opcode, compressed, compressed: true, messageSize: messageSize, after: queued)
    }

    /// Why a message is not sent.
    private struct Refusal: Error {
        let result: WebSocketSendResult
    }

    /// The bytes already queued, if `count` more may be: the connection is open and its queue stays
    /// within `maxBackpressure`; otherwise the slow-consumer policy applies and this message is not
    /// sent. Checked before compressing, so a compressor with context takeover never takes in a
    /// message its peer will not see.
    private func admission(_ count: Int) -> Result<Int, Refusal> {
        guard phase == .open else { return .failure(Refusal(result: .closed)) }
        let queued = loop.bufferedAmount(socket)
        if queued + count > wss.options.maxBackpressure {
            slowConsumer()
            return .failure(Refusal(result: .dropped))
        }
        return .success(queued)
    }

    @discardableResult
    private func queue(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, compressed: Bool, messageSize: Int,
                       after queued: Int) -> WebSocketSendResult {
        guard loop.writeFrame(socket, opcode: opcode, payload: payload, compressed: compressed) else { return .closed }
        wss.traffic.messagesOut += 1
        wss.traffic.bytesOut += messageSize
        if queued + payload.count >= Self.drainNotifyThreshold { awaitingDrain = true }
        return .queued
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
            handler?.onError(self, WebSocketErrorEvent(code: Int(CloseCode.policyViolation), errCode: Int(CloseCode.policyViolation),
                                                       message: "slow consumer: more than \(wss.options.maxBackpressure) bytes queued"))
        }
    }

    /// Starts the closing handshake with our close frame.
    func close(code: UInt16?, reason: String) {
        guard phase == .open else { return }
        // What was broadcast to this client before the close goes before the close frame.
        if wss.fanOuts.isWaiting { wss.fanOuts.catchUp(self) }
        guard phase == .open else { return }  // catching up found a slow consumer and closed
        wss.metrics.countClose(code: code ?? 1005)
        writeCloseFrame(code: code, reason: reason)
        enterClosing(.closeSent)
        if readPaused || heldForBus {
            // The peer's close frame is what we wait for now. What it sent before and we kept is
            // dropped (RFC 6455 §5.5.1 lets a closing endpoint discard data); this may run inside
            // the reader (a slow-consumer close), so the reader is not run again from here. (A
            // connection held for the bus stays in the hold's list; it has nothing left to run.)
            readPaused = false
            heldForBus = false
            cold?.pendingInput = nil
            loop.resumeReceiving(socket)
        }
        loop.setTimer(socket, after: wss.options.closeTimeout.clampedNanoseconds, kind: TimerKind.closeHandshake)
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

    /// Moves to a closing phase, tells the other workers (status "Closing" in their listings) and
    /// leaves every topic (nothing more can be sent to it, and subscriber counts stop counting it).
    func enterClosing(_ next: Phase) {
        if phase == .open {
            if let entry = registryEntry { wss.web.cluster?.registry.setStatus(entry, .closing) }
            wss.leaveAllTopics(self)
        }
        setPhase(next)
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
                handler?.onError(self, WebSocketErrorEvent(code: Int(CloseCode.goingAway), errCode: Int(CloseCode.goingAway),
                                                           message: "idle timeout: no answer to the ping"))
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
