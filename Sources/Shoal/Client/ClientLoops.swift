// Which loop a client runs on. A client created on a loop's thread (in a server's handler, inside a
// worker) runs on that loop, so its callbacks and the server's never run at once. Anywhere else (a
// plain program, a Task) it runs on the client loop: one loop of its own on its own thread,
// started the first time a client needs it and kept for the life of the process.
import Foundation
import ShoalRing
import Synchronization

enum ClientLoops {
    private final class WeakLoop: @unchecked Sendable {
        weak var loop: EventLoop?
        init(_ loop: EventLoop) { self.loop = loop }
    }

    private static let known = Mutex<[WeakLoop]>([])

    /// Makes `loop` one a client created on its thread runs on (every web server's loop).
    static func register(_ loop: EventLoop) {
        known.withLock { loops in
            loops.removeAll { $0.loop == nil }
            loops.append(WeakLoop(loop))
        }
    }

    /// The loop running on this thread, if it is a known one; else the client loop.
    static func forCurrentThread() -> EventLoop {
        let current = known.withLock { loops in loops.lazy.compactMap(\.loop).first { $0.inEventLoop } }
        return current ?? standalone
    }

    /// The client loop, started on first use (Swift runs this initializer once, thread-safely).
    static let standalone: EventLoop = {
        // The backend choice follows SHOAL_BACKEND like the server's; its one log line is not printed.
        let backend: any LoopBackend
        do {
            backend = try BackendProbe.makeBackend(receiveBuffers: 64, log: { _ in })
        } catch {
            fatalError("the WebSocket client cannot start its event loop: \(error)")
        }
        let loop: EventLoop
        do {
            loop = try EventLoop(backend: backend)
        } catch {
            fatalError("the WebSocket client cannot start its event loop: \(error)")
        }
        let thread = Thread {
            do { try loop.run() } catch { fatalError("the WebSocket client loop stopped: \(error)") }
        }
        thread.name = "shoal-client"
        thread.start()
        // Work handed over with `execute` before the thread entered `run()` waits in the loop's queue.
        register(loop)
        return loop
    }()
}
