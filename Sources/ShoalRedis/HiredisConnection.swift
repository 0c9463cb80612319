// The fence around hiredis: the only file that imports CHiredis. One object per connection
// attempt: hiredis' async context, attached to the worker's loop through a `DescriptorWatch`
// (hiredis says "tell me when readable / writable", the loop polls, hiredis reads and writes
// the non-blocking socket itself). Nothing here blocks: the address is numeric (resolved once at
// start), connect is non-blocking, and commands only append to hiredis' output buffer.
//
// hiredis calls back into this object through the context's `data` pointer. It frees the context
// itself after a failed connect or a lost connection; `abandon()` frees it on our request. Either
// way the last call from hiredis is its `cleanup` hook or the disconnect callback, so this object
// keeps itself alive until one loop turn after that.
import CHiredis
import ShoalPosix
import ShoalRing

final class HiredisConnection {
    /// What a connection reports to its owner (always on the loop thread, never after `abandon()`).
    struct Callbacks {
        var connected: () -> Void
        var failed: (String) -> Void
        var lost: (String) -> Void
        /// A PUBLISH was answered (or failed): its bytes left the outgoing queue.
        var publishDone: () -> Void
        /// A message arrived on the subscribed channel.
        var message: (UnsafeRawBufferPointer) -> Void
    }

    private unowned let loop: EventLoop
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var watch: DescriptorWatch?
    private var callbacks: Callbacks?
    /// Held from connect until hiredis is done with the context (released a turn later).
    private var keepAlive: HiredisConnection?

    init(loop: EventLoop, callbacks: Callbacks) {
        self.loop = loop
        self.callbacks = callbacks
    }

    /// Starts a non-blocking connect to `address` (numeric) and `port`. The outcome arrives as
    /// `connected` or `failed`, never within this call.
    func connect(address: String, port: Int) {
        keepAlive = self
        guard let context = redisAsyncConnect(address, Int32(port)) else {
            return failSoon("out of memory")
        }
        if context.pointee.err != 0 {
            let reason = HiredisConnection.errorText(context)
            redisAsyncFree(context)
            return failSoon(reason)
        }
        self.context = context
        context.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        do {
            watch = try loop.watch(descriptor: context.pointee.c.fd) { [unowned self] readable, writable in
                guard let context = self.context else { return }
                if readable { redisAsyncHandleRead(context) }
                if writable, self.context != nil { redisAsyncHandleWrite(context) }
            }
        } catch {
            self.context = nil
            redisAsyncFree(context)
            return failSoon("\(error)")
        }
        context.pointee.ev.data = Unmanaged.passUnretained(self).toOpaque()
        context.pointee.ev.addRead = { HiredisConnection.from($0)?.watch?.wantsRead = true }
        context.pointee.ev.delRead = { HiredisConnection.from($0)?.watch?.wantsRead = false }
        context.pointee.ev.addWrite = { HiredisConnection.from($0)?.watch?.wantsWrite = true }
        context.pointee.ev.delWrite = { HiredisConnection.from($0)?.watch?.wantsWrite = false }
        context.pointee.ev.cleanup = { HiredisConnection.from($0)?.contextGone() }
        // Set after the hooks: hiredis arms the write interest here to learn when connect finished.
        redisAsyncSetConnectCallback(context) { context, status in
            guard let me = HiredisConnection.owner(of: context) else { return }
            if status == REDIS_OK {
                me.callbacks?.connected()
            } else {
                let reason = context.map { HiredisConnection.errorText(UnsafeMutablePointer(mutating: $0)) } ?? "connect failed"
                me.context = nil  // hiredis frees it after this callback
                me.report { $0.failed(reason) }
            }
        }
        redisAsyncSetDisconnectCallback(context) { context, status in
            guard let me = HiredisConnection.owner(of: context) else { return }
            let reason = status == REDIS_OK ? "closed" : context.map { HiredisConnection.errorText(UnsafeMutablePointer(mutating: $0)) } ?? "lost"
            me.context = nil  // hiredis frees it after this callback
            me.report { $0.lost(reason) }
        }
    }

