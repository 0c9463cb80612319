// A setup that creates two servers on one path fails at start with a clear error instead of
// leaving the second one silently without clients.
import Testing
@testable import Shoal

@Suite(.serialized) struct SetupCheckTests {
    @Test func twoServersOnOnePathFailTheSetupCheck() throws {
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: SilentServer(), options: .init(path: "/chat"))
            _ = WebSocketServer(on: web, handler: SilentServer(), options: .init(path: "/other"))
            _ = WebSocketServer(on: web, handler: SilentServer(), options: .init(path: "/chat"))
        }
        defer { server.stop() }
        let problem = server.onLoop { () -> String? in
            do { try server.web.checkSetup() } catch { return "\(error)" }
            return nil
        }
        #expect(problem == "WebSocket servers 0 and 2 both take path /chat: the second would never get a client")
        // The first server keeps the path.
        #expect(server.onLoop { server.web.webSocketServers.count } == 2)
    }

    @Test func twoServersWithoutPathFailTooAndDistinctPathsPass() throws {
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: SilentServer())
            _ = WebSocketServer(on: web, handler: SilentServer())
        }
        defer { server.stop() }
        let problem = server.onLoop { () -> String? in
            do { try server.web.checkSetup() } catch { return "\(error)" }
            return nil
        }
        #expect(problem?.contains("every path") == true)

        let fine = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: SilentServer(), options: .init(path: "/a"))
            _ = WebSocketServer(on: web, handler: SilentServer(), options: .init(path: "/b"))
            _ = WebSocketServer(on: web, handler: SilentServer())
        }
        defer { fine.stop() }
        #expect(fine.onLoop { () -> Bool in (try? fine.web.checkSetup()) != nil })
    }
}
