// One worker's subscriptions for one WebSocket server: topic → subscribers and subscriber → topics, with the
// limits `subscribe` enforces. A value type with no socket in sight, so every rule is unit tested alone; the server
// keeps one and asks it whom a publish reaches.
import ShoalCluster

/// Subscriptions of `Member`s (connections, in the server) to topics.
struct TopicTable<Member: Hashable> {
    private var subscribers: [String: Set<Member>] = [:]
    private var topicsOf: [Member: Set<String>] = [:]
    /// Most topics one member may hold at once (`WebSocketServerOptions.maxTopicsPerConnection`).
    let maxTopicsPerMember: Int

    init(maxTopicsPerMember: Int) {
        self.maxTopicsPerMember = maxTopicsPerMember
    }

    /// Throws when `topic` cannot be a topic name: more than `BusEncoder.maxTopicLength` UTF-8 bytes.
    static func validate(_ topic: String) throws(TopicError) {
        let length = topic.utf8.count
        if length > BusEncoder.maxTopicLength { throw .nameTooLong(bytes: length, limit: BusEncoder.maxTopicLength) }
    }

    /// Subscribes `member` to `topic`; false when it already was. Throws for a bad name, or when `member` already
    /// holds `maxTopicsPerMember` topics (then nothing changes).
    mutating func subscribe(_ member: Member, to topic: String) throws(TopicError) -> Bool {
        try Self.validate(topic)
        if topicsOf[member]?.contains(topic) == true { return false }
        if (topicsOf[member]?.count ?? 0) >= maxTopicsPerMember { throw .tooManyTopics(limit: maxTopicsPerMember) }
        topicsOf[member, default: []].insert(topic)
        subscribers[topic, default: []].insert(member)
        return true
    }

    /// Unsubscribes `member` from `topic`; false when it was not subscribed.
    mutating func unsubscribe(_ member: Member, from topic: String) -> Bool {
        guard topicsOf[member]?.remove(topic) != nil else { return false }
        if topicsOf[member]?.isEmpty == true { topicsOf[member] = nil }
        subscribers[topic]?.remove(member)
        if subscribers[topic]?.isEmpty == true { subscribers[topic] = nil }
        return true
    }

    /// Removes `member` from every topic (it closed); returns the topics it left.
    mutating func removeAll(of member: Member) -> Set<String> {
        guard let topics = topicsOf.removeValue(forKey: member) else { return [] }
        for topic in topics {
            subscribers[topic]?.remove(member)
            if subscribers[topic]?.isEmpty == true { subscribers[topic] = nil }
        }
        return topics
    }

    /// The members subscribed to `topic` (empty when none).
    func subscribers(of topic: String) -> Set<Member> { subscribers[topic] ?? [] }

    func count(of topic: String) -> Int { subscribers[topic]?.count ?? 0 }

    func isSubscribed(_ member: Member, to topic: String) -> Bool { topicsOf[member]?.contains(topic) == true }

    /// `member`'s topics, sorted (a set has no useful order; sorted is stable for users and tests).
    func topics(of member: Member) -> [String] { (topicsOf[member] ?? []).sorted() }

    /// Every topic with at least one subscriber, with its count.
    var counts: [(topic: String, count: Int)] { subscribers.map { ($0.key, $0.value.count) } }
}
