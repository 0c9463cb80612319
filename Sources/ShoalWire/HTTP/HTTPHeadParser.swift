// Incremental parser for an HTTP/1.x request head (RFC 9112 §2-5), fed whatever the socket delivers.
// It scans each byte once to find the end of the head, then parses the lines in one pass: linear time,
// no backtracking, bounded memory (maxHeadSize).

/// Parses one request head at a time; after `.complete` it is ready for the next (pipelined) request.
public struct HTTPHeadParser {
    /// The outcome of one `feed` call.
    public enum Result {
        /// The head is not complete yet; every byte given was consumed.
        case needMore
        /// The head is complete. `consumed` = bytes of THIS call's input used; the rest belongs to what
        /// follows the head (a body or the first WebSocket frames).
        case complete(HTTPRequestHead, consumed: Int)
    }

    private let maxHeadSize: Int
    private let maxHeaderCount: Int
    /// The head so far, from the request line on (leading blank lines are dropped).
    private var head: [UInt8] = []
    /// Index in `head` where the line being received starts.
    private var lineStart = 0
    /// Bytes counted against `maxHeadSize`, leading blank lines included so they cannot be sent forever.
    private var received = 0
    /// Complete lines in `head`, request line included.
    private var lineCount = 0

    /// Creates a parser with bounds on the head's size and number of header fields.
    public init(maxHeadSize: Int = Limits.defaultMaxHeadSize, maxHeaderCount: Int = Limits.defaultMaxHeaderCount) {
        // Field positions in the head are 32-bit (`HTTPHeaders.Field`).
        self.maxHeadSize = min(maxHeadSize, Int(UInt32.max))
        self.maxHeaderCount = maxHeaderCount
    }

