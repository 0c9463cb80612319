// Which sockets sit in the io_uring ring's registered file table ("direct descriptors"), and at
// which index. An operation that names a socket by its table index (IOSQE_FIXED_FILE) skips the
// kernel's descriptor lookup and the file reference count taken and dropped around it (fget and
// fput: 0.5-1 % of a worker's CPU under echo load, measured in docs/io_uring.md). The socket
// keeps its ordinary descriptor too, for shutdown, setsockopt and close.
//
// Pure bookkeeping: URingBackend turns `assign` and `release` into the ring operations that
// install and remove the socket.

/// A fixed-size table of indices handed to descriptors, lowest never-used index first, then
/// released ones (most recently released first).
struct DirectDescriptorTable {
    /// Indices the ring's table has (registered sparse, all empty at first).
    let capacity: Int32
    /// `indexOf[fd]`: the table index of descriptor `fd`, or -1. Grows to the highest descriptor seen.
    private var indexOf: ContiguousArray<Int32> = []
    /// Indices released and free again.
    private var released: [Int32] = []
    /// Indices below this were handed out at least once.
    private var highWater: Int32 = 0
    /// Descriptors in the table now.
    private(set) var count = 0

    init(capacity: Int32) {
        self.capacity = capacity
    }

    /// The table index of `fd`, if it has one.
    @inline(__always)
    func index(of fd: Int32) -> Int32? {
        guard fd >= 0, Int(fd) < indexOf.count else { return nil }
        let index = indexOf[Int(fd)]
        return index >= 0 ? index : nil
    }

    /// Gives `fd` a free index; nil when every index is taken (the socket then stays an ordinary
    /// descriptor) or `fd` already has one.
    mutating func assign(_ fd: Int32) -> Int32? {
        guard fd >= 0, index(of: fd) == nil else { return nil }
        let index: Int32
        if let reused = released.popLast() {
            index = reused
        } else if highWater < capacity {
            index = highWater
            highWater += 1
        } else {
            return nil
        }
        if Int(fd) >= indexOf.count {
            indexOf.append(contentsOf: repeatElement(-1, count: Int(fd) + 1 - indexOf.count))
        }
        indexOf[Int(fd)] = index
        count += 1
        return index
    }

    /// Frees `fd`'s index and returns it (nil: `fd` had none). The caller removes it from the
    /// ring's table before the index is handed out again (ring operations run in order).
    mutating func release(_ fd: Int32) -> Int32? {
        guard let index = index(of: fd) else { return nil }
        indexOf[Int(fd)] = -1
        released.append(index)
        count -= 1
        return index
    }
}
