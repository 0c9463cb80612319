// The operator listener (`--metrics-listen`): plain HTTP with /metrics and /healthz only, on an
// address of its own, so a deployment whose public port expects PROXY headers can still be
// scraped and probed, and operators can keep /metrics off the public port. Every worker accepts
// on it (one SO_REUSEPORT socket per worker index, from the supervisor, like the public port), and
// any worker answers for the whole cluster.
import ShoalPosix
import ShoalRing

/// Hands each accepted operator connection an HTTP session that serves only the two paths.
final class OperatorListener: ListenerDelegate {
    private unowned let web: WebServer

    init(web: WebServer) {
        self.web = web
    }

    func accepted(socket fd: Int32, peer: PeerAddress, on loop: EventLoop) -> (any SocketDelegate)? {
        HTTPSession(web: web, fd: fd, peer: peer, operatorOnly: true)
    }
}
