// A connection's subscriptions (uWebSockets' `ws.subscribe`): kept by its server's topic table, so a connection
// object gains no field. Every member may be called from any thread: off the loop, it waits for the loop's next
// turn (as `bufferedAmount` does), so its answer is the truth.
import ShoalRing

extension WebSocketConnection {
    /// Subscribes this connection to `topic`; false when it already was (or it is closing or closed). Throws
    /// `TopicError.nameTooLong` beyond 256 UTF-8 bytes, `.tooManyTopics` when it already holds
    /// `maxTopicsPerConnection` topics, `.notLocal` for a connection of another worker.
    @discardableResult
    public func subscribe(_ topic: String) throws(TopicError) -> Bool {
        try TopicTable<TopicSubscriber>.validate(topic)
        guard !(self is RemoteConnection) else { throw .notLocal }
        let answer = onLoopNow { ws -> Result<Bool, TopicError> in
            do throws(TopicError) { return .success(try ws.wss.subscribe(ws, to: topic)) } catch { return .failure(error) }
        }
        return try answer.get()
    }

    /// Unsubscribes this connection from `topic`; false when it was not subscribed.
    @discardableResult
    public func unsubscribe(_ topic: String) -> Bool {
        onLoopNow { $0.wss.unsubscribe($0, from: topic) }
    }

    /// The topics this connection is subscribed to, sorted; empty for a connection of another worker.
    public var topics: [String] {
        onLoopNow { $0.wss.topicTable.topics(of: TopicSubscriber(connection: $0)) }
    }

    /// True when this connection is subscribed to `topic`.
    public func isSubscribed(_ topic: String) -> Bool {
        onLoopNow { $0.wss.topicTable.isSubscribed(TopicSubscriber(connection: $0), to: topic) }
    }

    /// `body` on the loop thread: at once there, else at its next turn while the caller waits.
    private func onLoopNow<T: Sendable>(_ body: @escaping @Sendable (WebSocketConnection) -> T) -> T {
        if loop.inEventLoop { return body(self) }
        return loop.onLoopAndWait { body(self) }
    }
}
