// A synchronous hop to the worker's loop, for the few public members that must answer from loop
// state when called from another thread (`bufferedAmount`).
import Dispatch
import ShoalRing

extension EventLoop {
    /// `body`'s result, computed on the loop thread: at once when called there or when no thread runs
    /// the loop (setup, after a stop), otherwise at the loop's next turn while the caller waits.
    func onLoopAndWait<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        if inEventLoop || !isRunning { return body() }
        let answer = Answer<T>()
        execute {
            answer.value = body()
            answer.ready.signal()
        }
        // A loop that stops before its next turn never runs the task: then nobody else touches the
        // loop's state either, and the caller computes the answer itself.
        while answer.ready.wait(timeout: .now() + .milliseconds(50)) == .timedOut {
            if !isRunning { return body() }
        }
        return answer.value!
    }
}

/// The value a loop task hands back to the thread waiting for it (written before `ready` is signalled).
private final class Answer<T>: @unchecked Sendable {
    var value: T?
    let ready = DispatchSemaphore(value: 0)
}
