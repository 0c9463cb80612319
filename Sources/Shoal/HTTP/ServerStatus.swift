// /healthz and /metrics: the whole cluster's state, read from the shared segment (any worker can
// answer for all of them), or this process's own figures when it runs alone.
import ShoalCluster
import ShoalRedis
import ShoalRing

extension WebServer {
    /// /healthz: 503 when a worker of the serving generation is missing, or has made no progress
    /// for the watchdog time (it is being replaced; 10 s with the watchdog off), or its registry
    /// share is full (it refuses every new client with 503, and the kernel keeps handing it its
    /// share of them); 200 otherwise, naming any worker that has made no progress for more than 3 s
    /// (slow, not yet stuck).
    func health() -> (status: Int, body: String) {
        guard let cluster else { return (200, "ok\n") }
        let segment = cluster.node.segment
        let workers = cluster.node.role.workers
        let watchdog = configuration.watchdogTimeout.clampedNanoseconds
        let unhealthyAfter = watchdog > 0 ? watchdog : Self.stuckWithoutWatchdog
        let now = WorkerStats.monotonicNanoseconds()
        let servingSet = cluster.slot / workers
        var slow: [String] = []
        var redisDown: [Int] = []
        for index in 0..<workers {
            let slot = servingSet * workers + index
            let stats = segment.stats(slot: slot)
            if stats.pid == 0 { return (503, "unhealthy: worker slot \(slot) is not running\n") }
            let registry = segment.registry
            if registry.liveCount(slot: slot) >= registry.capacity {
                return (503, "unhealthy: worker slot \(slot) has its registry share full (\(registry.capacity) of \(registry.capacity) entries)\n")
            }
            if stats.redisLink == 1 { redisDown.append(slot) }
            let seen = stats.progressSeenNanoseconds
            guard seen != 0, now > seen, now - seen > Self.slowAfter else { continue }
            let tenths = (now - seen) / 100_000_000
            let line = "worker slot \(slot) (pid \(stats.pid)) has made no progress for \(tenths / 10).\(tenths % 10) s"
            if now - seen >= unhealthyAfter { return (503, "unhealthy: \(line)\n") }
            slow.append(line)
        }
        var notes = slow.isEmpty ? "" : "; slow: \(slow.joined(separator: "; "))"
        if !redisDown.isEmpty {
            // Degraded, not down: this host's clients are still served; only other hosts miss out.
            let own = cluster.redis?.problem.map { " (here: \($0))" } ?? ""
            notes += "; degraded: Redis link down in worker slot \(redisDown.map(String.init).joined(separator: ", "))\(own)"
        }
        return (200, "ok\(notes)\n")
    }

    /// A worker this long without progress is named by /healthz: several idle ticks (at most 1 s
    /// apart) and supervisor turns missed, more than scheduling noise on a loaded machine.
    static let slowAfter: UInt64 = 3_000_000_000
    /// With the watchdog off nobody replaces a stuck worker, but the load balancer should know.
    static let stuckWithoutWatchdog: UInt64 = 10_000_000_000

