// The request deadline of HTTP sessions (RequestDeadlines): an unfinished head gets 408, a
// keep-alive connection is given a new deadline by each request, and an upgraded connection
// leaves the list at once, so nothing of its handshake is left waiting for the timeout.
import Foundation
import Glibc
import Testing
import ShoalTestSupport
@testable import Shoal

@Suite(.serialized) struct RequestDeadlineTests {
    // Scaled: each test's timing (requests 100 ms apart, sleeps past the deadline) is relative to it.
    private static let timeout: UInt64 = TestTime.nanoseconds(1_000_000_000)

    private func server(_ journal: Journal = Journal()) throws -> InProcessServer {
        try InProcessServer(configure: { $0.requestTimeout = .nanoseconds(Self.timeout) }) { web in
            _ = WebSocketServer(on: web, handler: RecordingServer("s", journal))
        }
    }

    /// A raw TCP connection with a receive timeout.
    private func connect(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard connectToLoopback(fd, port: port) == 0 else { throw POSIXError(.ECONNREFUSED) }
        var wait = timeval(tv_sec: Int(TestTime.seconds(10)), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    private func send(_ fd: Int32, _ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Everything the server sends until it closes (or 10 s, scaled, pass).
    private func readToEnd(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// One response to a request already sent (its head and a body of Content-Length bytes).
    private func readResponse(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while !(bytes.count >= 4 && Array(bytes.suffix(4)) == [13, 10, 13, 10]) {
            let n = recv(fd, &byte, 1, 0)
            // A signal handled in this process ends a recv that has a timeout with EINTR: read on.
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { return nil }
            bytes.append(byte)
        }
        let head = String(decoding: bytes, as: UTF8.self)
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        var body = [UInt8](repeating: 0, count: length)
        var got = 0
        while got < length {
            let n = body.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, length - got, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            got += n
        }
        return head
    }

    @Test func anUnfinishedRequestHeadGets408() throws {
        let server = try server()
        defer { server.stop() }
        let fd = try connect(server.port)
        defer { close(fd) }
        send(fd, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        #expect(readToEnd(fd).hasPrefix("HTTP/1.1 408 "))
        #expect(server.onLoop { server.web.requestDeadlines.isEmpty })
    }

    @Test func eachKeepAliveRequestStartsANewDeadline() throws {
        let server = try server()
        defer { server.stop() }
        let fd = try connect(server.port)
        defer { close(fd) }
        // Requests 100 ms apart for 2.5 timeouts: only a deadline restarted by each one keeps the
        // connection open that long.
        let started = Date()
        var answered = 0
        while Date().timeIntervalSince(started) < 2.5 * Double(Self.timeout) / 1e9 {
            send(fd, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            guard let head = readResponse(fd) else { break }
            #expect(head.hasPrefix("HTTP/1.1 200 "))
            answered += 1
            usleep(100_000)
        }
        #expect(answered >= 10)
        // Then silence: closed without a response once the last deadline passes.
        #expect(readToEnd(fd) == "")
    }

    @Test func anUpgradedConnectionLeavesTheDeadlinesAndOutlivesThem() throws {
        let journal = Journal()
        let server = try server(journal)
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        #expect(client.statusCode == 101)
        #expect(server.onLoop { server.web.requestDeadlines.isEmpty })
        usleep(useconds_t(2 * Self.timeout / 1000))
        client.send(text: "still here")
        #expect(client.next() == .text("s:still here"))
    }

    @Test func aServerCloseHandshakeIsNotCutShortByTheUpgradesRequestDeadline() throws {
        // The request deadline was once a socket timer that stayed armed after the upgrade and fired
        // into the connection as its close-handshake timer: a close we started was aborted at the
        // request deadline instead of waiting `closeTimeout` for the client's answer.
        let journal = Journal()
        let server = try InProcessServer(configure: { $0.requestTimeout = .nanoseconds(Self.timeout) }) { web in
            _ = WebSocketServer(on: web, handler: ClosingServer(journal), options: .init(closeTimeout: .nanoseconds(TestTime.nanoseconds(10_000_000_000))))
        }
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        client.send(text: "close")
        #expect(client.next() == .close(code: 4001, reason: "bye"))
        usleep(useconds_t(2 * Self.timeout / 1000))  // past the request deadline, within closeTimeout
        client.sendClose(code: 1000)
        #expect(client.next() == .eof)
        shutdown(client.fd, Int32(SHUT_WR))  // our FIN ends the server's linger at once
        #expect(journal.wait { $0 == "terminate 1000" }, "journal: \(journal.all)")
    }
}

/// Closes a connection with 4001 "bye" when it says "close"; journals the code onTerminate reports.
private final class ClosingServer: WebSocketServerHandler, WebSocketConnectionHandler {
    let journal: Journal
    init(_ journal: Journal) { self.journal = journal }

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? { self }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {
        if event.data.text == "close" { ws.terminate(code: 4001, message: "bye") }
    }

    func onTerminate(_ ws: WebSocketConnection, _ event: WebSocketTerminateEvent) {
        journal.add("terminate \(event.code)")
    }
}
