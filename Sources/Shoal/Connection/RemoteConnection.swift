// A connection owned by another worker process, as it appears in `wss.connections`: `send` and
// `terminate` travel over the bus to the owner, `status` is read from the shared registry, and
// `handler` is nil (it lives in the other process). Made on demand, never kept; a loop over
// `wss.connections` points one proxy at each remote connection in turn (`retarget`).
import ShoalCluster
import ShoalRing
import ShoalWire

final class RemoteConnection: WebSocketConnection, @unchecked Sendable {
    /// The worker slot that owns the connection.
    private(set) var ownerSlot: Int
    /// The worker's bus (nil outside a cluster), found once per proxy rather than through the server,
    /// the web server and the cluster link on every send.
    private let bus: Bus?

    init(id: Int, ownerSlot: Int, wss: WebSocketServer) {
        self.ownerSlot = ownerSlot
        bus = wss.web.cluster?.bus
        super.init(id: id, handler: nil, wss: wss, socket: SocketHandle(index: .max, generation: 0))
    }

    /// Makes this proxy stand for another connection of the same server. Only while nothing but the
    /// `connections` iterator holds it (`ReusableObject`), so no one who kept it sees it change.
    func retarget(id: Int, ownerSlot: Int) {
        self.id = id
        self.ownerSlot = ownerSlot
    }

    override var status: String {
        switch wss.web.cluster?.registry.status(id: id, slot: ownerSlot) {
        case .connected: return "Connected"
        case .closing: return "Closing"
        case nil: return "Closed"
        }
    }

    override var bufferedAmount: Int { 0 }

    override func sendFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, compress: Bool? = nil) -> WebSocketSendResult {
        bus?.send(toSlot: ownerSlot, connection: id, opcode: opcode.rawValue, payload: payload)
        return .forwarded
    }

    override func close(code: UInt16?, reason: String) {
        bus?.post(.terminate(connection: Int64(id), code: code, reason: reason), toSlot: ownerSlot)
    }
}
