// One connection to Redis kept up for a worker: `RedisLinkState` decides, this carries its actions
// out on the loop (a `HiredisConnection` per attempt, loop timers) and says when the link is up.
import ShoalRing

final class RedisLink {
    enum Role: String {
        case publisher
        case subscriber
    }

    let role: Role
    private unowned let loop: EventLoop
    private let address: String
    private let port: Int
    private(set) var state = RedisLinkState()
    private(set) var connection: HiredisConnection?
    /// Why the link is down (for /healthz and the log), nil while up.
    private(set) var lastError: String? = "not connected yet"
    private let onChange: (RedisLink, _ up: Bool, _ reason: String?) -> Void
    private let onMessage: (UnsafeRawBufferPointer) -> Void
    private let onPublishDone: () -> Void

    init(role: Role, loop: EventLoop, address: String, port: Int,
         onChange: @escaping (RedisLink, Bool, String?) -> Void,
         onMessage: @escaping (UnsafeRawBufferPointer) -> Void = { _ in },
         onPublishDone: @escaping () -> Void = {}) {
        self.role = role
        self.loop = loop
        self.address = address
        self.port = port
        self.onChange = onChange
        self.onMessage = onMessage
        self.onPublishDone = onPublishDone
    }

    var isUp: Bool { state.isUp }

    func start() { handle(.start) }
    func stop() { handle(.stop) }

    private func handle(_ event: RedisLinkState.Event, reason: String? = nil) {
        if let reason { lastError = reason }
        for action in state.handle(event, now: EventLoop.monotonicNanoseconds()) {
            switch action {
            case .connect:
                let connection = HiredisConnection(loop: loop, callbacks: .init(
                    connected: { [unowned self] in self.handle(.connected) },
                    failed: { [unowned self] in self.handle(.connectFailed, reason: $0) },
                    lost: { [unowned self] in self.handle(.lost, reason: $0) },
                    publishDone: { [unowned self] in self.onPublishDone() },
                    message: { [unowned self] in self.onMessage($0) }))
                self.connection = connection
                connection.connect(address: address, port: port)
            case .abandon:
                connection?.abandon()
                connection = nil
                if event == .timer { lastError = "no answer within \(RedisLinkState.connectTimeout / 1_000_000_000) s" }
            case .armTimer(let nanoseconds):
                loop.schedule(after: nanoseconds) { [weak self] in self?.handle(.timer) }
            case .becameUp:
                lastError = nil
                onChange(self, true, nil)
            case .becameDown:
                onChange(self, false, lastError)
            }
        }
        if case .backingOff = state.phase { connection = nil }
    }
}
