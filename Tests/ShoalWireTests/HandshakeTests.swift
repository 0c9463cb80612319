// The opening handshake: accept key, Base64, every validation failure, targets and response heads.

import ShoalTestSupport
import ShoalWire
import Testing

@Suite struct WebSocketUpgradeTests {
    private func request(
        method: String = "GET", minor: Int = 1, dropping: Set<String> = [], extra: [(String, String)] = [],
        replacing: [String: String] = [:]
    ) -> HTTPRequestHead {
        let base: [(String, String)] = [
            ("Host", "server.example.com"), ("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
        ]
        let pairs = base.filter { !dropping.contains($0.0) }.map { ($0.0, replacing[$0.0] ?? $0.1) } + extra
        return HTTPRequestHead(method: method, target: "/chat", versionMinor: minor, headers: HTTPHeaders(pairs))
    }

    /// The 101 written straight into send memory is byte for byte the head the general response
    /// writer makes, with every combination of optional headers.
    @Test(arguments: [(nil, nil), ("permessage-deflate; server_no_context_takeover", nil), (nil, "chat"),
                      ("permessage-deflate", "v2.stomp")] as [(String?, String?)])
    func writesTheSwitchingProtocolsHeadInPlace(extensions: String?, subprotocol: String?) throws {
        let key = try #require(WebSocketKey("dGhlIHNhbXBsZSBub25jZQ=="))
        var headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
        if let extensions { headers.append(("Sec-WebSocket-Extensions", extensions)) }
        if let subprotocol { headers.append(("Sec-WebSocket-Protocol", subprotocol)) }
        let answer = SwitchingProtocols(key: key, extensions: extensions, subprotocol: subprotocol)
        var written = [UInt8](repeating: 0, count: answer.byteCount)
        written.withUnsafeMutableBytes { answer.write(into: $0) }
        #expect(written == HTTPResponse.head(status: 101, headers: headers, bodyLength: nil))
    }

    @Test func computesTheRFCExampleAcceptValue() {
        // RFC 6455 §1.3 and §4.2.2: SHA-1 b37a4f2c c0624f16 90f64606 cf385945 b2bec4ea, base64 below.
        // ("s3pPLMBiTxaQ9kK4C3gzOo2oU1k=", sometimes quoted for this key, is not what the RFC computes.)
        #expect(WebSocketUpgrade.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        let rfcDigest: [UInt8] = [
            0xb3, 0x7a, 0x4f, 0x2c, 0xc0, 0x62, 0x4f, 0x16, 0x90, 0xf6, 0x46, 0x06, 0xcf, 0x38, 0x59, 0x45, 0xb2, 0xbe,
            0xc4, 0xea,
        ]
        #expect(Base64.encode(rfcDigest) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func acceptsAValidUpgradeAndReturnsTheKey() throws {
        #expect(try WebSocketUpgrade.validate(request()).description == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(WebSocketUpgrade.isUpgradeRequest(request()))
        #expect(!WebSocketUpgrade.isUpgradeRequest(request(dropping: ["Upgrade"])))
        // Tokens are case-insensitive.
        let shouty = request(replacing: ["Upgrade": "WebSocket", "Connection": "UPGRADE"])
        #expect(try WebSocketUpgrade.validate(shouty).description == "dGhlIHNhbXBsZSBub25jZQ==")
        // Whitespace around the key or the version (headers built by hand, not by the parser) is not theirs.
        let padded = request(replacing: ["Sec-WebSocket-Key": " dGhlIHNhbXBsZSBub25jZQ==\t", "Sec-WebSocket-Version": " 13 "])
        #expect(try WebSocketUpgrade.validate(padded).description == "dGhlIHNhbXBsZSBub25jZQ==")
    }

    private func failure(_ head: HTTPRequestHead) -> HTTPError? {
        do {
            _ = try WebSocketUpgrade.validate(head)
            return nil
        } catch {
            return error
        }
    }

    @Test func rejectsOtherMethodsWith405AndAllowGet() throws {
        let error = try #require(failure(request(method: "POST")))
        #expect(error.status == 405)
        #expect(error.headers.contains { $0.0 == "Allow" && $0.1 == "GET" })
    }

    @Test func rejectsHTTP10With400() {
        #expect(failure(request(minor: 0))?.status == 400)
    }

