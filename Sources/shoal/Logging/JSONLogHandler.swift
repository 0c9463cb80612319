// `--log-format json`: one JSON object per line on stderr, for log shippers (journald's JSON
// export, Vector, Fluent Bit, Loki) that would otherwise parse swift-log's text lines with
// regexes. The metadata a worker attaches (worker, connection, client) become fields.
import Logging
import ShoalPosix

/// A swift-log handler writing each event as one line of JSON:
/// `{"time":"2026-12-06T14:26:13.123Z","level":"info","label":"shoal","source":"Shoal","message":"...","worker":"1"}`.
/// Metadata keys become top-level fields (after the fixed ones, which they cannot replace);
/// nested metadata becomes JSON arrays and objects.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        let fixed = ["time", "level", "label", "source", "message"]
        var line = "{\"time\":" + Self.quoted(UTCTimestamp.now())  // UTC, milliseconds: what log stores sort and join on
        line += ",\"level\":" + Self.quoted(event.level.rawValue)
        line += ",\"label\":" + Self.quoted(label)
        line += ",\"source\":" + Self.quoted(event.source)
        line += ",\"message\":" + Self.quoted(event.message.description)
        for key in fields.keys.sorted() where !fixed.contains(key) {
            line += "," + Self.quoted(key) + ":" + Self.json(fields[key]!)
        }
        line += "}\n"
        // One write per line: lines from the supervisor and the workers share stderr.
        StandardError.write(line)
    }

    private static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): quoted(text)
        case .stringConvertible(let convertible): quoted(convertible.description)
        case .array(let values): "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let entries):
            "{" + entries.keys.sorted().map { quoted($0) + ":" + json(entries[$0]!) }.joined(separator: ",") + "}"
        }
    }

    /// A JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
