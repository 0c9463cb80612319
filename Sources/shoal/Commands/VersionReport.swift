// `shoal --version`: what a bug report or an inventory needs to name a build and what it can do
// on this host: the version, the git commit, the Swift compiler, and the loop backend the
// kernel allows (probed now, the way a worker chooses it at start).
import Shoal
import ShoalTLS

enum VersionReport {
    /// The release this source tree is (semantic versioning; 0.x: the API may still change).
    static let version = "0.1.0"

    /// The compiler that built the binary, to the minor version (`#if compiler` is all Swift offers).
    static var swiftVersion: String {
        #if compiler(>=6.5)
        return "6.5 or later"
        #elseif compiler(>=6.4)
        return "6.4"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #else
        return "6.1"
        #endif
    }

    static func text() -> String {
        """
        shoal \(version)
        commit: \(BuildInfo.gitCommit)
        swift: \(swiftVersion)
        \(Shoal.probeLoopBackend())
        \(KernelTLS.probe())
        """
    }
}
