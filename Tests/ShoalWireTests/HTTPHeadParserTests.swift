// Request head parsing under every chunking: structure, line endings, pipelining and every error.

import ShoalWire
import Testing

@Suite struct HTTPHeadParserTests {
    @Test func parsesTheRequestLineAndHeadersInOrderWithRepeats() throws {
        let text = "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nX-Tag: one\r\nx-tag:two\r\nEmpty:\r\n\r\n"
        let head = try #require(onlyHead(parseHeadsEverySplit(text)))
        #expect(head.method == "GET")
        #expect(head.target == "/chat?room=1")
        #expect(head.version == [1, 1])
        #expect(head.headers == [["Host", "example.com"], ["X-Tag", "one"], ["x-tag", "two"], ["Empty", ""]])
        #expect(head.end == text.utf8.count)
    }

    @Test func trimsOptionalWhitespaceAroundValues() throws {
        let head = try #require(onlyHead(parseHeadsEverySplit("GET / HTTP/1.0\r\nA: \t spaced  value \t\r\n\r\n")))
        #expect(head.headers == [["A", "spaced  value"]])
        #expect(head.version == [1, 0])
    }

    @Test func acceptsBareLineFeeds() throws {
        let head = try #require(onlyHead(parseHeadsEverySplit("GET / HTTP/1.1\nHost: h\n\n")))
        #expect(head.headers == [["Host", "h"]])
    }

    @Test func acceptsMixedLineEndings() throws {
        let head = try #require(onlyHead(parseHeadsEverySplit("GET / HTTP/1.1\r\nHost: h\n\r\n")))
        #expect(head.headers == [["Host", "h"]])
    }

    @Test func ignoresBlankLinesBeforeTheRequestLine() throws {
        let text = "\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
        let head = try #require(onlyHead(parseHeadsEverySplit(text)))
        #expect(head.method == "GET")
        #expect(head.end == text.utf8.count)
    }

    @Test func reportsHowManyBytesTheHeadUsedSoPipelinedBytesAreLeft() {
        let first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
        let second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
        let outcome = parseHeadsEverySplit(first + second + "\u{81}\u{05}partial")
        #expect(outcome.error == nil)
        #expect(outcome.heads.map(\.target) == ["/a", "/b"])
        #expect(outcome.heads.map(\.end) == [first.utf8.count, first.utf8.count + second.utf8.count])
    }

    @Test func returnsConsumedRelativeToTheCallsInput() throws {
        var parser = HTTPHeadParser()
        let bytes = Array("GET / HTTP/1.1\r\n\r\nXYZ".utf8)
        let first = try bytes.withUnsafeBytes { raw throws(HTTPError) in
            try parser.feed(UnsafeRawBufferPointer(rebasing: raw[..<5]))
        }
        guard case .needMore = first else {
            Issue.record("expected needMore")
            return
        }
        let second = try bytes.withUnsafeBytes { raw throws(HTTPError) in
            try parser.feed(UnsafeRawBufferPointer(rebasing: raw[5...]))
        }
        guard case .complete(_, let consumed) = second else {
            Issue.record("expected complete")
            return
        }
        #expect(consumed == bytes.count - 5 - 3)
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\n folded: value\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n\tcontinued\r\n\r\n",
    ])
    func rejectsObsoleteLineFoldingWith400(_ text: String) {
        #expect(parseHeadsEverySplit(text).error == HTTPError(status: 400, reason: "Obsolete line folding in header"))
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
        "GET / HTTP/1.1\r\nName : v\r\n\r\n",
        "GET / HTTP/1.1\r\n: v\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\u{0}c\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\u{7F}\r\n\r\n",
        "GET /  HTTP/1.1\r\n\r\n",
        "GET\r\n\r\n",
        "GET /\r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET / FOO/1.1\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTP/11\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
    ])
    func rejectsMalformedHeadsWith400(_ text: String) {
        #expect(parseHeadsEverySplit(text).error?.status == 400, "\(text.debugDescription)")
    }

    @Test(arguments: ["GET / HTTP/2.0\r\n\r\n", "GET / HTTP/0.9\r\n\r\n", "GET / HTTP/3.1\r\n\r\n"])
    func rejectsVersionsOtherThanHTTP1With505(_ text: String) {
        #expect(parseHeadsEverySplit(text).error?.status == 505)
    }

    @Test func rejectsAHeadOverTheSizeLimitWith431() {
        let text = "GET / HTTP/1.1\r\nA: " + String(repeating: "x", count: 100) + "\r\n\r\n"
        let tooLarge = HTTPError(status: 431, reason: "Request header fields too large")
        #expect(parseHeadsEverySplit(text, maxHeadSize: text.utf8.count - 1).error == tooLarge)
        #expect(parseHeadsEverySplit(text, maxHeadSize: text.utf8.count).error == nil)
        // A head that never ends fails once it passes the limit, without waiting for a line end.
        #expect(parseHeadsEverySplit(String(repeating: "G", count: 80), maxHeadSize: 64).error == tooLarge)
        #expect(parseHeadsEverySplit(String(repeating: "\r\n", count: 40), maxHeadSize: 64).error == tooLarge)
    }

    @Test func rejectsMoreHeaderFieldsThanAllowedWith431() {
        let text = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        #expect(
            parseHeadsEverySplit(text, maxHeaderCount: 2).error
                == HTTPError(status: 431, reason: "Too many header fields"))
        #expect(parseHeadsEverySplit(text, maxHeaderCount: 3).error == nil)
    }

    @Test func waitsForMoreWhileTheHeadIsIncomplete() {
        #expect(parseHeadsEverySplit("GET / HTTP/1.1\r\nHost: h\r\n") == HeadOutcome())
    }

    @Test func keepsObsTextInValues() throws {
        let head = try #require(onlyHead(parseHeadsEverySplit("GET / HTTP/1.1\r\nName: café\r\n\r\n")))
        #expect(head.headers == [["Name", "café"]])
    }
}

