// Options of a WebSocketServer, as in 4D's `WebSocketServer.new(handler; options)`, plus the limits
// that keep one client from costing the others. Every limit is on by default; each says why its
// default is what it is.
public import ShoalWire

/// The form received text messages take in `onMessage`, and what `send` sends by default.
public enum WebSocketDataType: String, Sendable, CaseIterable {
    /// Text frames arrive as `String`.
    case text
    /// Text frames arrive as bytes (4D's Blob).
    case blob
    /// Text frames are parsed as JSON and arrive as `JSONValue`; invalid JSON calls onError.
    case object
}

/// What happens to a message for a connection whose send queue is already at `maxBackpressure`.
public enum SlowConsumerPolicy: String, Sendable, CaseIterable {
    /// Close the connection with 1008 "slow consumer" (the client reconnects and resynchronises).
    case close
    /// Drop the message for that connection only, and count it (`shoal_slow_consumer_total`).
    case drop
}

/// permessage-deflate (RFC 7692): whether and how messages are compressed for clients that offer it
/// (every browser does).
public enum WebSocketCompression: Sendable, Equatable {
    /// Never negotiated: clients that offer it get uncompressed frames.
    case off
    /// One compressor and one decompressor per worker, shared by all its connections, each message
    /// compressed on its own (no context takeover either way). Costs nothing per connection, and a
    /// broadcast is compressed once per worker for every recipient. The default.
    case shared
    /// A compressor and decompressor per connection with context takeover (better ratios on streams
    /// of similar messages), windows of 2^windowBits bytes (8...15) and zlib's memLevel (1...9):
    /// about 2^(windowBits+2) + 2^(memoryLevel+9) bytes per sending connection plus 2^windowBits per
    /// receiving one, allocated on a connection's first compressed message.
    case dedicated(windowBits: Int, memoryLevel: Int)
}

/// Options of one WebSocket server.
public struct WebSocketServerOptions: Sendable {
    /// The path clients connect to ("/chat"). nil: this server takes every upgrade request
    /// that no server with a path claimed.
    public var path: String?
    /// See `WebSocketDataType`. Default "text", as in 4D.
    public var dataType: WebSocketDataType
    /// Largest message accepted, summed over its fragments; larger ones close with 1009.
    /// 16 MiB by default: big enough for any chat or JSON payload, small enough that one client
    /// cannot make a worker hold gigabytes.
    public var maxMessageSize: Int
    /// Most frames one message may arrive in (empty ones count); more close with 1009. 100,000:
    /// Autobahn sends 65,536 fragments of 64 bytes in a legitimate test, while a client sending
    /// millions of 1-byte fragments only burns the server's CPU (ws 8.21 added the same cap).
    public var maxFragments: Int
    /// How long a close handshake may take before the TCP connection is dropped.
    /// 2 s: a peer that is alive answers a close frame within a round trip.
    public var closeTimeout: Duration
    /// Browser origins allowed to connect (RFC 6455 §10.2, cross-site WebSocket hijacking).
    /// **nil accepts every origin**: any web page a user visits can then open a connection to this
    /// server with the user's cookies. Set it for anything a browser reaches; `shoal serve` takes
    /// `--allow-origin`. Requests without an Origin header (non-browser clients) are always accepted.
    /// A foreign origin gets 403 before onConnection runs.
    public var allowedOrigins: OriginAllowList?
    /// Most bytes queued for one client and not yet taken by the kernel. 16 MiB by default: a
    /// second or more of traffic for a healthy client, and a bound on what a client that stopped
    /// reading costs. Beyond it `slowConsumerPolicy` applies.
    public var maxBackpressure: Int
    /// See `SlowConsumerPolicy`; `.close` by default, so nobody silently misses messages.
    public var slowConsumerPolicy: SlowConsumerPolicy
    /// Silence from a client after which the server sends a ping (`.zero`: never).
    /// 120 s, as uWebSockets: below the common 5-minute idle timeouts of NATs and proxies.
    /// This and `pongTimeout` are measured to the millisecond, up to 2^32 ms (49.7 days;
    /// longer values act as that), by a sweep every quarter of the shorter one (50 ms to 1 s).
    public var idleTimeout: Duration
    /// After that ping, how long the client has to send anything (its pong) before the server
    /// closes with 1001 "idle timeout". 30 s: several round trips on a bad mobile link.
    public var pongTimeout: Duration
    /// See `WebSocketCompression`; `.shared` by default: browsers get compression at no memory cost.
    public var compression: WebSocketCompression
    /// Messages smaller than this are sent uncompressed (`send(_:compress:)` overrides it): below
    /// 256 bytes deflate saves little and costs a zlib call per message.
    public var compressionThreshold: Int
    /// zlib's compression level, 0...9. 1 (fastest) by default: deflating is most of what
    /// compression costs a server (Autobahn's 12.x profile: 84 % of the worker's CPU in zlib at
    /// level 6), and level 1 keeps most of the gain on JSON and text.
    public var compressionLevel: Int
    /// Most topics one connection may be subscribed to at once; `subscribe` beyond it throws
    /// `TopicError.tooManyTopics`. 1,000 by default: each subscription costs the worker two set entries,
    /// and a client must not grow the server's memory without bound.
    public var maxTopicsPerConnection: Int

