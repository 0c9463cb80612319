// Flow control on the bus: when a worker produces bus messages for a peer faster than the peer takes
// them (a chat join storm on 2 workers: each join is 32 KiB of ids for the other one), the channel's
// queue grows. Instead of dropping past a bound, the worker stops running its producers (it holds
// its clients' input, as the slow-consumer policy pauses one client) while a channel is above the
// high-water mark, and runs them again once every channel is below the low-water mark. A hard cap
// stays as a last resort (counted as a bus drop), and a peer that takes nothing for `stallTimeout`
// (the watchdog's time: a peer stuck that long is being replaced) no longer holds anyone: its channel
// falls back to the cap.
//
// Pure: the bus tells it each channel's queued bytes (after a write, and at the end of each turn for
// the channels it holds for), whether the peer runs, and the time; it answers hold / release.

/// The producer gate of one worker's bus channels.
public struct BusFlowControl: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Producers are held once a channel queues this much.
        public var highWater: Int
        /// ... and run again once every holding channel is at or below this.
        public var lowWater: Int
        /// A message that would take a channel past this is dropped (and counted), hold or not.
        public var hardCap: Int
        /// A channel whose queue did not shrink for this long stops holding producers.
        public var stallTimeout: UInt64

        public init(highWater: Int, lowWater: Int, hardCap: Int, stallTimeout: UInt64) {
            precondition(0 <= lowWater && lowWater < highWater && highWater <= hardCap)
            self.highWater = highWater
            self.lowWater = lowWater
            self.hardCap = hardCap
            self.stallTimeout = stallTimeout
        }

        /// 4 MiB high (a join into 8,000 clients on 2 workers is 32 KiB: over a hundred joins in flight,
        /// the peer never waits for work), 1 MiB low (what a peer takes in a few milliseconds, so a
        /// released worker refills before the peer runs dry), 64 MiB cap (four maximum-size messages),
        /// and the stall time given (the cluster passes its watchdog time, 10 s by default: a busy or
        /// CPU-starved peer takes something well within it, a peer that takes nothing that long is
        /// stopped or stuck, and the watchdog replaces it).
        public static func standard(stallTimeout: UInt64) -> Limits {
            Limits(highWater: 4 << 20, lowWater: 1 << 20, hardCap: 64 << 20, stallTimeout: stallTimeout)
        }
    }

    public enum Action: Equatable, Sendable {
        /// Stop running producers (client input that may send over the bus).
        case hold
        /// Run them again.
        case release
    }

    private struct Congestion: Equatable {
        /// The smallest queue seen since the channel went over, and when it was seen.
        var lowest: Int
        var lowestAt: UInt64
        /// True once the channel stalled: it no longer holds producers, and leaves only when it drains.
        var stalled = false
    }

    public let limits: Limits
    private var congestion: [Int: Congestion] = [:]
    private var holdingCount = 0

    public init(limits: Limits) {
        self.limits = limits
    }

    /// True while producers must not run.
    public var holdsProducers: Bool { holdingCount > 0 }

    /// Slots whose channel is being watched (over the high-water mark and not yet drained): the bus
    /// measures these at the end of each turn.
    public var watchedSlots: [Int] { congestion.isEmpty ? [] : Array(congestion.keys) }

    /// Whether a message of `size` bytes may be queued on a channel that holds `queued`.
    public func admits(size: Int, queued: Int) -> Bool {
        queued + size <= limits.hardCap
    }

    /// The channel to `slot` now queues `queued` bytes; `peerRuns` is false when no worker runs in
    /// that slot (its queue then waits for the next one, which discards it: nobody to wait for).
    public mutating func measured(slot: Int, queued: Int, peerRuns: Bool, now: UInt64) -> Action? {
        // Nothing congested and this channel under the mark: the case of every bus message while the
        // peers keep up, so it is answered before any dictionary lookup.
        if congestion.isEmpty && queued < limits.highWater { return nil }
        let wasHolding = holdsProducers
        if var state = congestion[slot] {
            if queued <= limits.lowWater || !peerRuns {
                congestion[slot] = nil
                if !state.stalled { holdingCount -= 1 }
            } else {
                if queued < state.lowest {
                    state.lowest = queued
                    state.lowestAt = now
                } else if !state.stalled && now >= state.lowestAt + limits.stallTimeout {
                    state.stalled = true
                    holdingCount -= 1
                }
                congestion[slot] = state
            }
        } else if queued >= limits.highWater && peerRuns {
            congestion[slot] = Congestion(lowest: queued, lowestAt: now)
            holdingCount += 1
        }
        if holdsProducers != wasHolding { return holdsProducers ? .hold : .release }
        return nil
    }
}
