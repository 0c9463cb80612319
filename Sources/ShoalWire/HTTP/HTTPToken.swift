// The token grammar of HTTP (RFC 9110 §5.6.2), shared by the request-head parser (methods, header
// names) and the Sec-WebSocket-Extensions parser (extension and parameter names).

public enum HTTPToken {
    /// tchar: visible ASCII except the delimiters "(),/:;<=>?@[\]{}.
    public static func isTokenCharacter(_ byte: UInt8) -> Bool {
        // Bit n of the two words says whether ASCII byte n is a tchar: one shift and test per byte of
        // every method and header name, where a switch over the characters compiled to a jump table.
        // (Bytes 64-127 shift the second word by byte & 63; the word for 0-63 is chosen below.)
        let word = byte < 64 ? tcharBelow64 : tcharFrom64
        return byte < 128 && (word >> (byte & 63)) & 1 == 1
    }

    /// Digits and !#$%&'*+-.
    private static let tcharBelow64: UInt64 = 0x03FF_6CFA_0000_0000
    /// Letters and ^_`|~
    private static let tcharFrom64: UInt64 = 0x57FF_FFFF_C7FF_FFFE
}
