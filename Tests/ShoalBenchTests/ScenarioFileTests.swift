// Scenario files parsed without running them: weights, templates, expectations, errors with lines.
import Testing

@testable import shoal_bench

@Suite struct ScenarioFileTests {
    private func parse(_ text: String) throws -> ScenarioFile { try ScenarioFile(yaml: text, path: "s.yaml") }

    @Test func usersAreSharedByWeightAndInterleaved() throws {
        let file = try parse("""
            users: 7
            duration: 2s
            scenarios:
              - { name: a, weight: 3, steps: [ { send: x } ] }
              - { name: b, steps: [ { sleep: 1s } ] }
              - { name: c, weight: 2, steps: [ { close: true } ] }
            """)
        let assignments = file.assignments
        #expect(assignments.count == 7)
        // 7 × 3/6 = 3.5, 7 × 1/6 = 1.17, 7 × 2/6 = 2.33: the seventh user goes to the largest remainder
        #expect([0, 1, 2].map { m in assignments.filter { $0 == m }.count } == [4, 1, 2])
        #expect(Array(assignments.prefix(3)) == [0, 1, 2])  // every scenario among the first users (and on every thread)
        #expect(file.seconds == 2)
    }

    @Test func templatesRender() throws {
        let file = try parse("users: 1\nduration: 1s\nscenarios:\n  - steps:\n      - send: \"{{user}}-{{seq}}-{{random 3}}|\"\n")
        guard case .send(let template, binary: false) = file.mixes[0].steps[0] else { Issue.record("not a send"); return }
        var random = SystemRandomNumberGenerator()
        let text = String(decoding: template.render(sequence: 12, user: 4, random: &random), as: UTF8.self)
        #expect(text.hasPrefix("4-12-") && text.hasSuffix("|") && text.count == 9)
    }

    @Test func expectations() throws {
        let file = try parse("""
            users: 1
            duration: 1s
            scenarios:
              - steps:
                  - expect: { exact: "a b" }
                  - expect: { regex: "^n=\\\\d+$", timeout: 250ms }
                  - expect: { json: user.name, equals: ann }
                  - expect: { json: seq }
            """)
        func expectation(_ i: Int) -> ScenarioFile.Expectation? {
            if case .expect(let e, _) = file.mixes[0].steps[i] { return e }
            return nil
        }
        #expect(expectation(0)?.matches("a b") == true && expectation(0)?.matches("a  b") == false)
        #expect(expectation(1)?.matches("n=42") == true && expectation(1)?.matches("n=4x") == false)
        if case .expect(_, let timeout) = file.mixes[0].steps[1] { #expect(timeout == 250_000_000) }
        #expect(expectation(2)?.matches(#"{"user":{"name":"ann"}}"#) == true)
        #expect(expectation(2)?.matches(#"{"user":{"name":"bob"}}"#) == false)
        #expect(expectation(3)?.matches(#"{"seq":3}"#) == true && expectation(3)?.matches("not json") == false)
    }

    @Test func errorsNameTheLineAndTheField() {
        #expect {
            try parse("users: 2\nduration: 1s\nscenarios:\n  - steps:\n      - send: hi\n      - sleep: later\n")
        } throws: { error in
            "\(error)" == "s.yaml:6: scenarios[0].steps[1].sleep: 'later' is not a duration (such as 5s, 200ms, 2m)"
        }
        #expect {
            try parse("users: 2\nduration: 1s\nscenarios:\n  - steps:\n      - send: hi\n    wieght: 2\n")
        } throws: { error in
            "\(error)".hasPrefix("s.yaml:6: scenarios[0]: unknown key 'wieght'")
        }
    }
}

@Suite struct ScenarioFileTopicStepTests {
    private func steps(_ yaml: String) throws -> [ScenarioFile.Step] {
        try ScenarioFile(yaml: "users: 1\nduration: 1s\nscenarios:\n  - steps:\n" + yaml, path: "s.yaml").mixes[0].steps
    }

    private func rendered(_ step: ScenarioFile.Step) -> String? {
        guard case .send(let template, binary: false) = step else { return nil }
        var random = SystemRandomNumberGenerator()
        return String(decoding: template.render(sequence: 3, user: 7, random: &random), as: UTF8.self)
    }

    @Test func subscribeSendsTheCommandAndWaitsForItsAnswer() throws {
        let parsed = try steps("      - subscribe: 'say \"hi\" {{user}}'\n      - unsubscribe: news\n")
        #expect(parsed.count == 4)
        #expect(rendered(parsed[0]) == #"{"subscribe":"say \"hi\" 7"}"#)
        guard case .expect(let answer, _) = parsed[1], case .expect(let plain, _) = parsed[3] else {
            Issue.record("no expect after the command")
            return
        }
        #expect(answer.matches(#"{"subscribed":"say \"hi\" 7"}"#))
        #expect(!answer.matches(#"{"error":"no"}"#))
        #expect(rendered(parsed[2]) == #"{"unsubscribe":"news"}"#)
        #expect(plain.matches(#"{"unsubscribed":"news"}"#) && !plain.matches(#"{"unsubscribed":"other"}"#))
    }

    @Test func publishWrapsTheDataJSONAsWritten() throws {
        let parsed = try steps("      - publish: { topic: room, data: '{\"n\":{{seq}}}' }\n")
        #expect(parsed.count == 1)
        #expect(rendered(parsed[0]) == #"{"publish":"room","data":{"n":3}}"#)
    }

    @Test func aPublishWithoutDataNamesTheField() {
        #expect(throws: ScenarioFile.Problem.self) { try steps("      - publish: { topic: room }\n") }
        do {
            _ = try steps("      - publish: { topic: room }\n")
        } catch {
            #expect("\(error)".contains("scenarios[0].steps[0].publish: 'data' is required"))
        }
    }
}
