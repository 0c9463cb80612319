// Certificates made for a test run with the openssl command: a private CA, a server certificate
// for localhost / 127.0.0.1 signed by it, one for other.example (SNI), an RSA-2048 one, and a key
// that belongs to none of them. No Foundation: its Process leaks a RunLoop side table that
// LeakSanitizer reports (scripts/sanitizers.sh), so the shell runs through system(3).
#if canImport(Glibc)
import Glibc
#endif

struct TestCertificates {
    let directory: String
    var caCertificate: String { directory + "/ca.pem" }
    var localhostChain: String { directory + "/localhost.pem" }
    var localhostKey: String { directory + "/localhost.key" }
    var otherChain: String { directory + "/other.pem" }
    var otherKey: String { directory + "/other.key" }
    var rsaChain: String { directory + "/rsa.pem" }
    var rsaKey: String { directory + "/rsa.key" }
    var strayKey: String { directory + "/stray.key" }

    /// Made once per test process (a few hundred milliseconds of openssl).
    static let shared: TestCertificates = {
        var template = Array("/tmp/shoal-tls-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed: errno \(errno)") }
        let directory = String(cString: made)
        let script = """
            set -e
            cd '\(directory)'
            ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
            openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj '/CN=Shoal Test CA' 2>/dev/null
            openssl req -x509 $ec -keyout localhost.key -out localhost.pem -days 2 -subj '/CN=localhost' \
              -CA ca.pem -CAkey ca.key -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' 2>/dev/null
            openssl req -x509 $ec -keyout other.key -out other.pem -days 2 -subj '/CN=other.example' \
              -CA ca.pem -CAkey ca.key -addext 'subjectAltName=DNS:other.example,DNS:*.other.example' 2>/dev/null
            openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.pem -days 2 -subj '/CN=localhost' \
              -CA ca.pem -CAkey ca.key -addext 'subjectAltName=DNS:localhost' 2>/dev/null
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out stray.key 2>/dev/null
            """
        let status = system(script)
        precondition(status == 0, "openssl could not make the test certificates (status \(status))")
        return TestCertificates(directory: directory)
    }()
}
