// The kernel-shared ring of receive buffers that multishot receive picks from.
// liburing 2.3 (Debian 12) has no io_uring_setup_buf_ring, so we map the ring ourselves and
// register it with io_uring_register_buf_ring.
import CLibUring
import Glibc
import ShoalPosix

/// Up to `count` buffers of `bufferSize` bytes, lent to the kernel through a registered buffer ring.
///
/// Ownership: a buffer belongs to the kernel while it sits in the ring; a receive completion
/// hands it to the loop, which must `recycle` it once the bytes were consumed (the loop does
/// so right after the socket's delegate returns).
///
/// The ring is a FIFO: a recycled buffer goes behind every other lent one, so each lent buffer
/// is written in turn and its pages become resident. Lending all `count` at once would make a
/// quiet worker hold `count` pages or more (1,024 buffers: 4 MiB after a few thousand handshakes,
/// 400 B per connection at 10,000 idle ones). So only `initiallyLent` buffers circulate at first,
/// and `lendMore()` doubles that when the kernel ran out (-ENOBUFS): resident memory follows the
/// peak number of receives one loop turn had to hold, not the maximum.
final class ProvidedBufferRing {
    let group: UInt16
    let count: Int
    let bufferSize: Int
    /// Buffers circulating in the ring (the others were never handed to the kernel).
    private(set) var lent: Int
    static let initiallyLent = 64
    private let ring: UnsafeMutablePointer<io_uring_buf_ring>
    private let ringBytes: Int
    private let storage: UnsafeMutableRawPointer
    private let mask: Int32
    /// The id put at each ring position, and the position each id was last put at: a bundled
    /// receive completion names only its first buffer, the others are those that followed it in
    /// the ring. A position is written again only once the kernel took the buffer there and the
    /// ring went all the way round, i.e. after the loop recycled every buffer the kernel took
    /// after it (completions arrive in the order the kernel took their buffers).
    private let idAt: UnsafeMutablePointer<UInt16>
    private let positionOf: UnsafeMutablePointer<UInt16>
    /// Our copy of the ring's tail (the kernel reads the shared one; both wrap at 16 bits).
    private var tail: UInt16 = 0

    /// Maps and registers the ring. `count` must be a power of two (kernel requirement).
    init(uring: UnsafeMutablePointer<io_uring>, group: UInt16, count: Int, bufferSize: Int) throws(SystemError) {
        precondition(count > 0 && count & (count - 1) == 0 && count <= 32768, "buffer count must be a power of two ≤ 32768")
        self.group = group
        self.count = count
        self.bufferSize = bufferSize
        ringBytes = Int(shoal_buf_ring_size(UInt32(count)))
        // Anonymous mappings are page aligned, as the kernel requires for the ring, and the buffer
        // pages are only backed by memory once the kernel first writes into them.
        guard let ringMemory = mmap(nil, ringBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              ringMemory != MAP_FAILED else { throw SystemError.last("mmap(buffer ring)") }
        guard let bufferMemory = mmap(nil, count * bufferSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              bufferMemory != MAP_FAILED else {
            munmap(ringMemory, ringBytes)
            throw SystemError.last("mmap(receive buffers)")
        }
        ring = ringMemory.assumingMemoryBound(to: io_uring_buf_ring.self)
        storage = bufferMemory
        mask = io_uring_buf_ring_mask(UInt32(count))
        idAt = .allocate(capacity: count)
        positionOf = .allocate(capacity: count)

        var registration = io_uring_buf_reg()
        registration.ring_addr = UInt64(UInt(bitPattern: ringMemory))
        registration.ring_entries = UInt32(count)
        registration.bgid = group
        let rc = io_uring_register_buf_ring(uring, &registration, 0)
        guard rc == 0 else {
            munmap(ringMemory, ringBytes)
            munmap(bufferMemory, count * bufferSize)
            idAt.deallocate()
            positionOf.deallocate()
            throw SystemError("io_uring_register_buf_ring", errno: -rc)
        }
        io_uring_buf_ring_init(ring)
        lent = 0
        lend(upTo: min(count, Self.initiallyLent))
    }

    /// Doubles the buffers in circulation, up to `count`. Returns false when all are lent already.
    @discardableResult
    func lendMore() -> Bool {
        guard lent < count else { return false }
        lend(upTo: min(count, lent * 2))
        return true
    }

    private func lend(upTo total: Int) {
        let added = total - lent
        for offset in 0..<added {
            let id = lent + offset
            io_uring_buf_ring_add(ring, storage + id * bufferSize, UInt32(bufferSize), UInt16(id), mask, Int32(offset))
            remember(id: UInt16(id), at: tail &+ UInt16(offset))
        }
        io_uring_buf_ring_advance(ring, Int32(added))
        tail &+= UInt16(added)
        lent = total
    }

    @inline(__always)
    private func remember(id: UInt16, at ringIndex: UInt16) {
        let position = Int(ringIndex) & Int(mask)
        idAt[position] = id
        positionOf[Int(id)] = UInt16(position)
    }

    /// The buffer `offset` places after buffer `first` in the ring (a bundle's later buffers).
    /// Read them all before recycling any of the bundle's buffers.
    func buffer(after first: UInt16, by offset: Int) -> UInt16 {
        idAt[(Int(positionOf[Int(first)]) + offset) & Int(mask)]
    }

    /// The first `length` bytes of buffer `id`.
    func bytes(id: UInt16, length: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + Int(id) * bufferSize, count: length)
    }

    /// Puts buffer `id` back at the ring's tail so the kernel can fill it again.
    func recycle(id: UInt16) {
        io_uring_buf_ring_add(ring, storage + Int(id) * bufferSize, UInt32(bufferSize), id, mask, 0)
        remember(id: id, at: tail)
        io_uring_buf_ring_advance(ring, 1)
        tail &+= 1
        filledSinceRelease = true
    }

    /// Whether the kernel filled a buffer since the last `releasePages` (nothing to hand back if not).
    private var filledSinceRelease = false

    /// Hands the pages of every buffer back to the kernel (MADV_DONTNEED: they read as zeros and
    /// are backed again when next written). The ring is a FIFO, so a burst leaves every lent
    /// buffer resident (16 KiB each, 1 MiB at 64) long after it is over. Only call it when no
    /// buffer holds bytes the loop has not consumed and the kernel cannot write into one during
    /// the call: see ReceiveBufferRelease. One madvise over the whole area; the never-lent part
    /// has no pages, so it costs nothing there.
    func releasePages() {
        guard filledSinceRelease else { return }
        filledSinceRelease = false
        _ = madvise(storage, count * bufferSize, MADV_DONTNEED)
    }

    /// Bytes of the buffers backed by memory now (mincore), for tests and diagnostics.
    func residentBytes() -> Int {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pages = (count * bufferSize + pageSize - 1) / pageSize
        var vector = [UInt8](repeating: 0, count: pages)
        guard mincore(storage, count * bufferSize, &vector) == 0 else { return -1 }
        return vector.reduce(0) { $0 + Int($1 & 1) } * pageSize
    }

    /// Unregisters and unmaps; the ring must not be used afterwards.
    func release(uring: UnsafeMutablePointer<io_uring>) {
        _ = io_uring_unregister_buf_ring(uring, Int32(group))
        munmap(UnsafeMutableRawPointer(ring), ringBytes)
        munmap(storage, count * bufferSize)
        idAt.deallocate()
        positionOf.deallocate()
    }
}