    /// Prometheus text exposition of every worker's statistics.
    func metricsText() -> String {
        struct Row {
            var slot: Int
            var pid: Int
            var connections: Int
            var messagesIn: Int
            var messagesOut: Int
            var bytesIn: Int
            var bytesOut: Int
            var drops: Int
            var busMessagesOut: Int
            var busHolds = 0
            var restarts: Int
            var watchdogKills: Int
            var limits: [Int]
            var redisLink = 0
            var redis: [Int] = []
            var redisTooLarge = 0
        }
        var rows: [Row] = []
        if let cluster {
            let segment = cluster.node.segment
            for slot in 0..<segment.workerSlots {
                let s = segment.stats(slot: slot)
                guard s.pid != 0 || s.restarts != 0 || s.watchdogKills != 0 else { continue }
                rows.append(Row(slot: slot, pid: s.pid, connections: s.connections, messagesIn: s.messagesIn,
                                messagesOut: s.messagesOut, bytesIn: s.bytesIn, bytesOut: s.bytesOut, drops: s.drops,
                                busMessagesOut: s.busMessagesOut, busHolds: Int(clamping: segment.metrics(slot: slot).busHolds), restarts: s.restarts, watchdogKills: s.watchdogKills, limits: WorkerStats.LimitEvent.allCases.map { s[$0] },
                                redisLink: s.redisLink, redis: WorkerStats.RedisCounter.allCases.map { s[$0] },
                                redisTooLarge: Int(clamping: segment.metrics(slot: slot).redisDroppedTooLarge)))
            }
        } else {
            let traffic = self.traffic
            rows.append(Row(slot: 0, pid: 0, connections: openWebSockets, messagesIn: traffic.messagesIn,
                            messagesOut: traffic.messagesOut, bytesIn: traffic.bytesIn, bytesOut: traffic.bytesOut,
                            drops: 0, busMessagesOut: 0, restarts: 0, watchdogKills: 0, limits: limits.values))
        }
        var text = ""
        func family(_ name: String, _ kind: String, _ help: String, _ value: (Row) -> Int) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind)\n"
            for row in rows { text += "\(name){worker=\"\(row.slot)\"} \(value(row))\n" }
        }
        /// A counter family with one labelled series per limit event it covers.
        func limitFamily(_ name: String, _ help: String, label: String, _ events: [(String, WorkerStats.LimitEvent)]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for row in rows {
                for (value, event) in events {
                    text += "\(name){worker=\"\(row.slot)\",\(label)=\"\(value)\"} \(row.limits[event.rawValue])\n"
                }
            }
        }
        family("shoal_worker_up", "gauge", "1 when a worker process runs in this slot.") { $0.pid != 0 ? 1 : 0 }
        family("shoal_connections", "gauge", "Open WebSocket connections.") { $0.connections }
        family("shoal_messages_received_total", "counter", "WebSocket messages received from clients.") { $0.messagesIn }
        family("shoal_messages_sent_total", "counter", "WebSocket messages queued to clients.") { $0.messagesOut }
        family("shoal_received_bytes_total", "counter", "Bytes received on WebSocket connections.") { $0.bytesIn }
        family("shoal_sent_bytes_total", "counter", "Payload bytes queued to clients.") { $0.bytesOut }
        family("shoal_bus_messages_sent_total", "counter",
               "Messages this worker wrote to the bus (sends of one payload to many connections of a worker count once).") {
            $0.busMessagesOut
        }
        family("shoal_bus_drops_total", "counter", "Bus messages dropped because a peer worker was not reading.") { $0.drops }
        family("shoal_bus_holds_total", "counter",
               "Times a bus channel to another worker backed up and this worker held its client input until it drained.") {
            $0.busHolds
        }
        family("shoal_worker_restarts_total", "counter", "Times the supervisor restarted this slot's worker.") { $0.restarts }
        family("shoal_watchdog_kills_total", "counter", "Times the supervisor killed this slot's worker for making no progress.") {
            $0.watchdogKills
        }
        limitFamily("shoal_slow_consumer_total", "Connections past maxBackpressure: closed with 1008, or messages dropped.",
                    label: "action", [("close", .slowConsumerClose), ("drop", .slowConsumerDrop)])
        limitFamily("shoal_rejected_upgrades_total", "Upgrades refused by a limit before the 101.", label: "reason",
                    [("origin", .rejectedOrigin), ("max_connections", .rejectedCapacity), ("per_address", .rejectedPerAddress)])
        family("shoal_idle_timeouts_total", "counter", "Connections closed with 1001 after an unanswered idle ping.") {
            $0.limits[WorkerStats.LimitEvent.idleTimeout.rawValue]
        }
        family("shoal_proxy_header_rejections_total", "counter",
               "Connections closed because their PROXY protocol header was missing, malformed or not complete in time.") {
            $0.limits[WorkerStats.LimitEvent.rejectedProxyHeader.rawValue]
        }
        if rows.contains(where: { $0.redisLink != 0 }) {
            redisFamilies(rows.filter { $0.redisLink != 0 }.map { ($0.slot, $0.redisLink, $0.redis, $0.redisTooLarge) }, into: &text)
        }
        limitFamily("shoal_tls_handshake_failures_total",
                    "TLS handshakes that failed: plain_http (HTTP to the TLS port), protocol (a version, cipher or ALPN refused), malformed (garbage, a bad record, the peer's alert), timeout.",
                    label: "reason", Self.tlsFailureEvents)
        var operatorFamilies = MetricsExposition()
        appendOperatorMetrics(to: &operatorFamilies)
        appendHandlerMetrics(to: &operatorFamilies)
        return text + operatorFamilies.text
    }

    /// The Redis link's series (only with --redis): per worker, since each holds its own connections.
    private func redisFamilies(_ rows: [(slot: Int, link: Int, counts: [Int], tooLarge: Int)], into text: inout String) {
        func family(_ name: String, _ kind: String, _ help: String, _ value: ((slot: Int, link: Int, counts: [Int], tooLarge: Int)) -> Int) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind)\n"
            for row in rows { text += "\(name){worker=\"\(row.slot)\"} \(value(row))\n" }
        }
        typealias Counter = WorkerStats.RedisCounter
        family("shoal_redis_up", "gauge", "1 while the worker's Redis links (publish and subscribe) are both up.") { $0.link == 2 ? 1 : 0 }
        family("shoal_redis_published_total", "counter", "Broadcasts and topic publishes published on Redis for the other instances.") {
            $0.counts[Counter.published.rawValue]
        }
        family("shoal_redis_received_total", "counter", "Broadcasts and topic publishes from other instances received from Redis and delivered here.") {
            $0.counts[Counter.received.rawValue]
        }
        text += "# HELP shoal_redis_dropped_total Broadcasts and publishes the other instances did not get: the link was down, Redis had not taken the earlier ones (queue full), or the message was larger than a receiver takes (too large).\n# TYPE shoal_redis_dropped_total counter\n"
        for row in rows {
            text += "shoal_redis_dropped_total{worker=\"\(row.slot)\",reason=\"down\"} \(row.counts[Counter.droppedWhileDown.rawValue])\n"
            text += "shoal_redis_dropped_total{worker=\"\(row.slot)\",reason=\"queue_full\"} \(row.counts[Counter.droppedQueueFull.rawValue])\n"
            text += "shoal_redis_dropped_total{worker=\"\(row.slot)\",reason=\"too_large\"} \(row.tooLarge)\n"
        }
        family("shoal_redis_invalid_total", "counter", "Messages on the cluster's Redis channel ignored: not Shoal's, another version, truncated, oversized or malformed.") {
            $0.counts[Counter.invalid.rawValue]
        }
    }
}
