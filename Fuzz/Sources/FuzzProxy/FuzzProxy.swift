// libFuzzer entry point; the invariants are ProxyCheck's (Fuzz/Checks), which the corpus replay tests also run.

import FuzzSupport
import ShoalWireFuzzChecks

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxy(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzOne(data, size, ProxyCheck.check)
}
