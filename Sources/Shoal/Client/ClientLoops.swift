// Which loop a client runs on. A client created on a loop's thread (in a server's handler, inside a
// worker) runs on that loop, so its callbacks and the server's never run at once. Anywhere else (a
// plain program, a Task) it runs on the client loop: one loop of its own on its own thread,
// started the first time a client needs it and kept for the life of the process.
import Foundation
import ShoalRing
import Synchronization

enum ClientLoops {
    /// What `register` returns: while its holder keeps it, clients created on the loop's thread run
    /// on that loop. The list below holds these weakly rather than the loops themselves: a weak
    /// reference gives its target a side table for life, and every retain and release of the loop
    /// (a few per message on a server) then took the runtime's slow path (docs/benchmarks.md,
    /// "Performance round 2: user space per message").
    final class Registration: Sendable {
        let loop: EventLoop
        fileprivate init(_ loop: EventLoop) { self.loop = loop }
    }

    private final class WeakRegistration: @unchecked Sendable {
        weak var registration: Registration?
        init(_ registration: Registration) { self.registration = registration }
    }

    private static let known = Mutex<[WeakRegistration]>([])

    /// Makes `loop` one a client created on its thread runs on (every web server's loop), for as long
    /// as the returned registration is kept.
    static func register(_ loop: EventLoop) -> Registration {
        let registration = Registration(loop)
        known.withLock { loops in
            loops.removeAll { $0.registration == nil }
            loops.append(WeakRegistration(registration))
        }
        return registration
    }

    /// The loop running on this thread, if it is a known one; else the client loop.
    static func forCurrentThread() -> EventLoop {
        let current = known.withLock { loops in
            loops.lazy.compactMap { $0.registration?.loop }.first { $0.inEventLoop }
        }
        return current ?? standalone
    }

    /// Keeps the client loop's own registration for the life of the process.
    private static let standaloneRegistration = Mutex<Registration?>(nil)

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
        standaloneRegistration.withLock { $0 = register(loop) }
        return loop
    }()
}
