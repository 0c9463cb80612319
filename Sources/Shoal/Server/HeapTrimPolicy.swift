// When a worker gives freed memory back to the kernel: after many of the sockets it held have gone
// (a storm of clients has left), not on every close. Sampled once a second by the web server; pure,
// so the rule is tested without a heap.

/// Decides when a worker should trim its heap (`HeapTrim.returnFreePages`).
struct HeapTrimPolicy {
    /// Fewer sockets than this gone since the last trim is not worth one (their memory is small).
    var minimumDrop = 64
    /// Samples after a trim when the heap is trimmed once more: the count falls before the storm's
    /// last sends are done (bus messages to other workers, close handshakes), and what those held
    /// is freed (or goes back to the loop's chunk pool) after the first trim: 175 MB over 12
    /// workers after a 5,000-client chat storm.
    var followUpDelay = 3
    /// Highest socket count since the last trim.
    private(set) var peak = 0
    private var previous = 0
    private var samplesUntilFollowUp: Int?

    /// Takes the current number of open sockets; true when the heap should be trimmed now: enough
    /// sockets left since the last trim, and either the count has stopped falling (what they freed
    /// is all free now) or it fell to half (a long leave still gives memory back on the way down);
    /// and once more `followUpDelay` samples after such a trim.
    mutating func sample(openSockets: Int) -> Bool {
        defer { previous = openSockets }
        peak = max(peak, openSockets)
        if peak - openSockets >= minimumDrop, openSockets == previous || openSockets * 2 <= peak {
            peak = openSockets
            samplesUntilFollowUp = followUpDelay
            return true
        }
        guard let remaining = samplesUntilFollowUp else { return false }
        samplesUntilFollowUp = remaining > 1 ? remaining - 1 : nil
        return remaining == 1
    }

    /// Loop steps (completions handled and timers run, `EventLoop.progress`) since the last settle
    /// that make a burst: a connect storm of a few thousand clients takes several steps per client.
    /// Counted over however many samples the burst took: a million clients opening over 51 workers
    /// come to each worker at a few hundred a second for minutes, never 4,096 steps in one second,
    /// and the receive buffers they went through stayed resident (about 2 MB per worker, 110 B per
    /// connection at a million).
    var burstSteps: UInt64 = 4096
    /// Fewer loop steps than this in one sample: the burst is over.
    var quietSteps: UInt64 = 256
    /// The loop's progress at the previous sample; it counts from 0 when the loop starts, so the
    /// first sample sees a burst that came before it (a fresh worker's first connect storm).
    private var previousProgress: UInt64 = 0
    /// Loop steps since the last settle (saturating: a long-lived worker does not wrap it).
    private var stepsSinceSettled: UInt64 = 0

    /// Takes the loop's progress counter; true once per burst, at the first quiet sample after it:
    /// a storm of clients that connect and then stay idle closes no socket, so `sample` never
    /// trims, yet it left the heap and the receive buffers it went through resident.
    mutating func sample(progress: UInt64) -> Bool {
        defer { previousProgress = progress }
        let steps = progress &- previousProgress
        let (sum, overflow) = stepsSinceSettled.addingReportingOverflow(steps)
        stepsSinceSettled = overflow ? .max : sum
        guard stepsSinceSettled >= burstSteps, steps < quietSteps else { return false }
        stepsSinceSettled = 0
        return true
    }
}
