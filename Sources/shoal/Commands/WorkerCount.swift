// `--workers N` or `--workers auto`: a fixed count, or one the supervisor derives from the CPUs and
// the connections the cluster should hold (`WorkerSizing`).
import ArgumentParser

enum WorkerCount: Equatable, ExpressibleByArgument, CustomStringConvertible {
    case auto
    case count(Int)

    init?(argument: String) {
        if argument == "auto" {
            self = .auto
        } else if let n = Int(argument) {
            self = .count(n)
        } else {
            return nil
        }
    }

    /// The fixed count, nil for auto (as `WebServerConfiguration.workers` takes it).
    var fixed: Int? {
        if case .count(let n) = self { return n }
        return nil
    }

    var defaultValueDescription: String { "auto" }

    var description: String { fixed.map(String.init) ?? "auto" }
}
