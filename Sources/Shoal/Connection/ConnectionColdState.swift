// What a WebSocket connection needs only once it starts closing or pauses its reads, or when it
// speaks a subprotocol. Kept out of the connection object, which every idle client holds for its
// whole life, and allocated on first need: most connections spend their life open and reading,
// with none of it.

/// A connection's rarely used state.
final class ConnectionColdState {
    /// What onTerminate will report; set when the peer's close frame (or a failure) decides it.
    var terminateCode: Int?
    var terminateReason: String?
    /// Bytes that arrived after reading was paused, run when it resumes.
    var pendingInput: PendingInput?
    /// Waiting at the worker's `InputHold` (the bus is backed up): reads paused, or onTerminate not yet run.
    var heldForBus = false
    /// The subprotocol onConnection chose (`WebSocketConnection.protocol`).
    var subprotocol: String?
}
