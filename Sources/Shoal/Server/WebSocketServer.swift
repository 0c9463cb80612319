// 4D's WebSocketServer: one logical server per path. Each worker holds its own shard of it
// (its own object, its own connections); `ws.wss` is always the worker's own object, and
// `connections` lists the connections of every worker.
import ShoalCluster
import ShoalPosix
import ShoalRing
import ShoalWire
import Synchronization

/// A WebSocket server attached to a worker's web server, told apart from others by its path.
/// Every public member may be used from any thread (a `Task`, for instance): what changes is either
/// read from state safe to share or handed to the worker's loop, where handler callbacks run.
public final class WebSocketServer: @unchecked Sendable {
    /// The handler the server was created with (4D: `handler`).
    public let handler: any WebSocketServerHandler
    /// The path of the server; nil means it takes every upgrade request (4D: `path`).
    public var path: String? { options.path }
    /// The form of received text messages (4D: `dataType`).
    public var dataType: WebSocketDataType { options.dataType }
    /// True once `terminate()` was called, here or on another worker (4D: `terminated`).
    public var terminated: Bool { terminatedFlag.load(ordering: .acquiring) }
    private let terminatedFlag = Atomic<Bool>(false)
    /// `terminateLocally` ran (loop thread only): this worker's connections were closed.
    private var stopped = false
    public let options: WebSocketServerOptions
    unowned let web: WebServer
    /// The worker's loop (`web.loop`), kept here so that a connection reaches it without an unowned
    /// load and without storing it itself.
    let loop: EventLoop
    /// `options`' idle and pong timeouts on the idle clock (`IdleClock`).
    let idleTimeoutMilliseconds: UInt32
    let pongTimeoutMilliseconds: UInt32
    /// What every connection's reader enforces, from `options`.
    let readerConfiguration: MessageReader.Configuration
    /// Position in creation order: the same server on every worker has the same index (each worker
    /// runs the same setup), which is how the bus names it.
    let index: Int

    /// This worker's broadcasts and publishes on their way to their recipients.
    private(set) lazy var fanOuts = FanOutQueue(server: self, limits: fanOutLimits)
    /// How much of a fan-out one loop turn does (tests make slices small; read at the first fan-out).
    var fanOutLimits = FanOutSlicing.Limits()

    /// This worker's compressors and decompressor for `compression: .shared` (nothing is allocated
    /// until a client negotiates it).
    private(set) lazy var sharedDeflateCodecs = SharedDeflateCodecs(compressionLevel: options.compressionLevel)

    /// What this server's connections moved in this worker (unchecked exclusivity: bumped per
    /// message on the loop thread, each access a plain `+=`).
    @exclusivity(unchecked) var traffic = TrafficCounters()
    /// The worker's metrics block (a copy of the view, so the per-message path does not go
    /// through `web`).
    let metrics: WorkerMetrics
    /// The worker's hold on client input while the bus is backed up, checked on every receive
    /// (kept here for the same reason as `metrics`).
    let inputHold: InputHold

    /// This worker's live connections, in an array with swap-remove so joining and leaving are O(1).
    /// Changed on the loop thread under `liveLock`; the loop thread reads it without the lock (it is
    /// the only writer), other threads take the lock (`connections` from a `Task`).
    private var live: ContiguousArray<WebSocketConnection> = []
    private let liveLock = Lock()

    /// This worker's topic subscriptions (loop thread only; see WebSocketServer+Topics.swift).
    var topicTable: TopicTable<TopicSubscriber>
    /// Called on the loop for every broadcast and publish made on this worker through the API (not for those
    /// that arrived from other workers or through `deliverBroadcast` / `deliverPublished`): the place where a
    /// bridge to other hosts (Redis) takes them.
    var broadcastObserver: ((_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) -> Void)?
    var publishObserver: ((_ topic: String, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) -> Void)?

