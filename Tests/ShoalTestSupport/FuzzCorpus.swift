// The seed corpus and crash reproducers of the fuzz targets (Fuzz/Corpus/<target>/), read by the replay tests.
import Foundation

public enum FuzzCorpus {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// The folder of `target`'s corpus, found from this file's place in the repository.
    public static func folder(_ target: String) -> URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // ShoalTestSupport
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // the repository
            .appendingPathComponent("Fuzz/Corpus/\(target)")
    }

    /// Every file of `target`'s corpus as (name, bytes), sorted by name. Throws when the folder is missing or
    /// holds no file, so a moved corpus fails the replay instead of passing it vacuously.
    public static func inputs(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        let folder = folder(target)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        } catch {
            throw Missing(description: "no corpus folder at \(folder.path): \(error)")
        }
        let inputs = try names.filter { !$0.hasPrefix(".") }.sorted().map { name in
            (name: name, bytes: [UInt8](try Data(contentsOf: folder.appendingPathComponent(name))))
        }
        guard !inputs.isEmpty else { throw Missing(description: "the corpus folder \(folder.path) is empty") }
        return inputs
    }
}
