// The small static file server under the WebSocket servers: the demo page and its assets.
//
// Design: read once, at worker start. This is a demo-page server, not a CDN, so each worker reads
// the whole public folder into memory before it serves (FileTree, in ShoalPosix) and a request
// only looks up a dictionary: no blocking open/pread on the loop thread, and no request can make
// the worker read or keep anything new. Memory is bounded in bytes by `Limits` (a file beyond a
// bound is not served: 404, with a warning at start), and every name of one file (`//a`, `/./a`,
// a symlink inside the folder) shares one copy, keyed by device and inode. The price: a changed
// file is served after a reload (SIGHUP), which starts workers that read the folder again.
import ShoalPosix

/// Serves the files found below a root folder when the worker started, or the demo page built
/// into the binary.
final class StaticFiles {
    struct File {
        let bytes: [UInt8]
        let contentType: String
    }

    /// What one worker keeps in memory at most. 8 MiB per file and 32 MiB in all: a demo page with
    /// its scripts, styles and images is well below either, and 32 MiB is a fraction of what a
    /// worker's receive buffers may take (16 MiB) plus its connections. 4,096 files: the walk at
    /// start stays short even on a folder pointed at something large by mistake.
    struct Limits {
        var maxFileBytes = 8 * 1024 * 1024
        var maxTotalBytes = 32 * 1024 * 1024
        var maxFiles = 4096
    }

    /// Why a file below the root is not served.
    struct Skipped: Equatable {
        enum Reason: Equatable { case fileTooLarge, totalTooLarge, unreadable }
        let path: String
        let reason: Reason
    }

    /// The folder read at start; nil for the built-in demo page.
    let root: String?
    private var files: [String: File] = [:]
    /// Files not served, for the warning at start.
    private(set) var skipped: [Skipped] = []
    /// More than `maxFiles` files were found; those beyond it are not served.
    private(set) var truncated = false
    /// Bytes held: each distinct file counted once.
    private(set) var totalBytes = 0

    /// Reads every servable file below `root` (blocking: call it before the loop serves).
    init(root: String, limits: Limits = Limits()) {
        self.root = root
        let found = FileTree.regularFiles(under: root, maxEntries: limits.maxFiles)
        truncated = found.truncated
        var byIdentity: [[UInt64]: File] = [:]
        // Shortest names first, so the demo page's own files win the byte budget over deep trees.
        for entry in found.entries.sorted(by: { ($0.relativePath.count, $0.relativePath) < ($1.relativePath.count, $1.relativePath) }) {
            let identity = [entry.device, entry.inode]
            if let known = byIdentity[identity] {
                files[entry.relativePath] = known
                continue
            }
            guard entry.size <= limits.maxFileBytes else {
                skipped.append(Skipped(path: entry.relativePath, reason: .fileTooLarge))
                continue
            }
            guard totalBytes + entry.size <= limits.maxTotalBytes else {
                skipped.append(Skipped(path: entry.relativePath, reason: .totalTooLarge))
                continue
            }
            guard let bytes = FileTree.contents(of: entry.resolvedPath, limit: min(limits.maxFileBytes, limits.maxTotalBytes - totalBytes)) else {
                skipped.append(Skipped(path: entry.relativePath, reason: .unreadable))
                continue
            }
            let file = File(bytes: bytes, contentType: Self.contentType(of: entry.resolvedPath))
            byIdentity[identity] = file
            files[entry.relativePath] = file
            totalBytes += bytes.count
        }
    }

    /// The demo page compiled into the binary (Plugins/DemoPagePlugin): served when no public
    /// folder is configured, so the binary needs nothing installed beside it.
    init(builtIn: [(name: String, bytes: [UInt8])]) {
        root = nil
        for (name, bytes) in builtIn {
            files[name] = File(bytes: bytes, contentType: Self.contentType(of: name))
            totalBytes += bytes.count
        }
    }

    /// The file for a decoded request path, or nil (404).
    func file(at path: String) -> File? {
        Self.key(forRequestPath: path).flatMap { files[$0] }
    }

    /// The name below the root that a request path means: empty and "." segments fall away, a
    /// trailing "/" means its index.html, and a ".." or hidden segment or a NUL means no file.
    static func key(forRequestPath path: String) -> String? {
        var segments = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        if path.hasSuffix("/") || path.hasSuffix("/.") || segments.isEmpty { segments.append("index.html") }
        guard !segments.contains(where: { $0.hasPrefix(".") || $0.contains("\0") }) else { return nil }
        return segments.joined(separator: "/")
    }

    private static func contentType(of path: String) -> String {
        let ext = path.split(separator: ".").last.map { $0.lowercased() } ?? ""
        switch ext {
        case "html", "htm": return "text/html; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "json": return "application/json"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "ico": return "image/x-icon"
        case "txt": return "text/plain; charset=utf-8"
        default: return "application/octet-stream"
        }
    }
}
