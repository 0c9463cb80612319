// Input that reached a connection after its reads were paused (inbound backpressure). With io_uring
// a socket buffer's worth of receive completions can already be waiting when the pause is asked for;
// those bytes are kept here, in order, and run once the client's queue drains.

/// Bytes kept while reading is paused, and how far they have been run.
final class PendingInput {
    private(set) var bytes: [UInt8] = []
    /// Bytes at the front already handed to the reader.
    var consumed = 0

    func append(_ more: UnsafeRawBufferPointer) {
        // Drop what was run once it is most of the array, so a connection paused again and again
        // neither copies its backlog each time nor keeps what it has run.
        if consumed > 0 && consumed >= bytes.count / 2 {
            bytes.removeFirst(consumed)
            consumed = 0
        }
        bytes.append(contentsOf: more)
    }

    /// The bytes, for the reader to unmask in place; only the unrun part may be handed out.
    func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
        bytes.withUnsafeMutableBytes(body)
    }
}
