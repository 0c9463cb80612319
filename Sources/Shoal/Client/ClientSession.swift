// The life of one client connection as a value: events in (connected, bytes, a send, terminate,
// end of stream, a timer, the socket closed), actions out (bytes to write, callbacks to make, the
// socket to close). No socket and no loop here, so every path is tested as is
// (ClientSessionTests); `WebSocket` carries the actions out on the loop.
//
// The protocol is the server's, seen from the other side, through the same ShoalWire code: the
// opening request and HandshakeResponse's check (RFC 6455 §4.1), MessageReader for fragmentation,
// control frames, UTF-8 and limits (a masked frame from the server is a 1002, RFC 6455 §5.1), masked
// frames out (§5.3, a fresh random key per frame), and the closing handshake (§7), where the
// server closes TCP first and the client waits for it at most `closeTimeout`.
import ShoalWire

struct ClientSession {
    /// Where the connection is; `WebSocket.status` is its 4D name.
    enum Phase: UInt8, Sendable {
        /// TCP connect, then the opening handshake: "Connecting".
        case connecting
        case open
        /// We sent our close frame and wait for the server's: "Closing".
        case closeSent
        /// Both close frames crossed, or the connection failed; waiting for TCP to end: "Closing".
        case closing
        case closed
    }

    /// What the driver must do, in order.
    enum Action: Equatable {
        /// Queue these bytes on the socket.
        case write([UInt8])
        /// onOpen.
        case open
        /// onMessage.
        case message(WebSocketData, isBinary: Bool)
        /// onError, with the close code it leads to (0 when the connection stays) and the errCode.
        case error(code: Int, errCode: Int, message: String)
        /// Start the timer that ends a closing handshake the server does not finish.
        case armCloseTimer
        /// Close the socket: gracefully (what is queued goes first) or at once.
        case closeSocket(graceful: Bool)
        /// onTerminate: the last action of a session.
        case terminate(code: Int, reason: String?)
    }

    struct Configuration {
        var url: WebSocketURL
        var dataType: WebSocketDataType = .text
        /// Extra request headers (4D: the handler's `headers`), sent as given after the standard ones.
        var headers: [(name: String, value: String)] = []
        /// Offer permessage-deflate (RFC 7692) and use it when the server accepts.
        var offerCompression = true
        var maxMessageSize = Limits.defaultMaxMessageSize
        var maxFragments = Limits.defaultMaxFragments
    }

    private(set) var phase = Phase.connecting
    var url: WebSocketURL { configuration.url }
    private let configuration: Configuration
    private let readerConfiguration: MessageReader.Configuration
    /// Draws the handshake key and the mask keys (the system's random source outside tests).
    private var random: any RandomNumberGenerator
    private let expectedAccept: String
    private let request: [UInt8]
    /// Whether the request went out (the TCP connection is up).
    private var connected = false
    /// The response head so far, until its blank line.
    private var head: [UInt8] = []
    private var reader = MessageReader()
    private var deflater: MessageDeflater?
    /// Messages sent while connecting, sent in order once the handshake succeeded.
    private var held: [(Opcode, [UInt8])] = []
    /// What onTerminate will say: the server's close code and reason, or 1006 once the connection failed.
    private var terminateCode: Int?
    private var terminateReason: String?

