// The HTTP upgrade path as the server runs it (HTTPSession): HTTPHeadParser fed what arrives, pipelined
// heads fed back in, and every complete head split into its target, checked against an Origin allow-list, put
// through WebSocketUpgrade.validate and its Sec-WebSocket-Extensions offers through permessage-deflate
// negotiation.

import ShoalWire

/// Invariants of the upgrade path for arbitrary bytes; shared by the libFuzzer target and the corpus replay.
///
/// The input is the raw bytes a client sends. They are parsed whole and in pieces derived from their hash,
/// under the default limits and under small ones (so 431 is reachable with short inputs); each run must:
/// consume within the bytes it was given, fail only with 400/431/505, produce heads within the limits whose
/// fields obey the grammar, validate to 400/405/426 or to a key of 16 bytes, and negotiate (shared and
/// dedicated policies) to nothing or to windows of 8...15 bits, a memory level of 1...9 and a response header
/// naming permessage-deflate. Both chunkings must give the same heads at the same offsets and the same error.
public enum UpgradeCheck {
    /// The limits each input is parsed under: the server's defaults, then small ones.
    public static let limits: [(maxHeadSize: Int, maxHeaderCount: Int)] = [
        (Limits.defaultMaxHeadSize, Limits.defaultMaxHeaderCount), (256, 4),
    ]

    public static func check(_ input: [UInt8]) throws(InvariantViolation) {
        let sizes = Chunking.sizesDerived(from: input)
        for (maxHeadSize, maxHeaderCount) in limits {
            let whole = try parse(input, pieces: Chunking.ranges(count: input.count, sizes: []),
                                  maxHeadSize: maxHeadSize, maxHeaderCount: maxHeaderCount)
            let split = try parse(input, pieces: Chunking.ranges(count: input.count, sizes: sizes),
                                  maxHeadSize: maxHeadSize, maxHeaderCount: maxHeaderCount)
            try require(whole == split, "limits \(maxHeadSize)/\(maxHeaderCount): whole input gave \(whole), pieces \(sizes.prefix(8))... gave \(split)")
        }
    }

    /// One parsed head, reduced to what the comparison needs, and what validation made of it.
    struct Head: Equatable {
        var method: String
        var target: String
        var minor: Int
        var headers: [String]
        /// Offset in the whole input just after the head.
        var end: Int
        /// The key, or the status validation answered with.
        var validation: String
        /// The response header of each policy's agreement ("" without one), and the Origin decisions.
        var negotiation: [String]
    }

    /// What the checks negotiate with: the worker-wide shared codecs, and a connection's own at two windows.
    static let policies: [DeflatePolicy] = [.shared, .dedicated(), .dedicated(windowBits: 9, memoryLevel: 1)]

    /// An allow-list of each pattern form, for the Origin header.
    static let origins = try! OriginAllowList(["https://app.example.com", "*.example.com:8443", "http://localhost:8080"])

    struct Outcome: Equatable {
        var heads: [Head] = []
        var error: HTTPError?
    }

    private static func parse(
        _ input: [UInt8], pieces: [Range<Int>], maxHeadSize: Int, maxHeaderCount: Int
    ) throws(InvariantViolation) -> Outcome {
        var parser = HTTPHeadParser(maxHeadSize: maxHeadSize, maxHeaderCount: maxHeaderCount)
        var outcome = Outcome()
        var headStart = 0
        for range in pieces {
            let failed = try withExactCopy(of: input, range) { (piece) throws(InvariantViolation) -> Bool in
                var offset = 0
                while offset < piece.count {
                    let rest = UnsafeRawBufferPointer(rebasing: piece[offset...])
                    let result: HTTPHeadParser.Result
                    do throws(HTTPError) {
                        result = try parser.feed(rest)
                    } catch {
                        try require([400, 431, 505].contains(error.status), "parser failed with \(error.status) \(error.reason)")
                        try require(!error.reason.isEmpty, "parser error \(error.status) without a reason")
                        outcome.error = error
                        return true
                    }
                    switch result {
                    case .needMore:
                        offset = piece.count
                    case .complete(let head, let consumed):
                        try require(consumed >= 1 && consumed <= rest.count, "consumed \(consumed) of \(rest.count) bytes")
                        offset += consumed
                        let end = range.lowerBound + offset
                        try require(end - headStart <= maxHeadSize, "head of \(end - headStart) bytes > \(maxHeadSize)")
                        headStart = end
                        outcome.heads.append(try checked(head, end: end, maxHeaderCount: maxHeaderCount))
                        // The server starts a new parser for the next request, as here.
                        parser = HTTPHeadParser(maxHeadSize: maxHeadSize, maxHeaderCount: maxHeaderCount)
                    }
                }
                return false
            }
            if failed { break }
        }
        return outcome
    }

