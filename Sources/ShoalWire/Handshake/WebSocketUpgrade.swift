// The server side of the opening handshake (RFC 6455 §4.2): decides whether a request is a valid
// WebSocket upgrade, says which HTTP error to answer otherwise, and computes Sec-WebSocket-Accept.

import COpenSSL

/// Validation of WebSocket upgrade requests and the accept key.
public enum WebSocketUpgrade {
    /// The GUID appended to the client's key before hashing (RFC 6455 §1.3).
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// true when the request asks for a WebSocket (Upgrade header has token "websocket").
    public static func isUpgradeRequest(_ head: HTTPRequestHead) -> Bool {
        head.headers.containsToken("websocket", in: "Upgrade")
    }

    /// Checks method GET (else 405 with Allow: GET), HTTP/1.1 or later (else 400), Host present
    /// (else 400), Upgrade token websocket, Connection token upgrade (else 400), Sec-WebSocket-Version 13
    /// (else 426 with header ("Sec-WebSocket-Version","13")), Sec-WebSocket-Key present exactly once and
    /// base64 of 16 bytes (else 400).
    /// Every error carries a human reason. Returns the key.
    public static func validate(_ head: HTTPRequestHead) throws(HTTPError) -> WebSocketKey {
        guard head.method == "GET" else {
            throw HTTPError(status: 405, reason: "WebSocket upgrade requires GET", headers: [("Allow", "GET")])
        }
        guard head.versionMajor > 1 || (head.versionMajor == 1 && head.versionMinor >= 1) else {
            throw .badRequest("WebSocket upgrade requires HTTP/1.1")
        }
        guard head.headers.contains("Host") else {
            throw .badRequest("Missing Host header")
        }
        guard isUpgradeRequest(head) else {
            throw .badRequest("Upgrade header must contain \"websocket\"")
        }
        guard head.headers.containsToken("upgrade", in: "Connection") else {
            throw .badRequest("Connection header must contain \"Upgrade\"")
        }
        // Version and key are read in the head's bytes: the key made into a String (24 bytes, past the
        // small-string limit) was an allocation on every handshake.
        let isVersion13 = head.headers.withFields(named: "Sec-WebSocket-Version") { values in
            // Two bytes compared as such: elementsEqual with "13".utf8 walked a String iterator.
            values.onlyValue.map { value in
                let version = trimmingOWS(value)
                return version.count == 2 && version.first == UInt8(ascii: "1") && version.last == UInt8(ascii: "3")
            } ?? false
        }
        guard isVersion13 else {
            throw HTTPError(
                status: 426, reason: "Unsupported WebSocket version; only 13 is supported",
                headers: [("Sec-WebSocket-Version", "13")])
        }
        let (keyCount, key) = head.headers.withFields(named: "Sec-WebSocket-Key") { values in
            (values.count, values.onlyValue.flatMap(WebSocketKey.init))
        }
        guard keyCount == 1 else {
            throw .badRequest(keyCount == 0 ? "Missing Sec-WebSocket-Key header" : "Repeated Sec-WebSocket-Key header")
        }
        guard let key else {
            throw .badRequest("Sec-WebSocket-Key must be the base64 encoding of 16 bytes")
        }
        return key
    }

    /// base64(SHA1(key + guid)), the value of Sec-WebSocket-Accept (RFC 6455 §4.2.2).
    public static func acceptValue(forKey key: String) -> String {
        var key = key
        return key.withUTF8 { keyBytes in withAcceptDigest(forKey: keyBytes) { Base64.encode($0) } }
    }

    /// Length of every Sec-WebSocket-Accept value: the Base64 of a 20-byte SHA-1 digest.
    static let acceptValueCount = 28

    /// Writes `acceptValue(forKey:)` at the start of `output` (at least `acceptValueCount` long), with
    /// no String made for it; returns its length.
    static func writeAcceptValue(forKey key: WebSocketKey, into output: UnsafeMutableBufferPointer<UInt8>) -> Int {
        key.withBytes { keyBytes in withAcceptDigest(forKey: keyBytes) { Base64.encode($0, into: output) } }
    }

    /// Calls `body` with SHA1(key + guid).
    private static func withAcceptDigest<Result>(forKey keyBytes: UnsafeBufferPointer<UInt8>,
                                                 _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        // SHA-1 is what the RFC mandates here; it proves the server understood the handshake, it is not
        // used for security.
        // Key, GUID and digest in one scratch buffer on the stack: no string joined, no array.
        let length = keyBytes.count + guid.utf8.count
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: length + 20) { scratch in
            _ = UnsafeMutableBufferPointer(rebasing: scratch[..<keyBytes.count]).initialize(from: keyBytes)
            _ = UnsafeMutableBufferPointer(rebasing: scratch[keyBytes.count..<length]).initialize(from: guid.utf8)
            let digest = UnsafeMutableBufferPointer(rebasing: scratch[length...])
            // SHA-1 over memory cannot fail; a failure would leave whatever the scratch held, and
            // the client would then refuse the handshake (a wrong accept value), not misread it.
            digest.initialize(repeating: 0)
            _ = shoal_sha1(scratch.baseAddress, length, digest.baseAddress)
            return body(UnsafeBufferPointer(digest))
        }
    }
}
