// The client's lifecycle as a value (ClientSession): events in, actions out, no socket. Each test
// plays the server by hand: it reads the request the session wrote, answers it, sends frames, and
// reads the session's frames back with a server's MessageReader (which refuses unmasked frames).
import Testing
import ShoalWire
@testable import Shoal

/// What a server reads from the client's frames.
private enum ServerSees: Equatable {
    case text(String)
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    case close(code: UInt16?, reason: String)
}

/// Reads the client's frames as a server does: masking required.
private func serverReads(_ bytes: [UInt8]) throws -> [ServerSees] {
    var copy = bytes
    var reader = MessageReader()
    var seen: [ServerSees] = []
    var violation: ProtocolViolation?
    copy.withUnsafeMutableBytes { raw in
        var offset = 0
        do {
            while let event = try reader.next(raw, &offset, MessageReader.Configuration()) {
                switch event {
                case .text(let p): seen.append(.text(String(decoding: p, as: UTF8.self)))
                case .binary(let p): seen.append(.binary(Array(p)))
                case .ping(let p): seen.append(.ping(Array(p)))
                case .pong(let p): seen.append(.pong(Array(p)))
                case .close(let code, let reason): seen.append(.close(code: code, reason: String(decoding: reason, as: UTF8.self)))
                }
            }
        } catch {
            violation = error as? ProtocolViolation
        }
    }
    if let violation { throw violation }
    return seen
}

/// The bytes of every `.write` action, in order.
private func written(_ actions: [ClientSession.Action]) -> [UInt8] {
    actions.flatMap { if case .write(let bytes) = $0 { bytes } else { [UInt8]() } }
}

/// Everything but the writes.
private func callbacks(_ actions: [ClientSession.Action]) -> [ClientSession.Action] {
    actions.filter { if case .write = $0 { false } else { true } }
}

private func url(_ text: String = "ws://example.com:8080/chat?room=1") -> WebSocketURL {
    try! WebSocketURL(text)
}

/// A session past its opening handshake, with what it wrote so far drained.
private struct Opened {
    var session: ClientSession
    var request: String

    init(dataType: WebSocketDataType = .text, headers: [(name: String, value: String)] = [], compression: Bool = false,
         answerExtra: String = "") {
        session = ClientSession(.init(url: url(), dataType: dataType, headers: headers, offerCompression: compression))
        request = String(decoding: written(session.connectSucceeded()), as: UTF8.self)
        let actions = session.feed(Opened.answer(to: request, extra: answerExtra))
        precondition(callbacks(actions) == [.open], "handshake failed: \(actions)")
    }

    /// A valid 101 for `request`.
    static func answer(to request: String, extra: String = "", accept: String? = nil) -> [UInt8] {
        let key = request.split(separator: "\r\n").first { $0.hasPrefix("Sec-WebSocket-Key: ") }!.dropFirst(19)
        let value = accept ?? WebSocketUpgrade.acceptValue(forKey: String(key))
        return Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(value)\r\n\(extra)\r\n".utf8)
    }
}

extension ClientSession {
    /// `received` with an array (the loop hands a mutable buffer).
    fileprivate mutating func feed(_ bytes: [UInt8]) -> [Action] {
        var copy = bytes
        return copy.withUnsafeMutableBytes { received($0) }
    }
}

@Suite struct ClientSessionTests {
    @Test func theOpeningRequestFollowsRFC6455AndCarriesTheHandlersHeaders() {
        var session = ClientSession(.init(url: url(), headers: [(name: "Authorization", value: "Bearer x")]))
        let request = String(decoding: written(session.connectSucceeded()), as: UTF8.self)
        let lines = request.split(separator: "\r\n", omittingEmptySubsequences: false)
        #expect(lines.first == "GET /chat?room=1 HTTP/1.1")
        #expect(lines.contains("Host: example.com:8080"))
        #expect(lines.contains("Upgrade: websocket"))
        #expect(lines.contains("Connection: Upgrade"))
        #expect(lines.contains("Sec-WebSocket-Version: 13"))
        #expect(lines.contains("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"))
        #expect(lines.contains("Authorization: Bearer x"))
        let key = lines.first { $0.hasPrefix("Sec-WebSocket-Key: ") }.map { String($0.dropFirst(19)) }
        #expect(key.flatMap(Base64.decode)?.count == 16)
        #expect(request.hasSuffix("\r\n\r\n"))
        #expect(session.phase == .connecting)
    }

