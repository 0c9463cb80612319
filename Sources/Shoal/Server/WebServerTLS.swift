// TLS on a worker's listener (https:// and wss://): the certificates, and the session-ticket
// secret every worker of the cluster shares. The supervisor draws the secret once and hands it
// to its workers through the environment, so a client resumes on whichever worker, of whichever
// generation, its reconnect lands on; the keys derived from it rotate every `ticketRotation`.
public import ShoalTLS
import ShoalPosix
#if canImport(Glibc)
import Glibc
#endif

/// What a TLS listener serves.
public struct WebServerTLS: Sendable {
    /// The first identity answers every client; the others answer the names their certificate
    /// covers (SNI).
    public var identities: [TLSIdentity]
    /// How long one period's ticket keys make tickets (a ticket opens in its period and the next).
    public var ticketRotationSeconds: Int

    public init(identities: [TLSIdentity], ticketRotationSeconds: Int = 3600) {
        precondition(!identities.isEmpty, "TLS needs at least one certificate")
        self.identities = identities
        self.ticketRotationSeconds = ticketRotationSeconds
    }

    /// The server context, reading the certificate and key files now. Throws naming the file.
    public func makeContext(tickets: TLSTicketKeys? = nil) throws(TLSError) -> TLSContext {
        try TLSContext.server(identity: identities[0], additional: Array(identities.dropFirst()), tickets: tickets)
    }

    /// Where the supervisor puts the ticket secret for its workers (hex).
    static let ticketSecretVariable = "SHOAL_TLS_TICKET_SECRET"

    /// In the supervisor: draws the secret its workers will share (once; reloads keep it).
    static func publishTicketSecret() {
        let hex = TLSTicketKeys.randomSecret().map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        setenv(ticketSecretVariable, hex, 1)
    }

    /// In a worker: the ticket keys from the supervisor's secret, or nil when there is none.
    func ticketKeys(environment: [String: String]) throws(TLSError) -> TLSTicketKeys? {
        guard let hex = environment[Self.ticketSecretVariable] else { return nil }
        // Read once: a process a handler starts must not inherit the key to every resumed session.
        unsetenv(Self.ticketSecretVariable)
        var bytes: [UInt8] = []
        var digits = hex.utf8.makeIterator()
        while let high = digits.next(), let low = digits.next() {
            guard let byte = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { break }
            bytes.append(byte)
        }
        return try TLSTicketKeys(secret: bytes, rotationSeconds: ticketRotationSeconds)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
