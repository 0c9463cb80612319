// The Origin allow-list: exact origins, subdomain patterns, ports and schemes, and what is refused.

import ShoalWire
import Testing

@Suite struct OriginAllowListTests {
    @Test func exactOriginsMatchSchemeHostAndPort() throws {
        let list = try OriginAllowList(["https://app.example.com", "http://localhost:8080"])
        #expect(list.allows("https://app.example.com"))
        #expect(list.allows("https://APP.example.com"))
        #expect(list.allows("https://app.example.com:443"))  // the default port, spelled out
        #expect(!list.allows("http://app.example.com"))  // another scheme is another origin
        #expect(!list.allows("https://app.example.com:8443"))
        #expect(!list.allows("https://evil.app.example.com"))
        #expect(list.allows("http://localhost:8080"))
        #expect(!list.allows("http://localhost"))
        #expect(!list.allows("http://localhost:8081"))
    }

    @Test func patternsMatchSubdomainsOnly() throws {
        let list = try OriginAllowList(["*.example.com"])
        #expect(list.allows("https://app.example.com"))
        #expect(list.allows("http://a.b.example.com:3000"))  // no scheme, no port: any
        #expect(!list.allows("https://example.com"))
        #expect(!list.allows("https://evilexample.com"))
        #expect(!list.allows("https://example.com.evil.org"))
        let secure = try OriginAllowList(["https://*.example.com"])
        #expect(secure.allows("https://app.example.com"))
        #expect(!secure.allows("http://app.example.com"))
        #expect(!secure.allows("https://app.example.com:8443"))
    }

    @Test func refusesNullAndMalformedOrigins() throws {
        let list = try OriginAllowList(["*.example.com", "http://localhost:8080"])
        for origin in ["null", "", "app.example.com", "https://", "https://app.example.com/path",
                       "https://user@app.example.com", "https://app.example.com:99999", "https://*.example.com"] {
            #expect(!list.allows(origin), "\(origin)")
        }
        #expect(!(try OriginAllowList([])).allows("https://app.example.com"))
    }

    @Test func ipv6LiteralsKeepTheirColons() throws {
        let list = try OriginAllowList(["http://[::1]:8080"])
        #expect(list.allows("http://[::1]:8080"))
        #expect(!list.allows("http://[::1]:8081"))
    }

    @Test func rejectsMalformedConfiguration() {
        for bad in ["https://example.com/path", "*.", "https://host:0", "ht tp://x", "://x", "a b"] {
            #expect(throws: OriginPatternError.self, "\(bad)") { try OriginAllowList([bad]) }
        }
    }
}
