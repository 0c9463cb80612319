// The io_uring ring's set-up on this kernel (6.18): one issuer, completion work deferred to the
// loop's own waits, the ring descriptor registered, and the older flag sets when asked.
import Dispatch
import Foundation
import Glibc
import ShoalPosix
import ShoalTestSupport
import Testing

@testable import ShoalRing

@Suite(.serialized) struct URingSetupTests {
    @Test func theRingIsSetUpForOneIssuerWithDeferredTaskWork() throws {
        let backend = try URingBackend()
        defer { backend.shutdown() }
        #expect(backend.setupFlags.contains([.singleIssuer, .deferTaskRun]))
        #expect(backend.setupFlags.description == "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL")
        #expect(!backend.ringDescriptorRegistered)  // per thread: done by the loop thread
    }

    @Test func theThreadThatFirstWaitsBecomesTheIssuerAndSeesItsCompletions() throws {
        // Created here, driven from another thread, as a worker's harness does: with DEFER_TASKRUN
        // the read completes only once that thread waits in the kernel.
        let backend = try URingBackend()
        defer { backend.shutdown() }
        let wakeup = try EventFD()
        defer { wakeup.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        let shared = Unchecked(value: (backend: backend, buffer: buffer))
        let done = DispatchSemaphore(value: 0)
        let seen = Locked<(results: [Int32], registered: Bool)>(([], false))
        let thread = Thread {
            let (backend, buffer) = shared.value
            var results: [Int32] = []
            backend.prepareRead(descriptor: wakeup.descriptor, into: buffer, userData: 42)
            try? backend.submitAndWait(timeoutNanoseconds: 0)
            backend.drainCompletions(limit: .max) { results.append($0.result) }
            wakeup.signal()
            try? backend.submitAndWait(timeoutNanoseconds: 1_000_000_000)
            backend.drainCompletions(limit: .max) { results.append($0.result) }
            let registered = backend.ringDescriptorRegistered
            seen.withLock { $0 = (results, registered) }
            done.signal()
        }
        thread.start()
        #expect(done.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(seen.value.results == [8])
        #expect(seen.value.registered)
    }

    @Test func theCooperativeSetUpStaysAvailable() throws {
        var configuration = URingConfiguration()
        configuration.deferTaskRun = false
        let backend = try URingBackend(configuration: configuration)
        defer { backend.shutdown() }
        #expect(backend.setupFlags.description == "COOP_TASKRUN|SUBMIT_ALL")
    }
}
