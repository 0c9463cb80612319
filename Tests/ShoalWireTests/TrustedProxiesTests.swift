// The client address of a proxied request: which header wins, the rightmost untrusted entry, and
// headers from untrusted peers ignored (spoofing fails).

import ShoalWire
import Testing

@Suite struct TrustedProxiesTests {
    let proxies = TrustedProxies([try! AddressRange("127.0.0.1"), try! AddressRange("10.0.0.0/8"), try! AddressRange("fd00::/8")])

    func client(_ peer: String, _ headers: [(String, String)]) -> String {
        proxies.clientAddress(peer: peer, headers: HTTPHeaders(headers))
    }

    @Test func ignoresForwardingHeadersFromAnUntrustedPeer() {
        let spoofed = [("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "1.2.3.4"), ("Forwarded", "for=1.2.3.4")]
        #expect(client("203.0.113.9", spoofed) == "203.0.113.9")
        #expect(client("::ffff:203.0.113.9", spoofed) == "203.0.113.9")
        #expect(TrustedProxies().clientAddress(peer: "127.0.0.1", headers: HTTPHeaders(spoofed)) == "127.0.0.1",
                "no trusted proxy: headers never count")
    }

    @Test func takesTheRightmostUntrustedForwardedForEntry() {
        // The client wrote "6.6.6.6" itself; nginx appended what it saw (198.51.100.7), then an inner proxy 10.0.0.5.
        #expect(client("127.0.0.1", [("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.5")]) == "198.51.100.7")
        #expect(client("127.0.0.1", [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7")]) == "198.51.100.7",
                "repeated fields are one list")
        #expect(client("127.0.0.1", [("X-Forwarded-For", "10.0.0.9, 10.0.0.5")]) == "10.0.0.9", "all trusted: the leftmost")
        #expect(client("127.0.0.1", [("X-Forwarded-For", " 2001:DB8::7 ")]) == "2001:db8::7")
        #expect(client("127.0.0.1", [("X-Forwarded-For", "[2001:db8::7]:4711, 198.51.100.7:80")]) == "198.51.100.7")
    }

    @Test func forwardedWinsOverXForwardedForAndXRealIP() {
        let headers = [("X-Real-IP", "192.0.2.3"), ("X-Forwarded-For", "192.0.2.2"),
                       ("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"")]
        #expect(client("127.0.0.1", headers) == "2001:db8:cafe::17")
        #expect(client("127.0.0.1", Array(headers.prefix(2))) == "192.0.2.2")
        #expect(client("127.0.0.1", [("X-Real-IP", "192.0.2.3")]) == "192.0.2.3")
        #expect(client("127.0.0.1", [("X-Real-IP", "not an address")]) == "127.0.0.1")
    }

    @Test func readsRFC7239Nodes() {
        #expect(client("10.1.1.1", [("Forwarded", "For=\"192.0.2.43:47011\"")]) == "192.0.2.43")
        #expect(client("10.1.1.1", [("Forwarded", "proto=https;for=198.51.100.17;host=\"a;b,c\"")]) == "198.51.100.17")
        #expect(client("10.1.1.1", [("Forwarded", "for=198.51.100.17, by=10.0.0.1")]) == "198.51.100.17",
                "an element without for= names no one")
        #expect(client("10.1.1.1", [("Forwarded", "for=6.6.6.6, for=10.0.0.3")]) == "6.6.6.6")
        #expect(client("10.1.1.1", [("Forwarded", "for=\"[fd00::1]\", for=\"[fd00::2]\"")]) == "fd00::1")
    }

    @Test func anUnknownDecidingNodeGivesTheProxyNotALaterHeader() {
        // The client sent its own X-Forwarded-For; the proxy said Forwarded: for=unknown.
        #expect(client("127.0.0.1", [("Forwarded", "for=unknown"), ("X-Forwarded-For", "6.6.6.6")]) == "127.0.0.1")
        #expect(client("127.0.0.1", [("Forwarded", "for=_hidden")]) == "127.0.0.1")
        #expect(client("127.0.0.1", [("X-Forwarded-For", "6.6.6.6, garbage")]) == "127.0.0.1")
        #expect(client("127.0.0.1", [("X-Forwarded-For", "")]) == "127.0.0.1")
        #expect(client("127.0.0.1", [("X-Forwarded-For", "198.51.100.7:99999")]) == "127.0.0.1")
    }

    @Test func aTrustedPeerWithoutHeadersIsTheClient() {
        #expect(client("127.0.0.1", [("Host", "h")]) == "127.0.0.1")
        #expect(client("fd12::5", []) == "fd12::5")
    }

    @Test func aPeerThatIsNotAnAddressIsKeptAsItIs() {
        #expect(client("", [("X-Forwarded-For", "1.2.3.4")]) == "")
    }
}
