// Default bounds for everything a peer controls, in one place so the server's options can refer to them
// and a bad client meets the same ceiling in every code path.

/// Default limits for frames and the HTTP upgrade head.
public enum Limits {
    /// 16 MiB: large enough for real payloads (JSON dumps, images), small enough that one client cannot
    /// make a worker hold gigabytes.
    public static let defaultMaxMessageSize = 16 * 1024 * 1024
    /// RFC 6455 §5.5: control frames carry at most 125 payload bytes so they fit a 2-byte header.
    public static let maxControlPayload = 125
    /// 16 KiB: browsers send well under 8 KiB of headers; nginx's default large header buffer is 8 KiB x 4.
    public static let defaultMaxHeadSize = 16 * 1024
    /// 100,000 data frames per message: each frame costs a header's parsing however small, so a message
    /// of millions of empty fragments is work (and, in servers that keep frames, memory) for nothing;
    /// ws 8.21 added the same kind of limit after such an exhaustion. Autobahn case 9.3.1 sends a 4 MiB
    /// message as 65,536 fragments of 64 bytes, so the default stays well above that.
    public static let defaultMaxFragments = 100_000
    /// 100 header fields: the same ceiling as Node's HTTP parser, far above what browsers send.
    public static let defaultMaxHeaderCount = 100
}
