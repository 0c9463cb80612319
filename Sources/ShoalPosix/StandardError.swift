// Whole lines to stderr with one write(2) each, for log handlers: the supervisor and its workers
// share stderr, and a pipe write of at most PIPE_BUF (4 KiB) bytes is never interleaved with
// another process's.
#if canImport(Glibc)
import Glibc
#endif

public enum StandardError {
    /// Writes `line` (which should end in "\n"), retrying after a signal or a short write.
    public static func write(_ line: String) {
        var line = line
        line.withUTF8 { bytes in
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(STDERR_FILENO, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }  // stderr closed or full: a log line is not worth blocking or failing for
                done += n
            }
        }
    }
}
