// What LLVMFuzzerTestOneInput does in every target; only the check differs.

public import ShoalWireFuzzChecks

/// Runs `check` on the `size` bytes at `data` and traps (so libFuzzer saves the input) when it reports a broken
/// invariant. Returns 0: every input may be added to the corpus.
public func fuzzOne(
    _ data: UnsafePointer<UInt8>?, _ size: Int, _ check: ([UInt8]) throws(InvariantViolation) -> Void
) -> Int32 {
    let input = size > 0 ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    do throws(InvariantViolation) {
        try check(input)
    } catch {
        fatalError("invariant broken: \(error)")
    }
    return 0
}
