// `--redis` values: the accepted form, and a reason for everything else.
import Testing
@testable import ShoalRedis

@Suite struct RedisURLTests {
    @Test func acceptsHostPortAndDatabase() throws {
        #expect(try RedisURL(parsing: "redis://127.0.0.1:6379") == RedisURL(host: "127.0.0.1", port: 6379))
        #expect(try RedisURL(parsing: "redis://cache.internal:7000/3") == RedisURL(host: "cache.internal", port: 7000, database: 3))
        #expect(try RedisURL(parsing: "redis://[::1]:6379/0") == RedisURL(host: "::1", port: 6379))
        #expect(try RedisURL(parsing: "redis://h:1/") == RedisURL(host: "h", port: 1))
    }

    @Test(arguments: [
        ("http://h:1", "must start with redis://"), ("rediss://h:1", "TLS"), ("redis://h", "port is missing"),
        ("redis://:6379", "host is missing"), ("redis://h:0", "port must be"), ("redis://h:70000", "port must be"),
        ("redis://h:x", "port must be"), ("redis://h:1/16", "database must be"), ("redis://h:1/a", "database must be"),
        ("redis://u:p@h:1", "password"), ("redis://h:1?x=1", "query"), ("redis://[::1:1", "unclosed"),
    ])
    func refusesWithAReason(_ text: String, _ reason: String) {
        #expect {
            _ = try RedisURL(parsing: text)
        } throws: { error in
            (error as? RedisURL.ParseError)?.description.contains(reason) == true
        }
    }
}