    public init(path: String? = nil, dataType: WebSocketDataType = .text,
                maxMessageSize: Int = 16 * 1024 * 1024, maxFragments: Int = 100_000,
                closeTimeout: Duration = .seconds(2),
                allowedOrigins: OriginAllowList? = nil,
                maxBackpressure: Int = 16 * 1024 * 1024, slowConsumerPolicy: SlowConsumerPolicy = .close,
                idleTimeout: Duration = .seconds(120), pongTimeout: Duration = .seconds(30),
                compression: WebSocketCompression = .shared, compressionThreshold: Int = 256,
                compressionLevel: Int = 1, maxTopicsPerConnection: Int = 1_000) {
        self.path = path
        self.dataType = dataType
        self.maxMessageSize = maxMessageSize
        self.maxFragments = maxFragments
        self.closeTimeout = closeTimeout
        self.allowedOrigins = allowedOrigins
        self.maxBackpressure = maxBackpressure
        self.slowConsumerPolicy = slowConsumerPolicy
        self.idleTimeout = idleTimeout
        self.pongTimeout = pongTimeout
        self.compression = compression
        self.compressionThreshold = compressionThreshold
        self.compressionLevel = compressionLevel
        self.maxTopicsPerConnection = maxTopicsPerConnection
    }

    @available(*, deprecated, renamed: "closeTimeout")
    public var closeTimeoutNanoseconds: UInt64 {
        get { closeTimeout.clampedNanoseconds } set { closeTimeout = .nanoseconds(newValue) }
    }

    @available(*, deprecated, renamed: "idleTimeout")
    public var idleTimeoutNanoseconds: UInt64 {
        get { idleTimeout.clampedNanoseconds } set { idleTimeout = .nanoseconds(newValue) }
    }

    @available(*, deprecated, renamed: "pongTimeout")
    public var pongTimeoutNanoseconds: UInt64 {
        get { pongTimeout.clampedNanoseconds } set { pongTimeout = .nanoseconds(newValue) }
    }

    /// The negotiation policy for `compression`, nil when off.
    var deflatePolicy: DeflatePolicy? {
        switch compression {
        case .off: return nil
        case .shared: return .shared
        case .dedicated(let windowBits, let memoryLevel): return .dedicated(windowBits: windowBits, memoryLevel: memoryLevel)
        }
    }

    /// Send-queue size above which the server stops reading from that client until the queue
    /// drains (inbound backpressure): a client that sends without reading the replies is slowed by
    /// TCP instead of growing its queue to `maxBackpressure`.
    var readPauseThreshold: Int { min(1 << 20, max(maxBackpressure / 2, 1)) }
}
