// Every public member of WebSocketServer and WebSocketConnection used from many Tasks at once while
// the loop serves clients: the results are right, and under `swift test --sanitize=thread` the run
// reports no data race (the members hop to the loop or read state safe to share).
import Foundation
import Testing
@testable import Shoal
import ShoalTestSupport

/// A connection handler that does nothing itself: the test drives the connections from Tasks.
final class SilentServer: WebSocketServerHandler, WebSocketConnectionHandler {
    func onConnection(_ wss: WebSocketServer, _ event: WebSocketConnectionEvent) -> (any WebSocketConnectionHandler)? { self }
    func onMessage(_ ws: WebSocketConnection, _ event: WebSocketMessageEvent) {}
}

@Suite(.serialized) struct ThreadSafetyTests {
    static let clientCount = 4
    static let taskCount = 32

    @Test func everyPublicMemberIsSafeFromManyTasks() async throws {
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: SilentServer())
        }
        defer { server.stop() }
        let wss = server.onLoop { server.web.webSocketServers[0] }
        let clients = try (0..<Self.clientCount).map { _ in try TestClient(port: server.port) }
        #expect(waitUntil { wss.connections.count == Self.clientCount })

        // Each task reads every member and sends one message to every client plus one broadcast.
        let seen = await withTaskGroup(of: [String].self) { group in
            for task in 0..<Self.taskCount {
                group.addTask {
                    var notes: [String] = []
                    let connections = wss.connections
                    notes.append("count \(connections.count)")
                    for ws in connections {
                        notes.append("\(ws.status) \(ws.bufferedAmount >= 0) \(ws.protocol ?? "-") \(ws.wss === wss)")
                        let result = ws.send("t\(task)")
                        notes.append("\(result)")
                    }
                    wss.broadcast("b\(task)")
                    notes.append("\(wss.terminated) \(wss.path ?? "*") \(wss.dataType)")
                    return notes
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(seen.filter { $0 == "count \(Self.clientCount)" }.count == Self.taskCount)
        #expect(seen.filter { $0 == "Connected true - true" }.count == Self.taskCount * Self.clientCount)
        #expect(seen.filter { $0 == "handedToLoop" }.count == Self.taskCount * Self.clientCount)
        #expect(seen.filter { $0 == "false * text" }.count == Self.taskCount)

        // Every client got every task's message and every broadcast, each task's pair in order.
        for client in clients {
            var texts: [String] = []
            for _ in 0..<(2 * Self.taskCount) {
                guard case .text(let text) = client.next() else { break }
                texts.append(text)
            }
            #expect(Set(texts) == Set((0..<Self.taskCount).flatMap { ["t\($0)", "b\($0)"] }))
            for task in 0..<Self.taskCount {
                #expect(texts.firstIndex(of: "t\(task)")! < texts.firstIndex(of: "b\(task)")!)
            }
        }

        // terminate from several Tasks at once: one terminate, every client closed with 1001.
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { wss.terminate() } }
        }
        #expect(wss.terminated)
        for client in clients {
            #expect(client.next() == .close(code: 1001, reason: "server terminated"))
            client.sendClose(code: 1001)
        }
        #expect(waitUntil { wss.connections.isEmpty })
    }

    @Test func connectionMembersFromThreadsWhileClientsComeAndGo() throws {
        let server = try InProcessServer { web in
            _ = WebSocketServer(on: web, handler: SilentServer())
        }
        defer { server.stop() }
        let wss = server.onLoop { server.web.webSocketServers[0] }
        let stop = Locked(false)
        let reads = Locked(0)
        let done = DispatchGroup()
        // Plain threads (not Tasks: they spin, and the test's clients block): the other way in.
        for _ in 0..<4 {
            done.enter()
            Thread.detachNewThread {
                while !stop.value {
                    for ws in wss.connections {
                        _ = ws.status
                        ws.send("x")
                        ws.terminate(code: 4000, message: "from a thread")
                    }
                    reads.withLock { $0 += 1 }
                    usleep(100)
                }
                done.leave()
            }
        }
        for _ in 0..<20 {
            let client = try TestClient(port: server.port)
            #expect(client.statusCode == 101)
            // Whatever the threads sent first, the connection ends with their terminate (4000).
            var last = client.next()
            while case .text = last { last = client.next() }
            #expect(last == .close(code: 4000, reason: "from a thread"))
            client.sendClose(code: 4000)
        }
        stop.withLock { $0 = true }
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(reads.value > 0)
        #expect(waitUntil { wss.connections.isEmpty })
    }
}
