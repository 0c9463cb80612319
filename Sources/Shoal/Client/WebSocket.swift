// 4D's client class `4D.WebSocket`: `WebSocket(url:handler:)` connects and never throws (a bad
// URL or a failed connection reaches onError, then onTerminate, as with 4D's `new()`), with
// `send`, `terminate`, `status`, `id`, `url`, `dataType` and `handler`. The protocol lives in
// `ClientSession` (a value); this class carries its actions out on an event loop: the loop of the
// thread that created it (a client in a server's handler) or the client loop (ClientLoops).
// Every public member may be used from any thread: calls are handed to the loop, `status` is atomic.
import Dispatch
import Foundation
import ShoalPosix
import ShoalRing
import ShoalTLS
import ShoalWire
import Synchronization

/// A WebSocket client connection (4D: `4D.WebSocket`).
public final class WebSocket: @unchecked Sendable {
    /// The URL given to the initializer (4D: `url`).
    public let url: String
    /// Unique identifier of the connection within the process (4D: `id`).
    public let id: Int
    /// The handler given to the initializer (4D: `handler`).
    public let handler: any WebSocketHandler
    /// The form text messages arrive in, from the handler (4D: `dataType`).
    public let dataType: WebSocketDataType

    /// "Connecting", "Connected", "Closing" or "Closed" (4D: `status`).
    public var status: String {
        switch ClientSession.Phase(rawValue: phaseByte.load(ordering: .acquiring)) ?? .closed {
        case .connecting: return "Connecting"
        case .open: return "Connected"
        case .closeSent, .closing: return "Closing"
        case .closed: return "Closed"
        }
    }

    let loop: EventLoop
    private let timing: Timing
    private let phaseByte = Atomic<UInt8>(ClientSession.Phase.connecting.rawValue)
    /// Signalled once onTerminate has run (`waitUntilTerminated`).
    private let terminated = DispatchSemaphore(value: 0)
    private static let lastID = Atomic<Int>(0)

    // Loop thread only.
    private var session: ClientSession?
    /// Why the connection cannot even start (a bad URL or header), reported by `start`.
    private var refusal: (errCode: WebSocketClientErrorCode, message: String)?
    private var socket: SocketHandle?
    private var connecting: ConnectHandle?
    /// Addresses of the host still to try after the one being connected to.
    private var otherAddresses: [SocketAddress] = []
    private var openTimedOut = false
    /// For wss://: the TLS settings the connection is made with.
    private var tlsContext: TLSContext?

    /// How long the opening (connect and handshake) and the closing handshake may take.
    struct Timing {
        var open: Duration = .seconds(30)
        var close: Duration = .seconds(2)
    }

    /// Connects to `url` (ws://host[:port]/path?query) with `handler`'s callbacks (4D:
    /// `4D.WebSocket.new(url; connectionHandler)`). Returns at once with status "Connecting";
    /// whatever happens next reaches the handler, on the loop of the calling thread if it runs one
    /// (inside a worker), else on the client loop.
    public convenience init(url: String, handler: some WebSocketHandler) {
        self.init(url: url, handler: handler, loop: ClientLoops.forCurrentThread())
    }

    init(url: String, handler: any WebSocketHandler, loop: EventLoop, timing: Timing = Timing()) {
        self.url = url
        self.handler = handler
        self.loop = loop
        self.timing = timing
        dataType = handler.dataType
        id = Self.lastID.add(1, ordering: .relaxed).newValue
        let headers = handler.headers.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
        do {
            let parsed = try WebSocketURL(url)
            if parsed.secure {
                tlsContext = try Self.tlsContext(trusting: handler.trustedCertificatesPath)
            }
            if let problem = Self.problem(with: headers) {
                refusal = (.badHeader, problem)
            } else {
                session = ClientSession(.init(url: parsed, dataType: dataType, headers: headers))
            }
        } catch let error as WebSocketURL.Invalid {
            refusal = (.badURL, error.description)
        } catch {
            refusal = (.connectFailed, "TLS cannot be set up: \(error)")
        }
        // Never from inside the initializer: the caller has not got the object yet.
        loop.execute { self.start() }
    }

    // MARK: Public members (any thread)

    /// Sends a text message (4D: `send(Text)`). Messages sent while connecting go out once the
    /// connection opens; after terminate (or once closed) nothing is sent (`.closed`).
    @discardableResult
    public func send(_ message: String) -> WebSocketSendResult { send(.text(message)) }

    /// Sends a binary message (4D: `send(Blob)`).
    @discardableResult
    public func send(_ message: [UInt8]) -> WebSocketSendResult { send(.blob(message)) }

