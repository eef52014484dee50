// swift-tools-version: 6.1
// libFuzzer harnesses, one executable a parser of untrusted input: frames with message
// unpacking, the rules language, the dataset importers. Built by `make fuzz` with
// `-sanitize=fuzzer,address`; kept out of the main package because they have no `main`.
import PackageDescription

let package = Package(
    name: "PersonaFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Persona", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .target(name: "FuzzDriver", path: "Sources/FuzzDriver", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "FrameFuzzer",
            dependencies: [
                "FuzzDriver", .product(name: "Wire", package: "Persona"), .product(name: "RPC", package: "Persona"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Sources/FrameFuzzer", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "RulesFuzzer",
            dependencies: [
                "FuzzDriver", .product(name: "Wire", package: "Persona"), .product(name: "Feature", package: "Persona"),
                .product(name: "RiskControl", package: "Persona"), .product(name: "Rules", package: "Persona"),
            ],
            path: "Sources/RulesFuzzer", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "ImportFuzzer",
            dependencies: ["FuzzDriver", .product(name: "Wire", package: "Persona"), .product(name: "Datasets", package: "Persona")],
            path: "Sources/ImportFuzzer", swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
