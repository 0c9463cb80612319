// Address text as proxies and operators write it: strict parsing, one canonical form per address,
// and CIDR blocks of both families.

import Glibc
import ShoalWire
import Testing

@Suite struct IPAddressTests {
    @Test func printsOneCanonicalFormPerAddress() throws {
        let cases: [(String, String)] = [
            ("192.0.2.1", "192.0.2.1"), ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"),
            ("::ffff:192.0.2.1", "192.0.2.1"), ("::FFFF:c000:0201", "192.0.2.1"),
            ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"), ("2001:db8::0:1", "2001:db8::1"), ("::", "::"), ("::1", "::1"),
            ("1::", "1::"), ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // a single zero group stays
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  // the longest run wins
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // the first of equal runs wins
            ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ]
        for (text, canonical) in cases {
            let address = try #require(IPAddress(text), "\(text)")
            #expect(address.description == canonical, "\(text)")
            #expect(IPAddress(canonical) == address, "\(canonical)")
        }
        #expect(IPAddress("::ffff:10.0.0.1") == IPAddress("10.0.0.1"))
        #expect(IPAddress("10.0.0.1")!.isIPv4 && !IPAddress("::1")!.isIPv4)
    }

    @Test func refusesWhatIsNotOneAddress() {
        let bad = [
            "", "1.2.3", "1.2.3.4.5", "1.2.3.256", "01.2.3.4", "1.2.3.-4", "1.2.3.4 ", " 1.2.3.4", "1..3.4",
            ":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::1", "::1:", ":1::", "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8", "[::1]", "::1%eth0", "1.2.3.4:80", "::1.2.3", "1.2.3.4::", "unknown", "_hidden",
        ]
        for text in bad { #expect(IPAddress(text) == nil, "\(text)") }
    }

    @Test func buildsAddressesFromRawBytes() {
        #expect(IPAddress(ipv4: 0xC000_0201).description == "192.0.2.1")
        #expect(IPAddress(ipv6: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 12))?.description == "2001:db8::")
        #expect(IPAddress(ipv6: [UInt8](repeating: 0, count: 15)) == nil)
    }
}

@Suite struct AddressRangeTests {
    @Test func matchesIPv4Blocks() throws {
        let block = try AddressRange("10.0.0.0/8")
        #expect(block.contains(IPAddress("10.255.1.2")!))
        #expect(!block.contains(IPAddress("11.0.0.1")!))
        #expect(block.contains(IPAddress("::ffff:10.1.1.1")!))
        #expect(!block.contains(IPAddress("::a01:101")!), "an IPv6 address with the same low bits is not IPv4")
        #expect(block.description == "10.0.0.0/8")
        #expect(try AddressRange("10.9.9.9/8") == block, "host bits are masked off")
        #expect(try AddressRange("0.0.0.0/0").contains(IPAddress("203.0.113.5")!))
        #expect(!(try AddressRange("0.0.0.0/0").contains(IPAddress("2001:db8::1")!)))
    }

    @Test func aLoneAddressIsABlockOfOne() throws {
        let one = try AddressRange("127.0.0.1")
        #expect(one.contains(IPAddress("127.0.0.1")!) && !one.contains(IPAddress("127.0.0.2")!))
        #expect(one.description == "127.0.0.1/32")
        let six = try AddressRange("::1")
        #expect(six.contains(IPAddress("::1")!) && !six.contains(IPAddress("::2")!))
    }

    @Test func matchesIPv6Blocks() throws {
        let block = try AddressRange("2001:db8::/32")
        #expect(block.contains(IPAddress("2001:db8:ffff::1")!))
        #expect(!block.contains(IPAddress("2001:db9::1")!))
        #expect(!block.contains(IPAddress("10.0.0.1")!))
        #expect(try AddressRange("2001:db8::1/127").contains(IPAddress("2001:db8::")!))
        #expect(try AddressRange("::/0").contains(IPAddress("10.0.0.1")!), "every address, mapped IPv4 too")
    }

