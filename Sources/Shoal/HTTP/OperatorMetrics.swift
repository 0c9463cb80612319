// The /metrics families an operator expects beyond Shoal's own counters: the build, standard
// process metrics for the supervisor and each worker, the send-queue gauge, closes by code,
// refusals by reason, and the handshake-latency and message-size histograms. Counters and
// histograms are summed over every worker slot of the segment (they never reset while the
// supervisor lives, so the sums only grow); process figures are per process.
import ShoalCluster
import ShoalPosix
import ShoalRing

extension WebServer {
    /// Appends the operator families to `out`.
    func appendOperatorMetrics(to out: inout MetricsExposition) {
        /// The supervisor's series are labelled process="supervisor"; a worker's process="worker" and its slot.
        var processes: [(labels: [(String, String)], figures: ProcessSample)] = []
        var queued: [(label: String, bytes: UInt64)] = []
        var blocks: [WorkerMetrics] = []
        if let cluster {
            let segment = cluster.node.segment
            let supervisor = segment.supervisorProcess
            if supervisor.startMilliseconds != 0 { processes.append(([("process", "supervisor")], supervisor)) }
            for slot in 0..<segment.workerSlots {
                let block = segment.metrics(slot: slot)
                blocks.append(block)
                let figures = block.process
                guard segment.stats(slot: slot).pid != 0, figures.startMilliseconds != 0 else { continue }
                processes.append(([("process", "worker"), ("worker", "\(slot)")], figures))
                queued.append(("\(slot)", block.queuedSendBytes))
            }
        } else {
            blocks.append(metrics)
            processes.append(([("process", "worker"), ("worker", "0")], ProcessSample.current()))
            queued.append(("0", UInt64(loop.queuedBytes)))
        }

        let build = configuration.build
        out.family("shoal_build_info", "gauge", "Always 1; the labels name the running build (as shoal --version does).")
        out.sample("shoal_build_info", [("version", build.version), ("commit", build.commit), ("swift", build.swift)], 1)

        func processFamily(_ name: String, _ type: String, _ help: String, _ value: (ProcessSample) -> String) {
            out.family(name, type, help)
            for process in processes { out.sample(name, process.labels, value(process.figures)) }
        }
        processFamily("process_cpu_seconds_total", "counter", "User and system CPU time of the process, sampled once a second.") {
            MetricsExposition.decimal($0.cpuMicroseconds, scale: 1_000_000)
        }
        processFamily("process_resident_memory_bytes", "gauge", "Resident memory of the process, sampled once a second.") {
            "\($0.residentBytes)"
        }
        processFamily("process_open_fds", "gauge", "Open file descriptors of the process, sampled once a second.") {
            "\($0.openDescriptors)"
        }
        processFamily("process_start_time_seconds", "gauge", "When the process started, in seconds since the Unix epoch.") {
            MetricsExposition.decimal($0.startMilliseconds, scale: 1000)
        }
        out.family("shoal_send_queue_bytes", "gauge", "Bytes queued for clients and not yet taken by the kernel, sampled once a second.")
        for worker in queued { out.sample("shoal_send_queue_bytes", [("worker", worker.label)], worker.bytes) }

        var closes = [UInt64](repeating: 0, count: WorkerMetrics.countedCloseCodes.count + 1)
        var refusals = [UInt64](repeating: 0, count: WorkerMetrics.Refusal.allCases.count)
        var handshakes = HistogramCounts(buckets: Array(repeating: 0, count: LogBuckets.handshakeMicroseconds.count), sum: 0)
        var sizes = HistogramCounts(buckets: Array(repeating: 0, count: LogBuckets.messageBytes.count), sum: 0)
        for block in blocks {
            closes = zip(closes, block.closes).map { $0 &+ $1 }
            for refusal in WorkerMetrics.Refusal.allCases { refusals[refusal.rawValue] &+= block[refusal] }
            handshakes = handshakes + block.handshakes
            sizes = sizes + block.messageSizes
        }
        out.family("shoal_closes_total", "counter",
                   "WebSocket connections closed, by the code of the first close frame (1006: none, the TCP connection ended).")
        for (index, count) in closes.enumerated() {
            let code = index < WorkerMetrics.countedCloseCodes.count ? "\(WorkerMetrics.countedCloseCodes[index])" : "other"
            out.sample("shoal_closes_total", [("code", code)], count)
        }
        out.family("shoal_http_refusals_total", "counter",
                   "Requests and connections refused before becoming a WebSocket, by HTTP status or reason.")
        for refusal in WorkerMetrics.Refusal.allCases {
            out.sample("shoal_http_refusals_total", [("reason", refusal.label)], refusals[refusal.rawValue])
        }
        out.family("shoal_handshake_duration_seconds", "histogram",
                   "From accept (or the previous request's end) to the 101 response written.")
        out.histogram("shoal_handshake_duration_seconds", bounds: LogBuckets.handshakeMicroseconds.upperBounds,
                      scale: 1_000_000, handshakes)
        out.family("shoal_received_message_bytes", "histogram", "Payload size of WebSocket messages received (after decompression).")
        out.histogram("shoal_received_message_bytes", bounds: LogBuckets.messageBytes.upperBounds, scale: 1, sizes)
    }
}

