// Why `subscribe` or `publish` refused a topic: thrown, so a caller cannot mistake a refusal for success.
import ShoalCluster

/// A topic operation that could not be done.
public enum TopicError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The name is longer than `limit` (256) UTF-8 bytes.
    case nameTooLong(bytes: Int, limit: Int)
    /// The connection already holds `limit` topics (`WebSocketServerOptions.maxTopicsPerConnection`).
    case tooManyTopics(limit: Int)
    /// The connection belongs to another worker process (an element of `wss.connections`); subscribe it from
    /// its own handler.
    case notLocal

    /// The longest topic name, in UTF-8 bytes.
    public static let maxNameLength = BusEncoder.maxTopicLength

    public var description: String {
        switch self {
        case .nameTooLong(let bytes, let limit): "topic name of \(bytes) bytes is longer than \(limit) bytes"
        case .tooManyTopics(let limit): "connection already subscribed to \(limit) topics (the limit)"
        case .notLocal: "connection belongs to another worker; subscribe it from its own handler"
        }
    }
}
