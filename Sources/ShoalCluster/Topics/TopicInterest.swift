// What one worker knows about the other workers' topic subscribers: for each (server, topic), how many
// subscribers each other worker slot reported (`topicCounts` on the bus). A publish goes only to the slots with a
// count above zero, and `subscriberCount` adds these counts to the local one. Pure: the cluster link feeds it bus
// messages and asks it questions; a slot's counts are forgotten when it announces a fresh start (`topicSync`).

/// A topic of one server, as the bus names it.
public struct TopicKey: Hashable, Sendable {
    public var server: UInt32
    public var topic: String

    public init(server: UInt32, topic: String) {
        self.server = server
        self.topic = topic
    }
}

/// Subscriber counts reported by the other worker slots.
public struct TopicInterest {
    /// Per topic, the slots that reported subscribers, with their counts; a topic no slot is interested in has no
    /// entry, so the table stays as large as the topics in use.
    private var counts: [TopicKey: [SlotCount]] = [:]

    private struct SlotCount {
        var slot: Int
        var count: Int
    }

    public init() {}

    /// Takes `slot`'s latest counts for some topics of `server` (0: none any more).
    public mutating func apply(_ reported: [TopicCount], server: UInt32, from slot: Int) {
        for entry in reported {
            let key = TopicKey(server: server, topic: entry.topic)
            var slots = counts[key] ?? []
            slots.removeAll { $0.slot == slot }
            if entry.count > 0 { slots.append(SlotCount(slot: slot, count: Int(entry.count))) }
            counts[key] = slots.isEmpty ? nil : slots
        }
    }

    /// Forgets everything `slot` reported (a new worker started in it).
    public mutating func forget(slot: Int) {
        for (key, slots) in counts where slots.contains(where: { $0.slot == slot }) {
            let kept = slots.filter { $0.slot != slot }
            counts[key] = kept.isEmpty ? nil : kept
        }
    }

    /// The slots among `live` that reported subscribers for `key`, in report order.
    public func interestedSlots(in key: TopicKey, among live: (Int) -> Bool) -> [Int] {
        guard let slots = counts[key] else { return [] }
        return slots.filter { live($0.slot) }.map(\.slot)
    }

    /// Subscribers of `key` on the slots among `live`.
    public func remoteCount(of key: TopicKey, among live: (Int) -> Bool) -> Int {
        counts[key]?.reduce(0) { live($1.slot) ? $0 + $1.count : $0 } ?? 0
    }

    /// Topics with any remote interest (for diagnostics and tests).
    public var topicCount: Int { counts.count }
}
