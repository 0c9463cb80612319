// One worker's end of the bus channel to one other worker slot: a SOCK_SEQPACKET socket run by the
// worker's own event loop (multishot receive in, chunked send queue out).
import ShoalRing

/// Receives what other workers send over the bus.
public protocol BusReceiver: AnyObject {
    func busDelivered(_ message: BusMessage, from slot: Int)
}

/// The channel to one peer slot.
final class BusChannel: SocketDelegate {
    let peerSlot: Int
    private var decoder: BusDecoder
    private(set) var handle: SocketHandle?
    weak var receiver: (any BusReceiver)?

    init(peerSlot: Int, generation: UInt32) {
        self.peerSlot = peerSlot
        decoder = BusDecoder(generation: generation)
    }

    func opened(on handle: SocketHandle) {
        self.handle = handle
    }

    func received(_ bytes: UnsafeMutableRawBufferPointer, on handle: SocketHandle) {
        let peer = peerSlot
        decoder.feed(UnsafeRawBufferPointer(bytes)) { message in
            receiver?.busDelivered(message, from: peer)
        }
    }

    func readEnded(on handle: SocketHandle, error: Int32?) {
        // The supervisor holds the other end for its whole life, so this only happens when it is
        // gone; the worker cannot do anything useful for that peer any more.
        self.handle = nil
    }

    func closed(on handle: SocketHandle) {
        self.handle = nil
    }
}