    @Test func refusesBadBlocksWithTheReason() {
        for text in ["10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/8/8", "10.0.0.0/ 8", "example.com", "", "/8"] {
            #expect(throws: AddressRange.ParseError.self, "\(text)") { try AddressRange(text) }
        }
        #expect(throws: AddressRange.ParseError(description: "\"10.0.0.0/33\": the prefix length must be 0...32")) {
            try AddressRange("10.0.0.0/33")
        }
    }

    /// The text a server used to make of an accepted peer: getnameinfo(NI_NUMERICHOST) of its sockaddr,
    /// "::ffff:" taken off a mapped IPv4 address, then put in canonical form through the parser.
    private static func textThroughGetnameinfo(high: UInt64, low: UInt64, asIPv4: Bool) -> (raw: String, canonical: String) {
        var storage = sockaddr_storage()
        var length: socklen_t
        if asIPv4 {
            withUnsafeMutableBytes(of: &storage) {
                $0.storeBytes(of: sa_family_t(AF_INET), toByteOffset: 0, as: sa_family_t.self)
                $0.storeBytes(of: UInt32(truncatingIfNeeded: low).bigEndian, toByteOffset: 4, as: UInt32.self)
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else {
            withUnsafeMutableBytes(of: &storage) {
                $0.storeBytes(of: sa_family_t(AF_INET6), toByteOffset: 0, as: sa_family_t.self)
                $0.storeBytes(of: high.bigEndian, toByteOffset: 8, as: UInt64.self)
                $0.storeBytes(of: low.bigEndian, toByteOffset: 16, as: UInt64.self)
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
            }
        }
        guard rc == 0 else { return ("", "") }
        var raw = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if raw.hasPrefix("::ffff:"), raw.contains(".") { raw.removeFirst(7) }
        return (raw, IPAddress(raw)?.description ?? raw)
    }

    @Test func printsAnAcceptedPeerAsGetnameinfoAndTheParserDid() {
        // The peer's text is now made from its bits alone (no getnameinfo, no parse): the same text.
        var generator = SystemRandomNumberGenerator()
        var v4: [UInt32] = [0, 1, 9, 10, 99, 100, 255, 256, 0x7f00_0001, 0x0a00_0064, 0xc0a8_0a09, 0x6463_0a00, .max]
        for _ in 0..<2000 { v4.append(generator.next()) }
        for value in v4 {
            let address = IPAddress(high: 0, low: 0xffff << 32 | UInt64(value))
            let old = Self.textThroughGetnameinfo(high: 0, low: UInt64(value), asIPv4: true)
            #expect(address.description == old.raw, "\(old.raw)")  // dotted quad: byte for byte
            let mapped = Self.textThroughGetnameinfo(high: 0, low: address.low, asIPv4: false)
            #expect(address.description == mapped.canonical, "\(mapped.raw)")  // from a dual-stack listener
        }
        var v6: [(UInt64, UInt64)] = [
            (0, 1), (0x2001_0db8_0000_0000, 1), (0x2001_0db8_0000_0001, 0x0001_0001_0001_0001), (0xfe80_0000_0000_0000, 0x1),
            (0, 0x0102_0304), (0x0064_ff9b_0000_0000, 0xc000_0221), (0x2001_0000_0000_0001, 1), (.max, .max),
        ]
        for _ in 0..<2000 {
            // Random groups, many of them zero, so runs of every length and place come up.
            let groups = (0..<8).map { _ in generator.next() % 3 == 0 ? UInt64(generator.next() & 0xffff) : 0 }
            v6.append((groups[0..<4].reduce(0) { $0 << 16 | $1 }, groups[4..<8].reduce(0) { $0 << 16 | $1 }))
        }
        for (high, low) in v6 {
            let old = Self.textThroughGetnameinfo(high: high, low: low, asIPv4: false)
            #expect(IPAddress(high: high, low: low).description == old.canonical, "\(old.raw)")
        }
    }
}
