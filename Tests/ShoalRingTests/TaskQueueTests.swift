// The loop's cross-thread task queue under contention: producers on several threads push while
// the consumer drains, as `execute` from handler threads does against the loop's turns.
// Under ThreadSanitizer this is the test that exercises a contended lock hand-over (the queue once
// used a lock whose hand-over TSan could not see, and TSan reported push/takeAll as a race).
import Dispatch
import Foundation
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite struct TaskQueueTests {
    @Test func tasksPushedFromManyThreadsAtOnceAreEachTakenExactlyOnceInTheirThreadsOrder() {
        let producers = 8
        let perProducer = 2_000
        let queue = TaskQueue()
        let ran = Locked([[Int]](repeating: [], count: producers))
        let start = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for producer in 0..<producers {
            done.enter()
            Thread {
                start.wait()
                for number in 0..<perProducer {
                    _ = queue.push { ran.withLock { $0[producer].append(number) } }
                }
                done.leave()
            }.start()
        }
        for _ in 0..<producers { start.signal() }
        // The consumer: drain in turns, as the loop does, until every producer is done and the queue is empty.
        let deadline = Date().addingTimeInterval(TestTime.seconds(60))
        var finished = false
        while Date() < deadline {
            finished = done.wait(timeout: .now()) == .success
            let tasks = queue.takeAll()
            for task in tasks { task() }
            if finished && tasks.isEmpty { break }
        }
        #expect(finished)
        let lists = ran.value
        for producer in 0..<producers {
            #expect(lists[producer] == Array(0..<perProducer), "producer \(producer)")
        }
        // Drained: the next push finds the queue empty (the caller rings the loop's doorbell), the one after not.
        #expect(queue.push {})
        #expect(!queue.push {})
        #expect(queue.takeAll().count == 2)
    }
}
