// The live progress line on stderr: rewritten in place once a second on a terminal, one line per
// second when --progress forces it elsewhere, silent otherwise.
import Glibc

final class ProgressLine {
    let enabled: Bool
    /// This thread prints the line (thread 0); the others only post their figures.
    let shown: Bool
    private let terminal: Bool
    private var written = false

    init(forced: Bool, shown: Bool = true) {
        terminal = isatty(2) != 0
        enabled = forced || terminal
        self.shown = shown
    }

    func show(_ text: String) {
        guard enabled && shown else { return }
        writeStandardError(terminal ? "\r\u{1B}[K" + text : text + "\n")
        written = true
    }

    /// Ends the line so the final table starts on a fresh one.
    func finish() {
        if enabled && terminal && written { writeStandardError("\r\u{1B}[K") }
        written = false
    }
}

/// Writes to stderr without the C `stderr` global (not concurrency-safe in Swift 6).
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}