    @Test(arguments: ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key"])
    func rejectsAMissingRequiredHeaderWith400(_ name: String) {
        #expect(failure(request(dropping: [name]))?.status == 400)
    }

    @Test func rejectsWrongUpgradeOrConnectionTokensWith400() {
        #expect(failure(request(replacing: ["Upgrade": "h2c"]))?.status == 400)
        #expect(failure(request(replacing: ["Connection": "keep-alive"]))?.status == 400)
    }

    @Test(arguments: [nil, "8", "12, 13x", ""] as [String?])
    func rejectsOtherVersionsWith426AndAdvertises13(_ version: String?) throws {
        let head =
            version.map { request(replacing: ["Sec-WebSocket-Version": $0]) }
            ?? request(dropping: ["Sec-WebSocket-Version"])
        let error = try #require(failure(head))
        #expect(error.status == 426)
        #expect(error.headers.contains { $0.0 == "Sec-WebSocket-Version" && $0.1 == "13" })
    }

    @Test func rejectsARepeatedKeyWith400() {
        #expect(failure(request(extra: [("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")]))?.status == 400)
    }

    @Test(arguments: [
        "", "not base64!", "AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAAAA",
    ])
    func rejectsAKeyThatIsNotBase64Of16BytesWith400(_ key: String) {
        #expect(failure(request(replacing: ["Sec-WebSocket-Key": key]))?.status == 400)
    }

    @Test func givesEveryErrorAHumanReason() {
        let heads = [
            request(method: "PUT"), request(minor: 0), request(dropping: ["Host"]), request(dropping: ["Upgrade"]),
            request(dropping: ["Connection"]), request(replacing: ["Sec-WebSocket-Version": "7"]),
            request(dropping: ["Sec-WebSocket-Key"]), request(replacing: ["Sec-WebSocket-Key": "abc"]),
        ]
        for head in heads {
            #expect(failure(head).map { !$0.reason.isEmpty } == true)
        }
    }
}

/// The key is checked and hashed in the head's bytes (`WebSocketKey`); these hold it to the String
/// path it replaced (trim, a strict Base64 decode to 16 bytes, `acceptValue(forKey: String)`).
@Suite struct WebSocketKeyTests {
    /// Valid keys, and keys a character away from valid: every position replaced by a character from
    /// inside and outside the alphabet, padding moved or dropped, a character added or removed,
    /// whitespace around.
    private static func candidates() -> [String] {
        var random = SplitMix64(seed: 0x6455)
        let replacements = Array("AQgw+/=-_ .:\t\u{7F}".utf8)
        var texts: [String] = []
        for _ in 0..<64 {
            let key = Base64.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &random) })
            texts += [key, " \(key)", "\(key)\t", " \(key) ", String(key.dropLast()), key + "=", "A" + key,
                      String(key.dropFirst()), key.replacingPadding("A=")]
            for position in 0..<24 {
                var bytes = Array(key.utf8)
                bytes[position] = replacements[Int.random(in: 0..<replacements.count, using: &random)]
                texts.append(String(decoding: bytes, as: UTF8.self))
            }
        }
        return texts + ["", "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZR==", "dGhlIHNhbXBsZSBub25jZQ=A"]
    }

    /// What the String path decided: the trimmed key, when it is the Base64 of 16 bytes.
    private static func keyByTheStringPath(_ text: String) -> String? {
        let trimmed = String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
        return Base64.decode(trimmed)?.count == 16 ? trimmed : nil
    }

    @Test func acceptsExactlyTheKeysTheStringPathAccepted() {
        var valid = 0
        for text in Self.candidates() {
            let expected = Self.keyByTheStringPath(text)
            #expect(WebSocketKey(text)?.description == expected, "\(text.debugDescription)")
            if expected != nil { valid += 1 }
        }
        // Both kinds were tried (every fourth replaced character happens to be valid, and so on).
        #expect(valid >= 64 * 4)
        #expect(Self.candidates().count - valid >= 64 * 10)
    }

    /// Every byte value at every position of a valid key, as bytes (the path the parsed head takes).
    @Test func agreesWithTheStringPathOnEveryByteAtEveryPosition() {
        let key = Array("dGhlIHNhbXBsZSBub25jZQ==".utf8)
        var valid = 0
        for position in key.indices {
            for byte in UInt8.min...UInt8.max {
                var bytes = key
                bytes[position] = byte
                // Text that is not ASCII is not Base64 either way; String(decoding:) would replace it.
                let expected = byte < 0x80 ? Self.keyByTheStringPath(String(decoding: bytes, as: UTF8.self)) : nil
                #expect(WebSocketKey(bytes)?.description == expected, "byte \(byte) at \(position)")
                if expected != nil { valid += 1 }
            }
        }
        // 21 positions take any of 64 characters, the last before the padding 4 of them, and each
        // padding position only its "=".
        #expect(valid == 21 * 64 + 4 + 1 + 1)
    }

    /// The same through a parsed head, where the key is a slice at some offset in the parser's buffer.
    @Test func validatesAParsedHeadsKeyAsTheStringPathDid() throws {
        // DEL is refused by the parser before any upgrade check.
        for (index, text) in Self.candidates().filter({ !$0.utf8.contains(0x7F) }).enumerated() {
            let padding = String(repeating: "x", count: index % 7)
            let request = "GET /chat HTTP/1.1\r\nHost: h\(padding)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key:\(text)\r\nSec-WebSocket-Version: 13\r\n\r\n"
            guard let head = try parseFirstHead(request) else { continue }
            let key = try? WebSocketUpgrade.validate(head)
            #expect(key?.description == Self.keyByTheStringPath(text), "\(text.debugDescription)")
        }
    }

    /// The accept value hashed from the key's inline bytes is the one hashed from its String.
    @Test func writesTheAcceptValueTheStringPathComputes() throws {
        for text in Self.candidates() {
            guard let key = WebSocketKey(text) else { continue }
            let answer = SwitchingProtocols(key: key)
            var written = [UInt8](repeating: 0, count: answer.byteCount)
            written.withUnsafeMutableBytes { answer.write(into: $0) }
            let accept = "Sec-WebSocket-Accept: \(WebSocketUpgrade.acceptValue(forKey: key.description))\r\n"
            #expect(String(decoding: written, as: UTF8.self).contains(accept))
        }
    }
}

