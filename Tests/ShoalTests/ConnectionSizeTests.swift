// Every idle client holds a WebSocketConnection for its whole life: the object must stay within
// 152 bytes (with the header), a 160-byte malloc chunk; one byte more costs a 176-byte chunk.
import Testing
@testable import Shoal

@Suite struct ConnectionSizeTests {
    @Test func aConnectionFitsA160ByteMallocChunk() {
        // Swift class metadata without Objective-C interop (Linux): kind, superclass, flags (u32),
        // instance address point (u32), then the instance size (u32) at byte 24.
        let metadata = unsafeBitCast(WebSocketConnection.self as AnyClass, to: UnsafeRawPointer.self)
        let instanceSize = metadata.load(fromByteOffset: 24, as: UInt32.self)
        #expect(instanceSize <= 152, "WebSocketConnection grew to \(instanceSize) bytes")
        #expect(instanceSize >= 100, "not an instance size: \(instanceSize)")
    }
}
