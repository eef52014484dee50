// swift-tools-version: 6.1
// libFuzzer harness for frame decoding plus message unpacking. Built by `make fuzz` with
// `-sanitize=fuzzer,address`; kept out of the main package because it has no `main`.
import PackageDescription

let package = Package(
    name: "PersonaFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Persona", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "FrameFuzzer",
            dependencies: [
                .product(name: "Wire", package: "Persona"),
                .product(name: "RPC", package: "Persona"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Sources/FrameFuzzer",
            swiftSettings: [.swiftLanguageMode(.v6)])
    ]
)
