// 4D's WebSocketServer: one logical server per path. Each worker holds its own shard of it
// (its own object, its own connections); `ws.wss` is always the worker's own object.

/// A WebSocket server attached to a worker's web server, told apart from others by its path.
/// Use it on the loop thread (handler callbacks run there).
public final class WebSocketServer: @unchecked Sendable {
    /// The handler the server was created with (4D: `handler`).
    public let handler: any WebSocketServerHandler
    /// The path of the server; nil means it takes every upgrade request (4D: `path`).
    public var path: String? { options.path }
    /// The form of received text messages (4D: `dataType`).
    public var dataType: WebSocketDataType { options.dataType }
    /// True once `terminate()` ran (4D: `terminated`).
    public private(set) var terminated = false
    public let options: WebSocketServerOptions
    unowned let web: WebServer

    /// Live connections, in an array with swap-remove so joining and leaving are O(1).
    private var live: ContiguousArray<WebSocketConnection> = []

    /// Creates and starts a server on `web` (4D: `4D.WebSocketServer.new(handler; options)`).
    /// Its handler's onOpen runs before this returns.
    public init(on web: WebServer, handler: any WebSocketServerHandler, options: WebSocketServerOptions = .init()) {
        self.handler = handler
        self.options = options
        self.web = web
        web.add(self)
        handler.onOpen(self, WebSocketServerEvent(type: "open"))
    }

    /// Every connection of this server that is not yet Closed (4D: `connections`).
    public var connections: Connections { Connections(elements: live) }

    /// Closes every connection with 1001 (going away) and stops accepting upgrades (4D: `terminate()`).
    public func terminate() {
        guard !terminated else { return }
        terminated = true
        web.remove(self)
        for connection in live { connection.close(code: 1001, reason: "server terminated") }
        handler.onTerminate(self, WebSocketServerEvent(type: "terminate"))
    }

    /// Sends `text` to every connection except the one with id `except` (Shoal's addition to 4D:
    /// the frame is encoded once per worker and shared by every recipient).
    public func broadcast(_ text: String, except: Int? = nil) {
        var copy = text
        copy.withUTF8 { bytes in broadcastFrame(.text, UnsafeRawBufferPointer(bytes), except: except) }
    }

    /// Binary version of `broadcast(_:except:)`.
    public func broadcast(_ bytes: [UInt8], except: Int? = nil) {
        bytes.withUnsafeBytes { broadcastFrame(.binary, $0, except: except) }
    }

    private func broadcastFrame(_ kind: FrameKind, _ payload: UnsafeRawBufferPointer, except: Int?) {
        for connection in live where connection.id != except {
            connection.sendFrame(kind, payload)
        }
    }

    func connectionOpened(_ connection: WebSocketConnection) {
        connection.indexInServer = live.count
        live.append(connection)
    }

    func connectionClosed(_ connection: WebSocketConnection) {
        let index = connection.indexInServer
        guard index >= 0, index < live.count, live[index] === connection else { return }
        let last = live.removeLast()
        if index < live.count {
            live[index] = last
            last.indexInServer = index
        }
        connection.indexInServer = -1
    }

    /// A snapshot of the live connections (cheap: shares storage until the server changes).
    public struct Connections: RandomAccessCollection {
        let elements: ContiguousArray<WebSocketConnection>
        public var startIndex: Int { elements.startIndex }
        public var endIndex: Int { elements.endIndex }
        public subscript(position: Int) -> WebSocketConnection { elements[position] }
    }
}
