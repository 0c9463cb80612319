// The loop's side of a WebSocket connection: bytes in, events out, and the closing handshake
// (RFC 6455 §5.5.1, §7): the server closes TCP first, after both close frames crossed.
import ShoalCluster
import ShoalRing
import ShoalWire

extension WebSocketConnection: SocketDelegate, HeldInput {
    /// Joins the server and runs onOpen; `leftover` is what the client sent right after its handshake.
    func start(leftover: UnsafeMutableRawBufferPointer) {
        wss.connectionOpened(self)
        handler?.onOpen(self, WebSocketOpenEvent())
        if leftover.count > 0 { received(leftover, on: socket) }
    }

    public func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) {
        wss.traffic.bytesIn += bytes.count
        idleSince = IdleClock.milliseconds(loop.now)
        pingOutstanding = false
        if !readPaused && !heldForBus && !holdForBus() {
            consume(bytes)
            pauseIfBackedUp()
            return
        }
        // Received before the pause reached the kernel (io_uring may have a socket buffer's worth
        // of completions ready), or held for the bus: kept, in order, for when the queue drains or
        // the bus releases; bounded by that.
        let cold = coldState()
        let pending = cold.pendingInput ?? PendingInput()
        cold.pendingInput = pending
        pending.append(UnsafeRawBufferPointer(bytes))
    }

    /// While the bus is backed up, what the client sent waits (onMessage may send over the bus):
    /// reading pauses and the connection queues at the hold. True when it did.
    private func holdForBus() -> Bool {
        let hold = wss.inputHold
        guard hold.isHolding, phase == .open || phase == .closeSent else { return false }
        heldForBus = true
        if !readPaused { loop.pauseReceiving(socket) }
        hold.wait(self)
        return true
    }

    func resumeHeldInput() {
        guard heldForBus else { return }
        heldForBus = false
        if phase == .closed {
            // Closed while held: its onTerminate waited.
            handler?.onTerminate(self, WebSocketTerminateEvent(code: cold?.terminateCode ?? 1006, reason: cold?.terminateReason))
            return
        }
        guard !readPaused else { return }  // its own send queue is still backed up: `drained` goes on
        consumePendingInput()
        if !readPaused && !heldForBus { loop.resumeReceiving(socket) }
    }

    /// What the client sent made us queue this much for it: stop reading until it takes it.
    private func pauseIfBackedUp() {
        guard phase == .open, !readPaused, loop.bufferedAmount(socket) >= wss.options.readPauseThreshold else { return }
        readPaused = true
        awaitingDrain = true
        loop.pauseReceiving(socket)
    }

    /// Runs the input kept while paused, in pieces, pausing again if it backs the queue up again.
    private func consumePendingInput() {
        guard let pending = cold?.pendingInput else { return }
        while pending.consumed < pending.bytes.count && !readPaused && (phase == .open || phase == .closeSent) {
            if holdForBus() { break }
            let start = pending.consumed
            let end = min(start + Self.pendingPiece, pending.bytes.count)
            pending.consumed = end
            pending.withUnsafeMutableBytes { consume(UnsafeMutableRawBufferPointer(rebasing: $0[start..<end])) }
            pauseIfBackedUp()
        }
        // Kept (without copying) only while paused or held again with input left.
        if !(readPaused || heldForBus) || pending.consumed >= pending.bytes.count { cold?.pendingInput = nil }
    }

    /// Input kept while paused is run in pieces of the loop's receive size, so a pause takes effect
    /// between pieces as it does between receives.
    private static let pendingPiece = 16 * 1024

    /// Runs the events in `bytes` through the handler.
    private func consume(_ bytes: UnsafeMutableRawBufferPointer) {
        var offset = 0
        while phase == .open || phase == .closeSent {
            let event: InboundEvent?
            do {
                event = try reader.next(bytes, &offset, wss.readerConfiguration)
            } catch {
                fail(error)
                return
            }
            guard let event else { return }
            switch event {
            case .text(let payload):
                wss.traffic.messagesIn += 1
                wss.metrics.observeMessage(bytes: payload.count)
                if phase == .open { handler?.onMessageView(self, WebSocketMessageView(bytes: payload, isBinary: false)) }
            case .binary(let payload):
                wss.traffic.messagesIn += 1
                wss.metrics.observeMessage(bytes: payload.count)
                if phase == .open { handler?.onMessageView(self, WebSocketMessageView(bytes: payload, isBinary: true)) }
            case .ping(let payload):
                if phase == .open { loop.writeFrame(socket, opcode: .pong, payload: payload) }
            case .pong:
                break
            case .close(let code, let reason):
                peerClosed(code: code, reason: reason)
                return
            }
        }
    }

    /// What `onMessageView` does unless the handler overrides it: the message as a
    /// `WebSocketMessageEvent` in the server's `dataType` (binary frames always as `.blob`) to
    /// `handler.onMessage`. With dataType "object", text that is not JSON goes to onError (code 0,
    /// errCode 1007) instead and the connection stays open: a bad document is the application's
    /// problem, not the protocol's.
    public func deliver(_ message: WebSocketMessageView, to handler: some WebSocketConnectionHandler) {
        let payload = message.bytes
        if message.isBinary {
            return handler.onMessage(self, WebSocketMessageEvent(data: .blob(Array(payload)), isBinary: true))
        }
        let data: WebSocketData
        switch wss.dataType {
        case .text:
            data = .text(String(decoding: payload, as: UTF8.self))
        case .blob:
            data = .blob(Array(payload))
        case .object:
            do {
                data = .object(try JSONParser.parse(payload))
            } catch {
                handler.onError(self, WebSocketErrorEvent(code: 0, errCode: 1007, message: error.description))
                return
            }
        }
        handler.onMessage(self, WebSocketMessageEvent(data: data, isBinary: false))
    }

    /// The peer's close frame: answer it (if we have not closed first) and end the TCP connection.
    private func peerClosed(code: UInt16?, reason: UnsafeRawBufferPointer) {
        let cold = coldState()
        if phase == .open { wss.metrics.countClose(code: code ?? 1005) }
        if cold.terminateCode == nil {
            cold.terminateCode = code.map(Int.init) ?? 1005
            cold.terminateReason = reason.isEmpty ? nil : String(decoding: reason, as: UTF8.self)
        }
        if phase == .open {
            writeCloseFrame(code: code, reason: "")
        }
        enterClosing(.closeReceived)
        loop.close(socket, mode: .graceful(lingerNanoseconds: wss.options.closeTimeout.clampedNanoseconds))
    }

    /// A protocol violation: onError, our close frame with the RFC code, then the TCP close.
    private func fail(_ violation: ProtocolViolation) {
        let cold = coldState()
        cold.terminateCode = cold.terminateCode ?? 1006
        if phase == .open {
            wss.metrics.countClose(code: violation.closeCode)
            writeCloseFrame(code: violation.closeCode, reason: violation.reason)
        }
        // Closing before onError: the connection is failed, so what the handler sends from onError is dropped.
        enterClosing(.closeReceived)
        loop.close(socket, mode: .graceful(lingerNanoseconds: wss.options.closeTimeout.clampedNanoseconds))
        handler?.onError(self, WebSocketErrorEvent(code: Int(violation.closeCode), errCode: Int(violation.closeCode),
                                                   message: violation.reason))
    }

    public func drained(on handle: SocketHandle) {
        if readPaused {
            readPaused = false
            // Held for the bus as well: the hold resumes it.
            if !heldForBus {
                consumePendingInput()
                if !readPaused && !heldForBus { loop.resumeReceiving(socket) }
            }
        }
        if awaitingDrain {
            awaitingDrain = false
            if phase == .open { handler?.onDrain(self, WebSocketDrainEvent()) }
        }
    }

    public func readEnded(on handle: SocketHandle, error: Int32?) {
        // TCP ended without a close frame from the peer (or after it): nothing more to wait for.
        loop.close(socket, mode: .abort)
    }

    public func timerFired(on handle: SocketHandle, kind: UInt8) {
        if kind == TimerKind.closeHandshake && phase == .closeSent {
            loop.close(socket, mode: .abort)
        }
    }

    public func closed(on handle: SocketHandle) {
        // No close frame crossed: the TCP connection just ended.
        if phase == .open { wss.metrics.countClose(code: 1006) }
        setPhase(.closed)
        if let entry = registryEntry { wss.web.cluster?.registry.remove(entry) }
        wss.connectionClosed(self)
        wss.web.connectionEnded(self)
        // onTerminate may send to every other client (4D's chat): it waits while the bus is backed up.
        if heldForBus { return }
        if wss.inputHold.isHolding {
            heldForBus = true
            wss.inputHold.wait(self)
            return
        }
        handler?.onTerminate(self, WebSocketTerminateEvent(code: cold?.terminateCode ?? 1006, reason: cold?.terminateReason))
    }
}
