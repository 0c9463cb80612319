// The PROXY protocol header (haproxy's proxy-protocol.txt, versions 1 and 2) that a TCP proxy
// (haproxy `send-proxy`/`send-proxy-v2`, nginx `proxy_protocol on`, cloud load balancers) sends
// before the client's own bytes, naming the client's address. Incremental like HTTPHeadParser:
// fed whatever the socket delivers, it fails on the first byte that cannot belong to a header.

/// What a PROXY header says about the connection.
public enum ProxyHeader: Equatable, Sendable {
    /// A proxied TCP connection from `source`.
    case proxied(source: IPAddress, sourcePort: UInt16)
    /// The proxy speaks for itself (v2 LOCAL command: its health checks): the TCP peer is the client.
    case local
    /// The proxy does not know or cannot say (v1 UNKNOWN, v2 UNSPEC or UNIX family): the TCP peer stands.
    case unknownSource
}

/// Why the bytes before the HTTP request are not a PROXY header.
public struct ProxyHeaderError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String

    public init(description: String) {
        self.description = description
    }
}

/// Reads one PROXY header, v1 or v2 (told apart by the first byte).
public struct ProxyHeaderParser {
    /// The outcome of one `feed` call.
    public enum Result: Equatable {
        /// The header is not complete yet; every byte given was consumed.
        case needMore
        /// The header is complete; `consumed` = bytes of THIS call's input it used, the rest is the request.
        case complete(ProxyHeader, consumed: Int)
    }

    /// A v1 line is at most 107 bytes, CRLF included (proxy-protocol.txt §2.1).
    public static let maxV1Length = 107
    /// v2's own limit is 16 + 65,535 bytes. Addresses plus the TLVs haproxy, nginx and cloud load
    /// balancers add (ALPN, authority, TLS details, endpoint ids) stay under 1 KiB; a peer that
    /// announces more than 4 KiB is refused rather than held.
    public static let defaultMaxV2Length = 4096

    static let v1Prefix = Array("PROXY ".utf8)
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    private let maxV2Length: Int
    /// The header's bytes so far.
    private var bytes: [UInt8] = []

    public init(maxV2Length: Int = ProxyHeaderParser.defaultMaxV2Length) {
        self.maxV2Length = maxV2Length
    }

    /// Bytes of a header received so far (for telling a slow header from a silent connection).
    public var receivedCount: Int { bytes.count }

    /// Feeds the next bytes. Throws when they cannot start or continue a PROXY header: a missing
    /// header (the client spoke HTTP directly), a bad signature, a v1 line over 107 bytes or not
    /// in its grammar, a v2 header over the length limit or with an unknown version or command.
    public mutating func feed(_ input: UnsafeRawBufferPointer) throws(ProxyHeaderError) -> Result {
        for (index, byte) in input.enumerated() {
            bytes.append(byte)
            if let header = try step() { return .complete(header, consumed: index + 1) }
        }
        return .needMore
    }

    /// Checks the header after one more byte; returns it once complete.
    private mutating func step() throws(ProxyHeaderError) -> ProxyHeader? {
        let count = bytes.count
        switch bytes[0] {
        case Self.v1Prefix[0]:
            if count <= Self.v1Prefix.count {
                guard bytes[count - 1] == Self.v1Prefix[count - 1] else { throw Self.missing }
                return nil
            }
            if bytes[count - 1] == UInt8(ascii: "\n") { return try Self.parseV1(bytes) }
            guard count < Self.maxV1Length else {
                throw ProxyHeaderError(description: "PROXY v1 line longer than \(Self.maxV1Length) bytes")
            }
            return nil
        case Self.v2Signature[0]:
            if count <= Self.v2Signature.count {
                guard bytes[count - 1] == Self.v2Signature[count - 1] else {
                    throw ProxyHeaderError(description: "bad PROXY v2 signature")
                }
                return nil
            }
            if count == 13 {
                guard bytes[12] >> 4 == 2 else { throw ProxyHeaderError(description: "PROXY v2 version \(bytes[12] >> 4) is not 2") }
                guard bytes[12] & 0xf <= 1 else { throw ProxyHeaderError(description: "unknown PROXY v2 command \(bytes[12] & 0xf)") }
            }
            guard count >= 16 else { return nil }
            let total = 16 + (Int(bytes[14]) << 8 | Int(bytes[15]))
            if count == 16, total > maxV2Length {
                throw ProxyHeaderError(description: "PROXY v2 header of \(total) bytes is over the limit of \(maxV2Length)")
            }
            return count == total ? try Self.parseV2(bytes) : nil
        default:
            throw Self.missing
        }
    }

