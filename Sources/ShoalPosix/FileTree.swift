// The blocking file-system calls of the static file server, fenced here: walking a folder and
// reading its files, done once when a worker starts (never for a request, never on a serving loop).
// Every path is resolved, so a symlink cannot lead out of the folder or onto a hidden file.
#if canImport(Glibc)
import Glibc
#endif

/// Regular files below a root folder.
public enum FileTree {
    /// One regular file found by `regularFiles(under:maxEntries:)`.
    public struct Entry: Sendable, Equatable {
        /// Path below the root, "/"-separated, as a request names it (through symlinks as named).
        public var relativePath: String
        /// The file's canonical path (every symlink resolved).
        public var resolvedPath: String
        /// Device and inode: one identity for every name of the same file.
        public var device: UInt64
        public var inode: UInt64
        public var size: Int
    }

    /// The root's canonical path, or nil if it is not a folder.
    public static func resolvedFolder(_ root: String) -> String? {
        guard let path = resolve(root), let info = status(path), (info.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return path
    }

    /// The regular files below `root`, at most `maxEntries` (the rest are not listed; `truncated`
    /// says so). Names starting with "." are skipped, and so is anything whose resolved path leaves
    /// the root or passes through a hidden name. A folder reached twice (a symlink loop) is walked once.
    public static func regularFiles(under root: String, maxEntries: Int) -> (entries: [Entry], truncated: Bool) {
        guard let top = resolvedFolder(root) else { return ([], false) }
        var entries: [Entry] = []
        var visited: Set<[UInt64]> = []
        var pending: [(path: String, relative: String)] = [(top, "")]
        while let (folder, relative) = pending.popLast() {
            guard let info = status(folder), visited.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted,
                  let directory = opendir(folder) else { continue }
            defer { closedir(directory) }
            while let item = readdir(directory) {
                let name = withUnsafeBytes(of: item.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard !name.hasPrefix(".") else { continue }
                let named = relative.isEmpty ? name : relative + "/" + name
                guard let real = resolve(folder + "/" + name), isVisible(real, below: top), let target = status(real) else { continue }
                switch target.st_mode & S_IFMT {
                case S_IFDIR:
                    pending.append((real, named))
                case S_IFREG:
                    guard entries.count < maxEntries else { return (entries, true) }
                    entries.append(Entry(relativePath: named, resolvedPath: real, device: UInt64(target.st_dev),
                                         inode: UInt64(target.st_ino), size: Int(target.st_size)))
                default:
                    continue
                }
            }
        }
        return (entries, false)
    }

    /// The whole content of the regular file at `path` if it has at most `limit` bytes, else nil.
    public static func contents(of path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) <= limit else { return nil }
        let size = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, size - done, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }  // an error, or the file shrank while we read it
            done += n
        }
        return bytes
    }

    /// True when `real` is `top` or below it, with no hidden name on the way.
    private static func isVisible(_ real: String, below top: String) -> Bool {
        let prefix = top == "/" ? "/" : top + "/"
        guard real.hasPrefix(prefix) else { return false }
        return !real.dropFirst(prefix.count).split(separator: "/").contains { $0.hasPrefix(".") }
    }

    private static func resolve(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func status(_ path: String) -> stat? {
        var info = stat()
        return stat(path, &info) == 0 ? info : nil
    }
}
