// The glue between a worker's web server and the cluster: ids from the shared counter, the
// registry kept in step with connections, statistics published each turn, and bus messages
// from other workers carried out on local connections.
import ShoalCluster
import ShoalPosix
import ShoalRedis
import ShoalRing
import ShoalWire

/// A worker's membership in the cluster.
final class ClusterLink: ConnectionIDSource, BusReceiver {
    let node: WorkerNode
    private(set) var bus: Bus!
    /// Topic subscriber counts and publishes across workers.
    private(set) var topics: TopicLink!
    private unowned let web: WebServer
    private var publishedLimits = WebServer.LimitCounts()
    private var publishedTraffic = TrafficCounters()
    private var publishedBusMessages = 0
    /// The link to the other instances through Redis (`--redis`), nil when this host is alone.
    private(set) var redis: RedisBridge?
    private var publishedRedis = RedisBridge.Counters()
    private var descriptorCounts = DescriptorCountSchedule()
    /// The last count of this process's open descriptors (`sampleProcess`).
    private var openDescriptors: UInt64 = 0
    /// What the bus channels hold weakly instead of this object, retained on every send to another
    /// worker's connection (no side table here: see TimerTarget).
    private lazy var busTarget = TimerTarget(self)

    init(node: WorkerNode, web: WebServer) {
        self.node = node
        self.web = web
    }

    /// Registers the bus channels on the loop and starts publishing statistics and progress.
    func start() {
        // A peer stuck for the watchdog's time is being replaced; 10 s when the watchdog is off.
        let watchdog = web.configuration.watchdogTimeout.clampedNanoseconds
        bus = Bus(loop: web.loop, segment: node.segment, role: node.role, receiver: busTarget,
                  limits: .standard(stallTimeout: watchdog == 0 ? 10_000_000_000 : watchdog))
        let hold = web.inputHold
        bus.onHoldChanged = { hold.changed(holding: $0) }
        topics = TopicLink(web: web, bus: bus)
        topics.start()
        web.loop.addTurnEndHook { [unowned self] in self.publish() }
        let stats = node.stats
        web.loop.progressObserver = { stats.progress = $0 }
        keepProgressingWhenIdle()
        if let options = web.configuration.redis { startRedis(options) }
        sampleProcess()
    }

    /// Connects this worker to the cluster's Redis channel: broadcasts from other instances are
    /// delivered to this worker's own clients only (each worker of every instance receives its copy).
    private func startRedis(_ options: RedisOptions) {
        let configuration = RedisBridge.Configuration(address: options.address, port: options.url.port,
                                                      channel: options.channel, instance: node.segment.instanceID)
        let bridge = RedisBridge(configuration: configuration, loop: web.loop, logger: web.logger) { [unowned self] envelope in
            guard let wss = web.server(index: Int(envelope.server)) else { return }
            let opcode = Opcode(rawValue: envelope.opcode) ?? .binary
            // Every worker of this instance receives its own copy from Redis: none goes over the bus.
            // Connection ids are per instance, so the sender's `except` means nothing here.
            envelope.payload.withUnsafeBytes { payload in
                switch envelope.kind {
                case .broadcast: wss.deliverBroadcast(opcode, payload, toOtherWorkers: false)
                case .publish: wss.deliverPublished(envelope.topic, opcode, payload, toOtherWorkers: false)
                }
            }
        }
        redis = bridge
        node.stats.redisLink = 1
        bridge.start()
    }

    /// Stores this worker's CPU, memory, descriptor and send-queue figures for /metrics, now and
    /// then once a second: a scrape reads the segment and never waits for the worker. The
    /// descriptors are counted again only as often as their count's cost allows
    /// (`DescriptorCountSchedule`).
    private func sampleProcess() {
        let start = EventLoop.monotonicNanoseconds()
        if descriptorCounts.isDue(at: start) {
            openDescriptors = ProcessSample.countOpenDescriptors()
            descriptorCounts.counted(from: start, to: EventLoop.monotonicNanoseconds())
        }
        web.metrics.store(ProcessSample.current(openDescriptors: openDescriptors), queuedSendBytes: web.loop.queuedBytes)
        web.loop.schedule(after: 1_000_000_000) { [unowned self] in self.sampleProcess() }
    }

