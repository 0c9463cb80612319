// swift-tools-version:6.1
// Shoal: a multi-process io_uring WebSocket server with the 4D WebSocketServer API.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Shoal",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Shoal", targets: ["Shoal"]),
        .library(name: "ShoalWire", targets: ["ShoalWire"]),
        // For the fuzz targets (Fuzz/), which live in their own package.
        .library(name: "ShoalCluster", targets: ["ShoalCluster"]),
        // The invariant checks the fuzz targets (Fuzz/) run and the corpus replay tests share.
        .library(name: "ShoalWireFuzzChecks", targets: ["ShoalWireFuzzChecks"]),
        .library(name: "ShoalClusterFuzzChecks", targets: ["ShoalClusterFuzzChecks"]),
        .executable(name: "shoal", targets: ["shoal"]),
        // Test a program's handlers without sockets or workers (docs/api.md, "Testing handlers").
        .library(name: "ShoalTesting", targets: ["ShoalTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        // Handlers record their own metrics through swift-metrics; workers store them in the shared segment.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        // shoal-bench's scenario files (YAML, with line numbers for errors).
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
    ],
    targets: [
        // liburing, through pkg-config (Debian: liburing-dev), plus a shim for the macros Swift cannot import.
        .systemLibrary(
            name: "CLibUring",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        // zlib for permessage-deflate (Debian: zlib1g-dev), plus a shim for the init macros.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // OpenSSL 3 for TLS (Debian: libssl-dev), plus a shim for its macros and C callbacks.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // hiredis 0.14 for the Redis link between instances (Debian: libhiredis-dev; docs/cluster.md).
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // Linux headers Glibc's module lacks (eventfd, memfd), as a C target.
        .target(name: "CShoalSystem"),
        // The only place besides the loop backends where raw syscalls live.
        .target(name: "ShoalPosix", dependencies: ["CShoalSystem"], swiftSettings: strict),
        // RFC 6455 and HTTP/1.1 upgrade: pure, no I/O.
        .target(
            name: "ShoalWire",
            dependencies: ["CZlib", "COpenSSL"],
            swiftSettings: strict
        ),
        // TLS through memory buffers (no I/O): the engine wss:// in the worker and the client share.
        // Its StreamTransform (TLSStreamTransform) puts it between a loop's socket and its delegate.
        .target(name: "ShoalTLS", dependencies: ["COpenSSL", "ShoalRing"], swiftSettings: strict),
        // The event loop: io_uring backend behind a backend protocol.
        .target(name: "ShoalRing", dependencies: ["CLibUring", "CShoalSystem", "ShoalPosix"], swiftSettings: strict),
        // Supervisor, worker spawn, shared-memory segment (ids, registry, stats), Unix-socket bus.
        .target(
            name: "ShoalCluster",
            dependencies: ["CShoalSystem", "ShoalPosix", "ShoalRing", "ShoalWire", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // Several instances (hosts) as one cluster through Redis pub/sub, on the worker's own loop.
        .target(
            name: "ShoalRedis",
            dependencies: ["CHiredis", "ShoalRing", "ShoalPosix", "ShoalWire", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The public 4D API and the web server it sits on.
        .target(
            name: "Shoal",
            dependencies: [
                "ShoalWire", "ShoalRing", "ShoalPosix", "ShoalCluster", "ShoalRedis", "ShoalTLS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            exclude: ["DemoPage"],
            swiftSettings: strict,
            plugins: ["DemoPagePlugin"]
        ),
        // Simulated clients on a loop whose kernel is in memory (MemoryBackend).
        .target(name: "ShoalTesting", dependencies: ["Shoal", "ShoalRing", "ShoalWire",
                                                    .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .executableTarget(
            name: "shoal",
            dependencies: [
                "Shoal", "ShoalPosix", "ShoalTLS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict,
            plugins: ["BuildInfoPlugin"]
        ),
        // Writes the git commit into `shoal` before each build (scripts/build-info.sh), for --version.
        .plugin(name: "BuildInfoPlugin", capability: .buildTool(), path: "Plugins/BuildInfoPlugin"),
        // Compiles the demo page into `Shoal` (scripts/embed-demo-page.sh): no resource bundle to ship.
        .plugin(name: "DemoPagePlugin", capability: .buildTool(), path: "Plugins/DemoPagePlugin"),
        // The library used from a user's own program: the 4D examples served by a cluster (docs/cluster.md).
        .executableTarget(
            name: "shoal-example",
            dependencies: ["Shoal", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The client example of 4D's WebSocket page (docs/api.md, "The client"), tested by test_client.py.
        .executableTarget(
            name: "shoal-client-example",
            dependencies: ["Shoal"],
            swiftSettings: strict
        ),
        // Autobahn|Testsuite's client cases run by the WebSocket client (scripts/autobahn-client.sh).
        .executableTarget(
            name: "shoal-autobahn-client",
            dependencies: ["Shoal"],
            swiftSettings: strict
        ),
        // The load generator (docs/shoal-bench.md): one io_uring loop driving many client connections.
        .executableTarget(
            name: "shoal-bench",
            dependencies: [
                "ShoalRing", "ShoalWire", "ShoalPosix",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Benchmarks/ShoalBench",
            swiftSettings: strict
        ),
        // Helpers every test target shares (seeded generator, lock box).
        .target(name: "ShoalTestSupport", path: "Tests/ShoalTestSupport", swiftSettings: strict),
        // Fuzz invariants (docs/security.md): called by the libFuzzer targets of Fuzz/Package.swift and by the
        // corpus replay tests, so a seed or a crash reproducer is checked the same way in both.
        .target(name: "ShoalWireFuzzChecks", dependencies: ["ShoalWire"], path: "Fuzz/Checks/ShoalWireFuzzChecks", swiftSettings: strict),
        .target(
            name: "ShoalClusterFuzzChecks", dependencies: ["ShoalCluster", "ShoalWireFuzzChecks"],
            path: "Fuzz/Checks/ShoalClusterFuzzChecks", swiftSettings: strict
        ),
        .testTarget(name: "ShoalWireTests", dependencies: ["ShoalWire", "ShoalWireFuzzChecks", "ShoalTestSupport"], swiftSettings: strict),
        .testTarget(name: "ShoalRingTests", dependencies: ["ShoalRing", "ShoalPosix", "ShoalTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ShoalClusterTests", dependencies: ["ShoalCluster", "ShoalClusterFuzzChecks", "ShoalPosix", "ShoalTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(name: "ShoalRedisTests", dependencies: ["ShoalRedis", "ShoalTestSupport"], swiftSettings: strict),
        .testTarget(name: "ShoalTLSTests", dependencies: ["ShoalTLS", "ShoalRing", "ShoalTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ShoalTests", dependencies: ["Shoal", "ShoalTesting", "ShoalWire", "ShoalCluster", "ShoalTestSupport"],
            swiftSettings: strict
        ),
        // shoal-bench's pure parts: the open model's schedule, thresholds, scenario files.
        .testTarget(name: "ShoalBenchTests", dependencies: ["shoal-bench"], swiftSettings: strict),
        // shoal's own pure parts: configuration layers and file, process titles.
        .testTarget(name: "ShoalCommandTests", dependencies: ["shoal", "ShoalCluster", "ShoalPosix"], swiftSettings: strict),
    ]
)
