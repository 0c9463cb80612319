// Which loop a client runs on. A client created on a loop's thread (in a server's handler, inside a
// worker) runs on that loop, so its callbacks and the server's never run at once. Anywhere else (a
// plain program, a Task) it runs on the client loop: one loop of its own on its own thread,
// started the first time a client needs it and kept for the life of the process.
// The list holds each loop through a `Registration` its web server keeps, weakly: a weak reference
// to the loop itself would give the loop a side table, and every retain and release of it (one or
// more per message sent) would take the runtime's slow path (30 % of a 12-worker chat storm's CPU).
import Foundation
import ShoalPosix
import ShoalRing

enum ClientLoops {
    /// A loop's place in the list, for as long as its owner keeps this object.
    final class Registration: @unchecked Sendable {
        let loop: EventLoop
        fileprivate init(_ loop: EventLoop) { self.loop = loop }
    }

    private final class WeakRegistration: @unchecked Sendable {
        weak var registration: Registration?
        init(_ registration: Registration) { self.registration = registration }
    }

    // A pthread mutex, not Synchronization.Mutex: ThreadSanitizer does not see the latter hand a
    // contended lock over and reported two servers registering at once as a race.
    private static let known = PosixMutex<[WeakRegistration]>([])

    /// Makes `loop` one a client created on its thread runs on (every web server's loop), until the
    /// returned registration is released.
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

    /// The client loop, started on first use.
    static var standalone: EventLoop { standaloneRegistration.loop }

    /// The client loop's registration, kept for the life of the process with the loop (Swift runs this
    /// initializer once, thread-safely).
    private static let standaloneRegistration: Registration = {
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
        return register(loop)
    }()
}
