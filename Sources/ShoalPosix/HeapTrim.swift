// glibc keeps memory that the program freed in its heap arenas for reuse and gives it back to
// the kernel only when the top of a heap is free. After a storm of connections has left, the
// freed send chunks and connection objects sit between live blocks, so a worker's RSS would stay
// at its peak; malloc_trim(0) returns every whole free page (madvise) wherever it lies.
import CShoalSystem

public enum HeapTrim {
    /// Returns the heap's free pages to the kernel. Costs a walk over the arenas (milliseconds for
    /// a heap of hundreds of megabytes), so callers do it rarely, after a large release.
    public static func returnFreePages() {
        _ = shoal_malloc_trim(0)
    }

    /// Bytes of heap in use by the program (not counting what is free in the arenas).
    public static var bytesInUse: Int { Int(shoal_heap_in_use()) }
}
