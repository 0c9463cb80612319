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

    /// Parses "IPv4:port" or "[IPv6]:port"; the error says what is wrong with `text`.
    public init(parsing text: String) throws(ListenAddressError) {
        let host: Substring, port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ListenAddressError("\"\(text)\" is not [IPv6 address]:port")
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ListenAddressError("\"\(text)\" has no :port") }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard IPAddress(host) != nil else { throw ListenAddressError("\"\(host)\" is not a numeric IPv4 or IPv6 address") }
        guard let number = Int(port), (1...65_535).contains(number) else {
            throw ListenAddressError("port \"\(port)\" is not between 1 and 65535")
        }
        self.host = String(host)
        self.port = number
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why a listen address was refused.
public struct ListenAddressError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
