// The event objects passed to handler callbacks. Field names follow 4D's (type, data, code,
// reason, request, statusText, errors) so a 4D program ports line by line. Every event has a public
// initializer, so a handler can be called directly from a test (see ShoalTesting).
import ShoalWire

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
    private let choice = ProtocolChoice()

    public init(request: WebSocketRequest) {
        self.request = request
    }

    /// Accepts the connection with subprotocol `name` (RFC 6455 §4.2.2: the 101 answer names it, and
    /// `ws.protocol` gives it). It must be one of `request.protocols`: otherwise nothing is chosen and
    /// the result is false. Without a choice the answer names no subprotocol.
    @discardableResult
    public func selectProtocol(_ name: String) -> Bool {
        guard request.protocols.contains(name) else { return false }
        choice.name = name
        return true
    }

    /// The subprotocol onConnection chose, if any.
    public var selectedProtocol: String? { choice.name }
}

/// onConnection's choice of subprotocol (the event is a value; the choice outlives the call).
private final class ProtocolChoice: @unchecked Sendable {
    var name: String?
}

/// `onOpen`/`onTerminate` of a server.
public struct WebSocketServerEvent: Sendable {
    /// "open" or "terminate".
    public let type: String

    public init(type: String) {
        self.type = type
    }
}

/// `onError` of a server: a refused upgrade, a listener that cannot accept, a full registry.
public struct WebSocketServerErrorEvent: Sendable {
    public let type = "error"
    /// The HTTP error ("403 Forbidden") or, without one, the last error's message (4D: `statusText`).
    public let statusText: String
    /// The HTTP status the client was answered with; nil when no client was answered (a listener failure).
    public let status: Int?
    /// What happened, one entry per error (`WebSocketErrorCode` lists the `errCode`s).
    public let errors: [WebSocketErrorInfo]

    public init(status: Int?, errors: [WebSocketErrorInfo]) {
        self.status = status
        self.errors = errors
        statusText = status.map { "\($0) \(HTTPResponse.reasonPhrase($0))" } ?? errors.last?.message ?? ""
    }

    /// The first error's message.
    public var message: String { errors.first?.message ?? "" }
}

/// The `errCode` of the server errors Shoal reports (docs/api.md lists each with its HTTP status).
/// Connection errors use the WebSocket close code they lead to as `errCode` (1002, 1007, 1008, 1009, 1001).
public enum WebSocketErrorCode: Int, Sendable, CaseIterable {
    /// 403: the request's Origin is not in `allowedOrigins`.
    case originRefused = 1
    /// 403: onConnection returned nil.
    case refusedByHandler = 2
    /// 404: an upgrade for a path no server takes (reported to every server of the worker).
    case noServerForPath = 3
    /// 408: a request head did not complete within `requestTimeout` (reported to every server of the worker).
    case requestTimeout = 4
    /// 429: the client's address holds `maxConnectionsPerAddress` connections on this worker.
    case tooManyFromAddress = 5
    /// 503: the worker holds `maxConnections` connections.
    case workerFull = 6
    /// 503: the worker's share of the cluster registry is full (`registryCapacity`).
    case registryFull = 7
    /// No HTTP status: the listener could not accept (the errno's text in the message; reported to every server).
    case listenerFailed = 8
    /// 400 or 426: an upgrade request that breaks RFC 6455 §4.2.1 (missing key, wrong version, ...).
    case badHandshake = 9
    /// No HTTP status: a TLS handshake failed (plain HTTP to the TLS port, a refused protocol
    /// version, garbage, no handshake within `requestTimeout`); the reason is in the message.
    /// Reported to every server of the worker.
    case tlsHandshakeFailed = 10
}

/// `onOpen` of a connection.
public struct WebSocketOpenEvent: Sendable {
    public let type = "open"

    public init() {}
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

    public init(data: WebSocketData, isBinary: Bool = false) {
        self.data = data
        self.isBinary = isBinary
    }
}

/// `onTerminate` of a connection.
public struct WebSocketTerminateEvent: Sendable {
    public let type = "terminate"
    /// The peer's close code; 1005 when its close frame had none, 1006 when the connection failed
    /// without a closing handshake (dropped TCP, protocol error, close timeout).
    public let code: Int
    /// The peer's close reason; nil when it gave none.
    public let reason: String?

    public init(code: Int, reason: String? = nil) {
        self.code = code
        self.reason = reason
    }
}

/// `onError` of a connection.
public struct WebSocketErrorEvent: Sendable {
    public let type = "error"
    /// The close code this error leads to (1002, 1007, 1009, ...) or 0 when the connection stays open.
    public let code: Int
    public let errors: [WebSocketErrorInfo]

    public init(code: Int, errors: [WebSocketErrorInfo]) {
        self.code = code
        self.errors = errors
    }

    /// One error whose `errCode` is the close code it leads to (`errCode`, 1007 for invalid JSON, when it stays open).
    init(code: Int, errCode: Int, message: String) {
        self.init(code: code, errors: [WebSocketErrorInfo(errCode: errCode, message: message)])
    }

    /// The first error's message.
    public var message: String { errors.first?.message ?? "" }
}

/// onDrain's event: the send queue emptied after backpressure (Shoal's addition to 4D).
public struct WebSocketDrainEvent: Sendable {
    public let type = "drain"

    public init() {}
}

/// What became of a message given to `send` (Shoal's addition to 4D; ignoring it is fine).
public enum WebSocketSendResult: Sendable, Equatable {
    /// Queued for the client (sent as the kernel takes it).
    case queued
    /// Not sent: the connection is closing or closed (a send after terminate, or to a client that left).
    case closed
    /// Not sent: the client's queue is at `maxBackpressure` (the slow-consumer policy applied).
    case dropped
    /// Called off the loop thread: the loop sends it at its next turn if the connection is still open
    /// then. `await ws.onLoop { $0.send(...) }` gives the outcome instead.
    case handedToLoop
    /// The connection belongs to another worker: the message went to that worker over the bus.
    case forwarded
}