    /// The grammar a parsed head must satisfy, then the upgrade decision for it.
    private static func checked(
        _ head: HTTPRequestHead, end: Int, maxHeaderCount: Int
    ) throws(InvariantViolation) -> Head {
        try require(!head.method.isEmpty && head.method.utf8.allSatisfy(isTokenByte), "method \(head.method.utf8.map { $0 })")
        try require(!head.target.isEmpty && head.target.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "target \(head.target)")
        try require(head.versionMajor == 1 && (0...9).contains(head.versionMinor), "version \(head.versionMajor).\(head.versionMinor)")
        try require(head.headers.count <= maxHeaderCount, "\(head.headers.count) header fields > \(maxHeaderCount)")
        var headers: [String] = []
        for (name, value) in head.headers {
            try require(!name.isEmpty && name.utf8.allSatisfy(isTokenByte), "header name \(Array(name.utf8))")
            let bytes = Array(value.utf8)
            try require(bytes.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }, "header value \(bytes)")
            try require(bytes.first.map { $0 != 0x20 && $0 != 0x09 } ?? true, "value with leading whitespace \(bytes)")
            try require(bytes.last.map { $0 != 0x20 && $0 != 0x09 } ?? true, "value with trailing whitespace \(bytes)")
            headers.append(name + ":" + value)
        }
        // HTTPSession routes on the decoded path before it validates.
        let target = RequestTarget(head.target)
        try require(!target.path.isEmpty, "empty path from target \(head.target)")
        _ = head.keepAlive
        let validation: String
        switch Result(catching: { () throws(HTTPError) -> WebSocketKey in try WebSocketUpgrade.validate(head) }) {
        case .success(let checkedKey):
            let key = checkedKey.description
            try require(Base64.decode(key)?.count == 16, "accepted key \(key) is not 16 bytes of base64")
            let accept = WebSocketUpgrade.acceptValue(forKey: key)
            try require(accept.utf8.count == 28 && Base64.decode(accept)?.count == 20, "accept value \(accept)")
            validation = key
        case .failure(let error):
            switch error.status {
            case 400:
                break
            case 405:
                try require(error.headers.contains { $0.0 == "Allow" }, "405 without Allow")
            case 426:
                try require(error.headers.contains { $0 == ("Sec-WebSocket-Version", "13") }, "426 without the version")
            default:
                throw InvariantViolation("validate failed with \(error.status) \(error.reason)")
            }
            try require(!error.reason.isEmpty, "validate error \(error.status) without a reason")
            validation = "\(error.status)"
        }
        var negotiation: [String] = []
        for policy in policies {
            let offers = head.headers.values("Sec-WebSocket-Extensions")
            guard let agreement = PerMessageDeflate.negotiate(headerValues: offers, policy: policy) else {
                negotiation.append("")
                continue
            }
            try require(
                (8...15).contains(agreement.clientMaxWindowBits) && (8...15).contains(agreement.serverMaxWindowBits)
                    && (1...9).contains(agreement.memoryLevel),
                "agreement \(agreement) for offers \(offers)")
            try require(
                agreement.responseHeaderValue.hasPrefix(PerMessageDeflate.extensionName)
                    && agreement.responseHeaderValue.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F },
                "response header \(agreement.responseHeaderValue)")
            _ = agreement.makeInflater()
            negotiation.append(agreement.responseHeaderValue)
        }
        for origin in head.headers.values("Origin") {
            negotiation.append(origins.allows(origin) ? "allowed" : "refused")
            // The same parser reads the operator's patterns.
            _ = try? OriginAllowList([origin])
        }
        return Head(method: head.method, target: head.target, minor: head.versionMinor, headers: headers, end: end,
                    validation: validation, negotiation: negotiation)
    }

    /// tchar of RFC 9110 §5.6.2, written out again so the check does not trust the parser's own table.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        default: Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }
}
