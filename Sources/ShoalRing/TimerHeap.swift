// Deadlines of the loop in a binary min-heap. Timers are rare next to I/O (handshake and
// close deadlines, keep-alive pings), so a heap with lazy cancellation is enough.

/// What a timer does when it fires.
enum TimerAction {
    /// Calls the socket delegate's `socketTimerFired` if the slot still has this generation.
    case socket(index: UInt32, generation: UInt32, kind: UInt8)
    /// Runs a closure on the loop.
    case closure(() -> Void)
}

/// A min-heap of deadlines (monotonic nanoseconds).
struct TimerHeap {
    private struct Entry {
        var deadline: UInt64
        var sequence: UInt64
        var action: TimerAction
    }

    private var entries: [Entry] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { entries.isEmpty }
    var earliestDeadline: UInt64? { entries.first?.deadline }

    mutating func insert(deadline: UInt64, _ action: TimerAction) {
        nextSequence += 1
        entries.append(Entry(deadline: deadline, sequence: nextSequence, action: action))
        siftUp(entries.count - 1)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    mutating func popDue(now: UInt64) -> TimerAction? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            siftDown(0)
        }
        return first.action
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        (entries[a].deadline, entries[a].sequence) < (entries[b].deadline, entries[b].sequence)
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { return }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < entries.count && less(left, smallest) { smallest = left }
            if right < entries.count && less(right, smallest) { smallest = right }
            if smallest == parent { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
