// A numeric address and port to listen on, as one flag value: "127.0.0.1:9100", "[::1]:9100".
import ShoalWire

/// Where a listener binds (the operator listener of `--metrics-listen`).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses "IPv4:port" or "[IPv6]:port"; the error (the one address blocks use) says what is
    /// wrong with `text`.
    public init(parsing text: String) throws(AddressRange.ParseError) {
        let host: Substring, port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw AddressRange.ParseError(description: "\"\(text)\" is not [IPv6 address]:port")
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw AddressRange.ParseError(description: "\"\(text)\" has no :port") }
            host = text[..<colon]
            guard !host.contains(":") else {
                throw AddressRange.ParseError(description: "\"\(text)\": an IPv6 address goes in brackets, [::1]:9100")
            }
            port = text[text.index(after: colon)...]
        }
        guard IPAddress(host) != nil else { throw AddressRange.ParseError(description: "\"\(host)\" is not a numeric IPv4 or IPv6 address") }
        guard let number = Int(port), (1...65_535).contains(number) else {
            throw AddressRange.ParseError(description: "port \"\(port)\" is not between 1 and 65535")
        }
        self.host = String(host)
        self.port = number
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
