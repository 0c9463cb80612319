// A web server running in the test process on its own thread, and a small blocking WebSocket
// client built on ShoalWire, for API tests that need to act inside the server (send from another
// thread, inspect wss.connections) — what the integration tests cannot reach from outside.
import Foundation
import Logging
@testable import Shoal
import ShoalPosix
import ShoalRing
import ShoalWire
import ShoalTestSupport

/// A loop + web server on 127.0.0.1:<ephemeral>, running on a background thread.
final class InProcessServer: @unchecked Sendable {
    let loop: EventLoop
    let web: WebServer
    let port: Int
    let listener: Int32
    private let thread: Thread
    private let finished = DispatchSemaphore(value: 0)

    init(configure: (inout WebServerConfiguration) -> Void = { _ in }, setup: (WebServer) -> Void) throws {
        loop = try EventLoop(backend: try URingBackend())
        listener = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false)
        port = Socket.localPort(listener)
        var configuration = WebServerConfiguration(host: "127.0.0.1", port: port)
        configure(&configuration)
        web = WebServer(loop: loop, configuration: configuration, logger: Logger(label: "test"))
        loop.listen(socket: listener, delegate: web)
        setup(web)
        let loop = self.loop
        let done = finished
        thread = Thread {
            try? loop.run()
            done.signal()
        }
        thread.start()
    }

    /// Runs `body` on the loop thread and waits for its result.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let box = ResultBox<T>()
        let ready = DispatchSemaphore(value: 0)
        loop.execute {
            box.value = body()
            ready.signal()
        }
        ready.wait()
        return box.value!
    }

    /// Stops the way a worker does on SIGTERM (`WebServer.beginShutdown`: no new connections, 1001
    /// to every client, and the loop stops once their sockets are closed or the drain timeout passed),
    /// then releases the loop. Stopping the loop directly could leave a socket open (a client's FIN
    /// not yet read), and an open connection and its WebSocketServer hold each other: both leaked.
    func stop() {
        let web = self.web
        loop.execute { web.beginShutdown() }
        finished.wait()
        Socket.close(listener)
        loop.shutdown()
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}

/// A blocking client: handshake, masked frames out, frames in.
final class TestClient {
    let fd: Int32
    private var reader = MessageReader()
    private let readerConfiguration = MessageReader.Configuration(maxMessageSize: 64 << 20, requireMasking: false)
    private var pending: [UInt8] = []
    let responseHead: String

    enum Event: Equatable {
        case text(String)
        case binary([UInt8])
        case close(code: UInt16?, reason: String)
        case eof
    }

    init(port: Int, path: String = "/", headers: [String] = []) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        guard connectToLoopback(fd, port: port) == 0 else { throw SystemError.last("connect") }
        var timeout = timeval(tv_sec: Int(TestTime.seconds(10)), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + headers.map { $0 + "\r\n" }.joined() + "\r\n"
        Self.sendAll(fd, Array(request.utf8))
        var head: [UInt8] = []
        while !head.ends(with: [13, 10, 13, 10]) {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { break }
            head.append(byte)
        }
        responseHead = String(decoding: head, as: UTF8.self)
    }

    var statusCode: Int { Int(responseHead.split(separator: " ").dropFirst().first ?? "") ?? 0 }

    func send(text: String) { Self.sendAll(fd, FrameWriter.frame(opcode: .text, payload: Array(text.utf8), maskKey: 0x1234_5678)) }

    func sendClose(code: UInt16?, reason: String = "") {
        Self.sendAll(fd, FrameWriter.frame(opcode: .close, payload: FrameWriter.closePayload(code: code, reason: reason), maskKey: 0x0BAD_F00D))
    }

    /// The next message or close frame (or .eof when the server closed the TCP connection).
    func next() -> Event {
        while true {
            if !pending.isEmpty {
                var offset = 0
                let event: Event? = pending.withUnsafeMutableBytes { buffer in
                    guard let inbound = try? reader.next(buffer, &offset, readerConfiguration) else { return nil }
                    switch inbound {
                    case .text(let p): return .text(String(decoding: p, as: UTF8.self))
                    case .binary(let p): return .binary(Array(p))
                    case .close(let code, let reason): return .close(code: code, reason: String(decoding: reason, as: UTF8.self))
                    case .ping, .pong: return nil
                    }
                }
                pending.removeFirst(offset)
                if let event { return event }
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &chunk, chunk.count, 0)
            // Other suites in this process spawn children: a signal may interrupt the wait
            // (recv with SO_RCVTIMEO is not restarted), which is not the server closing.
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .eof }
            pending += chunk[0..<n]
        }
    }

    deinit { close(fd) }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8]) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}

/// Polls `condition` every millisecond until it holds or `seconds` have passed; returns whether it held.
func waitUntil(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() >= deadline { return false }
        usleep(1000)
    }
    return true
}
