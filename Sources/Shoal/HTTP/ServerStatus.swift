// /healthz and /metrics: the whole cluster's state, read from the shared segment (any worker can
// answer for all of them), or this process's own figures when it runs alone.
import ShoalCluster
import ShoalRing

extension WebServer {
    /// Why the server is not healthy, or nil. In a cluster: a worker of the serving generation is
    /// missing or its loop has not turned for 5 s.
    func healthProblem() -> String? {
        guard let cluster else { return nil }
        let segment = cluster.node.segment
        let workers = cluster.node.role.workers
        let now = loop.now
        let servingSet = cluster.slot / workers
        for index in 0..<workers {
            let slot = servingSet * workers + index
            let stats = segment.stats(slot: slot)
            if stats.pid == 0 { return "worker slot \(slot) is not running" }
            let beat = stats.heartbeatNanoseconds
            if beat != 0 && now > beat && now - beat > 5_000_000_000 { return "worker slot \(slot) has not turned its loop for 5 s" }
        }
        return nil
    }

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
            var restarts: Int
            var limits: [Int]
        }
        var rows: [Row] = []
        if let cluster {
            let segment = cluster.node.segment
            for slot in 0..<segment.workerSlots {
                let s = segment.stats(slot: slot)
                guard s.pid != 0 || s.restarts != 0 else { continue }
                rows.append(Row(slot: slot, pid: s.pid, connections: s.connections, messagesIn: s.messagesIn,
                                messagesOut: s.messagesOut, bytesIn: s.bytesIn, bytesOut: s.bytesOut, drops: s.drops,
                                restarts: s.restarts, limits: WorkerStats.LimitEvent.allCases.map { s[$0] }))
            }
        } else {
            let traffic = self.traffic
            rows.append(Row(slot: 0, pid: 0, connections: openWebSockets, messagesIn: traffic.messagesIn,
                            messagesOut: traffic.messagesOut, bytesIn: traffic.bytesIn, bytesOut: traffic.bytesOut,
                            drops: 0, restarts: 0, limits: limits.values))
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
        family("shoal_bus_drops_total", "counter", "Bus messages dropped because a peer worker was not reading.") { $0.drops }
        family("shoal_worker_restarts_total", "counter", "Times the supervisor restarted this slot's worker.") { $0.restarts }
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
        return text
    }
}