    /// Creates and starts a server on `web` (4D: `4D.WebSocketServer.new(handler; options)`).
    /// Its handler's onOpen runs before this returns.
    public init(on web: WebServer, handler: any WebSocketServerHandler, options: WebSocketServerOptions = .init()) {
        self.handler = handler
        self.options = options
        self.web = web
        loop = web.loop
        metrics = web.metrics
        inputHold = web.inputHold
        idleTimeoutMilliseconds = IdleClock.duration(options.idleTimeout.clampedNanoseconds)
        pongTimeoutMilliseconds = IdleClock.duration(options.pongTimeout.clampedNanoseconds)
        readerConfiguration = MessageReader.Configuration(maxMessageSize: options.maxMessageSize,
                                                          maxFragments: options.maxFragments)
        index = web.nextServerIndex
        topicTable = TopicTable(maxTopicsPerMember: options.maxTopicsPerConnection)
        web.add(self)
        handler.onOpen(self, WebSocketServerEvent(type: "open"))
        if options.idleTimeout.clampedNanoseconds > 0 { scheduleIdleSweep() }
        // A server created after the setup was checked: the cluster's flags name this setup's servers.
        if web.setupChecked { terminateIfTerminatedElsewhere() }
    }

    /// Terminates this server here if some worker terminated it before this worker started (a
    /// restart after a crash, a reload with the same servers): 4D's terminated server stays so.
    /// Its handler sees onOpen then onTerminate, and the server takes no client.
    func terminateIfTerminatedElsewhere() {
        if web.cluster?.node.segment.servers.isTerminated(server: index) == true { terminateLocally() }
    }

    /// One sweep over this worker's connections every `idleSweepInterval` instead of a timer per
    /// connection: a connection only stores a 32-bit timestamp, and 100,000 connections cost a
    /// comparison each per sweep.
    /// What the idle-sweep timer holds instead of this object (no side table here: see TimerTarget).
    private lazy var timerTarget = TimerTarget(self)

    private func scheduleIdleSweep() {
        loop.schedule(after: idleSweepInterval) { [weak timerTarget] in
            guard let self = timerTarget?.owner, !self.stopped else { return }
            let now = IdleClock.milliseconds(self.loop.now)
            for connection in self.live { connection.checkIdle(now: now) }
            self.scheduleIdleSweep()
        }
    }

    /// A quarter of the shorter timeout, between 50 ms and 1 s: a timeout fires at most 25% late.
    private var idleSweepInterval: UInt64 {
        let shorter = min(options.idleTimeout.clampedNanoseconds, max(options.pongTimeout.clampedNanoseconds, 1))
        return min(max(shorter / 4, 50_000_000), 1_000_000_000)
    }

    /// Every connection of this server that is not yet Closed, on every worker (4D: `connections`).
    /// This worker's connections are the real objects; the others are light proxies made when an
    /// element is accessed (`handler` nil, `send`/`terminate` over the bus, `status` from the registry),
    /// and a loop over the collection reuses one proxy for every element it does not keep.
    public var connections: Connections {
        let local = loop.inEventLoop ? live : liveLock.withLock { live }
        var remote: ContiguousArray<Connections.RemoteEntry> = []
        if let cluster = web.cluster {
            let registry = cluster.registry
            // Every server's live entries: at most a little more than needed, and no regrowing while a join's
            // listing gathers thousands.
            remote.reserveCapacity((0..<registry.workerSlots).reduce(0) {
                $1 == cluster.slot ? $0 : $0 + registry.liveCount(slot: $1)
            })
            cluster.registry.forEach(server: index, excludingSlot: cluster.slot) { id, slot, _ in
                remote.append(Connections.RemoteEntry(id: id, slot: slot))
            }
        }
        return Connections(server: self, local: local, remote: remote)
    }

    /// Closes every connection with 1001 (going away) and stops accepting upgrades, on every
    /// worker (4D: `terminate()`).
    /// `terminated` is true when this returns; the closing happens on the loop.
    public func terminate() {
        guard !terminatedFlag.exchange(true, ordering: .acquiringAndReleasing) else { return }
        onLoop {
            if let cluster = self.web.cluster {
                cluster.node.segment.servers.markTerminated(server: self.index)
                cluster.bus.postToAll(.terminateServer(server: UInt32(self.index)))
            }
            self.terminateLocally()
        }
    }

    func terminateLocally() {
        guard !stopped else { return }
        stopped = true
        terminatedFlag.store(true, ordering: .releasing)
        web.remove(self)
        // Each close first delivers what this server's fan-outs still hold for that connection.
        for connection in live { connection.close(code: 1001, reason: "server terminated") }
        fanOuts.dropAll()
        handler.onTerminate(self, WebSocketServerEvent(type: "terminate"))
    }

