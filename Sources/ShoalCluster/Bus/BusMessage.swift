// What one worker asks another to do for connections it does not own. Kept as plain values so the codec
// (BusEncoder / BusDecoder) is pure and testable without sockets.

/// One request travelling over the bus from one worker to another.
///
/// Opcodes are WebSocket opcodes (4 bits: text 0x1, binary 0x2); the codec refuses anything wider.
public enum BusMessage: Equatable, Sendable {
    /// Send a data frame to every local connection of server `server` except connection `except` (0 = none).
    case broadcast(server: UInt32, except: Int64, opcode: UInt8, payload: [UInt8])
    /// Send a data frame to one connection owned by the receiving worker.
    case send(connection: Int64, opcode: UInt8, payload: [UInt8])
    /// Send the same data frame to several connections owned by the receiving worker (what one loop turn's sends
    /// of one payload to many remote connections become: the 4D chat loop over `wss.connections`), in list order.
    /// At most `BusEncoder.maxConnectionsPerMessage` ids, at least one.
    case sendMany(connections: [Int64], opcode: UInt8, payload: [UInt8])
    /// Close one connection: code nil → close frame without status.
    ///
    /// On the wire code 0 means "none", so `code: 0` arrives as nil; a reason longer than
    /// `BusEncoder.maxReasonLength` UTF-8 bytes is cut on a character boundary (a close frame cannot carry more).
    case terminate(connection: Int64, code: UInt16?, reason: String)
    /// The server with this index ends on the receiving worker (wss.terminate() on another worker).
    case terminateServer(server: UInt32)
    /// Send a data frame to every local subscriber of `topic` on server `server` except connection `except`
    /// (0 = none): a `wss.publish` made on the sending worker, which sends it only to workers that reported
    /// subscribers for the topic. `topic` is at most `BusEncoder.maxTopicLength` UTF-8 bytes.
    case publish(server: UInt32, topic: String, except: Int64, opcode: UInt8, payload: [UInt8])
    /// The sending worker's current number of local subscribers for each listed topic of server `server`
    /// (0: it has none any more). 1...`BusEncoder.maxTopicCountsPerMessage` entries.
    case topicCounts(server: UInt32, counts: [TopicCount])
    /// The sending worker just started: forget what its slot reported before, and answer with every topic
    /// this worker has subscribers for (`topicCounts`).
    case topicSync
}

/// One topic's subscriber count on one worker, as `topicCounts` carries it.
public struct TopicCount: Equatable, Hashable, Sendable {
    public var topic: String
    public var count: UInt32

    public init(topic: String, count: UInt32) {
        self.topic = topic
        self.count = count
    }
}

/// The `kind` byte of a bus frame; every fragment of a message repeats its message's kind.
enum BusFrameKind: UInt8 {
    case broadcast = 1
    case send = 2
    case terminate = 3
    case terminateServer = 4
    case sendMany = 5
    case publish = 6
    case topicCounts = 7
    case topicSync = 8
}
