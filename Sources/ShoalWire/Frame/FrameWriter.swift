// Encodes frame headers straight into caller memory, so the send path can put a header in front of a
// payload it already holds (or encode a broadcast frame once) without building intermediate arrays.

/// Frame encoding (RFC 6455 §5.2).
public enum FrameWriter {
    /// Size of the header for a payload of this length (2, 4 or 10 bytes; +4 when masked).
    public static func headerSize(payloadLength: Int, masked: Bool = false) -> Int {
        let base =
            switch payloadLength {
            case ...125: 2
            case ...0xFFFF: 4
            default: 10
            }
        return masked ? base + 4 : base
    }

    /// Writes a frame header at `into` (room for headerSize bytes). Returns bytes written.
    ///
    /// Always uses the shortest length encoding, as RFC 6455 §5.2 requires of senders. `rsv1` marks a
    /// compressed message when permessage-deflate was negotiated (RFC 7692 §6): set it on the first
    /// frame of a text or binary message whose payload came from MessageDeflater, never on continuation
    /// or control frames.
    public static func writeHeader(
        opcode: Opcode, fin: Bool = true, rsv1: Bool = false, payloadLength: Int,
        maskKey: UInt32? = nil, into: UnsafeMutableRawPointer
    ) -> Int {
        precondition(payloadLength >= 0, "negative payload length")
        var byte0 = opcode.rawValue
        if fin { byte0 |= FrameHeader.finBit }
        if rsv1 { byte0 |= FrameHeader.rsv1Bit }
        into.storeBytes(of: byte0, as: UInt8.self)
        let maskBit = maskKey == nil ? 0 : FrameHeader.maskBit
        var written: Int
        switch payloadLength {
        case ...125:
            into.storeBytes(of: maskBit | UInt8(payloadLength), toByteOffset: 1, as: UInt8.self)
            written = 2
        case ...0xFFFF:
            into.storeBytes(of: maskBit | FrameHeader.length16, toByteOffset: 1, as: UInt8.self)
            into.storeBytes(of: UInt16(payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            written = 4
        default:
            into.storeBytes(of: maskBit | FrameHeader.length64, toByteOffset: 1, as: UInt8.self)
            into.storeBytes(of: UInt64(payloadLength).bigEndian, toByteOffset: 2, as: UInt64.self)
            written = 10
        }
        if let maskKey {
            into.storeBytes(of: maskKey.bigEndian, toByteOffset: written, as: UInt32.self)
            written += 4
        }
        return written
    }

    /// Close frame payload: 2-byte code + reason truncated to fit 125 bytes in all, cut on a UTF-8
    /// boundary; empty when code is nil.
    public static func closePayload(code: UInt16?, reason: String) -> [UInt8] {
        guard let code else { return [] }
        var payload: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        let utf8 = reason.utf8
        let room = Limits.maxControlPayload - 2
        guard utf8.count > room else {
            payload.append(contentsOf: utf8)
            return payload
        }
        // Back up over continuation bytes (10xxxxxx) so the cut falls before a lead byte.
        var end = utf8.index(utf8.startIndex, offsetBy: room)
        while end > utf8.startIndex && utf8[end] & 0xC0 == 0x80 {
            end = utf8.index(before: end)
        }
        payload.append(contentsOf: utf8[utf8.startIndex..<end])
        return payload
    }

    /// Convenience for tests/clients: a whole frame as bytes (masks the payload when maskKey given).
    public static func frame(
        opcode: Opcode, fin: Bool = true, rsv1: Bool = false, payload: [UInt8], maskKey: UInt32? = nil
    ) -> [UInt8] {
        let headerLength = headerSize(payloadLength: payload.count, masked: maskKey != nil)
        var bytes = [UInt8](repeating: 0, count: headerLength)
        bytes.withUnsafeMutableBytes { raw in
            _ = writeHeader(
                opcode: opcode, fin: fin, rsv1: rsv1, payloadLength: payload.count, maskKey: maskKey,
                into: raw.baseAddress!)
        }
        bytes.append(contentsOf: payload)
        if let maskKey {
            bytes.withUnsafeMutableBytes { raw in
                _ = Masking.apply(
                    maskKey: maskKey, keyOffset: 0, to: UnsafeMutableRawBufferPointer(rebasing: raw[headerLength...]))
            }
        }
        return bytes
    }
}
