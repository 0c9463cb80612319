// Scenario files for `shoal-bench run FILE.yaml`: virtual users, each running one scenario of a
// weighted mix again and again: connect (path, headers, subprotocol, permessage-deflate), then
// steps (send a template or a file, expect a message, sleep, close). Parsed once, through Yams'
// node tree so every error names the file's line and the field; nothing here touches a socket.
import Foundation
import Yams

struct ScenarioFile {
    var users: Int
    var seconds: Double
    var mixes: [Mix]

    /// One scenario of the mix.
    struct Mix {
        var name: String
        var weight: Int
        var path: String?
        var headers: [(String, String)]
        var subprotocol: String?
        var deflate: Bool
        var steps: [Step]
    }

    enum Step {
        case send(Template, binary: Bool)
        case expect(Expectation, timeout: UInt64)
        case sleep(UInt64)
        case close
    }

    /// A message to send: literal text with {{seq}}, {{user}}, {{timestamp}} and {{random N}} in it.
    struct Template {
        enum Part { case literal([UInt8]), sequence, user, timestamp, random(Int) }
        var parts: [Part]

        /// The template inside a JSON string: its literal text escaped (placeholders only give digits and letters).
        var jsonEscaped: Template {
            Template(parts: parts.map { part in
                guard case .literal(let bytes) = part else { return part }
                var out: [UInt8] = []
                for byte in bytes {
                    switch byte {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
                    case 0..<0x20: out += Array(String(format: "\\u%04x", byte).utf8)
                    default: out.append(byte)
                    }
                }
                return .literal(out)
            })
        }

        func render(sequence: Int, user: Int, random: inout SystemRandomNumberGenerator) -> [UInt8] {
            var out: [UInt8] = []
            for part in parts {
                switch part {
                case .literal(let bytes): out += bytes
                case .sequence: out += Array(String(sequence).utf8)
                case .user: out += Array(String(user).utf8)
                case .timestamp: out += Array(String(Int(Date().timeIntervalSince1970 * 1000)).utf8)
                case .random(let n): out += (0..<n).map { _ in UInt8.random(in: 97...122, using: &random) }
                }
            }
            return out
        }
    }

    enum Expectation {
        case exact(String)
        case regex(String, Regex<AnyRegexOutput>)
        /// A JSON object whose field (dotted path) exists, or equals the value's text.
        case json(field: String, equals: String?)

        func matches(_ message: String) -> Bool {
            switch self {
            case .exact(let text): return message == text
            case .regex(_, let regex): return (try? regex.firstMatch(in: message)) != nil
            case .json(let field, let equals):
                guard let data = message.data(using: .utf8),
                      var value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return false }
                for key in field.split(separator: ".") {
                    guard let object = value as? [String: Any], let next = object[String(key)] else { return false }
                    value = next
                }
                guard let equals else { return true }
                if let string = value as? String { return string == equals }
                return "\(value)" == equals
            }
        }
    }

    /// A problem in the file, with the line it is on and the field's path.
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses `text` (the contents of `path`; files named in it are read relative to its directory).
    init(yaml text: String, path: String) throws(Problem) {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { throw Problem(description: "\(path): the file is empty") }
            root = node
        } catch let error as YamlError {
            throw Problem(description: "\(path): not valid YAML: \(Self.describe(error))")
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem(description: "\(path): \(error)")
        }
        let reader = Reader(path: path, directory: directory)
        let top = try reader.mapping(root, "(top level)", allowed: ["users", "duration", "scenarios"])
        users = try reader.integer(reader.required(top, "users", in: root, "(top level)"), "users", atLeast: 1)
        seconds = try reader.duration(reader.required(top, "duration", in: root, "(top level)"), "duration")
        let list = try reader.sequence(reader.required(top, "scenarios", in: root, "(top level)"), "scenarios")
        guard !list.isEmpty else { throw reader.problem(root, "scenarios", "at least one scenario is needed") }
        mixes = try list.enumerated().map { i, node throws(Problem) in try reader.mix(node, "scenarios[\(i)]", index: i) }
        guard users >= mixes.count else {
            throw reader.problem(root, "users", "\(users) user(s) cannot run \(mixes.count) scenarios: at least one user each")
        }
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _): return "line \(mark.line): \(problem)"
        default: return "\(error)"
        }
    }

    /// How many of the users run each scenario: in proportion to the weights (largest remainder),
    /// every scenario at least one; user g runs `assignments[g]`.
    var assignments: [Int] {
        let total = mixes.reduce(0) { $0 + $1.weight }
        let shares = mixes.map { Double(users * $0.weight) / Double(total) }
        var counts = shares.map { max(1, Int($0)) }
        // The users left go to the largest remainders; a scenario raised to 1 gives back first.
        let byRemainder = shares.indices.sorted { shares[$0] - shares[$0].rounded(.down) > shares[$1] - shares[$1].rounded(.down) }
        var i = 0
        while counts.reduce(0, +) < users {
            counts[byRemainder[i % byRemainder.count]] += 1
            i += 1
        }
        while counts.reduce(0, +) > users, let j = counts.indices.max(by: { counts[$0] < counts[$1] }) { counts[j] -= 1 }
        // Interleaved, so every thread (users g mod N) gets a share of each scenario.
        var out: [Int] = []
        var left = counts
        while out.count < users {
            for j in left.indices where left[j] > 0 {
                out.append(j)
                left[j] -= 1
            }
        }
        return out
    }
}

