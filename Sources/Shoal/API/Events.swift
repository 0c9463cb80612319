// The event objects passed to handler callbacks. Field names follow 4D's (type, data, code,
// reason, request, statusText, errors) so a 4D program ports line by line.

/// One entry of an error event's `errors` list (4D: errCode, message, componentSignature).
public struct WebSocketErrorInfo: Sendable, Equatable {
    public var errCode: Int
    public var message: String
    public var componentSignature: String

    public init(errCode: Int, message: String, componentSignature: String = "shoal") {
        self.errCode = errCode
        self.message = message
        self.componentSignature = componentSignature
    }
}

/// `onConnection`'s event: a client finished its opening handshake.
public struct WebSocketConnectionEvent: Sendable {
    public let type = "connection"
    public let request: WebSocketRequest
}

/// `onOpen`/`onTerminate` of a server.
public struct WebSocketServerEvent: Sendable {
    public let type: String
}

/// `onError` of a server.
public struct WebSocketServerErrorEvent: Sendable {
    public let type = "error"
    /// The HTTP error or the last error, as text.
    public let statusText: String
    public let errors: [WebSocketErrorInfo]
}

/// `onOpen` of a connection.
public struct WebSocketOpenEvent: Sendable {
    public let type = "open"
}

/// A received message.
public enum WebSocketData: Sendable, Equatable {
    case text(String)
    case blob([UInt8])
    case object(JSONValue)

    /// The text, when the message is text.
    public var text: String? { if case .text(let s) = self { return s } else { return nil } }
    /// The bytes, when the message is a blob.
    public var blob: [UInt8]? { if case .blob(let b) = self { return b } else { return nil } }
    /// The JSON value, when the message is an object.
    public var object: JSONValue? { if case .object(let o) = self { return o } else { return nil } }
}

/// `onMessage`'s event.
public struct WebSocketMessageEvent: Sendable {
    public let type = "message"
    /// The message in the server's `dataType` form (binary frames always arrive as `.blob`).
    public let data: WebSocketData
    /// Whether the message came in a binary frame (rather than a text frame), so an echo can mirror it exactly.
    public let isBinary: Bool
}

/// `onTerminate` of a connection.
public struct WebSocketTerminateEvent: Sendable {
    public let type = "terminate"
    /// The peer's close code; 1005 when its close frame had none, 1006 when the connection failed
    /// without a closing handshake (dropped TCP, protocol error, close timeout).
    public let code: Int
    /// The peer's close reason; nil when it gave none.
    public let reason: String?
}

/// `onError` of a connection.
public struct WebSocketErrorEvent: Sendable {
    public let type = "error"
    /// The close code this error leads to (1002, 1007, 1009, ...) or 0 when the connection stays open.
    public let code: Int
    public let errors: [WebSocketErrorInfo]

    /// The first error's message.
    public var message: String { errors.first?.message ?? "" }
}

/// onDrain's event: the send queue emptied after backpressure (Shoal's addition to 4D).
public struct WebSocketDrainEvent: Sendable {
    public let type = "drain"
}
