// Kernel TLS (kTLS): the kernel can take over the record layer when it offers the "tls" upper
// layer protocol and OpenSSL was built for it. Probed and reported like the loop backend, so an
// operator sees why the user-space record layer runs.
import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

public enum KernelTLS {
    /// Where Linux lists the TCP upper layer protocols it can load.
    static let availableULPPath = "/proc/sys/net/ipv4/tcp_available_ulp"

    /// Whether `ulpList` (the contents of tcp_available_ulp) names "tls".
    static func offersTLS(_ ulpList: String) -> Bool {
        ulpList.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).contains("tls")
    }

    /// One line: "kernel TLS: unavailable (...)" or what would use it.
    public static func probe() -> String {
        guard shoal_openssl_has_ktls() == 1 else { return "kernel TLS: unavailable (OpenSSL was built without it)" }
        var text = ""
        if let file = fopen(availableULPPath, "r") {
            var buffer = [CChar](repeating: 0, count: 256)
            while fgets(&buffer, Int32(buffer.count), file) != nil {
                text += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            fclose(file)
        }
        guard offersTLS(text) else {
            return "kernel TLS: unavailable (no \"tls\" in \(availableULPPath): "
                + "\(text.isEmpty ? "unreadable" : text.trimmingNewline)); TLS records are sealed in user space"
        }
        return "kernel TLS: offered by the kernel, not used (Shoal seals TLS records in user space through memory buffers)"
    }
}

extension String {
    fileprivate var trimmingNewline: String {
        var text = self
        while text.last == "\n" || text.last == " " { text.removeLast() }
        return "\"" + text + "\""
    }
}
