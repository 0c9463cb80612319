// The server's onError: every refusal and failure reaches it in 4D's shape (statusText, errors of
// errCode / message / componentSignature) plus the HTTP status the client got.
import Foundation
import Testing
@testable import Shoal
import ShoalTestSupport

/// Keeps every server error event; refuses clients whose URL has `?refuse`.
final class ErrorRecordingServer: WebSocketServerHandler, WebSocketConnectionHandler, @unchecked Sendable {
    let errors = Locked<[WebSocketServerErrorEvent]>([])

    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? {
        event.request.query["refuse"] == nil ? self : nil
    }

    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {}

    func onError(_ wss: WebSocketServer, _ event: WebSocketServerErrorEvent) {
        errors.withLock { $0.append(event) }
    }

    /// The (errCode, status) of every error so far, once there are `count` of them (bounded wait).
    func codes(count: Int) -> [(Int, Int?)] {
        _ = waitUntil { errors.value.count >= count }
        return errors.value.map { ($0.errors.first?.errCode ?? -1, $0.status) }
    }
}

@Suite(.serialized) struct ServerErrorTests {
    @Test func everyRefusedUpgradeReachesOnErrorWithItsStatus() throws {
        let handler = ErrorRecordingServer()
        let server = try InProcessServer(configure: { $0.maxConnectionsPerAddress = 1 }) { web in
            _ = WebSocketServer(on: web, handler: handler, options: .init(
                path: "/p", allowedOrigins: try! OriginAllowList(["https://ok.example"])))
        }
        defer { server.stop() }
        #expect(try TestClient(port: server.port, path: "/p", headers: ["Origin: https://evil.example"]).statusCode == 403)
        #expect(try TestClient(port: server.port, path: "/p?refuse").statusCode == 403)
        #expect(try TestClient(port: server.port, path: "/elsewhere").statusCode == 404)
        let kept = try TestClient(port: server.port, path: "/p")
        #expect(kept.statusCode == 101)
        #expect(try TestClient(port: server.port, path: "/p").statusCode == 429)

        let codes = handler.codes(count: 4)
        #expect(codes.map(\.0) == [WebSocketErrorCode.originRefused, .refusedByHandler, .noServerForPath, .tooManyFromAddress].map(\.rawValue))
        #expect(codes.map(\.1) == [403, 403, 404, 429])
        let events = handler.errors.value
        #expect(events.allSatisfy { $0.type == "error" && $0.errors.count == 1 && $0.errors[0].componentSignature == "shoal" })
        #expect(events[0].statusText == "403 Forbidden")
        #expect(events[0].message.contains("https://evil.example"))
        #expect(events[2].message.contains("/elsewhere"))
    }

    @Test func aFullWorkerReportsWorkerFull() throws {
        let handler = ErrorRecordingServer()
        let server = try InProcessServer(configure: { $0.maxConnections = 1 }) { web in
            _ = WebSocketServer(on: web, handler: handler)
        }
        defer { server.stop() }
        let kept = try TestClient(port: server.port)
        #expect(kept.statusCode == 101)
        #expect(try TestClient(port: server.port).statusCode == 503)
        let codes = handler.codes(count: 1)
        #expect(codes.map(\.0) == [WebSocketErrorCode.workerFull.rawValue])
        #expect(codes.map(\.1) == [503])
    }

    @Test func aListenerThatCannotAcceptReportsListenerFailedWithoutStatus() throws {
        let handler = ErrorRecordingServer()
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: handler)
        }
        defer { server.stop() }
        // A listening socket shut down for reading makes accept fail (EINVAL), as a real failure would.
        Glibc.shutdown(server.listener, Int32(SHUT_RDWR))
        let codes = handler.codes(count: 1)
        #expect(codes.first?.0 == WebSocketErrorCode.listenerFailed.rawValue)
        #expect(codes.first.map { $0.1 == nil } == true)
        #expect(handler.errors.value.first?.statusText.contains("accept failed") == true)
    }
}