/// Reads nodes, turning every surprise into a Problem naming the line and the field.
private struct Reader {
    let path: String
    let directory: URL

    func problem(_ node: Node, _ field: String, _ why: String) -> ScenarioFile.Problem {
        ScenarioFile.Problem(description: "\(path):\(node.mark.map { String($0.line) } ?? "?"): \(field): \(why)")
    }

    func mapping(_ node: Node, _ field: String, allowed: Set<String>) throws(ScenarioFile.Problem) -> Node.Mapping {
        guard let mapping = node.mapping else { throw problem(node, field, "expected a mapping (key: value lines)") }
        for key in mapping.keys {
            guard let name = key.string, allowed.contains(name) else {
                throw problem(key, field, "unknown key '\(key.string ?? "?")' (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
        return mapping
    }

    func required(_ mapping: Node.Mapping, _ key: String, in node: Node, _ field: String) throws(ScenarioFile.Problem) -> Node {
        guard let value = mapping[key] else { throw problem(node, field, "'\(key)' is required") }
        return value
    }

    func sequence(_ node: Node, _ field: String) throws(ScenarioFile.Problem) -> [Node] {
        guard let sequence = node.sequence else { throw problem(node, field, "expected a list (- item lines)") }
        return Array(sequence)
    }

    func string(_ node: Node, _ field: String) throws(ScenarioFile.Problem) -> String {
        guard let scalar = node.scalar else { throw problem(node, field, "expected a text value") }
        return scalar.string
    }

    func integer(_ node: Node, _ field: String, atLeast least: Int) throws(ScenarioFile.Problem) -> Int {
        guard let value = Int(try string(node, field)), value >= least else { throw problem(node, field, "expected a whole number ≥ \(least)") }
        return value
    }

    func boolean(_ node: Node, _ field: String) throws(ScenarioFile.Problem) -> Bool {
        switch try string(node, field).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw problem(node, field, "expected true or false")
        }
    }

    func duration(_ node: Node, _ field: String) throws(ScenarioFile.Problem) -> Double {
        let text = try string(node, field)
        guard let seconds = RatePlan.seconds(text), seconds > 0 else {
            throw problem(node, field, "'\(text)' is not a duration (such as 5s, 200ms, 2m)")
        }
        return seconds
    }

    func mix(_ node: Node, _ field: String, index: Int) throws(ScenarioFile.Problem) -> ScenarioFile.Mix {
        let m = try mapping(node, field, allowed: ["name", "weight", "connect", "steps"])
        var mix = ScenarioFile.Mix(name: "scenario\(index + 1)", weight: 1, path: nil, headers: [], subprotocol: nil, deflate: false, steps: [])
        if let name = m["name"] { mix.name = try string(name, field + ".name") }
        if let weight = m["weight"] { mix.weight = try integer(weight, field + ".weight", atLeast: 1) }
        if let connectNode = m["connect"] {
            let f = field + ".connect"
            let connect = try mapping(connectNode, f, allowed: ["path", "headers", "subprotocol", "deflate"])
            if let p = connect["path"] {
                let text = try string(p, f + ".path")
                guard text.hasPrefix("/"), !text.contains(where: { $0.isWhitespace }) else { throw problem(p, f + ".path", "expected a path starting with /") }
                mix.path = text
            }
            if let h = connect["headers"] {
                guard let headers = h.mapping else { throw problem(h, f + ".headers", "expected a mapping of header: value") }
                for (key, value) in headers {
                    let name = try string(key, f + ".headers")
                    let text = try string(value, f + ".headers.\(name)")
                    guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }), !text.contains(where: \.isNewline) else {
                        throw problem(key, f + ".headers.\(name)", "not a valid header name or value")
                    }
                    mix.headers.append((name, text))
                }
            }
            if let s = connect["subprotocol"] { mix.subprotocol = try string(s, f + ".subprotocol") }
            if let d = connect["deflate"] { mix.deflate = try boolean(d, f + ".deflate") }
        }
        let steps = try sequence(try required(m, "steps", in: node, field), field + ".steps")
        guard !steps.isEmpty else { throw problem(node, field + ".steps", "at least one step is needed") }
        mix.steps = try steps.enumerated().map { i, s throws(ScenarioFile.Problem) in try step(s, "\(field).steps[\(i)]") }
            .flatMap { $0 }
        return mix
    }

