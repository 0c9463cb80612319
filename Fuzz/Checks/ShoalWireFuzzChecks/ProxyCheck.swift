// The client-address path of a connection behind a proxy (HTTPSession with --proxy-protocol and
// --trusted-proxy): ProxyHeaderParser fed what arrives, and the same bytes as the value of each
// forwarding header, read from a trusted and from an untrusted peer.

import ShoalWire

/// Invariants of the PROXY header parser and the forwarding-header rule for arbitrary bytes; shared
/// by the libFuzzer target and the corpus replay.
///
/// The bytes are parsed as what a proxy sends first, whole and in pieces derived from their hash:
/// both must give the same header at the same offset, or the same error; a header ends within 107
/// bytes (v1) or the v2 limit, and a proxied source prints to text that parses back to it. Then the
/// bytes (as UTF-8) are the value of Forwarded, X-Forwarded-For and X-Real-IP: from an untrusted
/// peer the client is always that peer; from a trusted one it is the peer or a canonical address.
public enum ProxyCheck {
    static let proxies = TrustedProxies([try! AddressRange("10.0.0.0/8"), try! AddressRange("::1")])

    struct Outcome: Equatable {
        var header: ProxyHeader?
        var end: Int?
        var error: ProxyHeaderError?
    }

    public static func check(_ input: [UInt8]) throws(InvariantViolation) {
        let whole = try parse(input, pieces: Chunking.ranges(count: input.count, sizes: []))
        let sizes = Chunking.sizesDerived(from: input)
        let split = try parse(input, pieces: Chunking.ranges(count: input.count, sizes: sizes))
        try require(whole == split, "whole input gave \(whole), pieces \(sizes.prefix(8))... gave \(split)")
        if let end = whole.end {
            let limit = input.first == UInt8(ascii: "P") ? ProxyHeaderParser.maxV1Length : ProxyHeaderParser.defaultMaxV2Length
            try require(end <= limit, "a header of \(end) bytes passed the limit of \(limit)")
        }
        if case .proxied(let source, _) = whole.header {
            try require(IPAddress(source.description) == source, "source \(source) does not parse back from its text")
        }
        let value = String(decoding: input, as: UTF8.self)
        for name in ["Forwarded", "X-Forwarded-For", "X-Real-IP"] {
            let headers = HTTPHeaders([(name, value)])
            let untrusted = proxies.clientAddress(peer: "192.0.2.1", headers: headers)
            try require(untrusted == "192.0.2.1", "\(name) from an untrusted peer named \(untrusted)")
            let trusted = proxies.clientAddress(peer: "10.0.0.1", headers: headers)
            try require(trusted == "10.0.0.1" || IPAddress(trusted)?.description == trusted,
                        "\(name) from a trusted peer gave \(trusted), neither the peer nor a canonical address")
        }
    }

    /// Feeds the pieces, each in a heap block of its own size, until the header completes or fails.
    private static func parse(_ input: [UInt8], pieces: [Range<Int>]) throws(InvariantViolation) -> Outcome {
        var parser = ProxyHeaderParser()
        for piece in pieces {
            let result: Result<ProxyHeaderParser.Result, ProxyHeaderError> = withExactCopy(of: input, piece) { bytes in
                do throws(ProxyHeaderError) {
                    return .success(try parser.feed(UnsafeRawBufferPointer(bytes)))
                } catch {
                    return .failure(error)
                }
            }
            switch result {
            case .failure(let error):
                return Outcome(error: error)
            case .success(.needMore):
                continue
            case .success(.complete(let header, let consumed)):
                try require(consumed >= 1 && consumed <= piece.count, "consumed \(consumed) of a \(piece.count)-byte piece")
                return Outcome(header: header, end: piece.lowerBound + consumed)
            }
        }
        return Outcome()
    }
}