    /// Feeds the next bytes. Throws 400 for a malformed request line or header (obs-fold, bad
    /// characters, missing colon), 505 for a version other than HTTP/1.x, and 431 when the head is
    /// larger than `maxHeadSize` or has more than `maxHeaderCount` fields. Lines may end in CRLF or a
    /// bare LF; blank lines before the request line are ignored (RFC 9112 §2.2).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(HTTPError) -> Result {
        var index = 0
        while index < bytes.count {
            let rest = bytes[index...]
            guard let lineFeed = rest.firstIndex(of: UInt8(ascii: "\n")) else {
                try count(rest.count)
                append(rest, readLength: bytes.count - index)
                return .needMore
            }
            try count(lineFeed + 1 - index)
            append(bytes[index...lineFeed], readLength: bytes.count - index)
            index = lineFeed + 1
            var lineEnd = head.count - 1
            if lineEnd > lineStart && head[lineEnd - 1] == UInt8(ascii: "\r") {
                lineEnd -= 1
            }
            if lineEnd > lineStart {
                lineCount += 1
                // The request line is not a header field.
                if lineCount - 1 > maxHeaderCount {
                    throw HTTPError(status: 431, reason: "Too many header fields")
                }
                lineStart = head.count
            } else if lineCount == 0 {
                head.removeAll(keepingCapacity: true)
                lineStart = 0
            } else {
                let parsed = try Self.parse(head, lineCount: lineCount)
                self = HTTPHeadParser(maxHeadSize: maxHeadSize, maxHeaderCount: maxHeaderCount)
                return .complete(parsed, consumed: index)
            }
        }
        return .needMore
    }

    /// Copies part of a read into `head`; the first copy of a head makes room for the whole read (up
    /// to the size limit), which holds the whole head in the usual case: one allocation, not one per
    /// doubling as the lines arrive.
    private mutating func append(_ part: Slice<UnsafeRawBufferPointer>, readLength: Int) {
        if head.isEmpty { head.reserveCapacity(min(readLength, maxHeadSize)) }
        // As typed bytes: an array appends a buffer of its own element type with one copy, a slice of
        // raw memory byte by byte through an iterator.
        head.append(contentsOf: UnsafeRawBufferPointer(rebasing: part).assumingMemoryBound(to: UInt8.self))
    }

    private mutating func count(_ byteCount: Int) throws(HTTPError) {
        received += byteCount
        if received > maxHeadSize {
            throw HTTPError(status: 431, reason: "Request header fields too large")
        }
    }

    // MARK: - Parsing a complete head

    /// One pass over the lines (the head starts with the request line: `feed` drops blank lines
    /// before it). The fields stay in `head`, found by their positions: no String per field.
    private static func parse(_ head: [UInt8], lineCount: Int) throws(HTTPError) -> HTTPRequestHead {
        var fields: [HTTPHeaders.Field] = []
        fields.reserveCapacity(lineCount - 1)
        // Lines are slices of the buffer, not of the array: every slice of an array (line, name,
        // value, each trim) retains and releases its storage, a dozen atomic pairs per field.
        let requestLine = try head.withUnsafeBufferPointer { head throws(HTTPError) -> RequestLine in
            let lineFeed = UInt8(ascii: "\n")
            func line(_ start: Int, _ lineFeedIndex: Int) -> Line {
                var end = lineFeedIndex
                if end > start && head[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                return head[start..<end]
            }
            // The request line first, then the fields: a loop that carried the request from line to
            // line copied it to the stack at every byte of the scan.
            guard let requestLineEnd = head.firstIndex(of: lineFeed) else { throw .badRequest("Malformed request line") }
            let requestLine = try parseRequestLine(line(0, requestLineEnd))
            var start = requestLineEnd + 1
            while let end = head[start...].firstIndex(of: lineFeed) {
                let field = line(start, end)
                start = end + 1
                if field.isEmpty { continue }
                fields.append(try parseHeaderLine(field))
            }
            return requestLine
        }
        // The head made once, with its fields: a head made for the request line and then given its
        // fields was copied, a retain and a release of each of its parts.
        return HTTPRequestHead(
            method: requestLine.method, target: requestLine.target, versionMajor: 1, versionMinor: requestLine.versionMinor,
            headers: HTTPHeaders(bytes: head, fields: fields))
    }

    /// What the request line says (the parser accepts HTTP/1.x only).
    private struct RequestLine {
        var method: String
        var target: String
        var versionMinor: Int
    }

    /// A line of the head, in the parser's buffer.
    private typealias Line = Slice<UnsafeBufferPointer<UInt8>>

    private static func parseRequestLine(_ line: Line) throws(HTTPError) -> RequestLine {
        let space = UInt8(ascii: " ")
        guard let firstSpace = line.firstIndex(of: space) else {
            throw .badRequest("Malformed request line")
        }
        let method = line[..<firstSpace]
        let afterMethod = line[(firstSpace + 1)...]
        guard let secondSpace = afterMethod.firstIndex(of: space) else {
            throw .badRequest("Malformed request line")
        }
        let target = afterMethod[..<secondSpace]
        let v = afterMethod[(secondSpace + 1)...]
        guard !method.isEmpty, method.allSatisfy(HTTPToken.isTokenCharacter) else {
            throw .badRequest("Malformed request line: invalid method")
        }
        guard !target.isEmpty, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .badRequest("Malformed request line: invalid request target")
        }
        let s = v.startIndex
        guard v.count == 8, v[s..<(s + 5)].elementsEqual("HTTP/".utf8), isDigit(v[s + 5]), v[s + 6] == UInt8(ascii: "."),
            isDigit(v[s + 7])
        else {
            throw .badRequest("Malformed request line: invalid HTTP version")
        }
        guard v[s + 5] == UInt8(ascii: "1") else {
            throw HTTPError(status: 505, reason: "Only HTTP/1.x is supported")
        }
        return RequestLine(
            method: String(decoding: method, as: UTF8.self),
            target: String(decoding: target, as: UTF8.self),
            versionMinor: Int(v[s + 7] - UInt8(ascii: "0")))
    }

    /// The positions of the line's name and (trimmed) value in the head.
    private static func parseHeaderLine(_ line: Line) throws(HTTPError) -> HTTPHeaders.Field {
        if line.first == UInt8(ascii: " ") || line.first == UInt8(ascii: "\t") {
            // RFC 9112 §5.2: a server that does not unfold must reject obs-fold with 400.
            throw .badRequest("Obsolete line folding in header")
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            throw .badRequest("Header line without a colon")
        }
        let name = line[..<colon]
        // Includes whitespace before the colon, which RFC 9112 §5.1 requires rejecting.
        guard !name.isEmpty, name.allSatisfy(HTTPToken.isTokenCharacter) else {
            throw .badRequest("Invalid header name")
        }
        let value = trimmingOWS(line[(colon + 1)...])
        // field-vchar, SP, HTAB and obs-text; CR, NUL and other controls are not allowed.
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
            throw .badRequest("Invalid character in header value")
        }
        return HTTPHeaders.Field(
            nameStart: UInt32(name.startIndex), nameEnd: UInt32(name.endIndex),
            valueStart: UInt32(value.startIndex), valueEnd: UInt32(value.endIndex))
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
