// The worker side of the bus: routes broadcasts, sends and terminates to the worker slots that
// own the connections. Everything sent to one slot goes through one FIFO channel, so messages
// from this worker to a connection keep their order whatever path they took; everything sent in
// one loop turn leaves in one send per destination (the channel's chunk coalesces it), and sends of
// one payload to many of a slot's connections cross as one message (SendCoalescer).
import ShoalRing

/// The bus as seen by one worker.
public final class Bus {
    private let loop: EventLoop
    private let segment: SharedSegment
    private let ownSlot: Int
    private var channels: [BusChannel?]
    private var gatheredSends: SendCoalescer
    /// Bus messages this worker wrote (a sendMany counts once), for /metrics.
    public private(set) var messagesSent = 0
    /// Bytes a channel may hold queued for a slow or stuck peer before messages to it are dropped
    /// (and counted): 64 MiB, four maximum-size messages, so one stuck worker costs bounded memory.
    public var maxQueuedBytes = 64 * 1024 * 1024

    /// Registers the bus descriptors this worker inherited with its loop.
    public init(loop: EventLoop, segment: SharedSegment, role: WorkerRole, receiver: any BusReceiver) {
        self.loop = loop
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
        loop.addTurnEndHook { [unowned self] in self.sendGathered() }
    }

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
        let stats = segment.stats(slot: ownSlot)
        if loop.bufferedAmount(handle) + size > maxQueuedBytes {
            stats.add(drops: 1)
            return
        }
        let generation = UInt32(truncatingIfNeeded: segment.stats(slot: slot).generation)
        messagesSent += 1
        encode(generation) { frameSize, fill in
            loop.write(handle, reserving: frameSize, fill)
        }
    }
}
