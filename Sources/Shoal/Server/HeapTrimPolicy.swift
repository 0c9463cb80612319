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
}
