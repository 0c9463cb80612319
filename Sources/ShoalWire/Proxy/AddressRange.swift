// A CIDR block ("10.0.0.0/8", "2001:db8::/32", or one address): the form `--trusted-proxy` takes.

/// The addresses sharing a prefix. An IPv4 block matches IPv4 addresses only, an IPv6 block
/// written over ::ffff:0:0/96 matches the IPv4 addresses it covers too (they are stored mapped).
public struct AddressRange: Hashable, Sendable, CustomStringConvertible {
    /// The first address of the block (bits past the prefix are zero).
    public let network: IPAddress
    /// Leading bits that must match, over the 128-bit form (an IPv4 /8 is 104 here).
    public let prefixBits: Int

    /// Why a block's text was refused.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// Parses "ADDRESS/BITS" or a lone address (a block of one). Bits past the prefix may be set
    /// ("10.1.2.3/8" is 10.0.0.0/8), as nginx's set_real_ip_from accepts.
    public init(_ text: String) throws(ParseError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else {
            throw ParseError(description: "\"\(text)\" is not an IPv4 or IPv6 address or CIDR block")
        }
        let familyBits = address.isIPv4 && !parts[0].contains(":") ? 32 : 128
        var bits = familyBits
        if parts.count == 2 {
            guard let given = Int(parts[1]), (0...familyBits).contains(given), parts[1].allSatisfy(\.isNumber) else {
                throw ParseError(description: "\"\(text)\": the prefix length must be 0...\(familyBits)")
            }
            bits = given
        }
        prefixBits = bits + (128 - familyBits)
        network = Self.masked(address, bits: prefixBits)
    }

    /// Whether `address` lies in the block.
    public func contains(_ address: IPAddress) -> Bool {
        Self.masked(address, bits: prefixBits) == network
    }

    public var description: String {
        network.isIPv4 && prefixBits >= 96 ? "\(network)/\(prefixBits - 96)" : "\(network)/\(prefixBits)"
    }

    private static func masked(_ address: IPAddress, bits: Int) -> IPAddress {
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? ~0 : ~0 << UInt64(64 - bits) }
        return IPAddress(high: address.high & mask(bits), low: address.low & mask(bits - 64))
    }
}
