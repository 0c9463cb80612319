// A worker's bridge to the other Shoal instances of its cluster through Redis pub/sub: what this
// instance broadcasts (or publishes to a topic) is PUBLISHed on the cluster's channel, and what the
// other instances put there is handed to the worker for local delivery.
//
// Each worker holds its own pair of connections (one publishing, one subscribed): no worker
// waits on another for Redis, and a message from Redis is delivered by the worker that received
// it to its own clients only, so nothing crosses the local bus twice. The price is 2 × workers
// connections per instance and one copy of each message per worker from Redis (docs/cluster.md).
import Logging
import ShoalRing

public final class RedisBridge {
    public struct Configuration: Sendable {
        /// Numeric address (resolved once at start, so no lookup ever blocks the loop) and port.
        public var address: String
        public var port: Int
        /// The Redis channel: instances sharing a Redis server and a cluster name share it.
        public var channel: String
        /// This instance's id (the same in all its workers): messages carrying it are its own.
        public var instance: UInt64
        /// Bytes of PUBLISHes not yet answered beyond which new ones are dropped (a slow or stuck
        /// Redis must not grow a worker's memory without bound): 8 MiB, half a second of a
        /// 16 MB/s broadcast stream.
        public var maxPendingBytes = 8 * 1024 * 1024

        public init(address: String, port: Int, channel: String, instance: UInt64) {
            self.address = address
            self.port = port
            self.channel = channel
            self.instance = instance
        }

        /// The channel of a cluster name: "shoal:" + name.
        public static func channel(clusterName: String) -> String { "shoal:\(clusterName)" }
    }

    /// What the bridge did, for /metrics (monotonic counts).
    public struct Counters: Equatable, Sendable {
        /// Broadcasts and topic publishes PUBLISHed for the other instances.
        public var published = 0
        /// Messages from other instances handed over for delivery.
        public var received = 0
        /// Messages not sent because the publishing link was down.
        public var droppedWhileDown = 0
        /// Messages not sent because the outgoing queue was full (a slow Redis).
        public var droppedQueueFull = 0
        /// Messages not sent because no receiver would take them: a payload over
        /// `RedisEnvelope.maxPayload` or a topic over `RedisEnvelope.maxTopic`.
        public var droppedTooLarge = 0
        /// Messages on the channel refused: not ours, other version, truncated, oversized, malformed.
        public var invalid = 0

        public init() {}
    }

    public private(set) var counters = Counters()
    private let configuration: Configuration
    private let channel: [UInt8]
    private let logger: Logger
    private let deliver: (RedisEnvelope) -> Void
    private var publisher: RedisLink!
    private var subscriber: RedisLink!
    /// Sizes of the PUBLISHes in flight, oldest first (replies come in order).
    private var pendingSizes: [Int] = []
    private var pendingHead = 0
    private var pendingBytes = 0
    /// The frame being published, reused: its capacity stays from one message to the next.
    private var frame: [UInt8] = []

    /// `deliver` runs on the loop thread for each valid message from another instance.
    public init(configuration: Configuration, loop: EventLoop, logger: Logger, deliver: @escaping (RedisEnvelope) -> Void) {
        self.configuration = configuration
        self.channel = Array(configuration.channel.utf8)
        self.logger = logger
        self.deliver = deliver
        publisher = RedisLink(role: .publisher, loop: loop, address: configuration.address, port: configuration.port,
                              onChange: { [unowned self] in self.linkChanged($0, up: $1, reason: $2) },
                              onPublishDone: { [unowned self] in self.publishDone() })
        subscriber = RedisLink(role: .subscriber, loop: loop, address: configuration.address, port: configuration.port,
                               onChange: { [unowned self] in self.linkChanged($0, up: $1, reason: $2) },
                               onMessage: { [unowned self] in self.received($0) })
    }

    public func start() {
        publisher.start()
        subscriber.start()
    }

    public func stop() {
        publisher.stop()
        subscriber.stop()
    }

