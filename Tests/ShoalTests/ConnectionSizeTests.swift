// Every idle client holds a WebSocketConnection for its whole life: the object must stay within
// 136 bytes (with the header), a 144-byte malloc chunk; one byte more costs a 160-byte chunk.
import Testing
@testable import Shoal
#if canImport(Glibc)
import CShoalSystem  // malloc.h: malloc_usable_size
import Glibc
#endif

@Suite struct ConnectionSizeTests {
    /// The instance size the Swift runtime allocates for `type`, from its class metadata.
    private func instanceSize(_ type: AnyClass) -> Int {
        // Swift class metadata without Objective-C interop (Linux): kind, superclass, flags (u32),
        // instance address point (u32), then the instance size (u32) at byte 24.
        let metadata = unsafeBitCast(type, to: UnsafeRawPointer.self)
        return Int(metadata.load(fromByteOffset: 24, as: UInt32.self))
    }

    @Test func aConnectionFitsA144ByteMallocChunk() {
        let size = instanceSize(WebSocketConnection.self)
        #expect(size <= 136, "WebSocketConnection grew to \(size) bytes")
        #expect(size >= 100, "not an instance size: \(size)")
        #if canImport(Glibc)
        // What glibc's malloc gives an object of that size: the chunk every idle client costs.
        let block = malloc(size)!
        defer { free(block) }
        #expect(malloc_usable_size(block) <= 136, "a \(size)-byte object takes a larger malloc chunk than 144 bytes")
        #endif
    }
}
