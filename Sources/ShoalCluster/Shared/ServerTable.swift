// What the workers of a cluster share about their WebSocket servers: each worker runs the same
// setup and names a server by its creation index on the bus and in the registry, so the setups
// must match (the first worker of a generation records a signature, the others compare), and a
// server terminated on one worker stays terminated for workers that start later (a restart after a
// crash, a reload), which read the flags at setup.
//
// Two u64 words of the segment header (SharedSegment.swift):
//   serverSetup        bits 48...63: the low 16 bits of the generation that recorded it
//                      bits 0...47: a signature of that generation's server list (0 in both: none yet)
//   terminatedServers  bit i set: server i was terminated (servers 0...63; later ones are not kept)

/// A view of the server words of the segment header.
public struct ServerTable: Sendable {
    let memory: SharedMemory

    /// Servers whose terminated flag is kept (one bit each).
    public static let trackedServers = 64

    /// Whether the setup signature `signature` (any 64-bit hash of the server list, e.g. `signature(of:)`)
    /// of a worker of `generation` matches the one recorded by its generation's first worker; the
    /// first worker records it. A new generation with a different server list clears the terminated
    /// flags (they named other servers).
    public func agreesOnSetup(_ signature: UInt64, generation: Int) -> Bool {
        let generationBits = UInt64(truncatingIfNeeded: generation) & 0xFFFF
        let mine = generationBits << 48 | (signature & Self.signatureMask) | 1 << 47
        while true {
            let recorded = memory.load64(SegmentLayout.serverSetupOffset)
            if recorded >> 48 == generationBits && recorded != 0 { return recorded == mine }
            if recorded != 0, Int16(truncatingIfNeeded: generationBits &- recorded >> 48) < 0 {
                return true  // a worker of an older generation, restarted while a newer one runs: not compared
            }
            if memory.compareExchange64(SegmentLayout.serverSetupOffset, expected: recorded, desired: mine) {
                if recorded & Self.signatureMask != mine & Self.signatureMask {
                    memory.store64(SegmentLayout.terminatedServersOffset, 0)
                }
                return true
            }
        }
    }

    /// 47 bits of signature; bit 47 is always set so a recorded setup is never the zero word.
    private static let signatureMask: UInt64 = (1 << 47) - 1

    /// Whether server `index` was terminated by some worker.
    public func isTerminated(server index: Int) -> Bool {
        guard index >= 0, index < Self.trackedServers else { return false }
        return memory.load64(SegmentLayout.terminatedServersOffset) & (1 << UInt64(index)) != 0
    }

    /// Records that server `index` was terminated (a no-op beyond `trackedServers`).
    public func markTerminated(server index: Int) {
        guard index >= 0, index < Self.trackedServers else { return }
        while true {
            let flags = memory.load64(SegmentLayout.terminatedServersOffset)
            let updated = flags | 1 << UInt64(index)
            if flags == updated || memory.compareExchange64(SegmentLayout.terminatedServersOffset, expected: flags, desired: updated) {
                return
            }
        }
    }

    /// A signature of a list of strings that is the same in every process (FNV-1a 64; Swift's
    /// `Hasher` is seeded per process).
    public static func signature(of parts: [String]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in parts {
            for byte in part.utf8 + [0] {
                hash = (hash ^ UInt64(byte)) &* 0x0100_0000_01b3
            }
        }
        return hash
    }
}
