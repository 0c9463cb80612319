// The client side's check of the server's answer to an opening handshake (RFC 6455 §4.1): status
// 101, Upgrade and Connection tokens, Sec-WebSocket-Accept, the subprotocol, and the
// permessage-deflate answer, if any. Shared by shoal-bench and the WebSocket client class.

/// Validation of a server's handshake response head (bytes up to and including the blank line).
public enum HandshakeResponse {
    /// Largest response head accepted; a server sending more is not answering a WebSocket upgrade.
    public static let maxHeadSize = 16 * 1024

    /// The offset just past "\r\n\r\n" in `bytes`, searching from `from`, or nil.
    public static func headEnd(in bytes: [UInt8], from: Int) -> Int? {
        var i = max(0, from)
        while i + 3 < bytes.count {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i + 4 }
            i += 1
        }
        return nil
    }

    /// What the check of a response head found.
    public enum Outcome: Sendable {
        /// A valid 101; `deflate` is the accepted permessage-deflate agreement, nil without one.
        case accepted(deflate: ClientDeflateAgreement?, answer: String?)
        case failed(String)
    }

    /// Checks that `head` is a valid 101 answer carrying `expectedAccept`. With `deflateOffered`, a
    /// Sec-WebSocket-Extensions answer must accept permessage-deflate as RFC 7692 allows; without the
    /// offer, any extension in the answer fails the handshake. A Sec-WebSocket-Protocol answer must be
    /// one of the `subprotocols` asked for (RFC 6455 §4.1: the client fails on one it did not ask for).
    public static func check(_ head: ArraySlice<UInt8>, expectedAccept: String, deflateOffered: Bool,
                             subprotocols: [String] = []) -> Outcome {
        let text = String(decoding: head, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: true)[...]
        guard let status = lines.popFirst() else { return .failed("empty response") }
        let parts = status.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1.") else { return .failed("not an HTTP response: \(status.prefix(80))") }
        guard parts[1] == "101" else { return .failed("status \(status.dropFirst(parts[0].count + 1).prefix(80)) instead of 101") }
        var upgrade = false, connection = false
        var accept: Substring?
        var extensions: [Substring] = []
        var protocolAnswer: Substring?
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { return .failed("malformed header line: \(line.prefix(80))") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            let trimmed = value.prefix(value.count - value.reversed().prefix { $0 == " " || $0 == "\t" }.count)
            switch name {
            case "upgrade": upgrade = trimmed.lowercased().split(separator: ",").contains { $0.trimmingSpaces() == "websocket" }
            case "connection": connection = trimmed.lowercased().split(separator: ",").contains { $0.trimmingSpaces() == "upgrade" }
            case "sec-websocket-accept": accept = trimmed
            case "sec-websocket-extensions": extensions.append(trimmed)
            case "sec-websocket-protocol": protocolAnswer = trimmed
            default: break
            }
        }
        guard upgrade else { return .failed("missing Upgrade: websocket") }
        guard connection else { return .failed("missing Connection: Upgrade") }
        guard let accept else { return .failed("missing Sec-WebSocket-Accept") }
        guard accept == expectedAccept else { return .failed("Sec-WebSocket-Accept \(accept) does not match the key (expected \(expectedAccept))") }
        if let protocolAnswer, !subprotocols.contains(String(protocolAnswer)) {
            let asked = subprotocols.isEmpty ? "none" : subprotocols.joined(separator: ", ")
            return .failed("server selected subprotocol \(protocolAnswer), we asked for \(asked)")
        }
        guard !extensions.isEmpty else { return .accepted(deflate: nil, answer: nil) }
        let answer = extensions.joined(separator: ", ")
        guard deflateOffered else { return .failed("server selected an extension we did not offer: \(answer)") }
        switch ClientDeflateAgreement.parse(answer) {
        case .success(let agreement): return .accepted(deflate: agreement, answer: answer)
        case .failure(let error): return .failed(error.reason)
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        let start = drop { $0 == " " || $0 == "\t" }
        return start.prefix(start.count - start.reversed().prefix { $0 == " " || $0 == "\t" }.count)
    }
}
