// PROXY protocol v1 and v2 headers under every chunking: what they name, where they end, and every
// way a header can be missing, cut short, too long or malformed.

import ShoalWire
import Testing

/// What one parser made of the bytes: the header and the offset just after it, or the error.
struct ProxyOutcome: Equatable {
    var header: ProxyHeader?
    var end: Int?
    var error: ProxyHeaderError?
}

/// Feeds `chunks` to one parser until it completes or fails.
func parseProxyHeader(_ chunks: [[UInt8]], maxV2Length: Int = ProxyHeaderParser.defaultMaxV2Length) -> ProxyOutcome {
    var parser = ProxyHeaderParser(maxV2Length: maxV2Length)
    var offset = 0
    for chunk in chunks {
        let fed: Result<ProxyHeaderParser.Result, ProxyHeaderError> = chunk.withUnsafeBytes { raw in
            do throws(ProxyHeaderError) {
                return .success(try parser.feed(raw))
            } catch {
                return .failure(error)
            }
        }
        switch fed {
        case .failure(let error):
            return ProxyOutcome(error: error)
        case .success(.complete(let header, let consumed)):
            return ProxyOutcome(header: header, end: offset + consumed)
        case .success(.needMore):
            offset += chunk.count
        }
    }
    return ProxyOutcome()
}

func parseProxyEverySplit(_ bytes: [UInt8], maxV2Length: Int = ProxyHeaderParser.defaultMaxV2Length,
                          sourceLocation: SourceLocation = #_sourceLocation) -> ProxyOutcome {
    expectSameOutcomeForEverySplit(bytes, sourceLocation: sourceLocation) { parseProxyHeader($0, maxV2Length: maxV2Length) }
}

/// A v2 header: signature, version 2 with `command`, `family` << 4 | transport, then `body` (addresses and TLVs).
func proxyV2(command: UInt8 = 1, family: UInt8, transport: UInt8 = 1, body: [UInt8]) -> [UInt8] {
    [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20 | command, family << 4 | transport,
     UInt8(body.count >> 8), UInt8(body.count & 0xff)] + body
}

let proxiedRequest = Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)

@Suite struct ProxyHeaderParserTests {
    @Test func readsAV1TCP4LineAndLeavesTheRequest() {
        let header = Array("PROXY TCP4 192.0.2.7 127.0.0.1 56324 443\r\n".utf8)
        let outcome = parseProxyEverySplit(header + proxiedRequest)
        #expect(outcome == ProxyOutcome(header: .proxied(source: IPAddress("192.0.2.7")!, sourcePort: 56324), end: header.count))
    }

    @Test func readsAV1TCP6Line() {
        let outcome = parseProxyEverySplit(Array("PROXY TCP6 2001:db8::7 ::1 65535 8080\r\n".utf8))
        #expect(outcome.header == .proxied(source: IPAddress("2001:db8::7")!, sourcePort: 65535))
    }

    @Test func v1UnknownLeavesThePeerAsTheClient() {
        #expect(parseProxyEverySplit(Array("PROXY UNKNOWN\r\n".utf8)).header == .unknownSource)
        #expect(parseProxyEverySplit(Array("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".utf8)).header == .unknownSource)
    }

    @Test func takesAV1LineOfExactly107BytesAndNoLonger() {
        let source = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        let widest = Array("PROXY TCP6 \(source) \(source) 65535 65535\r\n".utf8)
        #expect(widest.count == 104)
        #expect(parseProxyEverySplit(widest).header == .proxied(source: IPAddress(source)!, sourcePort: 65535))
        let longest = Array(("PROXY UNKNOWN " + String(repeating: "x", count: 107 - 16) + "\r\n").utf8)
        #expect(longest.count == 107)
        #expect(parseProxyEverySplit(longest).header == .unknownSource)
        let tooLong = Array(("PROXY UNKNOWN " + String(repeating: "x", count: 108 - 16) + "\r\n").utf8)
        #expect(parseProxyEverySplit(tooLong).error == ProxyHeaderError(description: "PROXY v1 line longer than 107 bytes"))
    }

    @Test func refusesAV1LineOver107BytesWithoutItsEnd() {
        let long = Array("PROXY UNKNOWN \(String(repeating: "x", count: 200))".utf8)
        let outcome = parseProxyEverySplit(long)
        #expect(outcome.error == ProxyHeaderError(description: "PROXY v1 line longer than 107 bytes"))
    }

    @Test func refusesMalformedV1Lines() {
        let bad = [
            "PROXY TCP4 192.0.2.7 127.0.0.1 56324\r\n",  // a field short
            "PROXY TCP4 192.0.2.7 127.0.0.1 56324 443 9\r\n",  // a field too many
            "PROXY TCP4 2001:db8::7 127.0.0.1 1 2\r\n",  // IPv6 under TCP4
            "PROXY TCP6 192.0.2.7 ::1 1 2\r\n",  // IPv4 under TCP6
            "PROXY TCP4 192.0.2.300 127.0.0.1 1 2\r\n",
            "PROXY TCP4 192.0.2.7 127.0.0.1 65536 443\r\n",
            "PROXY TCP4 192.0.2.7 127.0.0.1 0443 443\r\n",
            "PROXY TCP4  192.0.2.7 127.0.0.1 1 2\r\n",  // two spaces
            "PROXY UDP4 192.0.2.7 127.0.0.1 1 2\r\n",
            "PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n",  // bare LF
        ]
        for line in bad {
            #expect(parseProxyEverySplit(Array(line.utf8)).error != nil, "\(line)")
        }
    }

