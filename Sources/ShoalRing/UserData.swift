// The 64-bit tag every operation carries to the kernel and back. Bit layout:
//
//   bits 63-56  operation (`UserData.Operation`)
//   bits 55-32  generation of the socket slot (24 bits, wraps)
//   bits 31-0   socket slot index (or a listener/loop-internal index)
//
// The generation makes completions for a slot that was closed and reused recognisable as stale.

/// A decoded operation tag.
struct UserData: Equatable {
    enum Operation: UInt8 {
        case accept = 1
        case receive = 2
        case send = 3
        case wakeup = 4
        case cancel = 5
        /// A `DescriptorWatch` poll; the generation field says read, write or its cancel.
        case poll = 6
        /// An outbound connect (`EventLoop.connect(to:delegate:)`).
        case connect = 7
    }

    var operation: Operation
    var generation: UInt32
    var index: UInt32

    static let generationMask: UInt32 = 0xFF_FFFF

    init(_ operation: Operation, generation: UInt32 = 0, index: UInt32) {
        self.operation = operation
        self.generation = generation & Self.generationMask
        self.index = index
    }

    init?(raw: UInt64) {
        guard let op = Operation(rawValue: UInt8(truncatingIfNeeded: raw >> 56)) else { return nil }
        operation = op
        generation = UInt32(truncatingIfNeeded: raw >> 32) & Self.generationMask
        index = UInt32(truncatingIfNeeded: raw)
    }

    var raw: UInt64 {
        UInt64(operation.rawValue) << 56 | UInt64(generation) << 32 | UInt64(index)
    }
}
