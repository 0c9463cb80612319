// The configuration file of `shoal serve --config FILE`: YAML, one `key: value` line per
// setting, keys spelt as the flags without their dashes (`max-connections: 10000`), lists as
// YAML sequences (`[a, b]`, or `- item` lines below the key). Only this flat subset of YAML is
// read, by the few lines below rather than a YAML library: every YAML library at hand (Yams,
// and swift-configuration through it) needs Foundation, which the `shoal` binary does without
// (it would cost each worker its memory). Anything outside the subset (nested mappings,
// anchors, tags, multi-line scalars) is refused with its line, never guessed at.

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
        var problems: [String] = []
        var seen: [String: Int] = [:]
        var entries: [Entry] = []
        var lines = Self.meaningfulLines(text)[...]
        while let (number, line) = lines.popFirst() {
            let at = Self.place(path, number)
            if line.first == " " || line.first == "\t" {
                problems.append("\(at): unexpected indentation (only `key: value` lines and the `- item` lines of a list)")
                continue
            }
            if line == "-" || line.hasPrefix("- ") {
                problems.append("\(at): expected key: value lines")
                continue
            }
            guard let colon = Self.keyEnd(line) else {
                problems.append("\(at): expected key: value")
                continue
            }
            let key = String(line[..<colon])
            let rest = line[line.index(after: colon)...].trimmingWhitespace()
            guard key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }), !key.isEmpty else {
                problems.append("\(at): a key must be a plain name, not \(key)")
                continue
            }
            if let first = seen[key] {
                problems.append("\(at): \(key) is set twice (first on line \(first))")
                continue
            }
            seen[key] = number
            var items: [(Int, Substring)] = []
            if rest.isEmpty {
                while let (itemNumber, itemLine) = lines.first, itemLine.first == " " || itemLine.first == "\t" {
                    lines.removeFirst()
                    items.append((itemNumber, itemLine))
                }
            }
            do throws(LineProblem) {
                let values = try rest.isEmpty ? Self.blockList(items, key: key) : Self.values(rest, key: key)
                entries.append(Entry(key: key, values: values, line: number))
            } catch {
                problems.append("\(Self.place(path, error.line ?? number)): \(error.message)")
            }
        }
        guard problems.isEmpty else { throw ConfigurationError(problems: problems) }
        self.entries = entries
    }

    private struct LineProblem: Error {
        let message: String
        var line: Int? = nil
    }

    /// The lines that say something, numbered from 1, without comments and trailing blanks.
    private static func meaningfulLines(_ text: String) -> [(Int, Substring)] {
        var result: [(Int, Substring)] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            line = line[..<commentStart(line)]
            while let last = line.last, last == " " || last == "\t" { line = line.dropLast() }
            if line.isEmpty || (index == 0 && line == "---") { continue }
            result.append((index + 1, line))
        }
        return result
    }

    /// Where a comment starts: a `#` at the line's start or after a blank, outside quotes.
    private static func commentStart(_ line: Substring) -> Substring.Index {
        unquoted(line).first { $0.character == "#" && ($0.previous == " " || $0.previous == "\t") }?.index ?? line.endIndex
    }

    /// The characters of `text` outside quotes, with the character before each (a blank at the start).
    private static func unquoted(_ text: Substring) -> [(index: Substring.Index, character: Character, previous: Character)] {
        var result: [(index: Substring.Index, character: Character, previous: Character)] = []
        var quote: Character?
        var previous: Character = " "
        for index in text.indices {
            let c = text[index]
            if let open = quote {
                if c == open { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else {
                result.append((index, c, previous))
            }
            previous = c
        }
        return result
    }

    /// The colon that ends the key: the first one followed by a blank or the end of the line.
    private static func keyEnd(_ line: Substring) -> Substring.Index? {
        line.indices.first { line[$0] == ":" && (line.index(after: $0) == line.endIndex || line[line.index(after: $0)] == " ") }
    }

    /// `- item` lines under a key with no value of its own.
    private static func blockList(_ items: [(Int, Substring)], key: String) throws(LineProblem) -> [String] {
        guard !items.isEmpty else { throw LineProblem(message: "\(key) needs a value, or a list of values") }
        var values: [String] = []
        for (number, line) in items {
            let item = line.trimmingWhitespace()
            guard item.hasPrefix("- ") else {
                throw LineProblem(message: "\(key): expected a `- item` line of its list", line: number)
            }
            do throws(LineProblem) {
                values.append(try scalar(item.dropFirst(2).trimmingWhitespace()[...], key: key))
            } catch {
                throw LineProblem(message: error.message, line: number)
            }
        }
        return values
    }

    /// A value on the key's own line: a scalar, or a flow list `[a, b]`.
    private static func values(_ text: String, key: String) throws(LineProblem) -> [String] {
        if text.hasPrefix("[") {
            guard text.hasSuffix("]") else { throw LineProblem(message: "not valid YAML: \(key): the list's [ is not closed on its line") }
            let inside = text.dropFirst().dropLast().trimmingWhitespace()
            if inside.isEmpty { return [] }
            return try splitOutsideQuotes(inside[...]).map { item throws(LineProblem) in try scalar(item.trimmingWhitespace()[...], key: key) }
        }
        return [try scalar(text[...], key: key)]
    }

    /// One value: quoted (`"..."` with \" \\ \n \t escapes, or `'...'` with '' for a quote) or plain.
    private static func scalar(_ text: Substring, key: String) throws(LineProblem) -> String {
        if text.first == "\"" || text.first == "'" {
            guard let quote = text.first, text.count >= 2, text.last == quote else {
                throw LineProblem(message: "not valid YAML: \(key): a quoted value must end with its quote")
            }
            return unquote(text.dropFirst().dropLast(), quote: quote)
        }
        if ["~", "null", "Null", "NULL"].contains(text) || text.hasPrefix("{") {
            throw LineProblem(message: "\(key) needs a value, or a list of values")
        }
        if let first = text.first, "&*!|>@`%".contains(first) {
            throw LineProblem(message: "\(key): put a value starting with \(first) in quotes (anchors, tags and multi-line values are not read)")
        }
        return String(text)
    }

    private static func unquote(_ body: Substring, quote: Character) -> String {
        var result = ""
        var iterator = body.makeIterator()
        while let c = iterator.next() {
            if quote == "'", c == "'" {
                result.append(iterator.next() ?? "'")  // '' is one quote
            } else if quote == "\"", c == "\\", let escaped = iterator.next() {
                switch escaped {
                case "n": result.append("\n")
                case "t": result.append("\t")
                default: result.append(escaped)
                }
            } else {
                result.append(c)
            }
        }
        return result
    }

    /// The items of a flow list, split at commas that are not inside quotes.
    private static func splitOutsideQuotes(_ text: Substring) -> [Substring] {
        var items: [Substring] = []
        var start = text.startIndex
        for comma in unquoted(text) where comma.character == "," {
            items.append(text[start..<comma.index])
            start = text.index(after: comma.index)
        }
        items.append(text[start...])
        return items
    }
}
