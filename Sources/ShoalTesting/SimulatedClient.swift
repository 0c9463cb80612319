// One client of a WebSocketTestServer: sends masked frames as a browser would, parses what the
// server sent into messages and a close frame, and answers pings and the closing handshake itself.
public import Shoal
import ShoalWire

/// A WebSocket client with no socket (see `WebSocketTestServer.connect`).
public final class SimulatedClient {
    /// A close frame the client received.
    public struct CloseFrame: Equatable, Sendable {
        /// nil when the frame had no status code.
        public let code: Int?
        public let reason: String

        public init(code: Int?, reason: String = "") {
            self.code = code
            self.reason = reason
        }
    }

    /// The HTTP status of the server's answer to the upgrade: 101 when connected, 403/404/429/503… when refused.
    public private(set) var status = 0
    /// The answer's header fields (lowercased names), e.g. `sec-websocket-protocol`.
    public private(set) var responseHeaders: [(name: String, value: String)] = []
    /// The messages received and not yet taken (`takeMessages()`), text as `.text`, binary as `.blob`.
    public private(set) var messages: [WebSocketData] = []
    /// The server's close frame, once it came.
    public private(set) var closeFrame: CloseFrame?
    /// The client ended its side of the TCP connection (after the closing handshake or a refusal).
    public private(set) var isClosed = false

    let socket: Int32
    private unowned let server: WebSocketTestServer
    private var received: [UInt8] = []
    private var headDone = false
    private var sentClose = false
    private var reader = MessageReader()
    private let readerConfiguration = MessageReader.Configuration(maxMessageSize: 1 << 30, requireMasking: false,
                                                                  maxFragments: Int(Int32.max))
    private var maskKey: UInt32 = 0x5EED_0001

    init(socket: Int32, server: WebSocketTestServer) {
        self.socket = socket
        self.server = server
    }

    /// The header value of the server's answer, by name (case-insensitive).
    public func responseHeader(_ name: String) -> String? {
        responseHeaders.first { $0.name == name.lowercased() }?.value
    }

    /// The received messages, emptying the list.
    public func takeMessages() -> [WebSocketData] {
        defer { messages.removeAll() }
        return messages
    }

    /// Sends a text message and settles the server.
    public func send(_ text: String) { sendFrame(.text, Array(text.utf8)) }

    /// Sends a binary message and settles the server.
    public func send(_ bytes: [UInt8]) { sendFrame(.binary, bytes) }

    /// Sends a close frame (`code` nil: none) and settles: the server answers and ends the connection.
    public func close(code: Int? = 1000, reason: String = "") {
        sentClose = true
        sendFrame(.close, FrameWriter.closePayload(code: code.map(UInt16.init), reason: reason))
    }

    /// Ends the TCP connection without a close frame (a dropped client) and settles.
    public func drop() {
        endConnection()
        server.settle()
    }

    /// Sends `bytes` as they are (a handcrafted frame, say) and settles.
    public func sendRaw(_ bytes: [UInt8], settle: Bool = true) {
        server.deliver(bytes, from: socket)
        if settle { server.settle() }
    }

    private func sendFrame(_ opcode: Opcode, _ payload: [UInt8], settle: Bool = true) {
        maskKey = maskKey &* 1_103_515_245 &+ 12_345
        sendRaw(FrameWriter.frame(opcode: opcode, payload: payload, maskKey: maskKey), settle: settle)
    }

    private func endConnection() {
        guard !isClosed else { return }
        isClosed = true
        server.end(socket)
    }

    /// Parses what the server sent since the last call and answers it (pong, closing handshake);
    /// true when the client sent something in answer.
    func takeIncoming() -> Bool {
        received += server.sent(on: socket)
        guard !isClosed else { return false }
        if !headDone {
            guard let end = headEnd() else { return false }
            parseHead(String(decoding: received[..<end], as: UTF8.self))
            received.removeFirst(end + 4)
            headDone = true
            if status != 101 {
                endConnection()
                return true
            }
        }
        var answered = false
        var offset = 0
        while offset < received.count {
            let event: Answer? = received.withUnsafeMutableBytes { buffer in
                guard let inbound = try? reader.next(buffer, &offset, readerConfiguration) else { return nil }
                switch inbound {
                case .text(let bytes): messages.append(.text(String(decoding: bytes, as: UTF8.self)))
                case .binary(let bytes): messages.append(.blob(Array(bytes)))
                case .ping(let bytes): return .pong(Array(bytes))
                case .pong: break
                case .close(let code, let reason):
                    closeFrame = CloseFrame(code: code.map(Int.init), reason: String(decoding: reason, as: UTF8.self))
                    return .close(code)
                }
                return .nothing
            }
            guard let event else { break }
            switch event {
            case .nothing: break
            case .pong(let payload):
                sendFrame(.pong, payload, settle: false)
                answered = true
            case .close(let code):
                if !sentClose {
                    sentClose = true
                    sendFrame(.close, FrameWriter.closePayload(code: code, reason: ""), settle: false)
                }
                endConnection()
                answered = true
            }
        }
        received.removeFirst(offset)
        return answered
    }

    private enum Answer {
        case nothing
        case pong([UInt8])
        case close(UInt16?)
    }

    private func headEnd() -> Int? {
        guard received.count >= 4 else { return nil }
        for i in 0...(received.count - 4) where received[i] == 13 && received[i + 1] == 10 && received[i + 2] == 13 && received[i + 3] == 10 {
            return i
        }
        return nil
    }

    private func parseHead(_ head: String) {
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        status = lines.first.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        responseHeaders = lines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), String(line[line.index(after: colon)...].drop { $0 == " " }))
        }
    }

    static func upgradeRequest(path: String, headers: [(String, String)]) -> [UInt8] {
        var text = "GET \(path) HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        return Array((text + "\r\n").utf8)
    }
}
