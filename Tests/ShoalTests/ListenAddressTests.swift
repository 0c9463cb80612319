// --metrics-listen's value: numeric IPv4 or bracketed IPv6 with a port, and a clear reason otherwise.
import Shoal
import Testing

@Suite("Listen address")
struct ListenAddressTests {
    @Test("IPv4 and bracketed IPv6 with a port parse, and print back the same way")
    func parses() throws {
        #expect(try ListenAddress(parsing: "127.0.0.1:9100") == ListenAddress(host: "127.0.0.1", port: 9100))
        #expect(try ListenAddress(parsing: "[::1]:9100") == ListenAddress(host: "::1", port: 9100))
        #expect(try ListenAddress(parsing: "[::1]:9100").description == "[::1]:9100")
    }

    @Test("names, missing or bad ports and unbracketed IPv6 are refused with the reason")
    func refuses() {
        let cases = [("localhost:9100", "not a numeric"), ("127.0.0.1", "has no :port"), ("127.0.0.1:0", "between 1 and 65535"),
                     ("127.0.0.1:x", "between 1 and 65535"), ("[::1]9100", "is not [IPv6 address]:port"),
                     ("::1:9100", "goes in brackets")]
        for (text, reason) in cases {
            #expect(throws: (any Error).self, "\(text)") { try ListenAddress(parsing: text) }
            do {
                _ = try ListenAddress(parsing: text)
            } catch {
                #expect(error.description.contains(reason), "\(text): \(error.description)")
            }
        }
    }
}
