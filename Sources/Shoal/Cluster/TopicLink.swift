// Topics across workers: each worker tells the others how many subscribers it has per topic (`topicCounts`,
// gathered per loop turn so a storm of subscribes costs one bus message per turn and peer), keeps what they told
// it (`TopicInterest`), and sends a publish only to the workers that reported subscribers for its topic. A
// starting worker asks the others for their counts (`topicSync`).
//
// Counts travel in messages rather than in the shared segment: a topic name is up to 256 bytes and topics come and
// go, so a shared table would need an allocator and locking across processes; the bus is already ordered per pair
// of workers, and every worker needs the counts anyway to decide where a publish goes.
import ShoalCluster
import ShoalRing
import ShoalWire

/// One worker's part in cluster-wide topics.
final class TopicLink {
    private unowned let web: WebServer
    private let bus: Bus
    private var interest = TopicInterest()
    /// Per server index, the topics whose local subscriber count changed in this turn.
    private var changed: [UInt32: Set<String>] = [:]

    init(web: WebServer, bus: Bus) {
        self.web = web
        self.bus = bus
        web.loop.addTurnEndHook { [unowned self] in self.sendChangedCounts() }
    }

    /// Asks the running workers for their counts (and tells them to forget what this slot said before).
    func start() {
        bus.postToAll(.topicSync)
    }

    func localCountChanged(server: Int, topic: String) {
        changed[UInt32(server), default: []].insert(topic)
    }

    /// Subscribers of `topic` on the other running workers, as last reported.
    func remoteCount(server: Int, topic: String) -> Int {
        interest.remoteCount(of: TopicKey(server: UInt32(server), topic: topic), among: bus.isLive)
    }

    /// A publish made on this worker, to every other worker with subscribers for `topic`.
    func publish(server: Int, topic: String, except: Int, opcode: Opcode, payload: UnsafeRawBufferPointer) {
        let slots = interest.interestedSlots(in: TopicKey(server: UInt32(server), topic: topic), among: bus.isLive)
        guard !slots.isEmpty else { return }
        var name = topic
        name.withUTF8 {
            bus.publish(toSlots: slots, server: server, topic: UnsafeRawBufferPointer($0), except: except,
                        opcode: opcode.rawValue, payload: payload)
        }
    }

    /// A topic message from the worker in `slot`.
    func received(_ message: BusMessage, from slot: Int) {
        switch message {
        case .publish(let server, let topic, let except, let opcode, let payload):
            guard let wss = web.server(index: Int(server)) else { return }
            payload.withUnsafeBytes {
                wss.publishLocally(topic, Opcode(rawValue: opcode) ?? .binary, $0, except: Int(except))
            }
        case .topicCounts(let server, let counts):
            interest.apply(counts, server: server, from: slot)
        case .topicSync:
            interest.forget(slot: slot)
            for server in web.webSocketServers {
                let counts = server.topicTable.counts.map { TopicCount(topic: $0.topic, count: UInt32($0.count)) }
                post(counts, server: UInt32(server.index)) { bus.post($0, toSlot: slot) }
            }
        default:
            break
        }
    }

    /// The turn's changed counts, to every other running worker.
    private func sendChangedCounts() {
        guard !changed.isEmpty else { return }
        let turn = changed
        changed = [:]
        for (server, topics) in turn {
            let wss = web.server(index: Int(server))
            let counts = topics.map { TopicCount(topic: $0, count: UInt32(wss?.topicTable.count(of: $0) ?? 0)) }
            post(counts, server: server) { bus.postToAll($0) }
        }
    }

    /// `counts` in as many `topicCounts` messages as their limit needs.
    private func post(_ counts: [TopicCount], server: UInt32, with send: (BusMessage) -> Void) {
        var start = 0
        while start < counts.count {
            let end = min(start + BusEncoder.maxTopicCountsPerMessage, counts.count)
            send(.topicCounts(server: server, counts: Array(counts[start..<end])))
            start = end
        }
    }
}
