// What one worker asks another to do for connections it does not own. Kept as plain values so the codec
// (BusEncoder / BusDecoder) is pure and testable without sockets.

/// One request travelling over the bus from one worker to another.
///
/// Opcodes are WebSocket opcodes (4 bits: text 0x1, binary 0x2); the codec refuses anything wider.
public enum BusMessage: Equatable, Sendable {
    /// Send a data frame to every local connection of server `server` except connection `except` (0 = none).
    case broadcast(server: UInt32, except: Int64, opcode: UInt8, payload: [UInt8])
    /// Send a data frame to one connection owned by the receiving worker.
    case send(connection: Int64, opcode: UInt8, payload: [UInt8])
    /// Send the same data frame to several connections owned by the receiving worker (what one loop turn's sends
    /// of one payload to many remote connections become: the 4D chat loop over `wss.connections`), in list order.
    /// At most `BusEncoder.maxConnectionsPerMessage` ids, at least one.
    case sendMany(connections: [Int64], opcode: UInt8, payload: [UInt8])
    /// Close one connection: code nil → close frame without status.
    ///
    /// On the wire code 0 means "none", so `code: 0` arrives as nil; a reason longer than
    /// `BusEncoder.maxReasonLength` UTF-8 bytes is cut on a character boundary (a close frame cannot carry more).
    case terminate(connection: Int64, code: UInt16?, reason: String)
    /// The server with this index ends on the receiving worker (wss.terminate() on another worker).
    case terminateServer(server: UInt32)
}

/// The `kind` byte of a bus frame; every fragment of a message repeats its message's kind.
enum BusFrameKind: UInt8 {
    case broadcast = 1
    case send = 2
    case terminate = 3
    case terminateServer = 4
    case sendMany = 5
}