    /// One step of the file; `subscribe` and `unsubscribe` become a send and the expect of its answer.
    func step(_ node: Node, _ field: String) throws(ScenarioFile.Problem) -> [ScenarioFile.Step] {
        let m = try mapping(node, field, allowed: ["send", "expect", "sleep", "close", "subscribe", "unsubscribe", "publish"])
        guard m.count == 1, let entry = m.first, let kind = entry.key.string else {
            throw problem(node, field, "a step is one of send, expect, sleep, close, subscribe, unsubscribe or publish")
        }
        let value = entry.value
        let f = "\(field).\(kind)"
        switch kind {
        case "subscribe", "unsubscribe":
            return try topicCommand(kind, value, f)
        case "publish":
            return [try publish(value, f)]
        default:
            return [try plainStep(kind, value, f)]
        }
    }

    /// The commands of `shoal serve --handler topics`: {"subscribe":T} answered {"subscribed":T} (likewise
    /// unsubscribe), so the step waits for the answer (5 s) and the user's later steps run subscribed.
    private func topicCommand(_ kind: String, _ value: Node, _ field: String) throws(ScenarioFile.Problem) -> [ScenarioFile.Step] {
        let topic = try template(try string(value, field), value, field)
        let command = ScenarioFile.Template(parts: [.literal(Array("{\"\(kind)\":\"".utf8))] + topic.jsonEscaped.parts
                                                    + [.literal(Array("\"}".utf8))])
        let plainTopic = topic.parts.count == 1 ? try string(value, field) : nil
        return [.send(command, binary: false), .expect(.json(field: kind + "d", equals: plainTopic), timeout: 5_000_000_000)]
    }

