// The YAML configuration file: entries with the line each key is on, and every malformed shape
// refused with the line it is on.
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
        do {
            _ = try ConfigurationFile(yaml: "port: [1, 2\n", path: "s.yaml")
            Issue.record("an unclosed list was accepted")
        } catch {
            #expect(error.problems.count == 1 && error.problems[0].hasPrefix("s.yaml: not valid YAML: line "))
        }
    }
}
