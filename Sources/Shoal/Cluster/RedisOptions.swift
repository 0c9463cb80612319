// `--redis` and `--cluster-name`: which Redis server links this instance to the others, checked
// and resolved once at start (so the worker loops never wait on DNS).
import ShoalRedis
import ShoalPosix

/// Several Shoal instances as one cluster through a Redis server (docs/cluster.md, "Several hosts").
public struct RedisOptions: Sendable, Equatable {
    public var url: RedisURL
    /// The numeric address `url.host` resolved to at start.
    public var address: String
    /// Instances with the same Redis server and cluster name share broadcasts.
    public var clusterName: String

    /// Why `--redis` or `--cluster-name` cannot be used.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// Names: 1 to 64 of A-Z a-z 0-9 . _ - (part of a Redis channel name, and of log lines).
    public static func check(clusterName: String) throws(Problem) {
        let allowed = clusterName.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard (1...64).contains(clusterName.utf8.count), allowed else {
            throw Problem(description: "--cluster-name \"\(clusterName)\": 1 to 64 letters, digits, '.', '_' or '-'")
        }
    }

    /// Parses `url`, checks `clusterName` and resolves the host (blocking: at start only).
    public init(url text: String, clusterName: String = "shoal") throws(Problem) {
        do throws(RedisURL.ParseError) {
            url = try RedisURL(parsing: text)
        } catch {
            throw Problem(description: error.description)
        }
        try Self.check(clusterName: clusterName)
        self.clusterName = clusterName
        do throws(SystemError) {
            address = try Socket.resolve(host: url.host)
        } catch {
            throw Problem(description: "--redis \"\(text)\": cannot resolve \(url.host): \(error.function)")
        }
    }

    /// The Redis channel of this cluster.
    public var channel: String { RedisBridge.Configuration.channel(clusterName: clusterName) }
}
