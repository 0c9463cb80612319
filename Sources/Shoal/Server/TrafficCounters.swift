// What WebSocket traffic moved through one server of a worker. Each server keeps its own, bumped
// per message through the connection's strong `wss` reference: reaching one set per worker through
// the server's unowned `web` reference cost a reference-count check on every message.

/// Messages and payload bytes in and out; plain integers, loop thread only.
struct TrafficCounters {
    var messagesIn = 0
    var messagesOut = 0
    var bytesIn = 0
    var bytesOut = 0

    static func + (a: TrafficCounters, b: TrafficCounters) -> TrafficCounters {
        TrafficCounters(messagesIn: a.messagesIn + b.messagesIn, messagesOut: a.messagesOut + b.messagesOut,
                        bytesIn: a.bytesIn + b.bytesIn, bytesOut: a.bytesOut + b.bytesOut)
    }

    static func - (a: TrafficCounters, b: TrafficCounters) -> TrafficCounters {
        TrafficCounters(messagesIn: a.messagesIn - b.messagesIn, messagesOut: a.messagesOut - b.messagesOut,
                        bytesIn: a.bytesIn - b.bytesIn, bytesOut: a.bytesOut - b.bytesOut)
    }
}