private extension String {
    /// The key with its two padding characters replaced by `ending` (a valid length, invalid padding).
    func replacingPadding(_ ending: String) -> String { String(dropLast(2)) + ending }
}

@Suite struct Base64Tests {
    @Test(arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ])
    func encodesAndDecodesTheRFC4648Vectors(_ plain: String, _ encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test func roundTripsEveryByteValue() {
        let bytes = (0...255).map { UInt8($0) }
        #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        for length in 0...20 {
            #expect(Base64.decode(Base64.encode(bytes.prefix(length)))?.count == length)
        }
        #expect(Base64.encode([0xFB, 0xFF]) == "+/8=")
    }

    @Test(arguments: ["Zg", "Zg=", "Zm9v\n", "Z===", "Zg==Zg==", "Zh==", "Zm9=", "Zm 9v", "Zm9v=", "====", "Zm-_"])
    func rejectsNonStrictInput(_ text: String) {
        #expect(Base64.decode(text) == nil)
    }
}

@Suite struct RequestTargetTests {
    @Test func splitsPathAndQueryKeepingOrderAndRepeats() {
        let target = RequestTarget("/chat/room?b=2&a=1&b=3&flag&&empty=")
        #expect(target.raw == "/chat/room?b=2&a=1&b=3&flag&&empty=")
        #expect(target.path == "/chat/room")
        #expect(
            target.query.map { [$0.key, $0.value] } == [
                ["b", "2"], ["a", "1"], ["b", "3"], ["flag", ""], ["empty", ""],
            ])
    }

    @Test func percentDecodesPathAndQueryAndReadsPlusAsSpaceOnlyInTheQuery() {
        let target = RequestTarget("/a%20b+c/%C3%A9?name=J%C3%BCrgen+M%26M&x%3Dy=1%2B1")
        #expect(target.path == "/a b+c/é")
        #expect(target.query.map { [$0.key, $0.value] } == [["name", "Jürgen M&M"], ["x=y", "1+1"]])
    }

    @Test func leavesInvalidEscapesAsTheyAre() {
        let target = RequestTarget("/100%/%zz/%4?q=%g1&r=50%")
        #expect(target.path == "/100%/%zz/%4")
        #expect(target.query.map { [$0.key, $0.value] } == [["q", "%g1"], ["r", "50%"]])
    }

    @Test func replacesEscapedBytesThatAreNotUTF8() {
        #expect(RequestTarget("/%FF").path == "/\u{FFFD}")
    }

    @Test func handlesAbsoluteFormAndEmptyPaths() {
        #expect(RequestTarget("http://example.com:8080/ws?x=1").path == "/ws")
        #expect(RequestTarget("http://example.com:8080/ws?x=1").query.first?.value == "1")
        #expect(RequestTarget("http://example.com").path == "/")
        #expect(RequestTarget("/").path == "/")
        #expect(RequestTarget("/?").query.isEmpty)
        #expect(RequestTarget("*").path == "*")
    }
}

@Suite struct HTTPResponseTests {
    @Test func writesStatusLineHeadersAndContentLength() {
        let head = HTTPResponse.head(status: 426, headers: [("Sec-WebSocket-Version", "13")], bodyLength: 5)
        #expect(
            String(decoding: head, as: UTF8.self)
                == "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\n")
    }

    @Test func omitsContentLengthWithoutABody() {
        let head = HTTPResponse.head(
            status: 101, headers: [("Upgrade", "websocket"), ("Connection", "Upgrade")], bodyLength: nil)
        #expect(
            String(decoding: head, as: UTF8.self)
                == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    }

    @Test func knowsTheReasonPhrasesTheServerUses() {
        #expect(HTTPResponse.reasonPhrase(400) == "Bad Request")
        #expect(HTTPResponse.reasonPhrase(405) == "Method Not Allowed")
        #expect(HTTPResponse.reasonPhrase(431) == "Request Header Fields Too Large")
        #expect(HTTPResponse.reasonPhrase(505) == "HTTP Version Not Supported")
        #expect(HTTPResponse.reasonPhrase(799) == "Unknown")
    }
}
