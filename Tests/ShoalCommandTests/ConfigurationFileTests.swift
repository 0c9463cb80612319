// The configuration file (the flat subset of YAML it reads): entries with the line each key is
// on, quoting and lists as YAML writes them, and every other shape refused with its line.
import Testing

@testable import shoal

@Suite struct ConfigurationFileTests {
    @Test func entriesKeepTheirLines() throws {
        let text = """
            # a comment
            port: 9000
            allow-origin:
              - https://a.example
              - "*.b.example"
            proxy-protocol: true
            """
        let file = try ConfigurationFile(yaml: text, path: "s.yaml")
        #expect(file.entries == [.init(key: "port", values: ["9000"], line: 2),
                                 .init(key: "allow-origin", values: ["https://a.example", "*.b.example"], line: 3),
                                 .init(key: "proxy-protocol", values: ["true"], line: 6)])
    }

    @Test func anEmptyFileSetsNothing() throws {
        #expect(try ConfigurationFile(yaml: "# nothing yet\n", path: "s.yaml").entries.isEmpty)
    }

    @Test func malformedEntriesAreNamedByLine() {
        #expect(throws: ConfigurationError(problems: ["s.yaml:2: port is set twice (first on line 1)",
                                                      "s.yaml:3: workers needs a value, or a list of values",
                                                      "s.yaml:4: host needs a value, or a list of values"])) {
            try ConfigurationFile(yaml: "port: 1\nport: 2\nworkers:\nhost: {a: 1}\n", path: "s.yaml")
        }
    }

    @Test func notYAMLOrNotAMappingIsRefused() {
        #expect(throws: ConfigurationError(problems: ["s.yaml:1: expected key: value lines"])) {
            try ConfigurationFile(yaml: "- port\n", path: "s.yaml")
        }
        #expect(throws: ConfigurationError(problems: ["s.yaml:2: not valid YAML: port: the list's [ is not closed on its line"])) {
            try ConfigurationFile(yaml: "host: a\nport: [1, 2\n", path: "s.yaml")
        }
        #expect(throws: ConfigurationError(problems: ["s.yaml:1: unexpected indentation (only `key: value` lines and the `- item` lines of a list)",
                                                      "s.yaml:2: expected key: value"])) {
            try ConfigurationFile(yaml: "  port: 1\njust words\n", path: "s.yaml")
        }
    }

    @Test func quotesCommentsAndListsReadAsYAMLReadsThem() throws {
        let text = #"""
            ---
            host: "127.0.0.1"   # a comment after a value
            path: '/it''s'
            log-level: "de\\bug\"x"
            public: /srv/a#b
            allow-origin: ["*.example.com", 'https://a.example, with comma', https://b.example]
            refuse-address: []
            trusted-proxy:
              - 10.0.0.0/8   # the proxies
              - "::1"
            """#
        let file = try ConfigurationFile(yaml: text, path: "s.yaml")
        #expect(file.entries == [.init(key: "host", values: ["127.0.0.1"], line: 2),
                                 .init(key: "path", values: ["/it's"], line: 3),
                                 .init(key: "log-level", values: ["de\\bug\"x"], line: 4),
                                 .init(key: "public", values: ["/srv/a#b"], line: 5),
                                 .init(key: "allow-origin", values: ["*.example.com", "https://a.example, with comma", "https://b.example"], line: 6),
                                 .init(key: "refuse-address", values: [], line: 7),
                                 .init(key: "trusted-proxy", values: ["10.0.0.0/8", "::1"], line: 8)])
    }

    @Test func whatTheSubsetDoesNotReadIsRefusedNotGuessed() {
        #expect(throws: ConfigurationError(problems: [
            "s.yaml:1: allow-origin: put a value starting with * in quotes (anchors, tags and multi-line values are not read)",
            "s.yaml:2: path: put a value starting with | in quotes (anchors, tags and multi-line values are not read)",
            "s.yaml:3: host: a quoted value must end with its quote",
            "s.yaml:5: trusted-proxy: expected a `- item` line of its list",
        ].map { $0.replacingFirst("host: a quoted", with: "not valid YAML: host: a quoted") })) {
            try ConfigurationFile(yaml: "allow-origin: *.example.com\npath: |\nhost: \"127.0.0.1\ntrusted-proxy:\n  10.0.0.1\n", path: "s.yaml")
        }
    }
}
