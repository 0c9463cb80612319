// Address text as proxies and operators write it: strict parsing, one canonical form per address,
// and CIDR blocks of both families.

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
}
