// When a worker gives freed memory back to the kernel: after many of the sockets it held have gone
// (a storm of clients has left), not on every close. Sampled once a second by the web server; pure,
// so the rule is tested without a heap.

/// Decides when a worker should trim its heap (`HeapTrim.returnFreePages`).
struct HeapTrimPolicy {
    /// Fewer sockets than this gone since the last trim is not worth one (their memory is small).
    var minimumDrop = 64
    /// Highest socket count since the last trim.
    private(set) var peak = 0
    private var previous = 0

    /// Takes the current number of open sockets; true when the heap should be trimmed now: enough
    /// sockets left since the last trim, and either the count has stopped falling (what they freed
    /// is all free now) or it fell to half (a long leave still gives memory back on the way down).
    mutating func sample(openSockets: Int) -> Bool {
        defer { previous = openSockets }
        peak = max(peak, openSockets)
        guard peak - openSockets >= minimumDrop, openSockets == previous || openSockets * 2 <= peak else { return false }
        peak = openSockets
        return true
    }
}
