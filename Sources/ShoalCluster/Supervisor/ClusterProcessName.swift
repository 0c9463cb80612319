// What ps and top call each process of a cluster, so they tell the supervisor and each worker
// apart: "shoal: supervisor" and "shoal: worker 3 (generation 2)" (the slot and generation the
// logs name), with a short form for top's 15-byte name. The program's own name leads, so a
// program embedding Shoal shows its name instead of shoal's.
import ShoalPosix

public struct ClusterProcessName: Sendable, Equatable {
    /// The full title, for ps (`args`).
    public let title: String
    /// The short name, for top (`comm`), at most 15 bytes with a short program name.
    public let name: String

    public static func supervisor(program: String) -> ClusterProcessName {
        ClusterProcessName(title: "\(program): supervisor", name: "\(program): super")
    }

    public static func worker(_ role: WorkerRole, program: String) -> ClusterProcessName {
        ClusterProcessName(title: "\(program): worker \(role.slot) (generation \(role.generation))",
                           name: "\(program): w\(role.slot) g\(role.generation)")
    }

    /// The last path component of argv[0] ("shoal" for /usr/local/bin/shoal).
    public static func program(_ argument0: String) -> String {
        let name = argument0.split(separator: "/").last.map(String.init) ?? ""
        return name.isEmpty ? "shoal" : name
    }

    /// Shows this process under this name in ps and top.
    public func apply() {
        ProcessTitle.set(title, name: name)
    }

    static var thisProgram: String { program(CommandLine.arguments.first ?? "") }
}
