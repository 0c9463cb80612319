// The HTTP/1.1 side of a connection until it upgrades: keep-alive requests for static files
// and /healthz, and the opening handshake that hands the socket to a WebSocketConnection.
import Logging
import ShoalCluster
import ShoalPosix
import ShoalRing
import ShoalTLS
import ShoalWire

/// One TCP connection speaking HTTP/1.1.
final class HTTPSession: SocketDelegate, HeldInput {
    private unowned let web: WebServer
    private let fd: Int32
    /// A connection to the operator listener: /metrics and /healthz, nothing else, no PROXY header.
    private let operatorOnly: Bool
    private var socket: SocketHandle?
    private var parser: HTTPHeadParser
    /// A response that ends the connection was queued; ignore what follows.
    private var ending = false
    /// Bytes of a request head received and not yet complete (for 408 versus a silent idle close).
    private var partialBytes = 0
    /// Reads the PROXY protocol header (`proxyProtocol`) until it is complete; nil after that.
    private var proxyHeader: ProxyHeaderParser?
    /// The source a PROXY header named (`proxyProtocol`); nil: the connection comes from the TCP peer.
    private var connectionAddress: String?
    /// TLS between the socket and this session (`WebServerConfiguration.tls`), once started.
    private var tls: TLSStreamTransform?
    /// The TCP peer as accept reported it, kept as bits (no getpeername, no getnameinfo and parse back).
    private let peer: PeerAddress
    /// The TCP peer's address in canonical form, made when first needed (the upgrade, a log line,
    /// the trusted-proxy check each ask for it).
    private lazy var peerAddress: String = {
        if peer != .unknown { return IPAddress(high: peer.high, low: peer.low).description }
        let raw = web.peerAddress(fd)
        return IPAddress(raw)?.description ?? raw
    }()
    /// When the current request must be complete (handshake deadline / keep-alive idle time);
    /// kept by the worker's `RequestDeadlines`.
    var deadline: UInt64 = 0
    var deadlineLink = DeadlineLink()
    /// When the current request began (accept, or the end of the previous request on a keep-alive
    /// connection), CLOCK_MONOTONIC: the start of the handshake-latency histogram's measurement.
    private var requestStartedAt = WorkerStats.monotonicNanoseconds()
    /// An upgrade request that came while the bus held client input (its onOpen would send over the
    /// bus), with what the client sent after it; answered when the hold ends.
    private var heldUpgrade: (head: HTTPRequestHead, after: [UInt8])?

    init(web: WebServer, fd: Int32, peer: PeerAddress, operatorOnly: Bool = false) {
        self.web = web
        self.fd = fd
        self.peer = peer
        self.operatorOnly = operatorOnly
        parser = HTTPHeadParser(maxHeadSize: web.configuration.maxHeadSize, maxHeaderCount: web.configuration.maxHeaderCount)
        if web.configuration.proxyProtocol && !operatorOnly { proxyHeader = ProxyHeaderParser() }
    }

    func opened(on handle: SocketHandle) {
        socket = handle
        web.requestDeadlines.restart(self)
        // With a PROXY header, TLS starts after it (it comes before the ClientHello). The operator
        // listener (--metrics-listen) is plain HTTP whatever the public port speaks.
        if !operatorOnly, let context = web.tlsContext, proxyHeader == nil { startTLS(context, socket: handle, feeding: nil) }
    }