    /// A loop with nothing to do waits in the kernel with no timeout; this timer wakes it now and
    /// then, so an idle worker still shows progress and only a stuck one stops.
    private func keepProgressingWhenIdle() {
        web.loop.schedule(after: Self.idleTick(watchdogTimeout: web.configuration.watchdogTimeout.clampedNanoseconds)) {
            [unowned self] in self.keepProgressingWhenIdle()
        }
    }

    /// A quarter of the watchdog time, between 50 ms and 1 s (1 s with the watchdog off, which
    /// /healthz still uses): the supervisor sees an idle worker move several times per timeout.
    static func idleTick(watchdogTimeout: UInt64) -> UInt64 {
        watchdogTimeout == 0 ? 1_000_000_000 : min(max(watchdogTimeout / 4, 50_000_000), 1_000_000_000)
    }

    var slot: Int { node.role.slot }
    var registry: Registry { node.segment.registry }

    func nextID() -> Int { node.segment.nextConnectionID() }

    /// Publishes what changed since the last turn; plain counters on the hot path, one batch of
    /// atomic adds per turn here.
    private func publish() {
        let stats = node.stats
        let traffic = web.traffic
        let moved = traffic - publishedTraffic
        stats.add(messagesIn: moved.messagesIn, messagesOut: moved.messagesOut, bytesIn: moved.bytesIn, bytesOut: moved.bytesOut)
        publishedTraffic = traffic
        stats.add(busMessagesOut: bus.messagesSent - publishedBusMessages)
        publishedBusMessages = bus.messagesSent
        let limits = web.limits
        for event in WorkerStats.LimitEvent.allCases {
            stats.add(event, limits[event] - publishedLimits[event])
        }
        publishedLimits = limits
        stats.connections = web.openWebSockets
        if let redis { publishRedis(redis, to: stats) }
    }

    /// Hands the broadcasts and topic publishes made on `server` in this worker to the other instances
    /// (each server is created after the link started, by the program's setup).
    func serverAdded(_ server: WebSocketServer) {
        guard let redis else { return }
        let index = server.index
        server.broadcastObserver = { opcode, payload in
            redis.broadcast(server: index, opcode: opcode.rawValue, payload: payload)
        }
        server.publishObserver = { topic, opcode, payload in
            redis.publish(server: index, topic: topic, opcode: opcode.rawValue, payload: payload)
        }
    }

    private func publishRedis(_ redis: RedisBridge, to stats: WorkerStats) {
        let now = redis.counters
        stats.add(.published, now.published - publishedRedis.published)
        stats.add(.received, now.received - publishedRedis.received)
        stats.add(.droppedWhileDown, now.droppedWhileDown - publishedRedis.droppedWhileDown)
        stats.add(.droppedQueueFull, now.droppedQueueFull - publishedRedis.droppedQueueFull)
        web.metrics.countRedisDroppedTooLarge(now.droppedTooLarge - publishedRedis.droppedTooLarge)
        stats.add(.invalid, now.invalid - publishedRedis.invalid)
        publishedRedis = now
        stats.redisLink = redis.isUp ? 2 : 1
    }

    func busDelivered(_ message: BusMessage, from slot: Int) {
        let web = self.web  // one strong reference for the message, not an unowned load per id
        switch message {
        case .broadcast(let server, let except, let opcode, let payload):
            guard let wss = web.server(index: Int(server)) else { return }
            payload.withUnsafeBytes { wss.broadcastLocally(Opcode(rawValue: opcode) ?? .binary, $0, except: Int(except)) }
        case .send(let connection, let opcode, let payload):
            guard let ws = web.localConnection(id: Int(connection)) else { return }
            _ = payload.withUnsafeBytes { ws.sendFrame(Opcode(rawValue: opcode) ?? .binary, $0) }
        case .sendMany(let connections, let opcode, let payload):
            payload.withUnsafeBytes { bytes in
                for id in connections {
                    _ = web.localConnection(id: Int(id))?.sendFrame(Opcode(rawValue: opcode) ?? .binary, bytes)
                }
            }
        case .terminate(let connection, let code, let reason):
            web.localConnection(id: Int(connection))?.close(code: code, reason: reason)
        case .terminateServer(let server):
            web.server(index: Int(server))?.terminateLocally()
        case .publish, .topicCounts, .topicSync:
            topics.received(message, from: slot)
        }
    }
}