    @Test func aValid101OpensAndMessagesSentWhileConnectingGoFirst() throws {
        var session = ClientSession(.init(url: url(), offerCompression: false))
        let request = String(decoding: written(session.connectSucceeded()), as: UTF8.self)
        #expect(session.send(.text("Hello world")).0 == .queued)
        #expect(session.send(.blob([1, 2, 3])).0 == .queued)
        // The 101 and a first server frame in one read, split anywhere.
        let bytes = Opened.answer(to: request) + FrameWriter.frame(opcode: .text, payload: Array("welcome".utf8))
        var actions: [ClientSession.Action] = []
        for byte in bytes { actions += session.feed([byte]) }
        #expect(session.phase == .open)
        #expect(try serverReads(written(actions)) == [.text("Hello world"), .binary([1, 2, 3])])
        #expect(callbacks(actions) == [.open, .message(.text("welcome"), isBinary: false)])
    }

    @Test(arguments: [
        ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "status 404 Not Found instead of 101"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
         "Sec-WebSocket-Accept AAAAAAAAAAAAAAAAAAAAAAAAAAA= does not match the key"),
        ("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n", "missing Upgrade: websocket"),
        ("SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP response"),
    ])
    func aBadAnswerFailsWithOnErrorThenOnTerminate1006(answer: String, problem: String) {
        var session = ClientSession(.init(url: url()))
        _ = session.connectSucceeded()
        let actions = session.feed(Array(answer.utf8))
        #expect(written(actions).isEmpty)
        guard case .error(let code, let errCode, let message) = callbacks(actions).last else {
            Issue.record("no error: \(actions)")
            return
        }
        #expect(code == 1006)
        #expect(errCode == WebSocketClientErrorCode.handshakeFailed.rawValue)
        #expect(message.contains(problem), "\(message)")
        #expect(callbacks(actions).first == .closeSocket(graceful: false))
        #expect(session.send(.text("late")).0 == .closed)
        #expect(session.socketClosed() == [.terminate(code: 1006, reason: nil)])
        #expect(session.socketClosed() == [])
    }

    @Test(arguments: ["permessage-deflate;", "permessage-deflate; =", "permessage-deflate; ;server_no_context_takeover"])
    func anExtensionAnswerWithANamelessParameterFailsTheHandshake(extensions: String) {
        // A trap before: the empty parameter's name was read as pieces[0] of an empty split.
        var session = ClientSession(.init(url: url(), offerCompression: true))
        let request = String(decoding: written(session.connectSucceeded()), as: UTF8.self)
        let actions = session.feed(Opened.answer(to: request, extra: "Sec-WebSocket-Extensions: \(extensions)\r\n"))
        guard case .error(1006, let errCode, let message) = callbacks(actions).last else {
            Issue.record("no error: \(actions)")
            return
        }
        #expect(errCode == WebSocketClientErrorCode.handshakeFailed.rawValue)
        #expect(message.contains("without a name"), "\(message)")
    }

    @Test func aSubprotocolTheClientDidNotOfferFailsTheHandshake() {
        var session = ClientSession(.init(url: url(), headers: [(name: "Sec-WebSocket-Protocol", value: "chat.v1, chat.v2")]))
        let request = String(decoding: written(session.connectSucceeded()), as: UTF8.self)
        var good = session
        #expect(callbacks(good.feed(Opened.answer(to: request, extra: "Sec-WebSocket-Protocol: chat.v2\r\n"))) == [.open])
        let actions = session.feed(Opened.answer(to: request, extra: "Sec-WebSocket-Protocol: other\r\n"))
        #expect(actions.contains { if case .error(_, _, let m) = $0 { m.contains("subprotocol other") } else { false } })
    }

    @Test func framesOutAreMaskedWithAFreshKeyEach() throws {
        var opened = Opened()
        let first = written(opened.session.send(.text("same")).1)
        let second = written(opened.session.send(.text("same")).1)
        #expect(first[1] & 0x80 != 0 && second[1] & 0x80 != 0)
        #expect(first[2..<6] != second[2..<6], "mask keys repeat")
        #expect(try serverReads(first + second) == [.text("same"), .text("same")])
        var json: JSONObject = [:]
        json["a"] = .integer(1)
        #expect(try serverReads(written(opened.session.send(.object(.object(json))).1)) == [.text(#"{"a":1}"#)])
    }

    @Test func fragmentsAreReassembledAndPingsAnsweredInBetween() throws {
        var opened = Opened()
        let bytes = FrameWriter.frame(opcode: .text, fin: false, payload: Array("Hel".utf8))
            + FrameWriter.frame(opcode: .ping, payload: [9])
            + FrameWriter.frame(opcode: .continuation, fin: false, payload: Array("lo ".utf8))
            + FrameWriter.frame(opcode: .continuation, payload: Array("wörld".utf8))
        let actions = opened.session.feed(bytes)
        #expect(callbacks(actions) == [.message(.text("Hello wörld"), isBinary: false)])
        #expect(try serverReads(written(actions)) == [.pong([9])])
    }

    @Test func theDataTypeShapesTextMessages() {
        var object = Opened(dataType: .object)
        let actions = object.session.feed(FrameWriter.frame(opcode: .text, payload: Array(#"{"n":2}"#.utf8))
                                            + FrameWriter.frame(opcode: .text, payload: Array("not json".utf8)))
        var expected: JSONObject = [:]
        expected["n"] = .integer(2)
        #expect(callbacks(actions).first == .message(.object(.object(expected)), isBinary: false))
        #expect(callbacks(actions).dropFirst().first.map { if case .error(0, 1007, _) = $0 { true } else { false } } == true)
        #expect(object.session.phase == .open)
        var blob = Opened(dataType: .blob)
        #expect(callbacks(blob.session.feed(FrameWriter.frame(opcode: .text, payload: [65]))) == [.message(.blob([65]), isBinary: false)])
    }

    @Test func theServersCloseIsEchoedAndOnTerminateCarriesItsCodeOnceTCPEnds() throws {
        var opened = Opened()
        let actions = opened.session.feed(FrameWriter.frame(opcode: .close, payload: FrameWriter.closePayload(code: 4001, reason: "bye")))
        #expect(try serverReads(written(actions)) == [.close(code: 4001, reason: "")])
        #expect(callbacks(actions) == [.armCloseTimer])
        #expect(opened.session.phase == .closing)
        #expect(opened.session.send(.text("late")).0 == .closed)
        #expect(opened.session.readEnded() == [.closeSocket(graceful: true)])
        #expect(opened.session.socketClosed() == [.terminate(code: 4001, reason: "bye")])
    }

    @Test func terminateSendsTheCodeWaitsForTheEchoAndReportsIt() throws {
        var opened = Opened()
        let actions = opened.session.terminate(code: 4000, reason: "done")
        #expect(try serverReads(written(actions)) == [.close(code: 4000, reason: "done")])
        #expect(callbacks(actions) == [.armCloseTimer])
        #expect(opened.session.phase == .closeSent)
        #expect(opened.session.terminate(code: nil, reason: nil).isEmpty)
        // A message the server sent before it saw our close still arrives.
        let late = opened.session.feed(FrameWriter.frame(opcode: .text, payload: Array("last".utf8))
                                       + FrameWriter.frame(opcode: .close, payload: FrameWriter.closePayload(code: 4000, reason: "")))
        #expect(callbacks(late) == [.message(.text("last"), isBinary: false)])
        #expect(written(late).isEmpty, "the close was answered twice")
        #expect(opened.session.readEnded() == [.closeSocket(graceful: true)])
        #expect(opened.session.socketClosed() == [.terminate(code: 4000, reason: nil)])
    }

    @Test func terminateWithoutACodeSends1000AndABadCodeIsReported() throws {
        var plain = Opened()
        #expect(try serverReads(written(plain.session.terminate(code: nil, reason: nil))) == [.close(code: 1000, reason: "")])
        var bad = Opened()
        let actions = bad.session.terminate(code: 1006, reason: "x")
        #expect(try serverReads(written(actions)) == [.close(code: 1000, reason: "")])
        #expect(callbacks(actions).first == .error(code: 0, errCode: WebSocketClientErrorCode.badCloseCode.rawValue,
                                                   message: "close code 1006 is not 1000 or 3000…4999: 1000 sent instead"))
    }

    @Test func aServerThatNeverAnswersTheCloseIsDroppedAfterTheTimer() {
        var opened = Opened()
        _ = opened.session.terminate(code: nil, reason: nil)
        #expect(opened.session.closeTimerFired() == [.closeSocket(graceful: false)])
        #expect(opened.session.socketClosed() == [.terminate(code: 1006, reason: nil)])
    }

    @Test func aProtocolViolationSendsItsCodeAndFails() throws {
        var opened = Opened()
        // RSV1 without permessage-deflate.
        let actions = opened.session.feed(FrameWriter.frame(opcode: .text, rsv1: true, payload: [65]))
        #expect(try serverReads(written(actions)).first.map { if case .close(1002, _) = $0 { true } else { false } } == true)
        #expect(callbacks(actions).first == .closeSocket(graceful: true))
        #expect(callbacks(actions).last.map { if case .error(1002, 1002, _) = $0 { true } else { false } } == true)
        #expect(opened.session.socketClosed() == [.terminate(code: 1006, reason: nil)])
    }

    @Test func aMaskedFrameFromTheServerIsA1002() throws {
        // RFC 6455 §5.1: "A client MUST close a connection if it detects a masked frame."
        var opened = Opened()
        let actions = opened.session.feed(FrameWriter.frame(opcode: .text, payload: Array("hi".utf8), maskKey: 0x0102_0304))
        #expect(try serverReads(written(actions)).first.map { if case .close(1002, _) = $0 { true } else { false } } == true)
        #expect(!callbacks(actions).contains(.message(.text("hi"), isBinary: false)))
        #expect(callbacks(actions).last.map { if case .error(1002, 1002, _) = $0 { true } else { false } } == true)
    }

    @Test func aDroppedConnectionEndsWith1006() {
        var opened = Opened()
        #expect(opened.session.readEnded() == [.closeSocket(graceful: true)])
        #expect(opened.session.socketClosed() == [.terminate(code: 1006, reason: nil)])
    }

    @Test func aFailedConnectIsOnErrorThenOnTerminateAndATerminateWhileConnectingIsQuiet() {
        var failed = ClientSession(.init(url: url()))
        #expect(failed.connectFailed("refused", errCode: 11) == [.error(code: 1006, errCode: 11, message: "refused"),
                                                                  .terminate(code: 1006, reason: nil)])
        #expect(failed.phase == .closed)
        var abandoned = ClientSession(.init(url: url()))
        #expect(abandoned.terminate(code: nil, reason: nil).isEmpty)
        #expect(abandoned.connectFailed("cancelled", errCode: 11) == [.terminate(code: 1006, reason: nil)])
    }

    @Test func compressionIsUsedBothWaysWhenTheServerAcceptsIt() throws {
        var opened = Opened(compression: true, answerExtra: "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n")
        let out = written(opened.session.send(.text(String(repeating: "abc", count: 100))).1)
        #expect(out[0] & 0x40 != 0, "RSV1 not set")
        #expect(out.count < 100)
        let payload = Array(String(repeating: "xyz", count: 50).utf8)
        let deflated = payload.withUnsafeBytes { MessageDeflater(noContextTakeover: true).compress($0) }
        let actions = opened.session.feed(FrameWriter.frame(opcode: .text, rsv1: true, payload: deflated))
        #expect(callbacks(actions) == [.message(.text(String(repeating: "xyz", count: 50)), isBinary: false)])
    }

    @Test(arguments: [
        ("ws://host", "host", 80, "/", "host"),
        ("WSS://Host:8443/a/b?c=d", "Host", 8443, "/a/b?c=d", "Host:8443"),
        ("ws://[::1]:9000?x", "::1", 9000, "/?x", "[::1]:9000"),
        ("wss://example.com/", "example.com", 443, "/", "example.com"),
    ])
    func urlsParse(text: String, host: String, port: Int, target: String, hostHeader: String) throws {
        let parsed = try WebSocketURL(text)
        #expect(parsed.host == host && parsed.port == port && parsed.target == target && parsed.hostHeader == hostHeader)
    }

    @Test(arguments: ["http://example.com/", "ws://", "ws://host:0/", "ws://host:99999/", "ws://host/#frag", "ws://user@host/",
                      "ws://host:8a/", "ws://ho st/", "ws://[::1/"])
    func badURLsAreRefused(text: String) {
        #expect(throws: WebSocketURL.Invalid.self) { try WebSocketURL(text) }
    }
}