    @Test func refusesARequestWithoutAHeaderAtItsFirstByte() {
        #expect(parseProxyHeader([proxiedRequest]).error == ProxyHeaderError(description: "no PROXY protocol header before the request"))
        #expect(parseProxyHeader([Array("G".utf8)]).error != nil)
        // "PROXZ": wrong from the fifth byte on, without waiting for a line end.
        #expect(parseProxyHeader([Array("PROXZ".utf8)]).error != nil)
    }

    @Test func waitsForATruncatedHeader() {
        let v1 = Array("PROXY TCP4 192.0.2.7 127.0.0.1 56324 443\r\n".utf8)
        let v2 = proxyV2(family: 1, body: [192, 0, 2, 7, 127, 0, 0, 1, 0xDC, 0x04, 0x01, 0xBB])
        for header in [v1, v2] {
            for cut in 1..<header.count {
                #expect(parseProxyHeader([Array(header[..<cut])]) == ProxyOutcome())
            }
        }
    }

    @Test func readsAV2IPv4HeaderAndLeavesTheRequest() {
        let header = proxyV2(family: 1, body: [192, 0, 2, 7, 127, 0, 0, 1, 0xDC, 0x04, 0x01, 0xBB])
        let outcome = parseProxyEverySplit(header + proxiedRequest)
        #expect(outcome == ProxyOutcome(header: .proxied(source: IPAddress("192.0.2.7")!, sourcePort: 0xDC04), end: 28))
    }

    @Test func readsAV2IPv6Header() {
        let source: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [7]
        let destination = [UInt8](repeating: 0, count: 15) + [1]
        let header = proxyV2(family: 2, body: source + destination + [0x12, 0x34, 0x01, 0xBB])
        #expect(parseProxyEverySplit(header).header == .proxied(source: IPAddress("2001:db8::7")!, sourcePort: 0x1234))
    }

    @Test func skipsV2TLVsAfterTheAddresses() {
        // PP2_TYPE_ALPN "http/1.1" and PP2_TYPE_AUTHORITY "example.com", as haproxy sends them.
        let tlvs: [UInt8] = [0x01, 0x00, 0x08] + Array("http/1.1".utf8) + [0x02, 0x00, 0x0b] + Array("example.com".utf8)
        let header = proxyV2(family: 1, body: [198, 51, 100, 9, 127, 0, 0, 1, 0, 80, 0, 80] + tlvs)
        let outcome = parseProxyEverySplit(header + proxiedRequest)
        #expect(outcome == ProxyOutcome(header: .proxied(source: IPAddress("198.51.100.9")!, sourcePort: 80), end: header.count))
    }

    @Test func v2LocalCommandLeavesThePeerAsTheClient() {
        // haproxy's health checks send LOCAL with AF_UNSPEC and no addresses; LOCAL with addresses ignores them.
        #expect(parseProxyEverySplit(proxyV2(command: 0, family: 0, transport: 0, body: []) + proxiedRequest).header == .local)
        #expect(parseProxyEverySplit(proxyV2(command: 0, family: 1, body: [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2])).header == .local)
    }

    @Test func v2UnixAndUnspecFamiliesLeaveThePeerAsTheClient() {
        #expect(parseProxyEverySplit(proxyV2(family: 3, body: [UInt8](repeating: 0x2f, count: 216))).header == .unknownSource)
        #expect(parseProxyEverySplit(proxyV2(family: 0, transport: 0, body: [])).header == .unknownSource)
    }

    @Test func refusesABadV2Signature() {
        var header = proxyV2(family: 1, body: [192, 0, 2, 7, 127, 0, 0, 1, 0, 1, 0, 2])
        header[6] = 0x0B
        #expect(parseProxyEverySplit(header).error == ProxyHeaderError(description: "bad PROXY v2 signature"))
    }

    @Test func refusesAnUnknownV2VersionCommandOrFamily() {
        var version1 = proxyV2(family: 1, body: [UInt8](repeating: 1, count: 12))
        version1[12] = 0x11
        #expect(parseProxyEverySplit(version1).error == ProxyHeaderError(description: "PROXY v2 version 1 is not 2"))
        #expect(parseProxyEverySplit(proxyV2(command: 2, family: 1, body: [UInt8](repeating: 1, count: 12))).error
                == ProxyHeaderError(description: "unknown PROXY v2 command 2"))
        #expect(parseProxyEverySplit(proxyV2(family: 4, body: [UInt8](repeating: 1, count: 12))).error
                == ProxyHeaderError(description: "unknown PROXY v2 address family 4"))
    }

    @Test func refusesAV2AddressBlockShorterThanItsFamily() {
        #expect(parseProxyEverySplit(proxyV2(family: 1, body: [192, 0, 2, 7, 127, 0, 0, 1])).error
                == ProxyHeaderError(description: "PROXY v2 IPv4 block needs 12 bytes, has 8"))
        #expect(parseProxyEverySplit(proxyV2(family: 2, body: [UInt8](repeating: 0, count: 35))).error
                == ProxyHeaderError(description: "PROXY v2 IPv6 block needs 36 bytes, has 35"))
    }

    @Test func refusesAnOversizedV2HeaderAsSoonAsItsLengthArrives() {
        // The length field says 65,535: refused after 16 bytes, without waiting for (or holding) the rest.
        let announced = Array(proxyV2(family: 1, body: [])[..<14]) + [0xff, 0xff]
        #expect(parseProxyHeader([announced]).error
                == ProxyHeaderError(description: "PROXY v2 header of 65551 bytes is over the limit of 4096"))
        let atLimit = proxyV2(family: 1, body: [UInt8](repeating: 0, count: 4096 - 16))
        #expect(parseProxyHeader([atLimit]).header == .proxied(source: IPAddress("0.0.0.0")!, sourcePort: 0))
        #expect(parseProxyHeader([atLimit], maxV2Length: 4095).error != nil)
    }
}