    /// Sends a JSON text message (4D: `send(Object)`).
    @discardableResult
    public func send(_ message: JSONValue) -> WebSocketSendResult { send(.object(message)) }

    /// Sends a message in its form: text and objects as text frames, blobs as binary frames.
    @discardableResult
    public func send(_ message: WebSocketData) -> WebSocketSendResult {
        guard loop.inEventLoop else {
            loop.execute { self.send(message) }
            return .handedToLoop
        }
        guard var session else { return .closed }
        self.session = nil  // the local copy is then the only one: appends do not copy its buffers
        let (result, actions) = session.send(message)
        self.session = session
        perform(actions)
        return result
    }

    /// Closes the connection (4D: `terminate({code; reason})`): a close frame with `code` (1000 by
    /// default; 1000 or 3000…4999) and `message`, then onTerminate with the server's answer.
    public func terminate(code: Int? = nil, message: String? = nil) {
        guard loop.inEventLoop else { return loop.execute { self.terminate(code: code, message: message) } }
        guard var session else { return }
        let actions = session.terminate(code: code, reason: message)
        self.session = session
        if let connecting { loop.cancelConnect(connecting) }
        perform(actions)
    }

    /// Blocks the calling thread until onTerminate has run, or `timeout` passed (Shoal's addition,
    /// for a plain program whose main thread has nothing else to do). Returns whether it ended.
    /// Never call it on the client's own loop thread (from a callback): that would wait forever.
    @discardableResult
    public func waitUntilTerminated(timeout: Duration? = nil) -> Bool {
        precondition(!loop.inEventLoop, "waitUntilTerminated() on the client's loop thread would never return")
        let ended: Bool
        if let timeout {
            ended = terminated.wait(timeout: .now() + .nanoseconds(Int(clamping: timeout.clampedNanoseconds))) == .success
        } else {
            terminated.wait()
            ended = true
        }
        if ended { terminated.signal() }  // later waits return at once too
        return ended
    }

    // MARK: Loop side

    private func start() {
        if let refusal = self.refusal {
            self.refusal = nil
            phaseByte.store(ClientSession.Phase.closed.rawValue, ordering: .releasing)
            handler.onError(self, WebSocketErrorEvent(code: 1006, errCode: refusal.errCode.rawValue, message: refusal.message))
            finish(WebSocketTerminateEvent(code: 1006))
            return
        }
        guard let target = session?.url else { return }
        loop.schedule(after: timing.open.clampedNanoseconds) { [weak self] in self?.openTimerFired() }
        if let address = SocketAddress.numeric(host: target.host, port: target.port) {
            connect(to: address)
            return
        }
        // getaddrinfo blocks: it runs on a thread of its own, and the loop carries on.
        Thread.detachNewThread {
            let result = Result { () throws(ResolutionError) in try SocketAddress.resolve(host: target.host, port: target.port) }
            self.loop.execute { self.resolved(result) }
        }
    }

    private func resolved(_ result: Result<[SocketAddress], ResolutionError>) {
        switch result {
        case .success(let addresses):
            guard session?.phase == .connecting else { return perform(connectFailed("terminated while resolving")) }
            otherAddresses = Array(addresses.dropFirst())
            connect(to: addresses[0])
        case .failure(let error):
            perform(connectFailed(error.description))
        }
    }

    private func connect(to address: SocketAddress) {
        connecting = loop.connect(to: address, delegate: Connector(self, address: address))
    }

    /// How the connect to `address` ended without a connection: the next address, or the end.
    fileprivate func connectFailed(to address: SocketAddress, error: Int32) {
        connecting = nil
        if !otherAddresses.isEmpty, session?.phase == .connecting, !openTimedOut {
            return connect(to: otherAddresses.removeFirst())
        }
        let reason = openTimedOut ? "timed out after \(timing.open)" : SystemError("connect", errno: error).reason
        perform(connectFailed("cannot connect to \(address): \(reason)"))
    }

    private func connectFailed(_ message: String) -> [ClientSession.Action] {
        guard var session else { return [] }
        let actions = session.connectFailed(message, errCode: WebSocketClientErrorCode.connectFailed.rawValue)
        self.session = session
        return actions
    }

    private func openTimerFired() {
        guard let session, session.phase == .connecting else { return }
        openTimedOut = true
        if let connecting { return loop.cancelConnect(connecting) }
        step { $0.openTimerFired() }
    }

