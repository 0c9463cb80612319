// The small static file server under the WebSocket servers: the demo page and its assets.
// Files are read once and kept in memory; paths never leave the root.
import Glibc

/// Serves files below a root folder.
final class StaticFiles {
    struct File {
        let bytes: [UInt8]
        let contentType: String
    }

    let root: String
    private var cache: [String: File] = [:]
    /// Files above this size are not served (this is a demo-page server, not a CDN).
    private let maxFileSize = 8 * 1024 * 1024

    init(root: String) {
        self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// The file for a decoded request path, or nil (404).
    func file(at path: String) -> File? {
        if let hit = cache[path] { return hit }
        var relative = path
        if relative.hasSuffix("/") { relative += "index.html" }
        let segments = relative.split(separator: "/", omittingEmptySubsequences: true)
        // No "..", no hidden files, no NUL: the path must stay under the root.
        guard !segments.isEmpty, !segments.contains(where: { $0.hasPrefix(".") || $0.contains("\0") }) else { return nil }
        let fullPath = root + "/" + segments.joined(separator: "/")
        guard let bytes = Self.read(fullPath, limit: maxFileSize) else { return nil }
        let file = File(bytes: bytes, contentType: Self.contentType(of: fullPath))
        cache[path] = file
        return file
    }

    private static func read(_ path: String, limit: Int) -> [UInt8]? {
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
            if n <= 0 { return nil }
            done += n
        }
        return bytes
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