    static let missing = ProxyHeaderError(description: "no PROXY protocol header before the request")

    /// "PROXY TCP4 SRC DST SRCPORT DSTPORT\r\n", "PROXY TCP6 ...", or "PROXY UNKNOWN...\r\n".
    static func parseV1(_ line: [UInt8]) throws(ProxyHeaderError) -> ProxyHeader {
        guard line.count >= 2, line[line.count - 2] == UInt8(ascii: "\r") else {
            throw ProxyHeaderError(description: "PROXY v1 line does not end in CRLF")
        }
        let fields = line[..<(line.count - 2)].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        let family = String(decoding: fields.count > 1 ? fields[1] : [], as: UTF8.self)
        if family == "UNKNOWN" { return .unknownSource }
        guard family == "TCP4" || family == "TCP6" else {
            throw ProxyHeaderError(description: "PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN")
        }
        guard fields.count == 6 else { throw ProxyHeaderError(description: "PROXY v1 line needs 6 fields, has \(fields.count)") }
        // TCP4 takes dotted quads, TCP6 IPv6 text (which may still be an IPv4-mapped address).
        let isIPv6Text = { (field: ArraySlice<UInt8>) in field.contains(UInt8(ascii: ":")) }
        guard isIPv6Text(fields[2]) == (family == "TCP6"), isIPv6Text(fields[3]) == (family == "TCP6"),
              let source = IPAddress(String(decoding: fields[2], as: UTF8.self)),
              IPAddress(String(decoding: fields[3], as: UTF8.self)) != nil else {
            throw ProxyHeaderError(description: "PROXY v1 addresses are not \(family == "TCP4" ? "IPv4" : "IPv6") addresses")
        }
        guard let sourcePort = port(fields[4]), port(fields[5]) != nil else {
            throw ProxyHeaderError(description: "PROXY v1 ports must be 0...65535")
        }
        return .proxied(source: source, sourcePort: sourcePort)
    }

    private static func port(_ text: ArraySlice<UInt8>) -> UInt16? {
        guard (1...5).contains(text.count), text.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              text.count == 1 || text.first != UInt8(ascii: "0") else { return nil }
        return UInt16(exactly: text.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) })
    }

    /// The 16-byte v2 header (signature, version/command, family/transport, length) and its
    /// address block; TLVs after the addresses are skipped.
    static func parseV2(_ header: [UInt8]) throws(ProxyHeaderError) -> ProxyHeader {
        let command = header[12] & 0xf
        if command == 0 { return .local }  // LOCAL: addresses, if any, are to be ignored
        let length = header.count - 16
        let addresses = header[16...]
        switch header[13] >> 4 {
        case 1:  // AF_INET: 4 + 4 address bytes, 2 + 2 port bytes
            guard length >= 12 else { throw ProxyHeaderError(description: "PROXY v2 IPv4 block needs 12 bytes, has \(length)") }
            let source = addresses.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return .proxied(source: IPAddress(ipv4: source), sourcePort: bigEndian16(header, at: 24))
        case 2:  // AF_INET6: 16 + 16 address bytes, 2 + 2 port bytes
            guard length >= 36 else { throw ProxyHeaderError(description: "PROXY v2 IPv6 block needs 36 bytes, has \(length)") }
            guard let source = IPAddress(ipv6: addresses.prefix(16)) else { return .unknownSource }
            return .proxied(source: source, sourcePort: bigEndian16(header, at: 48))
        case 0, 3:  // AF_UNSPEC, AF_UNIX: no IP address to give
            return .unknownSource
        default:
            throw ProxyHeaderError(description: "unknown PROXY v2 address family \(header[13] >> 4)")
        }
    }

    private static func bigEndian16(_ bytes: [UInt8], at offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }
}