    /// Both connections are up: broadcasts reach the other instances and theirs reach us.
    public var isUp: Bool { publisher.isUp && subscriber.isUp }

    /// Why the link is degraded, nil when up.
    public var problem: String? {
        let down = [publisher, subscriber].filter { !$0.isUp }
        guard !down.isEmpty else { return nil }
        return down.map { "\($0.role.rawValue) \($0.lastError ?? "down")" }.joined(separator: ", ")
    }

    /// Sends a broadcast of server `server` to the other instances (dropped and counted when the
    /// link is down or its queue full; local delivery is the caller's and goes on regardless).
    public func broadcast(server: Int, opcode: UInt8, payload: UnsafeRawBufferPointer) {
        send(kind: .broadcast, server: server, topic: "", opcode: opcode, payload: payload)
    }

    /// Sends a topic publish of server `server` to the other instances.
    public func publish(server: Int, topic: String, opcode: UInt8, payload: UnsafeRawBufferPointer) {
        send(kind: .publish, server: server, topic: topic, opcode: opcode, payload: payload)
    }

    private func send(kind: RedisEnvelope.Kind, server: Int, topic: String, opcode: UInt8, payload: UnsafeRawBufferPointer) {
        guard RedisEnvelope.fits(topic: topic, payloadCount: payload.count) else {
            counters.droppedTooLarge += 1
            return
        }
        guard publisher.isUp, let connection = publisher.connection else {
            counters.droppedWhileDown += 1
            return
        }
        guard pendingBytes + payload.count <= configuration.maxPendingBytes else {
            counters.droppedQueueFull += 1
            return
        }
        _ = RedisEnvelope.encode(kind: kind, opcode: opcode, instance: configuration.instance,
                                 server: UInt32(truncatingIfNeeded: server), topic: topic, payload: payload, into: &frame)
        // hiredis copied the frame into its output buffer when this returns; the buffer is ours again.
        guard connection.publish(channel: channel, message: frame) else {
            counters.droppedWhileDown += 1
            return
        }
        counters.published += 1
        pendingSizes.append(frame.count)
        pendingBytes += frame.count
        if frame.capacity > Self.retainedFrameCapacity { frame = [] }
    }

    /// Largest frame buffer kept between messages (64 KiB): a rare huge broadcast does not pin its
    /// size in every worker.
    static let retainedFrameCapacity = 64 * 1024

    private func publishDone() {
        guard pendingHead < pendingSizes.count else { return }
        pendingBytes -= pendingSizes[pendingHead]
        pendingHead += 1
        if pendingHead == pendingSizes.count {
            pendingSizes.removeAll(keepingCapacity: true)
            pendingHead = 0
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        let envelope: RedisEnvelope
        do {
            envelope = try RedisEnvelope.decode(bytes)
        } catch {
            counters.invalid += 1
            if counters.invalid == 1 || counters.invalid.isMultiple(of: 1000) {
                logger.warning("ignored a message on Redis channel \(configuration.channel): \(error) (\(counters.invalid) so far)")
            }
            return
        }
        // Our own instance's messages were delivered here over the local bus already.
        guard envelope.instance != configuration.instance else { return }
        counters.received += 1
        deliver(envelope)
    }

    private func linkChanged(_ link: RedisLink, up: Bool, reason: String?) {
        if link.role == .publisher && !up {
            pendingSizes.removeAll(keepingCapacity: true)
            pendingHead = 0
            pendingBytes = 0
        }
        if up {
            if link.role == .subscriber, link.connection?.subscribe(channel: channel) != true {
                logger.warning("Redis: SUBSCRIBE \(configuration.channel) could not be sent")
            }
            logger.info("Redis \(link.role.rawValue) link up (\(configuration.address):\(configuration.port), channel \(configuration.channel))")
        } else {
            logger.warning("Redis \(link.role.rawValue) link down: \(reason ?? "unknown"); local delivery goes on, retrying")
        }
    }
}