extension WebServer {
    /// Appends the series handlers recorded through swift-metrics: counters and summaries summed
    /// over every slot, gauges per live worker; then how many series were refused.
    func appendHandlerMetrics(to out: inout MetricsExposition) {
        var tables: [(worker: String?, table: HandlerSeriesTable)] = []
        var refused: UInt64 = 0
        if let cluster {
            let segment = cluster.node.segment
            for slot in 0..<segment.workerSlots {
                tables.append((segment.stats(slot: slot).pid != 0 ? "\(slot)" : nil, segment.handlerSeries(slot: slot)))
                refused &+= segment.metrics(slot: slot).refusedHandlerSeries
            }
        } else {
            tables.append(("0", handlerSeries))
            refused = metrics.refusedHandlerSeries
        }
        /// Per family (first kind seen wins), per rendered label set: the value and count.
        var families: [(name: String, kind: HandlerSeriesKind, samples: [(labels: String, value: Double, count: UInt64)])] = []
        var familyIndex: [String: Int] = [:]
        for (worker, table) in tables {
            for series in table.series {
                if series.kind == .gauge && worker == nil { continue }  // a gauge of a worker that is gone
                let index = familyIndex[series.name] ?? {
                    families.append((series.name, series.kind, []))
                    familyIndex[series.name] = families.count - 1
                    return families.count - 1
                }()
                guard families[index].kind == series.kind else { continue }
                var labels = series.labels
                if series.kind == .gauge, let worker { labels += (labels.isEmpty ? "" : ",") + "worker=\"\(worker)\"" }
                if let sample = families[index].samples.firstIndex(where: { $0.labels == labels }) {
                    families[index].samples[sample].value += series.value
                    families[index].samples[sample].count &+= series.count
                } else {
                    families[index].samples.append((labels, series.value, series.count))
                }
            }
        }
        for family in families {
            switch family.kind {
            case .counter, .gauge:
                out.family(family.name, family.kind == .counter ? "counter" : "gauge", "Recorded by the program's handlers (swift-metrics).")
                for sample in family.samples { out.line(family.name, sample.labels, MetricsExposition.number(sample.value)) }
            case .summary:
                out.family(family.name, "summary", "Recorded by the program's handlers (swift-metrics): sum and count.")
                for sample in family.samples {
                    out.line(family.name + "_sum", sample.labels, MetricsExposition.number(sample.value))
                    out.line(family.name + "_count", sample.labels, "\(sample.count)")
                }
            }
        }
        out.family("shoal_handler_metric_series_refused_total", "counter",
                   "swift-metrics series a handler made that were not recorded: \(HandlerSeriesTable.capacity) per worker at most, "
                   + "names and labels \(HandlerSeriesTable.maxKeyBytes) bytes, shoal_/process_ names reserved.")
        out.sample("shoal_handler_metric_series_refused_total", [], refused)
    }
}
