// swift-tools-version:6.1
// Shoal's micro-benchmarks (docs/micro-benchmarks.md): a separate package so the main
// package and its CI never build ordo-one/benchmark. Run with ./run.sh.
import PackageDescription

// SwiftPM names a path dependency after its folder, so the main package is "main" in one clone and
// "shoal" in another: derive it from where this manifest sits (<root>/Benchmarks/Micro/Package.swift).
let shoalPackage = String(#filePath.split(separator: "/").dropLast(3).last!)

let package = Package(
    name: "ShoalMicroBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ShoalWireBenchmarks",
            dependencies: [
                .product(name: "ShoalWire", package: shoalPackage),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ShoalWireBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
