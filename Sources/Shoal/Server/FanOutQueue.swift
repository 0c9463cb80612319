// A server's fan-outs (broadcasts and publishes) on one worker, delivered in slices across loop
// turns when they are large (FanOutSlicing decides how much per turn): a broadcast compressed per
// recipient, or one to more than 2,048 clients, no longer holds the loop for its whole length, so
// the worker reads and answers its other clients in between. Per connection, messages keep the order they were sent in: a
// direct send or close to a connection that a waiting fan-out has not reached yet first delivers
// what waits for it (`catchUp`).
import ShoalRing
import ShoalWire

/// The fan-outs of one server on this worker (loop thread only).
final class FanOutQueue {
    /// One message on its way to the rest of its recipients.
    private final class Waiting {
        let opcode: Opcode
        let payload: [UInt8]
        let except: Int
        let recipients: ContiguousArray<WebSocketConnection>
        /// Recipients before this one have been served.
        var next = 0
        /// Recipients served ahead of their turn by `catchUp` (usually none).
        var servedEarly: Set<ObjectIdentifier> = []
        var compressed = CompressedOnce()

        init(opcode: Opcode, payload: UnsafeRawBufferPointer, except: Int, recipients: ContiguousArray<WebSocketConnection>,
             compressed: CompressedOnce) {
            self.opcode = opcode
            self.payload = Array(payload)
            self.except = except
            self.recipients = recipients
            self.compressed = compressed
        }
    }

    private unowned let server: WebSocketServer
    private var slicing: FanOutSlicing
    /// Oldest first.
    private var waiting: [Waiting] = []
    /// What the slice timer holds weakly instead of this object (no side table here: see TimerTarget).
    private lazy var timerTarget = TimerTarget(self)
    /// A message waits (read on every direct send, so kept as a plain stored flag).
    private(set) var isWaiting = false
    /// Inside a delivery of this queue: a send made from there (a slow-consumer onError) does not
    /// catch up again.
    private var delivering = false
    /// The clock slices are measured with (CLOCK_MONOTONIC; a test may pass its own).
    private let clock: () -> UInt64
    /// `options.compression` is `.shared` / `.dedicated`, and its threshold (read per delivery).
    private let compressesOnce: Bool
    private let compressesPerRecipient: Bool
    private let compressionThreshold: Int

    init(server: WebSocketServer, limits: FanOutSlicing.Limits = .init(),
         clock: @escaping () -> UInt64 = EventLoop.monotonicNanoseconds) {
        self.server = server
        slicing = FanOutSlicing(limits: limits)
        self.clock = clock
        compressesOnce = server.options.compression == .shared
        if case .dedicated = server.options.compression { compressesPerRecipient = true } else { compressesPerRecipient = false }
        compressionThreshold = server.options.compressionThreshold
    }

    /// Sends one message to each of `recipients` but `except`: now, as far as this turn's slice
    /// allows, the rest in later turns.
    func fanOut<Recipients: Sequence<WebSocketConnection>>(
        _ opcode: Opcode, _ payload: UnsafeRawBufferPointer, to recipients: Recipients, except: Int
    ) {
        let perRecipient = compressesPerRecipient && payload.count >= compressionThreshold
        if !isWaiting && !perRecipient && recipients.underestimatedCount <= slicing.limits.deliveriesPerSlice {
            // Kernel-bound and small: whole, now (the many fan-outs of a busy turn share one send per socket).
            var compressed = CompressedOnce()
            for connection in recipients where connection.id != except { _ = deliver(opcode, payload, to: connection, &compressed) }
            return
        }
        if delivering {
            // Sent from inside a delivery of this queue (a slow consumer's onError broadcasting): it
            // waits behind the message being delivered, which must stay where the loops below hold it.
            enqueue(Waiting(opcode: opcode, payload: payload, except: except, recipients: ContiguousArray(recipients),
                            compressed: CompressedOnce()), slicing.queuedMessage())
            return
        }
        switch slicing.messageArrived(turn: server.loop.now, now: clock()) {
        case .deliverNow:
            var compressed = CompressedOnce()
            var rest = recipients.makeIterator()
            delivering = true
            while let connection = rest.next() {
                let alone = connection.id != except && deliver(opcode, payload, to: connection, &compressed)
                if !slicing.shouldContinue(now: clock(), compressed: alone) {
                    let left = ContiguousArray(IteratorSequence(rest))
                    delivering = false
                    if !left.isEmpty {
                        // First in line: a message queued by a callback during this delivery is younger.
                        enqueue(Waiting(opcode: opcode, payload: payload, except: except, recipients: left,
                                        compressed: compressed), slicing.leftOver(), first: true)
                    }
                    return
                }
            }
            delivering = false
        case .queue:
            enqueue(Waiting(opcode: opcode, payload: payload, except: except, recipients: ContiguousArray(recipients),
                            compressed: CompressedOnce()), slicing.queuedMessage())
        case .finishOldestThenQueue:
            finishOldest()
            enqueue(Waiting(opcode: opcode, payload: payload, except: except, recipients: ContiguousArray(recipients),
                            compressed: CompressedOnce()), slicing.queuedMessage())
        }
    }

