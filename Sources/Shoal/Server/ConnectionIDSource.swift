// Where connection ids come from. One worker uses a process counter; the cluster plugs in the
// shared-memory counter so ids are unique across workers and restarts.

/// Hands out connection ids: positive, never repeated for the source's life.
public protocol ConnectionIDSource: AnyObject {
    func nextID() -> Int
}

/// Ids from a counter in this process (single-worker mode).
public final class LocalConnectionIDs: ConnectionIDSource {
    private var last = 0
    public init() {}
    public func nextID() -> Int {
        last += 1
        return last
    }
}
