// The static file server's folder, read once: which request paths name which file, one copy per
// file whatever its names, the byte bounds, and what is never served (hidden names, symlinks out).
import Foundation
import Testing
@testable import Shoal

@Suite struct StaticFilesTests {
    /// A fresh folder below the system's temporary one, removed by the caller.
    private func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("shoal-static-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("pub/sub"), withIntermediateDirectories: true)
        return url
    }

    private func write(_ bytes: Int, to url: URL) throws {
        try Data(repeating: 7, count: bytes).write(to: url)
    }

    @Test func requestPathsMapToOneName() {
        let cases: [(String, String?)] = [
            ("/", "index.html"), ("", "index.html"), ("/.", "index.html"), ("/a.js", "a.js"), ("//a.js", "a.js"),
            ("///./a.js", "a.js"), ("/sub/", "sub/index.html"), ("/sub//x.css", "sub/x.css"), ("/./sub/./x", "sub/x"),
            ("/../etc/passwd", nil), ("/sub/../a.js", nil), ("/.env", nil), ("/sub/.git/config", nil), ("/a\0b", nil),
        ]
        for (path, key) in cases {
            #expect(StaticFiles.key(forRequestPath: path) == key, "\(path.debugDescription)")
        }
    }

    @Test func everyNameOfAFileSharesOneCopy() throws {
        let base = try folder()
        defer { try? FileManager.default.removeItem(at: base) }
        let pub = base.appendingPathComponent("pub")
        try write(1000, to: pub.appendingPathComponent("big.bin"))
        try FileManager.default.createSymbolicLink(atPath: pub.appendingPathComponent("alias.bin").path, withDestinationPath: "big.bin")
        try FileManager.default.createSymbolicLink(atPath: pub.appendingPathComponent("sub/up.bin").path, withDestinationPath: "../big.bin")
        let files = StaticFiles(root: pub.path)
        #expect(files.totalBytes == 1000)
        for path in ["/big.bin", "//big.bin", "/./big.bin", "/alias.bin", "/sub/up.bin"] {
            #expect(files.file(at: path)?.bytes.count == 1000, "\(path)")
        }
    }

    @Test func hiddenNamesAndSymlinksOutOfTheFolderAreNotServed() throws {
        let base = try folder()
        defer { try? FileManager.default.removeItem(at: base) }
        let pub = base.appendingPathComponent("pub")
        try "secret".write(to: pub.appendingPathComponent(".secret"), atomically: true, encoding: .utf8)
        try "outside".write(to: base.appendingPathComponent("outside.txt"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: pub.appendingPathComponent("escape.txt").path,
                                                   withDestinationPath: base.appendingPathComponent("outside.txt").path)
        try FileManager.default.createSymbolicLink(atPath: pub.appendingPathComponent("alias.txt").path, withDestinationPath: ".secret")
        try FileManager.default.createSymbolicLink(atPath: pub.appendingPathComponent("sub/loop").path, withDestinationPath: "..")
        try "ok".write(to: pub.appendingPathComponent("sub/ok.txt"), atomically: true, encoding: .utf8)
        let files = StaticFiles(root: pub.path)
        for path in ["/.secret", "/escape.txt", "/alias.txt"] {
            #expect(files.file(at: path) == nil, "\(path)")
        }
        #expect(files.file(at: "/sub/ok.txt")?.bytes == Array("ok".utf8))
        // A symlink back up is a folder already walked: the walk ends, and nothing is listed twice.
        #expect(files.file(at: "/sub/loop/sub/ok.txt") == nil)
        #expect(files.totalBytes == 2)
    }

    @Test func filesBeyondTheBoundsAreSkippedAndSaySo() throws {
        let base = try folder()
        defer { try? FileManager.default.removeItem(at: base) }
        let pub = base.appendingPathComponent("pub")
        try write(100, to: pub.appendingPathComponent("a.bin"))
        try write(100, to: pub.appendingPathComponent("b.bin"))
        try write(300, to: pub.appendingPathComponent("huge.bin"))
        let files = StaticFiles(root: pub.path, limits: .init(maxFileBytes: 200, maxTotalBytes: 150, maxFiles: 10))
        #expect(files.file(at: "/a.bin") != nil)
        #expect(files.file(at: "/b.bin") == nil)
        #expect(files.file(at: "/huge.bin") == nil)
        #expect(files.totalBytes == 100)
        #expect(files.skipped.contains(.init(path: "b.bin", reason: .totalTooLarge)))
        #expect(files.skipped.contains(.init(path: "huge.bin", reason: .fileTooLarge)))
        let few = StaticFiles(root: pub.path, limits: .init(maxFiles: 2))
        #expect(few.truncated)
    }
}