    private func startTLS(_ context: TLSContext, socket: SocketHandle, feeding rest: UnsafeRawBufferPointer?) {
        // The transform outlives this session once the socket upgrades (a bad record later is
        // logged with the address): then only the descriptor's peer is left to name.
        tls = Self.startTLS(context, web: web, socket: socket, peer: { [weak self, unowned web, fd] in
            self.map { $0.connectionAddress ?? $0.peerAddress } ?? web.peerAddress(fd)
        }, feeding: rest)
    }

    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) {
        if heldUpgrade != nil {
            // Arrived before the pause reached the kernel: kept, in order, behind the request.
            heldUpgrade!.after.append(contentsOf: bytes)
            return
        }
        var rest = bytes
        if proxyHeader != nil {
            guard let request = readProxyHeader(rest) else { return }
            if let context = web.tlsContext, let socket {
                // What follows the header is TLS; its plaintext comes back through `received`.
                startTLS(context, socket: socket, feeding: UnsafeRawBufferPointer(request))
                return
            }
            rest = request
        }
        while rest.count > 0 && !ending {
            let result: HTTPHeadParser.Result
            do {
                result = try parser.feed(UnsafeRawBufferPointer(rest))
            } catch {
                countRefusal(.badRequest)
                respond(status: error.status, extraHeaders: error.headers, body: error.reason + "\n", keepAlive: false)
                return
            }
            switch result {
            case .needMore:
                partialBytes += rest.count
                return
            case .complete(let head, let consumed):
                partialBytes = 0
                let leftover = UnsafeMutableRawBufferPointer(rebasing: rest[consumed...])
                if answer(head, leftover: leftover) { return }  // upgraded (the socket has a new owner) or held
                rest = leftover
                parser = HTTPHeadParser(maxHeadSize: web.configuration.maxHeadSize, maxHeaderCount: web.configuration.maxHeaderCount)
                web.requestDeadlines.restart(self)
                requestStartedAt = WorkerStats.monotonicNanoseconds()
            }
        }
    }

    /// Feeds `bytes` to the PROXY header parser; returns the bytes after a complete header, or nil
    /// when it needs more or the connection was closed for a bad one (no HTTP answer: the peer is a
    /// proxy, or someone who bypassed it).
    private func readProxyHeader(_ bytes: UnsafeMutableRawBufferPointer) -> UnsafeMutableRawBufferPointer? {
        guard let socket, proxyHeader != nil else { return nil }
        do {
            // In place: a copy of the parser would copy its buffer on every read.
            let result = try proxyHeader!.feed(UnsafeRawBufferPointer(bytes))
            guard case .complete(let header, let consumed) = result else { return nil }
            proxyHeader = nil
            if case .proxied(let source, _) = header { connectionAddress = source.description }
            return UnsafeMutableRawBufferPointer(rebasing: bytes[consumed...])
        } catch {
            web.limits.count(.rejectedProxyHeader)
            countRefusal(.proxyHeader)
            web.logger.debug("PROXY header refused: \(error)", metadata: ["peer": "\(peerAddress)"])
            ending = true
            web.requestDeadlines.remove(self)
            web.loop.close(socket, mode: .abort)
            return nil
        }
    }

    /// The client address of a request on this connection: where the connection comes from, or,
    /// when that is a trusted proxy, the client its forwarding headers name.
    private func clientAddress(of head: HTTPRequestHead) -> String {
        web.configuration.trustedProxies.clientAddress(peer: connectionAddress ?? peerAddress, headers: head.headers)
    }

    /// /metrics is for the operator: not for a client a proxy speaks for (haproxy in TCP mode cannot
    /// filter paths), unless that client is itself a trusted proxy (a scraper behind the same proxy).
    private func mayReadMetrics(_ head: HTTPRequestHead) -> Bool {
        let client = clientAddress(of: head)
        return client == peerAddress || IPAddress(client).map(web.configuration.trustedProxies.contains) == true
    }

    /// Answers one request. Returns true when the connection became a WebSocket, or waits to (held).
    private func answer(_ head: HTTPRequestHead, leftover: UnsafeMutableRawBufferPointer) -> Bool {
        let web = self.web  // one strong reference, not one per use (see `upgrade`)
        // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host field gets 400.
        if head.versionMajor == 1 && head.versionMinor >= 1 && head.headers.count(of: "host") != 1 {
            countRefusal(.badRequest)
            respond(status: 400, body: "HTTP/1.1 requests need exactly one Host header\n", keepAlive: false)
            return false
        }
        let target = RequestTarget(head.target)
        // An upgrade first: it never keeps the connection as HTTP, so it needs neither the body nor
        // the keep-alive lookups below (three scans of the fields per handshake).
        if !operatorOnly && WebSocketUpgrade.isUpgradeRequest(head) {
            if web.stopping, web.server(forPath: target.path) == nil, web.stoppedServer(forPath: target.path) != nil {
                return goAway(head)
            }
            guard let server = web.server(forPath: target.path) else {
                countRefusal(.notFound)
                respond(status: 404, body: "No WebSocket server at \(target.path)\n", keepAlive: false)
                web.reportToEveryServer(.noServerForPath, status: 404, message: "No WebSocket server at \(target.path)")
                return false
            }
            return upgrade(head, target: target, server: server, leftover: leftover)
        }
        // We never read request bodies; a request that has one cannot be followed on this connection.
        let hasBody = (head.headers["content-length"].map { $0 != "0" } ?? false) || head.headers.contains("transfer-encoding")
        let keepAlive = head.keepAlive && !hasBody
        if operatorOnly { return answerOperator(head, target: target, keepAlive: keepAlive) }
        if web.hasWebSocketServer(exactly: target.path) {
            respond(status: 426, extraHeaders: [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
                    body: "This path speaks WebSocket: send an Upgrade request\n", keepAlive: keepAlive)
            return false
        }
        guard head.method == "GET" || head.method == "HEAD" else {
            countRefusal(.badRequest)
            respond(status: 405, extraHeaders: [("Allow", "GET, HEAD")], body: "Method not allowed\n", keepAlive: false)
            return false
        }
        let isHead = head.method == "HEAD"
        if target.path == "/healthz" {
            let health = web.health()
            respond(status: health.status, body: health.body, keepAlive: keepAlive, omitBody: isHead)
            return false
        }
        if target.path == "/metrics" && mayReadMetrics(head) {
            respond(status: 200, extraHeaders: [("Content-Type", Self.metricsContentType)],
                    bodyBytes: Array(web.metricsText().utf8), keepAlive: keepAlive, omitBody: isHead)
            return false
        }
        if let file = web.staticFiles.file(at: target.path) {
            respond(status: 200, extraHeaders: [("Content-Type", file.contentType)], bodyBytes: file.bytes, keepAlive: keepAlive, omitBody: isHead)
        } else {
            countRefusal(.notFound)
            respond(status: 404, body: "Not found: \(target.path)\n", keepAlive: keepAlive, omitBody: isHead)
        }
        return false
    }

    /// The operator listener's answers: the two paths for GET and HEAD, 404 for anything else
    /// (upgrades included: no WebSocket server listens there), none counted as a refusal.
    private func answerOperator(_ head: HTTPRequestHead, target: RequestTarget, keepAlive: Bool) -> Bool {
        let isHead = head.method == "HEAD"
        guard head.method == "GET" || isHead else {
            respond(status: 405, extraHeaders: [("Allow", "GET, HEAD")], body: "Method not allowed\n", keepAlive: false)
            return false
        }
        switch target.path {
        case "/healthz":
            let health = web.health()
            respond(status: health.status, body: health.body, keepAlive: keepAlive, omitBody: isHead)
        case "/metrics":
            respond(status: 200, extraHeaders: [("Content-Type", Self.metricsContentType)],
                    bodyBytes: Array(web.metricsText().utf8), keepAlive: keepAlive, omitBody: isHead)
        default:
            respond(status: 404, body: "Only /metrics and /healthz here\n", keepAlive: keepAlive, omitBody: isHead)
        }
        return false
    }

    private static let metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Counts a refusal in `shoal_http_refusals_total`, unless this is the operator listener
    /// (what operators' own requests meet is not what clients meet).
    private func countRefusal(_ refusal: WorkerMetrics.Refusal) {
        if !operatorOnly { web.metrics.count(refusal) }
    }

    private func upgrade(_ head: HTTPRequestHead, target: RequestTarget, server: WebSocketServer,
                         leftover: UnsafeMutableRawBufferPointer) -> Bool {
        guard let socket else { return false }
        // One strong reference for the whole upgrade: each read of the unowned property checks and
        // takes one of its own (an atomic retain and release), about fifteen times here.
        let web = self.web
        if web.inputHold.isHolding {
            heldUpgrade = (head, Array(leftover))
            web.requestDeadlines.remove(self)
            web.loop.pauseReceiving(socket)
            web.inputHold.wait(self)
            return true
        }
        let key: WebSocketKey
        do {
            key = try WebSocketUpgrade.validate(head)
        } catch {
            countRefusal(.badRequest)
            respond(status: error.status, extraHeaders: error.headers, body: error.reason + "\n", keepAlive: false)
            server.reportError(.badHandshake, status: error.status, message: error.reason)
            return false
        }
        if let allowed = server.options.allowedOrigins, let origin = head.headers["origin"], !allowed.allows(origin) {
            web.limits.count(.rejectedOrigin)
            countRefusal(.forbidden)
            respond(status: 403, body: "Origin \(origin) is not allowed to connect\n", keepAlive: false)
            server.reportError(.originRefused, status: 403, message: "Origin \(origin) is not allowed to connect")
            return false
        }
        let address = clientAddress(of: head)
        if let refusal = web.admissionRefusal(address: address) {
            web.limits.count(refusal.event)
            countRefusal(refusal.event == .rejectedPerAddress ? .tooManyFromAddress : .unavailable)
            respond(status: refusal.status, extraHeaders: [("Retry-After", "1")], body: refusal.reason + "\n", keepAlive: false)
            server.reportError(refusal.code, status: refusal.status, message: refusal.reason)
            return false
        }
        let request = WebSocketRequest(head: head, target: target, remoteAddress: address)
        let event = WebSocketConnectionEvent(request: request)
        guard let connectionHandler = server.handler.onConnection(server, event) else {
            countRefusal(.forbidden)
            respond(status: 403, body: "Connection refused by the server\n", keepAlive: false)
            server.reportError(.refusedByHandler, status: 403, message: "onConnection refused the client from \(address)")
            return false
        }
        let id = web.ids.nextID()
        var entry: Registry.Entry?
        if let cluster = web.cluster {
            // A full registry share refuses the client before the upgrade, never corrupts the table.
            guard let claimed = cluster.registry.insert(id: id, server: server.index, slot: cluster.slot) else {
                countRefusal(.unavailable)
                respond(status: 503, extraHeaders: [("Retry-After", "1")],
                        body: "Too many connections on this worker (registry full)\n", keepAlive: false)
                server.reportError(.registryFull, status: 503, message: "This worker's share of the registry is full")
                return false
            }
            entry = claimed
        }
        let compression = server.options.deflatePolicy.flatMap {
            PerMessageDeflate.negotiate(headerValues: head.headers.values("sec-websocket-extensions"), policy: $0)
        }
        writeSwitchingProtocols(key: key, extensions: compression?.responseHeaderValue, subprotocol: event.selectedProtocol,
                                on: socket)
        web.metrics.observeHandshake(microseconds: (WorkerStats.monotonicNanoseconds() &- requestStartedAt) / 1000)
        // The request is not kept: a handler that needs it later keeps what it needs (as 4D code
        // keeps values from onConnection's event), and idle connections stay small.
        let connection = WebSocketConnection(id: id, handler: connectionHandler, wss: server, socket: socket,
                                             compression: compression, subprotocol: event.selectedProtocol)
        if let entry { connection.registryIndex = UInt32(entry.index) }
        web.requestDeadlines.remove(self)
        web.loop.setDelegate(connection, for: socket)
        web.connectionStarted(connection, address: address)
        web.logger.debug("connection opened", metadata: ["connection": "\(id)", "client": "\(address)"])
        connection.start(leftover: leftover)
        return true
    }

    private func writeSwitchingProtocols(key: WebSocketKey, extensions: String? = nil, subprotocol: String? = nil,
                                         on socket: SocketHandle) {
        let answer = SwitchingProtocols(key: key, extensions: extensions, subprotocol: subprotocol)
        web.loop.write(socket, reserving: answer.byteCount) { answer.write(into: $0) }
    }

    /// An upgrade that reached a worker which is stopping (the instant of a reload when the old
    /// generation still held it): complete the handshake and close at once with 1001 "going away",
    /// which a client handles as "reconnect", instead of refusing it.
    private func goAway(_ head: HTTPRequestHead) -> Bool {
        guard let socket, let key = try? WebSocketUpgrade.validate(head) else {
            countRefusal(.unavailable)
            respond(status: 503, extraHeaders: [("Retry-After", "0")], body: "Restarting\n", keepAlive: false)
            return false
        }
        writeSwitchingProtocols(key: key, on: socket)
        web.metrics.countClose(code: 1001)
        FrameWriter.closePayload(code: 1001, reason: "server restarting").withUnsafeBytes {
            _ = web.loop.writeFrame(socket, opcode: .close, payload: $0)
        }
        ending = true
        web.requestDeadlines.remove(self)
        web.loop.close(socket, mode: .graceful(lingerNanoseconds: web.configuration.linger.clampedNanoseconds))
        return true
    }

    private func respond(status: Int, extraHeaders: [(String, String)] = [], body: String, keepAlive: Bool, omitBody: Bool = false) {
        respond(status: status, extraHeaders: extraHeaders + [("Content-Type", "text/plain; charset=utf-8")],
                bodyBytes: Array(body.utf8), keepAlive: keepAlive, omitBody: omitBody)
    }

    private func respond(status: Int, extraHeaders: [(String, String)], bodyBytes: [UInt8], keepAlive: Bool, omitBody: Bool = false) {
        guard let socket else { return }
        var headers = extraHeaders
        headers.append(("Server", "shoal"))
        if !keepAlive { headers.append(("Connection", "close")) }
        var bytes = HTTPResponse.head(status: status, headers: headers, bodyLength: bodyBytes.count)
        if !omitBody { bytes += bodyBytes }
        bytes.withUnsafeBytes { web.loop.write(socket, $0) }
        if !keepAlive {
            ending = true
            web.requestDeadlines.remove(self)
            web.loop.close(socket, mode: .graceful(lingerNanoseconds: web.configuration.linger.clampedNanoseconds))
        }
    }

    func readEnded(on handle: SocketHandle, error: Int32?) {
        heldUpgrade = nil
        web.loop.close(handle, mode: .abort)
    }

    func resumeHeldInput() {
        guard let held = heldUpgrade, let socket else { return }
        heldUpgrade = nil
        // Before answering: the answer may hold it again (a pause after a resume in one turn stays paused).
        web.loop.resumeReceiving(socket)
        var after = held.after
        // An upgrade request is upgraded, held again, or refused with the connection closed: nothing
        // after it is read as HTTP.
        after.withUnsafeMutableBytes { _ = answer(held.head, leftover: $0) }
    }

    /// The request was not complete in time (called by `RequestDeadlines`, which dropped the session).
    func deadlinePassed() {
        guard let socket else { return }  // an ending session left the list already
        if let proxyHeader, proxyHeader.receivedCount > 0 {
            // Part of a PROXY header and no more in time: a slow header, refused like a malformed one.
            web.limits.count(.rejectedProxyHeader)
            countRefusal(.proxyHeader)
            web.loop.close(socket, mode: .abort)
        } else if let tls, !tls.isEstablished {
            // A ClientHello dribbled in, or none: the handshake counts against the same deadline.
            web.tlsHandshakeFailed(kind: nil, message: "not complete within the request timeout",
                                   peer: connectionAddress ?? peerAddress)
            web.loop.close(socket, mode: .abort)
        } else if partialBytes > 0 {
            countRefusal(.requestTimeout)
            respond(status: 408, body: "Request head not complete in time\n", keepAlive: false)
            web.reportToEveryServer(.requestTimeout, status: 408, message: "Request head not complete in time")
        } else {
            web.loop.close(socket, mode: .abort)
        }
    }

    func closed(on handle: SocketHandle) {
        heldUpgrade = nil
        web.requestDeadlines.remove(self)
    }
}