@Suite struct HTTPHeadersTests {
    private let headers = HTTPHeaders([
        ("Host", "example.com"), ("Connection", "keep-alive, Upgrade"), ("connection", "x-extra"),
        ("Accept", "a"), ("ACCEPT", "b"),
    ])

    @Test func looksUpNamesCaseInsensitively() {
        #expect(headers["host"] == "example.com")
        #expect(headers["HOST"] == "example.com")
        #expect(headers["accept"] == "a")
        #expect(headers["missing"] == nil)
    }

    @Test func returnsEveryValueOfARepeatedHeaderInOrder() {
        #expect(headers.values("Accept") == ["a", "b"])
        #expect(headers.values("nope") == [])
        #expect(headers.count == 5)
    }

    @Test func findsTokensInCommaSeparatedListsAcrossOccurrences() {
        #expect(headers.containsToken("upgrade", in: "connection"))
        #expect(headers.containsToken("Keep-Alive", in: "Connection"))
        #expect(headers.containsToken("x-extra", in: "CONNECTION"))
        #expect(!headers.containsToken("close", in: "Connection"))
        #expect(!headers.containsToken("upgr", in: "Connection"))
        #expect(!headers.containsToken("example.com", in: "Connection"))
    }

    @Test func findsATokenBetweenEmptyElementsAndWhitespaceButNotInsideAnother() {
        let list = HTTPHeaders([("Connection", " ,keep-alive ,, \tUpgrade\t,"), ("Upgrade", "websocketx, xwebsocket, web socket")])
        #expect(list.containsToken("upgrade", in: "connection"))
        #expect(list.containsToken("KEEP-ALIVE", in: "connection"))
        #expect(!list.containsToken("websocket", in: "upgrade"))
        #expect(!HTTPHeaders([("Connection", "")]).containsToken("upgrade", in: "Connection"))
    }

    @Test func countsAFieldInEveryCase() {
        #expect(headers.count(of: "accept") == 2)
        #expect(headers.count(of: "CONNECTION") == 2)
        #expect(headers.count(of: "host") == 1)
        #expect(headers.count(of: "hos") == 0 && headers.count(of: "nope") == 0)
    }

    @Test func tellsWhetherAFieldIsPresentInEveryCase() {
        #expect(headers.contains("HOST") && headers.contains("accept"))
        #expect(!headers.contains("hos") && !headers.contains("Hosts") && !HTTPHeaders().contains("Host"))
    }

    /// A parsed head keeps its fields as positions in its own copy of the head: every lookup must
    /// see exactly the trimmed value of the right line, whatever surrounds it.
    @Test func looksUpTheFieldsOfAParsedHeadInPlace() throws {
        let text = "GET /x HTTP/1.1\r\nhost:h.example\r\nSEC-WEBSOCKET-KEY: \t dGhlIHNhbXBsZSBub25jZQ== \r\n"
            + "Connection: keep-alive\r\nconnection: Upgrade\nEmpty:\r\nX: a:b: c\r\n\r\nGET"
        guard var head = try parseFirstHead(text) else { return }
        #expect(head.headers["Sec-WebSocket-Key"] == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(head.headers["HOST"] == "h.example" && head.headers.contains("empty") && head.headers["Empty"] == "")
        #expect(head.headers["x"] == "a:b: c")
        #expect(head.headers.values("CONNECTION") == ["keep-alive", "Upgrade"])
        #expect(head.headers.containsToken("upgrade", in: "connection") && !head.headers.containsToken("get", in: "connection"))
        #expect(head.headers.count(of: "connection") == 2 && head.headers.count == 6)
        #expect(!head.headers.contains("GET") && !head.headers.contains("/x"))
        head.headers.add(name: "Added", value: "later")
        #expect(head.headers.map(\.name) == ["host", "SEC-WEBSOCKET-KEY", "Connection", "connection", "Empty", "X", "Added"])
        #expect(head.headers["added"] == "later" && head.headers["x"] == "a:b: c")
    }

    @Test func iteratesInInsertionOrder() {
        var list = HTTPHeaders()
        list.add(name: "B", value: "1")
        list.add(name: "A", value: "2")
        #expect(list.map(\.name) == ["B", "A"])
        #expect(list.map(\.value) == ["1", "2"])
    }

    @Test func decidesKeepAliveByVersionAndConnectionHeader() {
        #expect(HTTPRequestHead(method: "GET", target: "/", versionMinor: 1).keepAlive)
        #expect(
            !HTTPRequestHead(
                method: "GET", target: "/", versionMinor: 1, headers: HTTPHeaders([("Connection", "Close")])
            ).keepAlive)
        #expect(!HTTPRequestHead(method: "GET", target: "/", versionMinor: 0).keepAlive)
        #expect(
            HTTPRequestHead(
                method: "GET", target: "/", versionMinor: 0, headers: HTTPHeaders([("Connection", "keep-alive")])
            ).keepAlive)
    }
}

@Suite struct HTTPTokenTests {
    /// Every byte value against RFC 9110's tchar list, written out.
    @Test func knowsEveryTokenCharacterAndNoOther() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(HTTPToken.isTokenCharacter(byte) == tchar.contains(byte), "byte \(byte)")
        }
    }
}
