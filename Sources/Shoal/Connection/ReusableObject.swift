// One object handed out again and again while nobody else keeps it: how `wss.connections` lists the
// other workers' connections without allocating a proxy per element. A 4D chat join loops over every
// connection; with 12 workers 11 of 12 are remote, and making, initialising and freeing a proxy for
// each was the largest cost left in a 12-worker chat storm.

/// The last object handed out, reused for the next element when the caller kept no reference to it.
/// Whoever holds a reference never sees the object change: uniqueness is checked on every reuse.
struct ReusableObject<Object: AnyObject> {
    private var object: Object?

    init() {}

    /// The object for the next element: the previous one, passed to `reuse` to point it at the new
    /// element, when only this holds it; else a new one from `make`.
    mutating func next(reuse: (Object) -> Void, make: () -> Object) -> Object {
        if isKnownUniquelyReferenced(&object), let object {
            reuse(object)
            return object
        }
        let made = make()
        object = made
        return made
    }
}
