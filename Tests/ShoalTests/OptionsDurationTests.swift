// Options are Durations (`.seconds(30)`); the deprecated nanosecond properties still read and write them.
import Foundation
import Testing
@testable import Shoal

@Suite struct OptionsDurationTests {
    @Test func durationsBecomeWholeNanosecondsClamped() {
        #expect(Duration.milliseconds(1500).clampedNanoseconds == 1_500_000_000)
        #expect(Duration.nanoseconds(7).clampedNanoseconds == 7)
        #expect(Duration.zero.clampedNanoseconds == 0)
        #expect(Duration.seconds(-3).clampedNanoseconds == 0)
        #expect(Duration.seconds(Int64.max).clampedNanoseconds == .max)
    }

    @Test func defaultsAreTheDocumentedDurations() {
        let options = WebSocketServerOptions()
        #expect(options.closeTimeout == .seconds(2))
        #expect(options.idleTimeout == .seconds(120))
        #expect(options.pongTimeout == .seconds(30))
        let configuration = WebServerConfiguration()
        #expect(configuration.requestTimeout == .seconds(10))
        #expect(configuration.linger == .seconds(2))
        #expect(configuration.drainTimeout == .seconds(5))
    }

    @available(*, deprecated)
    @Test func deprecatedNanosecondPropertiesAreViewsOfTheDurations() {
        var options = WebSocketServerOptions(closeTimeout: .milliseconds(250))
        #expect(options.closeTimeoutNanoseconds == 250_000_000)
        options.idleTimeoutNanoseconds = 3_000_000_000
        #expect(options.idleTimeout == .seconds(3))
        var configuration = WebServerConfiguration()
        configuration.requestTimeoutNanoseconds = 1_000
        #expect(configuration.requestTimeout == .microseconds(1))
    }

    @Test func idleAndPongTimeoutsGivenAsDurationsCloseASilentClient() throws {
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: SilentServer(), options: .init(
                idleTimeout: .milliseconds(100), pongTimeout: .milliseconds(100)))
        }
        defer { server.stop() }
        let client = try TestClient(port: server.port)
        let started = Date()
        // TestClient answers no ping: after the idle ping and the pong timeout, close 1001.
        #expect(client.next() == .close(code: 1001, reason: "idle timeout"))
        #expect(Date().timeIntervalSince(started) < 2)
    }
}
