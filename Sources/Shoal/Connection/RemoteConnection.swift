// A connection owned by another worker process, as it appears in `wss.connections`: `send` and
// `terminate` travel over the bus to the owner, `status` is read from the shared registry, and
// `handler` is nil (it lives in the other process). Made on demand, never kept.
import ShoalCluster
import ShoalRing
import ShoalWire

final class RemoteConnection: WebSocketConnection, @unchecked Sendable {
    /// The worker slot that owns the connection.
    let ownerSlot: Int

    init(id: Int, ownerSlot: Int, wss: WebSocketServer) {
        self.ownerSlot = ownerSlot
        super.init(id: id, handler: nil, wss: wss, socket: SocketHandle(index: .max, generation: 0))
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
        wss.web.cluster?.bus.send(toSlot: ownerSlot, connection: id, opcode: opcode.rawValue, payload: payload)
        return .forwarded
    }

    override func close(code: UInt16?, reason: String) {
        wss.web.cluster?.bus.post(.terminate(connection: Int64(id), code: code, reason: reason), toSlot: ownerSlot)
    }
}
