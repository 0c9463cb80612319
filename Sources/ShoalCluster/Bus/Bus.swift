// The worker side of the bus: routes broadcasts, sends and terminates to the worker slots that
// own the connections. Everything sent to one slot goes through one FIFO channel, so messages
// from this worker to a connection keep their order whatever path they took; everything sent in
// one loop turn leaves in one send per destination (the channel's chunk coalesces it), and sends of
// one payload to many of a slot's connections cross as one message (SendCoalescer). A channel that
// backs up holds this worker's producers instead of losing messages (BusFlowControl).
import ShoalRing

/// The bus as seen by one worker.
public final class Bus {
    private let loop: EventLoop
    private let segment: SharedSegment
    private let ownSlot: Int
    private var channels: [BusChannel?]
    /// Unchecked exclusivity (loop thread only; the coalescer calls out to nothing): every send to another
    /// worker's connection goes through it, and the dynamic check was 0.8 % of a 12-worker chat storm's profile.
    @exclusivity(unchecked) private var gatheredSends: SendCoalescer
    /// Bus messages this worker wrote (a sendMany counts once), for /metrics.
    public private(set) var messagesSent = 0
    /// When producers must wait for a peer, and the hard cap past which messages are dropped (counted).
    private var flow: BusFlowControl
    /// Told true when a channel went over its high-water mark (stop running what may send over the
    /// bus: client input), false once every channel drained below its low-water mark.
    public var onHoldChanged: ((Bool) -> Void)?
    /// True while producers must wait for a peer.
    public var holdsProducers: Bool { flow.holdsProducers }

    /// Registers the bus descriptors this worker inherited with its loop.
    public init(loop: EventLoop, segment: SharedSegment, role: WorkerRole, receiver: any BusReceiver,
                limits: BusFlowControl.Limits) {
        self.loop = loop
        flow = BusFlowControl(limits: limits)
        self.segment = segment
        ownSlot = role.slot
        channels = Array(repeating: nil, count: role.slotCount)
        gatheredSends = SendCoalescer(slotCount: role.slotCount)
        for slot in 0..<role.slotCount where slot != role.slot {
            let channel = BusChannel(peerSlot: slot, generation: UInt32(truncatingIfNeeded: role.generation))
            channel.receiver = receiver
            loop.register(socket: ClusterDescriptors.bus(toSlot: slot), delegate: channel)
            channels[slot] = channel
        }
        loop.addTurnEndHook { [unowned self] in
            // Measured first: producers released here send before the turn's gathered sends leave.
            self.measureWatchedChannels()
            self.sendGathered()
        }
    }

    /// A slot with a worker running (pid set by the supervisor).
    private func runs(_ slot: Int) -> Bool { segment.stats(slot: slot).pid != 0 }

    /// Slots other than ours with a worker running (pid set by the supervisor).
    public var liveSlots: [Int] {
        (0..<channels.count).filter(isLive)
    }

    /// A data frame for every connection of `server` on every other worker, except `except`.
    public func broadcast(server: Int, except: Int, opcode: UInt8, payload: UnsafeRawBufferPointer) {
        for slot in liveSlots {
            sendGathered(toSlot: slot)
            enqueue(slot, size: payload.count) { generation, emit in
                BusEncoder.encodeBroadcast(server: UInt32(server), except: Int64(except), opcode: opcode,
                                           payload: payload, generation: generation, emit: emit)
            }
        }
    }

    /// A publish to the subscribers of `topic` on each of `slots` (the workers that reported subscribers for it):
    /// one message per slot, the payload once in each.
    public func publish(
        toSlots slots: [Int], server: Int, topic: UnsafeRawBufferPointer, except: Int, opcode: UInt8,
        payload: UnsafeRawBufferPointer
    ) {
        let size = BusEncoder.encodedSize(publishTopicLength: topic.count, payloadCount: payload.count)
        for slot in slots {
            sendGathered(toSlot: slot)
            enqueue(slot, size: size) { generation, emit in
                BusEncoder.encodePublish(server: UInt32(server), topic: topic, except: Int64(except), opcode: opcode,
                                         payload: payload, generation: generation, emit: emit)
            }
        }
    }

    /// True when `slot` is another slot with a worker running.
    public func isLive(_ slot: Int) -> Bool {
        slot != ownSlot && slot >= 0 && slot < channels.count && segment.stats(slot: slot).pid != 0
    }

    /// A data frame for connection `connection`, owned by the worker in `slot`. It leaves at the end of the
    /// turn, together with the turn's other sends of the same payload to that slot.
    public func send(toSlot slot: Int, connection: Int, opcode: UInt8, payload: UnsafeRawBufferPointer) {
        guard slot < channels.count, channels[slot] != nil else { return }
        if let earlier = gatheredSends.add(slot: slot, connection: Int64(connection), opcode: opcode, payload: payload) {
            write(earlier, toSlot: slot)
        }
    }

    /// Any other message (terminate a connection, terminate a server) to one slot, after the sends before it.
    public func post(_ message: BusMessage, toSlot slot: Int) {
        sendGathered(toSlot: slot)
        write(message, toSlot: slot)
    }

    private func write(_ message: BusMessage, toSlot slot: Int) {
        enqueue(slot, size: BusEncoder.encodedSize(of: message)) { generation, emit in
            BusEncoder.encode(message, generation: generation, emit: emit)
        }
    }

    private func sendGathered(toSlot slot: Int) {
        if let gathered = gatheredSends.take(slot: slot) { write(gathered, toSlot: slot) }
    }

    /// The turn's gathered sends, before the loop submits what the turn wrote.
    private func sendGathered() {
        guard !gatheredSends.isEmpty else { return }
        for (slot, message) in gatheredSends.takeAll() { write(message, toSlot: slot) }
    }

    /// The same message to every other live worker.
    public func postToAll(_ message: BusMessage) {
        for slot in liveSlots { post(message, toSlot: slot) }
    }

    private typealias Emit = (_ frameSize: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> Void

    private func enqueue(_ slot: Int, size: Int, _ encode: (UInt32, Emit) -> Void) {
        guard slot < channels.count, let channel = channels[slot], let handle = channel.handle else { return }
        let queuedBefore = loop.bufferedAmount(handle)
        guard flow.admits(size: size, queued: queuedBefore) else {
            segment.stats(slot: ownSlot).add(drops: 1)
            return
        }
        let generation = UInt32(truncatingIfNeeded: segment.stats(slot: slot).generation)
        messagesSent += 1
        var written = 0
        encode(generation) { frameSize, fill in
            if loop.write(handle, reserving: frameSize, fill) { written += frameSize }
        }
        // What the channel queues now, without asking the loop again (a bus channel has no transform:
        // what it writes is what it queues).
        let queued = queuedBefore + written
        // The peer's pid is read only where it can matter (a queue past the low-water mark).
        carryOut(flow.measured(slot: slot, queued: queued, peerRuns: queued <= flow.limits.lowWater || runs(slot), now: loop.now))
    }

    /// The channels that hold producers, or stalled, once per turn: they drain as the peer reads, with no
    /// write of ours to notice it.
    private func measureWatchedChannels() {
        for slot in flow.watchedSlots {
            let queued = channels[slot]?.handle.map { loop.bufferedAmount($0) } ?? 0
            carryOut(flow.measured(slot: slot, queued: queued, peerRuns: runs(slot), now: loop.now))
        }
    }

    private func carryOut(_ action: BusFlowControl.Action?) {
        guard let action else { return }
        if action == .hold { segment.metrics(slot: ownSlot).countBusHold() }
        onHoldChanged?(action == .hold)
    }
}
