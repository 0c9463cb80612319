// How a frame is written straight into a socket's send queue: header and payload copied once into
// send memory, nothing else allocated.
import ShoalRing
import ShoalWire

extension EventLoop {
    /// Queues one unmasked frame (server to client) on `socket`; `compressed` sets RSV1 (a payload
    /// from a MessageDeflater). Returns false if the socket is gone.
    @discardableResult
    func writeFrame(_ socket: SocketHandle, opcode: Opcode, payload: UnsafeRawBufferPointer, compressed: Bool = false) -> Bool {
        let headerSize = FrameWriter.headerSize(payloadLength: payload.count)
        return write(socket, reserving: headerSize + payload.count) { region in
            let written = FrameWriter.writeHeader(opcode: opcode, rsv1: compressed, payloadLength: payload.count,
                                                  into: region.baseAddress!)
            if payload.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: region[written...]).copyMemory(from: payload)
            }
        }
    }
}
