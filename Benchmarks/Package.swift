// swift-tools-version: 6.1
// Benchmarks live in their own package so that grpc-swift-2 (the peer) never slows the
// main build. `make bench` builds and runs them in release mode.
import PackageDescription

let package = Package(
    name: "PersonaBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Persona", path: ".."),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", exact: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", exact: "2.9.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "PersonaBench",
            dependencies: [
                .product(name: "Wire", package: "Persona"),
                .product(name: "Datasets", package: "Persona"),
                .product(name: "RPC", package: "Persona"),
                .product(name: "Store", package: "Persona"),
                .product(name: "Ingest", package: "Persona"),
                .product(name: "Feature", package: "Persona"),
                .product(name: "Model", package: "Persona"),
                .product(name: "Recommend", package: "Persona"),
                .product(name: "Classifiers", package: "Persona"),
                .product(name: "Recommenders", package: "Persona"),
                .product(name: "Math", package: "Persona"),
                .product(name: "ServiceKit", package: "Persona"),
                .product(name: "PersonalData", package: "Persona"),
                .product(name: "RiskControl", package: "Persona"),
                .product(name: "Console", package: "Persona"),
                // The peer of the store benchmark: Debian's libsqlite3.
                .product(name: "CSQLite", package: "Persona"),
                "CCodecBaseline",
                // Callgrind's client requests, for the CPU of one call.
                "CCallgrind",
                .product(name: "EventLog", package: "Persona"),
                // Real nats-server processes for the log benchmark (the tests' helper).
                .product(name: "TestSupport", package: "Persona"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/PersonaBench",
            swiftSettings: [.swiftLanguageMode(.v6)],
            // CCallgrind's sigsuspend, for libdispatch to find before libc's.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--export-dynamic-symbol=sigsuspend"])]),
        // The codec benchmark's peer: libprotobuf-c on its own, timed in C.
        .target(
            name: "CCodecBaseline", dependencies: [.product(name: "CPersonaProto", package: "Persona")],
            path: "Sources/CCodecBaseline", cSettings: [.unsafeFlags(["-O2"])]),
        // valgrind/callgrind.h's macros as functions (Debian's valgrind package has the header).
        .target(name: "CCallgrind", path: "Sources/CCallgrind"),
    ]
)