    /// Delivers to `connection`, in order, every waiting message that has not reached it yet: called
    /// before anything else is written to it.
    func catchUp(_ connection: WebSocketConnection) {
        guard !delivering else { return }
        delivering = true
        defer { delivering = false }
        let key = ObjectIdentifier(connection)
        for message in waiting where !message.servedEarly.contains(key) {
            guard message.recipients[message.next...].contains(where: { $0 === connection }) else { continue }
            message.servedEarly.insert(key)
            if connection.id != message.except {
                _ = message.payload.withUnsafeBytes { deliver(message.opcode, $0, to: connection, &message.compressed) }
            }
        }
    }

    /// Forgets every waiting message (the server was terminated, or its last connection closed).
    func dropAll() {
        waiting.removeAll()
        while slicing.queued > 0 { slicing.finishedOldest() }
        isWaiting = false
    }

    private func enqueue(_ message: Waiting, _ next: FanOutSlicing.Next, first: Bool = false) {
        if first { waiting.insert(message, at: 0) } else { waiting.append(message) }
        isWaiting = true
        if next == .scheduleSlice { scheduleSlice() }
    }

    private func scheduleSlice() {
        // One nanosecond, not zero: a timer due now that is scheduled from a timer would run in the
        // same turn, and the slices would not let the loop turn at all.
        server.loop.schedule(after: 1) { [weak timerTarget] in timerTarget?.owner.runSlice() }
    }

    /// The scheduled slice: the oldest messages, as far as the budget allows.
    private func runSlice() {
        slicing.sliceStarted(turn: server.loop.now, now: clock())
        delivering = true
        sliceLoop: while let message = waiting.first {
            while message.next < message.recipients.count {
                let connection = message.recipients[message.next]
                message.next += 1
                var alone = false
                if connection.id != message.except,
                   message.servedEarly.isEmpty || !message.servedEarly.contains(ObjectIdentifier(connection)) {
                    alone = message.payload.withUnsafeBytes { deliver(message.opcode, $0, to: connection, &message.compressed) }
                }
                // The delivery ran user code (a slow consumer's onError), which may have terminated
                // the server and with it dropped every waiting message.
                guard waiting.first === message else { continue sliceLoop }
                if !slicing.shouldContinue(now: clock(), compressed: alone) {
                    if message.next == message.recipients.count { removeOldest() }
                    break sliceLoop
                }
            }
            removeOldest()
        }
        delivering = false
        if slicing.sliceEnded() == .scheduleSlice { scheduleSlice() }
    }

    /// The oldest message to all its remaining recipients now (the queue is full).
    private func finishOldest() {
        guard let message = waiting.first else { return }
        delivering = true
        while message.next < message.recipients.count {
            let connection = message.recipients[message.next]
            message.next += 1
            if connection.id != message.except, !message.servedEarly.contains(ObjectIdentifier(connection)) {
                _ = message.payload.withUnsafeBytes { deliver(message.opcode, $0, to: connection, &message.compressed) }
            }
            guard waiting.first === message else { break }  // dropped by a callback (see runSlice)
        }
        delivering = false
        if waiting.first === message { removeOldest() }
    }

    private func removeOldest() {
        waiting.removeFirst()
        slicing.finishedOldest()
        isWaiting = !waiting.isEmpty
    }

    /// One delivery. With shared compression the message is compressed once (per window size) and
    /// that frame goes to every recipient that negotiated it; with dedicated compression each
    /// recipient's own compressor takes it (its window is its own); otherwise it goes plain.
    /// Returns whether it compressed for this recipient alone.
    @discardableResult
    private func deliver(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, to connection: WebSocketConnection,
                         _ compressed: inout CompressedOnce) -> Bool {
        guard compressesOnce, payload.count >= compressionThreshold else {
            connection.queueFrame(opcode, payload)
            return compressesPerRecipient && connection.deflater != nil && payload.count >= compressionThreshold
        }
        guard let deflater = connection.deflater else {
            connection.queueFrame(opcode, payload, compress: false)
            return false
        }
        compressed.bytes(of: payload, with: deflater).withUnsafeBytes {
            connection.sendPrecompressed(opcode, $0, messageSize: payload.count)
        }
        return false
    }
}

/// A fan-out's compressed payload, made on first need, per window size (clients almost all use the
/// largest; one that asked for a smaller window gets its own compression).
struct CompressedOnce {
    private var windowBits = 0
    private var compressed: [UInt8] = []

    mutating func bytes(of payload: UnsafeRawBufferPointer, with deflater: MessageDeflater) -> [UInt8] {
        if windowBits == deflater.windowBits { return compressed }
        let made = deflater.compress(payload)
        if windowBits == 0 {
            windowBits = deflater.windowBits
            compressed = made
        }
        return made
    }
}
