// What a repeating loop timer holds weakly instead of its owner. A weak reference gives its target a
// side table for life, and every retain and release of such an object takes the runtime's slow path:
// a server object, retained once per recipient when a chat message goes to other workers' clients
// (each proxy in `wss.connections` holds it), spent a third of a 12-worker chat storm's CPU there.
// The side table goes to this small object instead; it lives exactly as long as its owner. Bus channels
// hold their receiver (the cluster link) through one too.
import ShoalCluster

/// Held strongly by `owner` only, weakly by timers and bus channels: nil once the owner is gone.
final class TimerTarget<Owner: AnyObject> {
    /// Valid while this object lives: only the owner keeps it alive.
    unowned(unsafe) let owner: Owner

    init(_ owner: Owner) {
        self.owner = owner
    }
}

extension TimerTarget: BusReceiver where Owner: BusReceiver {
    func busDelivered(_ message: BusMessage, from slot: Int) {
        owner.busDelivered(message, from: slot)
    }
}
