// Per-address connection counts (`maxConnectionsPerAddress`) kept by index.
import Testing
@testable import Shoal

@Suite struct AddressCountsTests {
    @Test func countsConnectionsPerAddressUntilTheLastOneEnds() {
        var counts = AddressCounts()
        let a1 = counts.add("10.0.0.1")
        let a2 = counts.add("10.0.0.1")
        let b = counts.add("2001:db8::1234:5678:9abc")
        #expect(a1 == a2)
        #expect(a1 != b)
        #expect(counts.connections(from: "10.0.0.1") == 2)
        #expect(counts.connections(from: "2001:db8::1234:5678:9abc") == 1)
        #expect(counts.connections(from: "10.0.0.2") == 0)
        counts.remove(a1)
        #expect(counts.connections(from: "10.0.0.1") == 1)
        counts.remove(a2)
        #expect(counts.connections(from: "10.0.0.1") == 0)
        #expect(counts.connections(from: "2001:db8::1234:5678:9abc") == 1)
    }

    @Test func anAddressWithNoConnectionLeftGivesUpItsIndex() {
        var counts = AddressCounts()
        let a = counts.add("10.0.0.1")
        counts.remove(a)
        let b = counts.add("10.0.0.2")
        #expect(b == a)
        #expect(counts.connections(from: "10.0.0.1") == 0)
        #expect(counts.connections(from: "10.0.0.2") == 1)
    }
}
