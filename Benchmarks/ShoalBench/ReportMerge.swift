// One report out of the threads' reports: counts and rates add up, latency histograms are added
// (HdrHistogram add, so percentiles are exact over all threads, not averages of percentiles), each
// thread's CPU is kept, and the client-bound rule is applied to the whole generator.
import Histogram

extension Report {
    /// The threads' scenarios (run to the end) as one report, thread 0's parameters and server
    /// figures; and the latency histogram over every run and thread (nil without latency).
    static func merged(_ scenarios: [Scenario]) -> (Report, Histogram<UInt64>?) {
        precondition(!scenarios.isEmpty)
        var report = scenarios[0].report
        report.threads = scenarios.count
        report.connectionsOpened = scenarios.reduce(0) { $0 + $1.report.connectionsOpened }
        let runCount = scenarios.map(\.report.runs.count).max() ?? 0
        var all = makeLatencyHistogram()
        var anyLatency = false
        report.runs = (0..<runCount).map { i in
            let parts = scenarios.filter { i < $0.report.runs.count }
            var latency = makeLatencyHistogram()
            var hasLatency = false
            for scenario in parts {
                if let h = scenario.runLatencies[i] {
                    latency.add(h)
                    hasLatency = true
                }
            }
            if hasLatency {
                all.add(latency)
                anyLatency = true
            }
            return mergedRun(parts.map { $0.report.runs[i] }, latency: hasLatency ? latency : nil, extra: scenarios[0].mergedExtra)
        }
        report.latency = anyLatency ? LatencySummary(all) : nil
        var uncorrected: Histogram<UInt64>?
        for scenario in scenarios {
            guard let h = scenario.uncorrectedLatency else { continue }
            if uncorrected == nil { uncorrected = makeLatencyHistogram() }
            uncorrected?.add(h)
        }
        report.latencyUncorrected = uncorrected.flatMap(LatencySummary.init)
        report.errors = [:]
        report.errorSamples = []
        report.warnings = []
        for scenario in scenarios {
            report.errors.merge(scenario.report.errors, uniquingKeysWith: +)
            for sample in scenario.report.errorSamples where report.errorSamples.count < 5 && !report.errorSamples.contains(sample) {
                report.errorSamples.append(sample)
            }
            for warning in scenario.report.warnings where !report.warnings.contains(warning) { report.warnings.append(warning) }
        }
        report.deflate = DeflateReport.merged(scenarios.compactMap(\.report.deflate))
        report.latencyPercentiles = anyLatency ? PercentilePoint.distribution(all) : nil
        var timeline = scenarios[0].timeline
        for scenario in scenarios.dropFirst() { timeline.add(scenario.timeline) }
        report.timeline = timeline.points
        return (report, anyLatency ? all : nil)
    }

    /// Run i of every thread as one run. The windows began at the same start line, so they
    /// nearly coincide: the run lasts as long as the longest, and its rate is the sum of the
    /// threads' rates (each over its own window).
    private static func mergedRun(_ parts: [RunFigures], latency: Histogram<UInt64>?, extra: ([RunFigures]) -> [String: Double]) -> RunFigures {
        var run = parts[0]
        run.seconds = parts.map(\.seconds).max() ?? run.seconds
        run.count = parts.reduce(0) { $0 + $1.count }
        let rated = parts.contains { $0.perSecond != nil }
        run.perSecond = rated ? parts.reduce(0) { $0 + ($1.perSecond ?? 0) } : nil
        run.serverCPUShare = run.serverCPUSeconds.map { $0 / run.seconds }
        // The process's CPU over thread 0's window already holds every thread (and io_uring's workers).
        run.clientCPUShare = run.clientCPUSeconds / run.seconds
        run.perThread = parts.flatMap(\.perThread)
        run.clientBound = rated && (run.perThread.contains { $0.cpuShare >= Scenario.boundShare }
            || run.clientCPUShare >= Scenario.boundShare * Double(usableCPUs()))
        run.perServerCPUSecond = nil
        if rated, !run.clientBound, let serverCPU = run.serverCPUSeconds, serverCPU > 0 { run.perServerCPUSecond = run.count / serverCPU }
        run.latency = latency.flatMap(LatencySummary.init)
        run.extra = extra(parts)
        let targets = parts.compactMap(\.target)
        if !targets.isEmpty {
            let target = targets.reduce(0, +)
            run.target = target
            run.targetPerSecond = parts.reduce(0) { $0 + ($1.target ?? 0) / $1.seconds }
            run.achievedShare = target > 0 ? run.count / target : nil
        }
        return run
    }
}

extension DeflateReport {
    /// The threads' tallies added up (nil without --deflate).
    static func merged(_ parts: [DeflateReport]) -> DeflateReport? {
        guard var total = parts.first else { return nil }
        for part in parts.dropFirst() {
            total.negotiatedConnections += part.negotiatedConnections
            total.declinedConnections += part.declinedConnections
            total.answers.merge(part.answers, uniquingKeysWith: +)
            total.compressedMessagesSent += part.compressedMessagesSent
            total.messagesReceived += part.messagesReceived
            total.messageBytesReceived += part.messageBytesReceived
            total.wireBytesReceived += part.wireBytesReceived
            total.benchZlibBytesPeak += part.benchZlibBytesPeak
        }
        return total
    }
}