    /// PUBLISH `message` on `channel`; false when the connection cannot take commands now.
    func publish(channel: [UInt8], message: [UInt8]) -> Bool {
        Self.publishVerb.withUnsafeBytes { verb in
            channel.withUnsafeBytes { channel in
                message.withUnsafeBytes { message in
                    command([verb, channel, message]) { context, _, _ in
                        HiredisConnection.owner(of: context)?.callbacks?.publishDone()
                    }
                }
            }
        }
    }

    private static let publishVerb = Array("PUBLISH".utf8)
    private static let subscribeVerb = Array("SUBSCRIBE".utf8)

    /// SUBSCRIBE to `channel`; every message on it reaches `message`.
    func subscribe(channel: [UInt8]) -> Bool {
        Self.subscribeVerb.withUnsafeBytes { verb in channel.withUnsafeBytes { channel in command([verb, channel]) { context, reply, _ in
            guard let me = HiredisConnection.owner(of: context), let reply = reply?.assumingMemoryBound(to: redisReply.self) else { return }
            var payload: UnsafePointer<CChar>?
            var length = 0
            // The first reply is the acknowledgement (["subscribe", channel, count]), not a message.
            guard shoal_redis_message(reply, &payload, &length) != 0 else { return }
            me.callbacks?.message(UnsafeRawBufferPointer(start: payload, count: length))
        } } }
    }

    /// Ends the connection now; no callback reaches the owner afterwards.
    func abandon() {
        callbacks = nil
        guard let context else { return }
        self.context = nil
        redisAsyncFree(context)  // deferred by hiredis when called from inside one of its callbacks
    }

    // MARK: Inside the fence

    private func command(_ parts: [UnsafeRawBufferPointer], _ callback: @escaping @convention(c) (UnsafeMutablePointer<redisAsyncContext>?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void) -> Bool {
        guard let context else { return false }
        // Binary-safe arguments (pointer and length each), pointing into the callers' own bytes:
        // hiredis copies them into its output buffer during the call, so nothing is joined first.
        let status = withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: parts.count) { pointers in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: parts.count) { lengths in
                for (i, part) in parts.enumerated() {
                    // An empty argument still needs a pointer; hiredis reads none of its bytes.
                    pointers[i] = UnsafePointer((part.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self))
                    lengths[i] = part.count
                }
                return redisAsyncCommandArgv(context, callback, nil, Int32(parts.count), pointers.baseAddress, lengths.baseAddress)
            }
        }
        return status == REDIS_OK
    }

    /// hiredis is done with the context: stop polling, and let go of ourselves after this turn.
    private func contextGone() {
        watch?.stop()
        watch = nil
        context = nil
        loop.schedule(after: 0) { [self] in keepAlive = nil }
    }

    private func report(_ body: @escaping (Callbacks) -> Void) {
        // After hiredis' own call returned: the owner may start a new connection from here.
        loop.schedule(after: 0) { [self] in
            if let callbacks { body(callbacks) }
        }
    }

    private func failSoon(_ reason: String) {
        report { $0.failed(reason) }
        loop.schedule(after: 0) { [self] in keepAlive = nil }
    }

    private static func from(_ pointer: UnsafeMutableRawPointer?) -> HiredisConnection? {
        pointer.map { Unmanaged<HiredisConnection>.fromOpaque($0).takeUnretainedValue() }
    }

    private static func owner(of context: UnsafePointer<redisAsyncContext>?) -> HiredisConnection? {
        from(context?.pointee.data)
    }

    private static func owner(of context: UnsafeMutablePointer<redisAsyncContext>?) -> HiredisConnection? {
        from(context?.pointee.data)
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisAsyncContext>) -> String {
        context.pointee.errstr.map { String(cString: $0) } ?? "error \(context.pointee.err)"
    }
}