    /// Calls the handler's onError with one error (4D's shape: `statusText`, `errors`), plus the HTTP
    /// status the client got, if one did.
    func reportError(_ code: WebSocketErrorCode, status: Int?, message: String) {
        handler.onError(self, WebSocketServerErrorEvent(status: status, errors: [
            WebSocketErrorInfo(errCode: code.rawValue, message: message)]))
    }

    /// Sends `text` to every connection on every worker except the one with id `except` (Shoal's
    /// addition to 4D: one bus message per worker, the frame written once per recipient locally).
    public func broadcast(_ text: String, except: Int? = nil) {
        guard loop.inEventLoop else { return loop.execute { self.broadcast(text, except: except) } }
        var copy = text
        copy.withUTF8 { broadcastFrame(.text, UnsafeRawBufferPointer($0), except: except) }
    }

    /// Binary version of `broadcast(_:except:)`.
    public func broadcast(_ bytes: [UInt8], except: Int? = nil) {
        guard loop.inEventLoop else { return loop.execute { self.broadcast(bytes, except: except) } }
        bytes.withUnsafeBytes { broadcastFrame(.binary, $0, except: except) }
    }

    /// JSON version of `broadcast(_:except:)`: a text frame holding the value as JSON Stringify writes it.
    public func broadcast(_ value: JSONValue, except: Int? = nil) {
        guard loop.inEventLoop else { return loop.execute { self.broadcast(value, except: except) } }
        var encoded: [UInt8] = []
        value.write(into: &encoded)
        encoded.withUnsafeBytes { broadcastFrame(.text, $0, except: except) }
    }

    /// `broadcast` of a message in the form it arrived (`event.data`): text and objects as text
    /// frames, blobs as binary frames.
    public func broadcast(_ data: WebSocketData, except: Int? = nil) {
        switch data {
        case .text(let text): broadcast(text, except: except)
        case .blob(let bytes): broadcast(bytes, except: except)
        case .object(let value): broadcast(value, except: except)
        }
    }

    private func broadcastFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, except: Int?) {
        web.cluster?.bus.broadcast(server: index, except: except ?? 0, opcode: opcode.rawValue, payload: payload)
        broadcastLocally(opcode, payload, except: except ?? 0)
        broadcastObserver?(opcode, payload)
    }

    /// A broadcast that came from outside this host (loop thread): to this worker's connections and, when
    /// `toOtherWorkers`, to the other workers' (false when every worker receives it from outside itself).
    func deliverBroadcast(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, toOtherWorkers: Bool) {
        if toOtherWorkers {
            web.cluster?.bus.broadcast(server: index, except: 0, opcode: opcode.rawValue, payload: payload)
        }
        broadcastLocally(opcode, payload, except: 0)
    }

    /// The local part of a broadcast (also what a broadcast from another worker becomes here).
    func broadcastLocally(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, except: Int) {
        fanOut(opcode, payload, to: live, except: except)
    }

    /// Sends one message to each of `recipients` but `except` (the local part of a broadcast or a publish),
    /// in slices across loop turns when there are many (FanOutQueue.swift).
    func fanOut<Recipients: Sequence<WebSocketConnection>>(
        _ opcode: Opcode, _ payload: UnsafeRawBufferPointer, to recipients: Recipients, except: Int
    ) {
        fanOuts.fanOut(opcode, payload, to: recipients, except: except)
    }

    func connectionOpened(_ connection: WebSocketConnection) {
        connection.indexInServer = Int32(live.count)
        liveLock.withLock { live.append(connection) }
    }

    func connectionClosed(_ connection: WebSocketConnection) {
        leaveAllTopics(connection)
        let index = Int(connection.indexInServer)
        guard index >= 0, index < live.count, live[index] === connection else { return }
        liveLock.withLock {
            let last = live.removeLast()
            if index < live.count {
                live[index] = last
                last.indexInServer = Int32(index)
            }
        }
        connection.indexInServer = -1
        // Waiting fan-outs hold their recipients, which hold this server: with no connection left
        // there is nobody to deliver to, and the server must not be kept alive by them.
        if live.isEmpty { fanOuts.dropAll() }
    }

    /// Runs `body` on the loop thread: now when called there, else at the loop's next turn.
    func onLoop(_ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }
}