    init(_ configuration: Configuration, random: any RandomNumberGenerator = SystemRandomNumberGenerator()) {
        var random = random
        let key = Base64.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &random) })
        self.random = random
        self.configuration = configuration
        readerConfiguration = MessageReader.Configuration(
            maxMessageSize: configuration.maxMessageSize, masking: .forbidden, maxFragments: configuration.maxFragments)
        expectedAccept = WebSocketUpgrade.acceptValue(forKey: key)
        var lines = [
            "GET \(configuration.url.target) HTTP/1.1",
            "Host: \(configuration.url.hostHeader)",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: \(key)",
            "Sec-WebSocket-Version: 13",
        ]
        if configuration.offerCompression { lines.append("Sec-WebSocket-Extensions: \(ClientDeflateAgreement.offer)") }
        lines += configuration.headers.map { "\($0.name): \($0.value)" }
        request = Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }

    /// The subprotocols the request offers (a Sec-WebSocket-Protocol header of the handler's).
    private var offeredProtocols: [String] {
        configuration.headers.filter { $0.name.lowercased() == "sec-websocket-protocol" }
            .flatMap { $0.value.split(separator: ",").map { $0.trimmingCharacters(in: " \t") } }
    }

    // MARK: Events

    /// The TCP connection is up: the opening request goes out.
    mutating func connectSucceeded() -> [Action] {
        guard phase == .connecting, !connected else { return [] }
        connected = true
        return [.write(request)]
    }

    /// No connection was made (a bad URL, a name that does not resolve, a refused or timed-out
    /// connect): onError, then onTerminate with 1006.
    mutating func connectFailed(_ message: String, errCode: Int) -> [Action] {
        guard !connected else { return [] }
        switch phase {
        case .connecting:
            phase = .closed
            return [.error(code: 1006, errCode: errCode, message: message), .terminate(code: 1006, reason: nil)]
        case .closing:
            // terminate() while connecting: no error to report, only the end.
            phase = .closed
            return [.terminate(code: 1006, reason: nil)]
        case .open, .closeSent, .closed:
            return []
        }
    }

    /// Bytes from the server.
    mutating func received(_ bytes: UnsafeMutableRawBufferPointer) -> [Action] {
        switch phase {
        case .connecting:
            return receivedHead(UnsafeRawBufferPointer(bytes))
        case .open, .closeSent:
            var actions: [Action] = []
            consume(bytes, into: &actions)
            return actions
        case .closing, .closed:
            return []
        }
    }

    /// The application sends a message. While connecting it is held and sent once the connection
    /// opens (4D's example sends right after `new()`).
    mutating func send(_ data: WebSocketData) -> (WebSocketSendResult, [Action]) {
        let (opcode, payload) = Self.encode(data)
        switch phase {
        case .connecting:
            held.append((opcode, payload))
            return (.queued, [])
        case .open:
            return (.queued, [.write(frame(opcode, payload))])
        case .closeSent, .closing, .closed:
            return (.closed, [])
        }
    }

    /// The application ends the connection (4D: `terminate({code; reason})`): code 1000 by default;
    /// a code other than 1000 or 3000…4999 is refused with onError and 1000 is sent instead.
    mutating func terminate(code: Int?, reason: String?) -> [Action] {
        switch phase {
        case .connecting:
            // Nothing to say to a server that has not answered yet: the connection just ends (the
            // driver cancels a connect in flight, whose failure then ends the session quietly).
            phase = .closing
            terminateCode = 1006
            return connected ? [.closeSocket(graceful: false)] : []
        case .open:
            var actions: [Action] = []
            var payload = FrameWriter.closePayload(code: CloseCode.normal, reason: reason ?? "")
            if let code {
                if code == 1000 || (3000...4999).contains(code) {
                    payload = FrameWriter.closePayload(code: UInt16(code), reason: reason ?? "")
                } else {
                    payload = FrameWriter.closePayload(code: CloseCode.normal, reason: "")
                    actions.append(.error(code: 0, errCode: WebSocketClientErrorCode.badCloseCode.rawValue,
                                          message: "close code \(code) is not 1000 or 3000…4999: 1000 sent instead"))
                }
            }
            actions += [.write(frame(.close, payload)), .armCloseTimer]
            phase = .closeSent
            return actions
        case .closeSent, .closing, .closed:
            return []
        }
    }

    /// TCP ended (the server's FIN, or an error): the socket closes; onTerminate follows from `socketClosed`.
    mutating func readEnded() -> [Action] {
        guard phase != .closed else { return [] }
        if phase != .closing { terminateCode = terminateCode ?? 1006 }
        phase = .closing
        // Graceful: a close frame of ours may still be queued behind the end of the server's stream.
        return [.closeSocket(graceful: true)]
    }

    /// The closing handshake did not finish in time.
    mutating func closeTimerFired() -> [Action] {
        guard phase == .closeSent || phase == .closing else { return [] }
        terminateCode = terminateCode ?? 1006
        phase = .closing
        return [.closeSocket(graceful: false)]
    }

    /// The opening handshake did not finish in time (`openTimeout`).
    mutating func openTimerFired() -> [Action] {
        guard phase == .connecting else { return [] }
        if !connected {
            // The driver cancels the connect; its failure comes back through `connectFailed`.
            return []
        }
        return fail(code: 1006, errCode: WebSocketClientErrorCode.handshakeFailed.rawValue,
                    message: "the server did not answer the opening handshake in time", closeFrame: nil)
    }

    /// The transport under the WebSocket failed (TLS: a bad certificate, an alert): onError, and
    /// onTerminate (1006) once the socket closed. `loopCloses`: the loop closes the socket itself
    /// (a failed transform sends its alert first), so no close is asked for.
    mutating func transportFailed(_ message: String, loopCloses: Bool) -> [Action] {
        guard phase != .closed, phase != .closing else { return [] }
        var actions = fail(code: 1006, errCode: WebSocketClientErrorCode.connectFailed.rawValue, message: message, closeFrame: nil)
        if loopCloses { actions.removeAll { $0 == .closeSocket(graceful: false) } }
        return actions
    }

    /// The socket is closed: onTerminate, once.
    mutating func socketClosed() -> [Action] {
        guard phase != .closed else { return [] }
        phase = .closed
        return [.terminate(code: terminateCode ?? 1006, reason: terminateReason)]
    }

    // MARK: Opening handshake

    private mutating func receivedHead(_ bytes: UnsafeRawBufferPointer) -> [Action] {
        let searchFrom = head.count - 3
        head.append(contentsOf: bytes)
        guard let end = HandshakeResponse.headEnd(in: head, from: searchFrom) else {
            if head.count > HandshakeResponse.maxHeadSize {
                return fail(code: 1006, errCode: WebSocketClientErrorCode.handshakeFailed.rawValue,
                            message: "handshake failed: response head larger than \(HandshakeResponse.maxHeadSize) bytes", closeFrame: nil)
            }
            return []
        }
        let outcome = HandshakeResponse.check(head[..<end], expectedAccept: expectedAccept,
                                              deflateOffered: configuration.offerCompression, subprotocols: offeredProtocols)
        switch outcome {
        case .failed(let problem):
            return fail(code: 1006, errCode: WebSocketClientErrorCode.handshakeFailed.rawValue,
                        message: "handshake failed: \(problem)", closeFrame: nil)
        case .accepted(let agreement, _):
            if let agreement {
                reader = MessageReader(inflater: MessageInflater(windowBits: agreement.serverMaxWindowBits,
                                                                 noContextTakeover: agreement.serverNoContextTakeover))
                // Every message from an empty window: allowed whatever the agreement says.
                deflater = MessageDeflater(windowBits: agreement.clientMaxWindowBits, noContextTakeover: true)
            }
        }
        phase = .open
        // What was sent while connecting goes first, before anything onOpen sends.
        var actions: [Action] = held.map { .write(frame($0.0, $0.1)) }
        actions.append(.open)
        held = []
        var rest = Array(head[end...])
        head = []
        if !rest.isEmpty {
            rest.withUnsafeMutableBytes { consume($0, into: &actions) }
        }
        return actions
    }

    // MARK: Frames

    private mutating func consume(_ bytes: UnsafeMutableRawBufferPointer, into actions: inout [Action]) {
        var offset = 0
        while phase == .open || phase == .closeSent {
            let event: InboundEvent?
            do {
                event = try reader.next(bytes, &offset, readerConfiguration)
            } catch {
                actions += fail(code: Int(error.closeCode), errCode: Int(error.closeCode), message: error.reason,
                                closeFrame: error.closeCode)
                return
            }
            guard let event else { return }
            switch event {
            // Messages the server sent before it saw our close frame are still delivered (a browser
            // does the same while "Closing").
            case .text(let payload):
                deliverText(payload, into: &actions)
            case .binary(let payload):
                actions.append(.message(.blob(Array(payload)), isBinary: true))
            case .ping(let payload):
                if phase == .open { actions.append(.write(frame(.pong, Array(payload)))) }
            case .pong:
                break
            case .close(let code, let reason):
                terminateCode = code.map(Int.init) ?? 1005
                terminateReason = reason.isEmpty ? nil : String(decoding: reason, as: UTF8.self)
                if phase == .open {
                    // Echo the code (RFC 6455 §5.5.1), then wait for the server to close TCP.
                    actions.append(.write(frame(.close, FrameWriter.closePayload(code: code, reason: ""))))
                    actions.append(.armCloseTimer)
                }
                phase = .closing
                return
            }
        }
    }

    private func deliverText(_ payload: UnsafeRawBufferPointer, into actions: inout [Action]) {
        switch configuration.dataType {
        case .text:
            actions.append(.message(.text(String(decoding: payload, as: UTF8.self)), isBinary: false))
        case .blob:
            actions.append(.message(.blob(Array(payload)), isBinary: false))
        case .object:
            do {
                actions.append(.message(.object(try JSONParser.parse(payload)), isBinary: false))
            } catch {
                // As on the server: the message is dropped, the connection stays.
                actions.append(.error(code: 0, errCode: Int(CloseCode.invalidPayload), message: error.description))
            }
        }
    }

    /// Fails the connection: onError, our close frame when there is a protocol code to send, and
    /// the socket closed (gracefully after a close frame, so it leaves first).
    private mutating func fail(code: Int, errCode: Int, message: String, closeFrame: UInt16?) -> [Action] {
        terminateCode = 1006
        var actions: [Action] = []
        if let closeFrame, phase == .open {
            actions.append(.write(frame(.close, FrameWriter.closePayload(code: closeFrame, reason: message))))
        }
        phase = .closing
        actions.append(.closeSocket(graceful: closeFrame != nil))
        actions.append(.error(code: code, errCode: errCode, message: message))
        return actions
    }

    /// A whole masked frame (RFC 6455 §5.3: a fresh key per frame); data frames compressed when
    /// permessage-deflate was agreed.
    private mutating func frame(_ opcode: Opcode, _ payload: [UInt8]) -> [UInt8] {
        let key = UInt32.random(in: 0...UInt32.max, using: &random)
        if let deflater, !opcode.isControl, !payload.isEmpty {
            let compressed = payload.withUnsafeBytes { deflater.compress($0) }
            return FrameWriter.frame(opcode: opcode, rsv1: true, payload: compressed, maskKey: key)
        }
        return FrameWriter.frame(opcode: opcode, payload: payload, maskKey: key)
    }

    /// The frame type and payload of a message (4D: text as UTF-8, objects as JSON text, blobs binary).
    static func encode(_ data: WebSocketData) -> (Opcode, [UInt8]) {
        switch data {
        case .text(let text): return (.text, Array(text.utf8))
        case .blob(let bytes): return (.binary, bytes)
        case .object(let value):
            var encoded: [UInt8] = []
            value.write(into: &encoded)
            return (.text, encoded)
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let start = drop { set.contains($0) }
        return String(start.prefix(start.count - start.reversed().prefix { set.contains($0) }.count))
    }
}
