// Reading a small file whole, such as a configuration file, with the reason when it cannot be
// read ("No such file or directory", "Permission denied", "not a regular file").
#if canImport(Glibc)
import Glibc
#endif

public enum SmallFile {
    /// Why a file was not read.
    public struct Refusal: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// The bytes of the regular file at `path`, which must have at most `limit` of them.
    public static func read(_ path: String, limit: Int) throws(Refusal) -> [UInt8] {
        if let bytes = FileTree.contents(of: path, limit: limit) { return bytes }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Refusal(description: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Refusal(description: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw Refusal(description: "not a regular file") }
        guard Int(info.st_size) <= limit else { throw Refusal(description: "larger than \(limit) bytes") }
        throw Refusal(description: "it changed while it was read")
    }
}
