// libFuzzer entry point; the invariants are BusCheck's (Fuzz/Checks), which the corpus replay tests also run.

import FuzzSupport
import ShoalClusterFuzzChecks

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBus(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzOne(data, size, BusCheck.check)
}