    /// `publish: { topic: T, data: JSON }`: {"publish":T,"data":JSON}, the data JSON text as written (a template).
    private func publish(_ value: Node, _ field: String) throws(ScenarioFile.Problem) -> ScenarioFile.Step {
        let p = try mapping(value, field, allowed: ["topic", "data"])
        let topicNode = try required(p, "topic", in: value, field)
        let dataNode = try required(p, "data", in: value, field)
        let topic = try template(try string(topicNode, field + ".topic"), topicNode, field + ".topic")
        let data = try template(try string(dataNode, field + ".data"), dataNode, field + ".data")
        let parts: [ScenarioFile.Template.Part] = [.literal(Array(#"{"publish":""#.utf8))] + topic.jsonEscaped.parts
            + [.literal(Array(#"","data":"#.utf8))] + data.parts + [.literal(Array("}".utf8))]
        return .send(ScenarioFile.Template(parts: parts), binary: false)
    }

    private func plainStep(_ kind: String, _ value: Node, _ f: String) throws(ScenarioFile.Problem) -> ScenarioFile.Step {
        switch kind {
        case "send":
            if let text = value.scalar?.string { return .send(try template(text, value, f), binary: false) }
            let send = try mapping(value, f, allowed: ["text", "file", "binary"])
            let binary = try send["binary"].map { v throws(ScenarioFile.Problem) in try boolean(v, f + ".binary") } ?? false
            if let t = send["text"] { return .send(try template(try string(t, f + ".text"), t, f + ".text"), binary: binary) }
            guard let file = send["file"] else { throw problem(value, f, "expected text or file") }
            let name = try string(file, f + ".file")
            let url = name.hasPrefix("/") ? URL(fileURLWithPath: name) : directory.appendingPathComponent(name)
            guard let data = try? Data(contentsOf: url) else { throw problem(file, f + ".file", "cannot read \(url.path)") }
            return .send(ScenarioFile.Template(parts: [.literal(Array(data))]), binary: binary)
        case "expect":
            let expect = try mapping(value, f, allowed: ["exact", "regex", "json", "equals", "timeout"])
            let timeout = try expect["timeout"].map { v throws(ScenarioFile.Problem) in try duration(v, f + ".timeout") } ?? 5
            let expectation: ScenarioFile.Expectation
            if let e = expect["exact"] {
                expectation = .exact(try string(e, f + ".exact"))
            } else if let r = expect["regex"] {
                let pattern = try string(r, f + ".regex")
                guard let regex = try? Regex(pattern) else { throw problem(r, f + ".regex", "'\(pattern)' is not a valid regular expression") }
                expectation = .regex(pattern, regex)
            } else if let j = expect["json"] {
                expectation = .json(field: try string(j, f + ".json"), equals: try expect["equals"].map { v throws(ScenarioFile.Problem) in try string(v, f + ".equals") })
            } else {
                throw problem(value, f, "expected exact, regex or json (with an optional equals)")
            }
            return .expect(expectation, timeout: UInt64(timeout * 1e9))
        case "sleep":
            return .sleep(UInt64(try duration(value, f) * 1e9))
        default:
            return .close
        }
    }

    /// "a {{seq}} b" → parts; an unknown {{name}} is an error.
    func template(_ text: String, _ node: Node, _ field: String) throws(ScenarioFile.Problem) -> ScenarioFile.Template {
        var parts: [ScenarioFile.Template.Part] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            parts.append(.literal(Array(rest[..<open.lowerBound].utf8)))
            guard let close = rest[open.upperBound...].range(of: "}}") else { throw problem(node, field, "unclosed {{ in the template") }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            let words = name.split(separator: " ")
            switch (words.first, words.count) {
            case ("seq", 1): parts.append(.sequence)
            case ("user", 1): parts.append(.user)
            case ("timestamp", 1): parts.append(.timestamp)
            case ("random", 2):
                guard let n = Int(words[1]), n >= 0 else { throw problem(node, field, "{{random N}} needs a length N ≥ 0") }
                parts.append(.random(n))
            default:
                throw problem(node, field, "unknown {{\(name)}} (expected {{seq}}, {{user}}, {{timestamp}} or {{random N}})")
            }
            rest = rest[close.upperBound...]
        }
        parts.append(.literal(Array(rest.utf8)))
        return ScenarioFile.Template(parts: parts)
    }
}
