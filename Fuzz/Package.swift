// swift-tools-version:5.4
// libFuzzer targets for Shoal's parsers, in a package of their own so the main build and CI never see the
// fuzzer flags. Build and run them with scripts/fuzz.sh; docs/security.md says what each one checks.
//
// Tools version 5.4 on purpose: from 5.5 on, SwiftPM compiles an executable target's entry point as
// `<Module>_main` and links with `--defsym main=<Module>_main` (so tests can link executables). A fuzz target
// has no entry point of its own (-parse-as-library; libFuzzer's `main` calls LLVMFuzzerTestOneInput), so
// that symbol is undefined and the link fails: "undefined symbol 'FuzzUpgrade_main' referenced in expression".
import PackageDescription

let package = Package(
    name: "ShoalFuzz",
    dependencies: [
        // The checks live in the main package, so its corpus replay tests run exactly what the fuzzers run.
        .package(name: "Shoal", path: "..")
    ],
    targets: [
        // The one entry point body every target shares: copy the input, run the check, trap on a broken invariant.
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "ShoalWireFuzzChecks", package: "Shoal")]
        ),
        // HTTPHeadParser, then RequestTarget and WebSocketUpgrade.validate on each complete head.
        .executableTarget(
            name: "FuzzUpgrade",
            dependencies: ["FuzzSupport", .product(name: "ShoalWireFuzzChecks", package: "Shoal")]
        ),
        // MessageReader, server side, fed in pieces the input chooses.
        .executableTarget(
            name: "FuzzFrames",
            dependencies: ["FuzzSupport", .product(name: "ShoalWireFuzzChecks", package: "Shoal")]
        ),
        // ProxyHeaderParser in pieces, and the forwarding-header rule on the same bytes.
        .executableTarget(
            name: "FuzzProxy",
            dependencies: ["FuzzSupport", .product(name: "ShoalWireFuzzChecks", package: "Shoal")]
        ),
        // BusDecoder on arbitrary bytes, and BusEncoder/BusDecoder round trips of what it delivers.
        .executableTarget(
            name: "FuzzBus",
            dependencies: [
                "FuzzSupport", .product(name: "ShoalWireFuzzChecks", package: "Shoal"),
                .product(name: "ShoalClusterFuzzChecks", package: "Shoal"),
            ]
        ),
    ]
)
