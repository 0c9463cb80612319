// `--redis redis://HOST:PORT[/DB]`: the one URL form Shoal accepts, parsed without I/O.

/// Where the Redis server of a multi-host cluster is.
public struct RedisURL: Equatable, Sendable, CustomStringConvertible {
    /// Host name or address as written (IPv6 in brackets in the URL, without them here).
    public var host: String
    public var port: Int
    /// The database number. Pub/sub channels are global to a Redis server whatever the database
    /// (Redis' PUBLISH documentation), so it does not separate clusters: `--cluster-name` does.
    public var database: Int

    public init(host: String, port: Int, database: Int = 0) {
        self.host = host
        self.port = port
        self.database = database
    }

    /// Why a `--redis` value was refused.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Parses `redis://HOST:PORT[/DB]` (port required, DB 0 to 15 when present; no user, password,
    /// query or TLS: those are refused with a reason rather than ignored).
    public init(parsing text: String) throws(ParseError) {
        func refuse(_ why: String) -> ParseError { ParseError(description: "--redis \"\(text)\": \(why) (expected redis://HOST:PORT[/DB])") }
        guard text.hasPrefix("redis://") else {
            throw refuse(text.hasPrefix("rediss://") ? "TLS to Redis is not supported" : "the URL must start with redis://")
        }
        var rest = Substring(text.dropFirst("redis://".count))
        var databaseText: Substring?
        if let slash = rest.firstIndex(of: "/") {
            databaseText = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        guard !rest.contains("@") else { throw refuse("a user or password is not supported") }
        guard !rest.contains("?"), databaseText?.contains("?") != true else { throw refuse("query parameters are not supported") }
        let hostPart: Substring
        let portPart: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw refuse("unclosed [ in the host") }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":") else { throw refuse("the port is missing") }
            portPart = after.dropFirst()
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw refuse("the port is missing") }
            hostPart = rest[..<colon]
            portPart = rest[rest.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw refuse("the host is missing") }
        guard let port = Int(portPart), (1...65535).contains(port) else { throw refuse("the port must be 1 to 65535") }
        var database = 0
        if let databaseText, !databaseText.isEmpty {
            guard let number = Int(databaseText), (0...15).contains(number) else { throw refuse("the database must be 0 to 15") }
            database = number
        }
        self.init(host: String(hostPart), port: port, database: database)
    }

    public var description: String {
        "redis://\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
    }
}
