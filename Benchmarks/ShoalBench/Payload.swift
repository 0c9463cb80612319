// Message payloads: `letters` (a-z repeated: valid UTF-8, and as compressible as text gets) or `json`
// (JSON-like records with varied numbers and names, deterministic, compressing about as well as real
// application JSON does), so a compressed run moves realistic byte counts.
import ArgumentParser

enum PayloadKind: String, ExpressibleByArgument, CaseIterable {
    case letters, json

    /// `size` bytes of this kind (ASCII, so also valid text).
    func bytes(_ size: Int) -> [UInt8] {
        switch self {
        case .letters:
            return (0..<size).map { UInt8(97 + $0 % 26) }
        case .json:
            return Self.jsonLike(size)
        }
    }

    private static let symbols = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "ORCL", "INTC", "AMD"]
    private static let events = ["quote", "trade", "order", "cancel"]

    /// Records such as {"seq":1042,"event":"trade","symbol":"NVDA","bid":412.37,"ask":412.41,
    /// "qty":180,"user":"u7f3a21","ts":1700000012345}, comma separated, cut at `size` bytes.
    private static func jsonLike(_ size: Int) -> [UInt8] {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        var out: [UInt8] = Array("[".utf8)
        var seq = 1000
        while out.count < size {
            seq += 1 + Int(next() % 3)
            let price = 100 + Int(next() % 40000)
            let spread = 1 + Int(next() % 9)
            let bid = "\(price / 100).\(format2(price % 100))"
            let ask = "\((price + spread) / 100).\(format2((price + spread) % 100))"
            let user = String(next() & 0xFF_FFFF, radix: 16)
            let record = "{\"seq\":\(seq),\"event\":\"\(events[Int(next() % 4)])\",\"symbol\":\"\(symbols[Int(next() % 10)])\","
                + "\"bid\":\(bid),\"ask\":\(ask),\"qty\":\(10 * (1 + Int(next() % 50))),\"user\":\"u\(user)\","
                + "\"ts\":\(1_700_000_000_000 + Int(next() % 100_000_000))},"
            out.append(contentsOf: record.utf8)
        }
        return Array(out.prefix(size))
    }

    private static func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
