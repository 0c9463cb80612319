// Replays every file of the upgrade and frame fuzz corpora (seeds and minimised crash reproducers) through the
// same checks the libFuzzer targets run (Fuzz/Checks), so `swift test` keeps them passing without a fuzzer.

import ShoalTestSupport
import ShoalWireFuzzChecks
import Testing

@Suite struct FuzzCorpusReplay {
    @Test func everyUpgradeCorpusInputKeepsTheUpgradeInvariants() throws {
        try replay("upgrade", UpgradeCheck.check)
    }

    @Test func everyFrameCorpusInputKeepsTheReaderInvariants() throws {
        try replay("frames", FrameCheck.check)
    }

    @Test func everyProxyCorpusInputKeepsTheClientAddressInvariants() throws {
        try replay("proxy", ProxyCheck.check)
    }

    private func replay(_ target: String, _ check: ([UInt8]) throws(InvariantViolation) -> Void) throws {
        let inputs = try FuzzCorpus.inputs(target)
        for input in inputs {
            do throws(InvariantViolation) {
                try check(input.bytes)
            } catch {
                Issue.record("\(target)/\(input.name): \(error)")
            }
        }
    }
}
