// Base64 (RFC 4648 §4) for Sec-WebSocket-Key and Sec-WebSocket-Accept, without Foundation.

/// Standard-alphabet Base64 with padding.
public enum Base64 {
    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Encodes `bytes` with padding, straight into the string's storage (no array in between).
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        String(unsafeUninitializedCapacity: encodedCount(bytes.count)) { encode(bytes, into: $0) }
    }

    /// Length of the encoding of `count` bytes.
    public static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Writes the encoding of `bytes` at the start of `output` (at least `encodedCount` long);
    /// returns its length.
    public static func encode(_ bytes: some Collection<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var count = 0
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = iterator.next()
            output[count] = alphabet[Int(b0 >> 2)]
            output[count + 1] = alphabet[Int((b0 & 0x03) << 4 | (b1 ?? 0) >> 4)]
            output[count + 2] = b1.map { alphabet[Int(($0 & 0x0F) << 2 | (b2 ?? 0) >> 6)] } ?? UInt8(ascii: "=")
            output[count + 3] = b2.map { alphabet[Int($0 & 0x3F)] } ?? UInt8(ascii: "=")
            count += 4
        }
        return count
    }

    /// Decodes strictly: padding required, no whitespace, no characters outside the alphabet, and the
    /// unused bits of the last group must be zero (so every byte string has exactly one encoding).
    public static func decode(_ s: String) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(s.utf8.count / 4 * 3)
        return decode(s, { output.append($0) }) ? output : nil
    }

    /// Decodes the text's bytes in place, handing each byte to `emit`; false when it does not decode.
    private static func decode(_ s: String, _ emit: (UInt8) -> Void) -> Bool {
        var s = s
        return s.withUTF8 { input in
            guard input.count % 4 == 0 else { return false }
            var index = 0
            while index < input.count {
                let isLast = index + 4 == input.count
                let c2 = input[index + 2]
                let c3 = input[index + 3]
                let padding = isLast ? (c3 == UInt8(ascii: "=") ? (c2 == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
                guard let v0 = value(input[index]), let v1 = value(input[index + 1]) else { return false }
                let v2 = padding >= 2 ? 0 : value(c2)
                let v3 = padding >= 1 ? 0 : value(c3)
                guard let v2, let v3 else { return false }
                switch padding {
                case 2:
                    guard v1 & 0x0F == 0 else { return false }
                    emit(v0 << 2 | v1 >> 4)
                case 1:
                    guard v2 & 0x03 == 0 else { return false }
                    emit(v0 << 2 | v1 >> 4)
                    emit(v1 << 4 | v2 >> 2)
                default:
                    emit(v0 << 2 | v1 >> 4)
                    emit(v1 << 4 | v2 >> 2)
                    emit(v2 << 6 | v3)
                }
                index += 4
            }
            return true
        }
    }

    /// The 6 bits `character` stands for, or nil outside the alphabet.
    static func value(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): character - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): character - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
