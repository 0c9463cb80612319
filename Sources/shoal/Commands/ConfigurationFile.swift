// The configuration file of `shoal serve --config FILE`: YAML, one `key: value` line per
// setting, keys spelt as the flags without their dashes (`max-connections: 10000`), lists as
// YAML sequences. Read with Yams, which keeps each node's line, so every problem names the line.
import Yams

struct ConfigurationFile: Sendable, Equatable {
    /// One `key: value` of the file, the value as written (a list's items in order).
    struct Entry: Sendable, Equatable {
        let key: String
        let values: [String]
        let line: Int?
    }

    let path: String
    let entries: [Entry]

    /// "path:line", or the path alone when the line is not known.
    static func place(_ path: String, _ line: Int?) -> String {
        line.map { "\(path):\($0)" } ?? path
    }
}

extension ConfigurationFile {
    /// Parses `text`, the contents of `path`. An empty file (or only comments) sets nothing.
    init(yaml text: String, path: String) throws(ConfigurationError) {
        self.path = path
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigurationError(problems: ["\(path): not valid YAML: \(Self.describe(error))"])
        } catch {
            throw ConfigurationError(problems: ["\(path): \(error)"])
        }
        guard let root else {
            entries = []
            return
        }
        guard let mapping = root.mapping else {
            throw ConfigurationError(problems: ["\(Self.place(path, root.mark?.line)): expected key: value lines"])
        }
        var problems: [String] = []
        var seen: [String: Int?] = [:]
        var entries: [Entry] = []
        for (keyNode, valueNode) in mapping {
            let line = keyNode.mark?.line
            guard let key = keyNode.scalar?.string else {
                problems.append("\(Self.place(path, line)): a key must be a plain name")
                continue
            }
            if let first = seen[key] {
                problems.append("\(Self.place(path, line)): \(key) is set twice (first on line \(first.map(String.init) ?? "?"))")
                continue
            }
            seen[key] = line
            switch Self.values(of: valueNode) {
            case .some(let values): entries.append(Entry(key: key, values: values, line: line))
            case .none: problems.append("\(Self.place(path, line)): \(key) needs a value, or a list of values")
            }
        }
        guard problems.isEmpty else { throw ConfigurationError(problems: problems) }
        self.entries = entries
    }

    /// A scalar is one value, a sequence of scalars a list; null and nested mappings are refused.
    private static func values(of node: Node) -> [String]? {
        if let scalar = node.scalar {
            return node.null == nil ? [scalar.string] : nil
        }
        if let sequence = node.sequence {
            let items = sequence.compactMap { $0.null == nil ? $0.scalar?.string : nil }
            return items.count == sequence.count ? items : nil
        }
        return nil
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _): return "line \(mark.line): \(problem)"
        default: return "\(error)"
        }
    }
}
