// Two TLS sessions joined back to back in memory: what one writes is what the other receives,
// byte for byte, with no socket in between.
import ShoalTLS

final class MemoryPipe {
    let client: TLSSession
    let server: TLSSession
    private(set) var clientReceived: [UInt8] = []
    private(set) var serverReceived: [UInt8] = []
    private(set) var clientProgress: [TLSSession.Progress] = []
    private(set) var serverProgress: [TLSSession.Progress] = []
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
    private let transfer = UnsafeMutableRawBufferPointer.allocate(byteCount: 7_000, alignment: 16)

    init(client: TLSSession, server: TLSSession) {
        self.client = client
        self.server = server
    }

    deinit {
        scratch.deallocate()
        transfer.deallocate()
    }

    /// Moves bytes both ways until neither side has anything left to send. `chunk` cuts every
    /// transfer into pieces of at most that many bytes (records split across reads).
    func pump(chunk: Int = 7_000) throws {
        var moved = true
        while moved {
            moved = false
            while client.pendingOutputCount > 0 {
                let n = client.takeOutput(into: UnsafeMutableRawBufferPointer(rebasing: transfer[0..<min(chunk, transfer.count)]))
                serverProgress.append(try server.receive(UnsafeRawBufferPointer(rebasing: transfer[0..<n]), scratch: scratch) {
                    serverReceived.append(contentsOf: $0)
                })
                moved = true
            }
            while server.pendingOutputCount > 0 {
                let n = server.takeOutput(into: UnsafeMutableRawBufferPointer(rebasing: transfer[0..<min(chunk, transfer.count)]))
                clientProgress.append(try client.receive(UnsafeRawBufferPointer(rebasing: transfer[0..<n]), scratch: scratch) {
                    clientReceived.append(contentsOf: $0)
                })
                moved = true
            }
        }
    }
}