    /// Runs one event through the session and carries out what it asks for.
    fileprivate func step(_ event: (inout ClientSession) -> [ClientSession.Action]) {
        guard var session else { return }
        self.session = nil  // the local copy is then the only one: appends do not copy its buffers
        let actions = event(&session)
        self.session = session
        perform(actions)
    }

    fileprivate func connected(_ handle: SocketHandle) {
        connecting = nil
        socket = handle
        if let tlsContext, let host = session?.url.host {
            do {
                let tls = try TLSStreamTransform(context: tlsContext, role: .client(serverName: host))
                tls.onFailure = { [unowned self] error, _ in self.step { $0.transportFailed("TLS failed: \(error)", loopCloses: true) } }
                // The ClientHello leaves this turn; the request below waits for the handshake.
                loop.setTransform(tls, for: handle)
            } catch {
                step { $0.transportFailed("TLS cannot start: \(error)", loopCloses: false) }
                return
            }
        }
        step { $0.connectSucceeded() }
    }

    fileprivate func socketClosed() {
        socket = nil
        step { $0.socketClosed() }
    }

    private func perform(_ actions: [ClientSession.Action]) {
        if let session { phaseByte.store(session.phase.rawValue, ordering: .releasing) }
        for action in actions {
            switch action {
            case .write(let bytes):
                if let socket { bytes.withUnsafeBytes { loop.write(socket, $0) } }
            case .open:
                handler.onOpen(self, WebSocketOpenEvent())
            case .message(let data, let isBinary):
                handler.onMessage(self, WebSocketMessageEvent(data: data, isBinary: isBinary))
            case .error(let code, let errCode, let message):
                handler.onError(self, WebSocketErrorEvent(code: code, errCode: errCode, message: message))
            case .armCloseTimer:
                if let socket { loop.setTimer(socket, after: timing.close.clampedNanoseconds, kind: Self.closeTimer) }
            case .closeSocket(let graceful):
                if let socket { loop.close(socket, mode: graceful ? .graceful(lingerNanoseconds: timing.close.clampedNanoseconds) : .abort) }
            case .terminate(let code, let reason):
                finish(WebSocketTerminateEvent(code: code, reason: reason))
            }
        }
    }

    private func finish(_ event: WebSocketTerminateEvent) {
        phaseByte.store(ClientSession.Phase.closed.rawValue, ordering: .releasing)
        handler.onTerminate(self, event)
        terminated.signal()
    }

    static let closeTimer: UInt8 = 1

    /// The system's trusted certificates, loaded once for every wss:// client that uses them.
    private static let systemTrust = Result { () throws(TLSError) in try TLSContext.client() }

    /// The TLS client settings: the system's trust store, or only the certificates in `path` (PEM).
    private static func tlsContext(trusting path: String?) throws(TLSError) -> TLSContext {
        if let path { return try TLSContext.client(trustedCertificatesPath: path) }
        return try systemTrust.get()
    }

    /// Names the handshake sets itself, which a handler's `headers` may not replace.
    private static let reservedHeaders: Set<String> = [
        "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
        "content-length", "transfer-encoding",
    ]

    /// Why these request headers cannot be sent, or nil when they can.
    private static func problem(with headers: [(name: String, value: String)]) -> String? {
        for (name, value) in headers {
            guard !name.isEmpty, name.utf8.allSatisfy(HTTPToken.isTokenCharacter) else {
                return "request header name \"\(name)\" is not an HTTP token"
            }
            guard !value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) else {
                return "request header \(name) has a line break or NUL in its value"
            }
            guard !reservedHeaders.contains(name.lowercased()) else {
                return "request header \(name) is set by the WebSocket handshake itself"
            }
        }
        return nil
    }
}

/// The loop's delegate for one client socket: hands every event to the `WebSocket`, which the loop
/// keeps alive through it until the socket closed.
private final class Connector: ConnectDelegate {
    let ws: WebSocket
    let address: SocketAddress

    init(_ ws: WebSocket, address: SocketAddress) {
        self.ws = ws
        self.address = address
    }

    func opened(on handle: SocketHandle) { ws.connected(handle) }
    func connectFailed(error: Int32) { ws.connectFailed(to: address, error: error) }
    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) { ws.step { $0.received(bytes) } }
    func readEnded(on handle: SocketHandle, error: Int32?) { ws.step { $0.readEnded() } }
    func timerFired(on handle: SocketHandle, kind: UInt8) {
        if kind == WebSocket.closeTimer { ws.step { $0.closeTimerFired() } }
    }
    func closed(on handle: SocketHandle) { ws.socketClosed() }
}
