// The first two bytes of a frame, decoded in place: keeping the raw bytes (2 bytes of state) is smaller
// than storing each field, and the reader lives in every connection.
//
//   byte 0:  FIN | RSV1 | RSV2 | RSV3 | opcode (4 bits)
//   byte 1:  MASK | payload length (7 bits: 0-125, 126 = 16-bit length follows, 127 = 64-bit length follows)

/// The fixed part of a frame header (RFC 6455 §5.2).
struct FrameHeader {
    var byte0: UInt8 = 0
    var byte1: UInt8 = 0

    static let finBit: UInt8 = 0x80
    static let rsv1Bit: UInt8 = 0x40
    static let rsvBits: UInt8 = 0x70
    static let opcodeBits: UInt8 = 0x0F
    static let maskBit: UInt8 = 0x80
    static let lengthBits: UInt8 = 0x7F
    /// 7-bit length values that announce an extended length.
    static let length16: UInt8 = 126
    static let length64: UInt8 = 127

    var fin: Bool { byte0 & Self.finBit != 0 }
    var rsv: UInt8 { byte0 & Self.rsvBits }
    /// The opcode; nil for the reserved values 3-7 and 0xB-0xF.
    var opcode: Opcode? { Opcode(rawValue: byte0 & Self.opcodeBits) }
    var masked: Bool { byte1 & Self.maskBit != 0 }
    var length7: UInt8 { byte1 & Self.lengthBits }

    /// Bytes of extended length after byte 1: 0, 2 or 8.
    var extendedLengthBytes: UInt8 {
        switch length7 {
        case Self.length16: 2
        case Self.length64: 8
        default: 0
        }
    }
}
