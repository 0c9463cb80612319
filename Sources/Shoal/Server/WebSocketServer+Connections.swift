// What `wss.connections` returns: a snapshot of a server's connections on every worker. This worker's
// connections are its objects; the other workers' are (id, owner) pairs read from the registry, turned
// into proxies (`RemoteConnection`) only when an element is accessed. A loop over the snapshot, the 4D
// chat's way, reuses one proxy for all of them (ReusableObject), so a join into thousands of clients
// allocates nothing per recipient.

extension WebSocketServer {
    /// A snapshot of the server's connections (see `connections`).
    public struct Connections: RandomAccessCollection {
        struct RemoteEntry {
            let id: Int
            let slot: Int
        }

        let server: WebSocketServer
        let local: ContiguousArray<WebSocketConnection>
        let remote: ContiguousArray<RemoteEntry>

        public var startIndex: Int { 0 }
        public var endIndex: Int { local.count + remote.count }

        /// The element at `position`; an element owned by another worker is a new proxy each time.
        public subscript(position: Int) -> WebSocketConnection {
            if position < local.count { return local[position] }
            let entry = remote[position - local.count]
            return RemoteConnection(id: entry.id, ownerSlot: entry.slot, wss: server)
        }

        public func makeIterator() -> Iterator {
            Iterator(connections: self)
        }

        /// Goes over the elements in order; the other workers' connections come as one proxy pointed at
        /// each in turn, unless the caller kept the previous one (then it gets a new one, and the kept
        /// one stays what it was).
        public struct Iterator: IteratorProtocol {
            private let connections: Connections
            private var position = 0
            private var proxy = ReusableObject<RemoteConnection>()

            init(connections: Connections) {
                self.connections = connections
            }

            public mutating func next() -> WebSocketConnection? {
                let local = connections.local
                if position < local.count {
                    defer { position += 1 }
                    return local[position]
                }
                let remoteIndex = position - local.count
                guard remoteIndex < connections.remote.count else { return nil }
                position += 1
                let entry = connections.remote[remoteIndex]
                let server = connections.server
                return proxy.next(reuse: { $0.retarget(id: entry.id, ownerSlot: entry.slot) },
                                  make: { RemoteConnection(id: entry.id, ownerSlot: entry.slot, wss: server) })
            }
        }
    }
}
