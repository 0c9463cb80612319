// Topics on a WebSocket server (uWebSockets' `app.publish`, Bun's `server.publish`, Socket.IO's rooms), across
// every worker of the cluster: each worker keeps its own subscribers (`topicTable`) and tells the others how many
// it has per topic (`TopicLink`), so a publish crosses the bus once per worker with subscribers, payload once.
import ShoalRing
import ShoalWire

/// A connection as the topic table holds it: the object, compared by identity.
struct TopicSubscriber: Hashable {
    let connection: WebSocketConnection

    static func == (lhs: TopicSubscriber, rhs: TopicSubscriber) -> Bool { lhs.connection === rhs.connection }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(connection)) }
}

extension WebSocketServer {
    /// Sends `text` to every subscriber of `topic` on every worker, except connection `except`. Throws
    /// `TopicError.nameTooLong` for a name beyond 256 UTF-8 bytes (nothing is sent). From another thread the
    /// message is handed to the loop, as `broadcast` does.
    public func publish(_ topic: String, _ text: String, except: Int? = nil) throws(TopicError) {
        try TopicTable<TopicSubscriber>.validate(topic)
        guard loop.inEventLoop else { return loop.execute { try? self.publish(topic, text, except: except) } }
        var copy = text
        copy.withUTF8 { publishFrame(topic, .text, UnsafeRawBufferPointer($0), except: except) }
    }

    /// Binary version of `publish(_:_:except:)`.
    public func publish(_ topic: String, _ bytes: [UInt8], except: Int? = nil) throws(TopicError) {
        try TopicTable<TopicSubscriber>.validate(topic)
        guard loop.inEventLoop else { return loop.execute { try? self.publish(topic, bytes, except: except) } }
        bytes.withUnsafeBytes { publishFrame(topic, .binary, $0, except: except) }
    }

    /// JSON version of `publish(_:_:except:)`: a text frame holding the value as JSON Stringify writes it.
    public func publish(_ topic: String, _ value: JSONValue, except: Int? = nil) throws(TopicError) {
        try TopicTable<TopicSubscriber>.validate(topic)
        guard loop.inEventLoop else { return loop.execute { try? self.publish(topic, value, except: except) } }
        var encoded: [UInt8] = []
        value.write(into: &encoded)
        encoded.withUnsafeBytes { publishFrame(topic, .text, $0, except: except) }
    }

    /// `publish` of a message in the form it arrived (`event.data`): text and objects as text frames, blobs as
    /// binary frames.
    public func publish(_ topic: String, _ data: WebSocketData, except: Int? = nil) throws(TopicError) {
        switch data {
        case .text(let text): try publish(topic, text, except: except)
        case .blob(let bytes): try publish(topic, bytes, except: except)
        case .object(let value): try publish(topic, value, except: except)
        }
    }

    /// Subscribers of `topic` on every worker. Other workers' counts arrive over the bus, so a subscription made
    /// there shows here after one bus hop (well under a millisecond on an idle machine). From another thread this
    /// waits for the loop's next turn.
    public func subscriberCount(_ topic: String) -> Int {
        let count = { @Sendable in
            self.topicTable.count(of: topic) + (self.web.cluster?.topics.remoteCount(server: self.index, topic: topic) ?? 0)
        }
        return loop.inEventLoop ? count() : loop.onLoopAndWait(count)
    }

    private func publishFrame(_ topic: String, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer, except: Int?) {
        web.cluster?.topics.publish(server: index, topic: topic, except: except ?? 0, opcode: opcode, payload: payload)
        publishLocally(topic, opcode, payload, except: except ?? 0)
        publishObserver?(topic, opcode, payload)
    }

    /// A publish that came from outside this host (loop thread): to this worker's subscribers and, when
    /// `toOtherWorkers`, to the workers with subscribers (false when every worker receives it from outside
    /// itself). `publishObserver` is not called.
    func deliverPublished(_ topic: String, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer, toOtherWorkers: Bool) {
        if toOtherWorkers {
            web.cluster?.topics.publish(server: index, topic: topic, except: 0, opcode: opcode, payload: payload)
        }
        publishLocally(topic, opcode, payload, except: 0)
    }

    /// The local part of a publish (also what a publish from another worker becomes here).
    func publishLocally(_ topic: String, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer, except: Int) {
        let subscribers = topicTable.subscribers(of: topic)
        guard !subscribers.isEmpty else { return }
        fanOut(opcode, payload, to: subscribers.lazy.map(\.connection), except: except)
    }

    // MARK: The connection side (loop thread)

    func subscribe(_ connection: WebSocketConnection, to topic: String) throws(TopicError) -> Bool {
        // A closing connection has left its topics for good (`enterClosing`) and must not join again.
        guard connection.phase == .open else { return false }
        guard try topicTable.subscribe(TopicSubscriber(connection: connection), to: topic) else { return false }
        web.cluster?.topics.localCountChanged(server: index, topic: topic)
        return true
    }

    func unsubscribe(_ connection: WebSocketConnection, from topic: String) -> Bool {
        guard topicTable.unsubscribe(TopicSubscriber(connection: connection), from: topic) else { return false }
        web.cluster?.topics.localCountChanged(server: index, topic: topic)
        return true
    }

    /// A closing (or closed) connection leaves all its topics.
    func leaveAllTopics(_ connection: WebSocketConnection) {
        for topic in topicTable.removeAll(of: TopicSubscriber(connection: connection)) {
            web.cluster?.topics.localCountChanged(server: index, topic: topic)
        }
    }
}
