// An IP address as a proxy names it (X-Forwarded-For, Forwarded, PROXY protocol) or as a trusted
// proxy range is written: parsed strictly from text or raw bytes, and printed in one canonical form,
// so "::FFFF:10.0.0.1", "10.0.0.1" and "0:0::ffff:a00:1" count as one client for per-address limits.

/// An IPv4 or IPv6 address. IPv4 is kept as its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so one
/// 128-bit comparison serves both families, as the kernel does for dual-stack sockets.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// The 128 bits, most significant first.
    public let high: UInt64
    public let low: UInt64

    /// The low 64 bits of an IPv4-mapped address (80 zero bits, 16 one bits, the IPv4 address) above the IPv4 bits.
    static let mappedMarker: UInt64 = 0xffff << 32

    /// The address with these 128 bits (an IPv4 address as ::ffff:a.b.c.d).
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The IPv4 address with these four bytes (network order).
    public init(ipv4 value: UInt32) {
        self.init(high: 0, low: Self.mappedMarker | UInt64(value))
    }

    /// The IPv6 address in these 16 bytes (network order); nil unless exactly 16 bytes.
    public init?<Bytes: Collection<UInt8>>(ipv6 bytes: Bytes) {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }

    /// Parses dotted-quad IPv4 ("192.0.2.1") or IPv6 text (RFC 4291 §2.2: "2001:db8::1",
    /// "::ffff:192.0.2.1"). No brackets, ports, zone ids, or octets with leading zeros (which some
    /// parsers read as octal): a proxy writes none of them for a client address.
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        if let v4 = Self.parseIPv4(bytes[...]) {
            self.init(ipv4: v4)
        } else if let v6 = Self.parseIPv6(bytes[...]) {
            self.init(high: v6.high, low: v6.low)
        } else {
            return nil
        }
    }

    /// True for IPv4 (and IPv4-mapped IPv6) addresses.
    public var isIPv4: Bool { high == 0 && low >> 32 == Self.mappedMarker >> 32 }

    /// Dotted quad for IPv4, RFC 5952 text for IPv6 (lowercase, longest zero run as "::").
    public var description: String {
        if isIPv4 { return Self.dottedQuad(UInt32(truncatingIfNeeded: low)) }
        let groups = (0..<8).map { i -> UInt16 in
            let word = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(i % 4)))
        }
        // The longest run of two or more zero groups (the first on a tie) becomes "::".
        var bestStart = -1
        var bestLength = 1
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else { index += 1; continue }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > bestLength { bestStart = index; bestLength = end - index }
            index = end
        }
        func hex(_ slice: ArraySlice<UInt16>) -> String {
            slice.map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard bestStart >= 0 else { return hex(groups[...]) }
        return hex(groups[..<bestStart]) + "::" + hex(groups[(bestStart + bestLength)...])
    }

    /// "a.b.c.d", written digit by digit: at most 15 bytes, which a String keeps inline (no heap
    /// allocation), and no interpolation. It runs once per accepted connection (its peer's text).
    private static func dottedQuad(_ value: UInt32) -> String {
        String(unsafeUninitializedCapacity: 15) { text in
            var count = 0
            func put(_ byte: UInt8) {
                text[count] = byte
                count += 1
            }
            for shift: UInt32 in [24, 16, 8, 0] {
                if shift != 24 { put(UInt8(ascii: ".")) }
                let octet = UInt8(truncatingIfNeeded: value >> shift)
                if octet >= 100 { put(UInt8(ascii: "0") + octet / 100) }
                if octet >= 10 { put(UInt8(ascii: "0") + octet / 10 % 10) }
                put(UInt8(ascii: "0") + octet % 10)
            }
            return count
        }
    }

    /// Four decimal octets 0...255 separated by dots.
    static func parseIPv4(_ bytes: ArraySlice<UInt8>) -> UInt32? {
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(isDigit),
                  part.count == 1 || part.first != UInt8(ascii: "0") else { return nil }
            let octet = part.reduce(0) { $0 * 10 + UInt32($1 - UInt8(ascii: "0")) }
            guard octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    /// Up to eight hex groups of one to four digits, at most one "::", optionally ending in a dotted
    /// quad that stands for the last two groups.
    static func parseIPv6(_ bytes: ArraySlice<UInt8>) -> (high: UInt64, low: UInt64)? {
        guard bytes.count >= 2, bytes.count <= 45 else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawGap = false
        var rest = bytes
        if rest.starts(with: [UInt8(ascii: ":"), UInt8(ascii: ":")]) {
            sawGap = true
            rest = rest.dropFirst(2)
        }
        while !rest.isEmpty {
            let end = rest.firstIndex(of: UInt8(ascii: ":")) ?? rest.endIndex
            let group = rest[rest.startIndex..<end]
            if end == rest.endIndex, group.contains(UInt8(ascii: ".")) {
                guard let v4 = parseIPv4(group) else { return nil }
                let pair = [UInt16(v4 >> 16), UInt16(v4 & 0xffff)]
                if sawGap { tail += pair } else { head += pair }
                rest = rest[end...]
                break
            }
            guard (1...4).contains(group.count), group.allSatisfy(isHexDigit) else { return nil }
            let value = group.reduce(UInt16(0)) { $0 << 4 | UInt16(hexValue($1)) }
            if sawGap { tail.append(value) } else { head.append(value) }
            guard end != rest.endIndex else { rest = rest[end...]; break }
            rest = rest[rest.index(after: end)...]
            if rest.first == UInt8(ascii: ":") {
                guard !sawGap else { return nil }  // a second "::"
                sawGap = true
                rest = rest.dropFirst()
            } else if rest.isEmpty {
                return nil  // a single trailing ":"
            }
        }
        let count = head.count + tail.count
        guard sawGap ? count <= 7 : count == 8 else { return nil }
        let groups = head + [UInt16](repeating: 0, count: 8 - count) + tail
        let high = groups[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = groups[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return (high, low)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private static func isHexDigit(_ byte: UInt8) -> Bool { hexValue(byte) < 16 }

    private static func hexValue(_ byte: UInt8) -> UInt8 {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: 16
        }
    }
}
