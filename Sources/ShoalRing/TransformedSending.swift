// What a socket with a transform (TLS) carries beyond a plain one: the transform and the plaintext
// its delegate wrote, not yet sealed. A side object, allocated only for such a socket and kept
// beside the slot table, so that a ws:// socket's slot holds nothing for it (every idle connection
// pays for its slot).

/// The transform of one socket and its plaintext queue. Owned by the loop, per slot; loop thread only.
final class TransformedSending {
    var transform: any StreamTransform
    /// What the delegate wrote, waiting to be sealed at flush (or for the transform to be established).
    var plainQueue = SendQueue()

    init(transform: any StreamTransform) {
        self.transform = transform
    }
}
