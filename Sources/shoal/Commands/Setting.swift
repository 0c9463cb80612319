// One setting of a command, bound to the property its flag fills: how a raw value from the
// environment or the file is read into it (with ArgumentParser's own conversion, so every
// source accepts exactly what the flag accepts), and how its effective value is shown.
import ArgumentParser

struct Setting<Command> {
    let key: SettingKey
    /// Reads `values` into the command's property; nil when one of them is not of its type,
    /// else the command with the property set.
    let assign: (Command, [String]) -> Command?
    /// The property's value as text, one item per list element; nil: not set (an optional without default).
    let show: (Command) -> [String]?
    /// What a value must look like, for the error message ("an integer", "one of: echo, chat").
    let expected: String

    /// A flag with one value.
    static func option<Value: ExpressibleByArgument>(_ name: String, _ path: WritableKeyPath<Command, Value>) -> Self {
        single(name, path, expected: describe(Value.self), read: Value.init(argument:)) { [String(describing: $0)] }
    }

    /// A flag with one value and no default (unset unless given).
    static func option<Value: ExpressibleByArgument>(_ name: String, _ path: WritableKeyPath<Command, Value?>) -> Self {
        single(name, path, expected: describe(Value.self), read: { Value(argument: $0).map { .some($0) } }) {
            $0.map { [String(describing: $0)] }
        }
    }

    /// A flag without value (on when given).
    static func toggle(_ name: String, _ path: WritableKeyPath<Command, Bool>) -> Self {
        single(name, path, shape: .toggle, expected: "true or false", read: parseBoolean) { [String($0)] }
    }

    /// A repeatable flag: every source gives the whole list (a higher one replaces, never appends).
    static func list(_ name: String, _ path: WritableKeyPath<Command, [String]>) -> Self {
        Setting(key: SettingKey(name: name, shape: .list),
                assign: { command, values in
                    var command = command
                    command[keyPath: path] = values
                    return command
                },
                show: { $0[keyPath: path] }, expected: "a list")
    }

    private static func single<Stored>(_ name: String, _ path: WritableKeyPath<Command, Stored>, shape: SettingShape = .single,
                                       expected: String,
                                       read: @escaping (String) -> Stored?, show: @escaping (Stored) -> [String]?) -> Self {
        Setting(key: SettingKey(name: name, shape: shape),
                assign: { command, values in
                    guard values.count == 1, let value = read(values[0]) else { return nil }
                    var command = command
                    command[keyPath: path] = value
                    return command
                },
                show: { show($0[keyPath: path]) }, expected: expected)
    }

    static func parseBoolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }

    private static func describe<Value: ExpressibleByArgument>(_ type: Value.Type) -> String {
        if !Value.allValueStrings.isEmpty { return "one of: " + Value.allValueStrings.joined(separator: ", ") }
        switch type {
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is WorkerCount.Type: return "auto or an integer"
        default: return "text"
        }
    }
}
