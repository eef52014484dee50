// swift-tools-version: 6.1
import PackageDescription

/// One settings array for every Swift target: Swift 6 language mode (strict concurrency), and
/// warnings as errors, so the build stays free of them.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .unsafeFlags(["-warnings-as-errors"]),
]

/// The feature service's fold and the model service's interaction store and trainers are hot
/// loops, and Swift's dynamic exclusivity checks (a runtime call around every access to a
/// class's stored property) were a tenth of the fold. Their release builds leave them out;
/// debug builds, which run the tests, keep them.
let hotLoop: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

/// The math kernels are written for x86-64 with AVX2 and FMA (every x86 server of the last
/// decade): without a target CPU, Swift's SIMD fused multiply-adds become library calls.
let simd: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]

/// Training kernels are optimised in debug builds too: the tests train real models (the
/// whole-suite test trains ALS with 128 factors), which unoptimised code runs hundreds of
/// times slower.
let optimisedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let prometheus: Target.Dependency = .product(name: "Prometheus", package: "swift-prometheus")

/// A service is a library (its logic, importable by tests) plus a thin executable. Each
/// library depends on the modules it imports and no more.
func service(_ name: String, _ dependencies: [Target.Dependency]) -> [Target] {
    [
        .target(
            name: name,
            dependencies: ["ServiceKit", "RPC", "Wire", logging, argumentParser] + dependencies,
            path: "Services/\(name)/\(name)",
            swiftSettings: swiftSettings + (["Feature", "Model"].contains(name) ? hotLoop : [])),
        .executableTarget(
            name: "\(name)Server",
            dependencies: [.target(name: name), "ServiceKit", argumentParser],
            path: "Services/\(name)/\(name)Server",
            swiftSettings: swiftSettings),
    ]
}

let services: [(name: String, executable: String, dependencies: [Target.Dependency])] = [
    ("Ingest", "persona-ingest", ["Store", "EventLog", "DataStructures", "PersonalData", prometheus]),
    ("Feature", "persona-feature", ["Store", "CMemory", "DataStructures", "Profiles", "Classifiers", "Rules", prometheus]),
    ("Model", "persona-model", ["Store", "Math", "Recommenders", "Classifiers", "Uplift"]),
    (
        "RiskControl", "persona-risk-control",
        ["Math", "Classifiers", "PersonalData", "Profiles", "SQLite", "EventLog", "CNATS", "Rules", "DataStructures"]
    ),
    ("Recommend", "persona-recommend", ["Math", "Recommenders", "Profiles", "DataStructures", "Uplift"]),
]

let package = Package(
    name: "Persona",
    platforms: [.macOS(.v15)],
    products: services.map { .executable(name: $0.executable, targets: ["\($0.name)Server"]) } + [
        .executable(name: "persona-console", targets: ["ConsoleServer"]),
        .executable(name: "persona", targets: ["PersonaCLI"]),
        .library(name: "Wire", targets: ["Wire"]),
        .library(name: "Datasets", targets: ["Datasets"]),
        .library(name: "RPC", targets: ["RPC"]),
        .library(name: "ServiceKit", targets: ["ServiceKit"]),
        .library(name: "Store", targets: ["Store"]),
        .library(name: "EventLog", targets: ["EventLog"]),
        // The tests' helpers (in-process services, nats-server processes), for the benchmarks.
        .library(name: "TestSupport", targets: ["TestSupport"]),
        .library(name: "DataStructures", targets: ["DataStructures"]),
        .library(name: "PersonalData", targets: ["PersonalData"]),
        .library(name: "Profiles", targets: ["Profiles"]),
        .library(name: "Math", targets: ["Math"]),
        .library(name: "Recommenders", targets: ["Recommenders"]),
        .library(name: "Classifiers", targets: ["Classifiers"]),
        .library(name: "Model", targets: ["Model"]),
        .library(name: "Ingest", targets: ["Ingest"]),
        .library(name: "Feature", targets: ["Feature"]),
        .library(name: "Recommend", targets: ["Recommend"]),
        .library(name: "RiskControl", targets: ["RiskControl"]),
        .library(name: "Console", targets: ["Console"]),
        .library(name: "Rules", targets: ["Rules"]),
        .library(name: "CSQLite", targets: ["CSQLite"]),
        // The protoc-c output, for the codec benchmark's raw libprotobuf-c peer.
        .library(name: "CPersonaProto", targets: ["CPersonaProto"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // The risk console: HTTP server, bcrypt for passwords, server-rendered templates.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // C boundary: system libraries and the protoc-c output. Only Wire imports these.
        .systemLibrary(
            name: "CProtobufC", path: "Shared/CProtobufC", pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]),
        .systemLibrary(
            name: "CLZ4", path: "Shared/CLZ4", pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]),
        .target(name: "CPersonaProto", dependencies: ["CProtobufC"], path: "Shared/CPersonaProto"),
        // The NATS C client (JetStream): the replicated engine of the event log.
        .systemLibrary(name: "CNATS", path: "Shared/CNATS", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        // Debian's libsqlite3: risk-control's decision store (and the store benchmark's peer).
        .systemLibrary(name: "CSQLite", path: "Shared/CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // A thin Swift handle on it: connections, cached statements, typed values.
        .target(name: "SQLite", dependencies: ["CSQLite"], path: "Shared/SQLite", swiftSettings: swiftSettings),
        // A cache prefetch hint and glibc's malloc.h (the feature fold, the services' heap settings).
        .systemLibrary(name: "CMemory", path: "Shared/CMemory"),

        // Codec: Swift message values <-> libprotobuf-c, LZ4.
        .target(
            name: "Wire", dependencies: ["CPersonaProto", "CProtobufC", "CLZ4"], path: "Shared/Wire",
            swiftSettings: swiftSettings),
        // Framing, client and server of Persona's binary RPC (docs/PROTOCOL.md).
        .target(
            name: "RPC",
            dependencies: ["Wire", .product(name: "Logging", package: "swift-log")] + nio,
            path: "Shared/RPC", swiftSettings: swiftSettings),
        // Durable append-only segments with checksums, atomic snapshot files, recovery.
        .systemLibrary(name: "CCRC32C", path: "Shared/CCRC32C"),
        .target(name: "Store", dependencies: ["Wire", "CCRC32C"], path: "Shared/Store", swiftSettings: swiftSettings),
        // The event log behind one interface: the embedded segmented log or NATS JetStream.
        .target(
            name: "EventLog", dependencies: ["Store", "CNATS", argumentParser],
            path: "Shared/EventLog", swiftSettings: swiftSettings),
        // General-purpose containers of the feature state (open-addressing tables, compact
        // id sets) and the stable hashes ids and partitions are derived with. Their API is
        // public and the module built with cross-module optimisation, so that the feature
        // fold still specialises and inlines them (as `package` API it folded 2.6x slower).
        .target(
            name: "DataStructures", dependencies: ["CMemory"], path: "Shared/DataStructures",
            swiftSettings: swiftSettings + hotLoop + [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]),
        // Personal identifiers: keyed pseudonyms of IPs, devices, emails and instruments, and
        // the IP-to-country table read before an IP is pseudonymised (ingest, risk-control).
        .target(name: "PersonalData", dependencies: ["Store"], path: "Shared/PersonalData", swiftSettings: swiftSettings),
        // What a profile's fields mean where one service computes them and another reads
        // them (the price bands: feature counts them, recommend boosts by them).
        .target(name: "Profiles", path: "Shared/Profiles", swiftSettings: swiftSettings),
        // The SVG charts and number formats of the HTML reports.
        .target(name: "Charts", path: "Shared/Charts", swiftSettings: swiftSettings),
        // The hot numeric kernels every model trains and scores on (SIMD loops; OpenBLAS
        // for the large products and LAPACK's SPD inverse).
        .systemLibrary(name: "COpenBLAS", path: "Shared/COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .target(
            name: "Math", dependencies: ["COpenBLAS", "CMemory"], path: "Shared/Math",
            swiftSettings: swiftSettings + simd + optimisedInDebug),
        // What every service executable shares: flags, metrics endpoint, lifecycle.
        .target(
            name: "ServiceKit",
            dependencies: [
                "RPC", "Wire", "Store", "CMemory", "DataStructures", "Uplift",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ] + nio,
            path: "Shared/ServiceKit", swiftSettings: swiftSettings),
    ]
        + [
            // The recommenders as published and served: model tables, scoring, the artifact
            // format, the interaction matrix and the evaluation protocol (model and recommend).
            .target(
                name: "Recommenders", dependencies: ["Math", "Classifiers", "Store", "Wire", "RPC", "ServiceKit", logging],
                path: "Shared/Recommenders",
                swiftSettings: swiftSettings),
            // The classifiers as published and served: learner, calibration, thresholds and
            // their artifact format (model trains them, risk-control scores with them).
            .target(
                name: "Classifiers", dependencies: ["Math", "Store", "Wire"], path: "Shared/Classifiers", swiftSettings: swiftSettings),
            // The rules language (docs/RULES.md): risk-control's rule sets, feature's audiences.
            .target(name: "Rules", dependencies: ["Wire"], path: "Shared/Rules", swiftSettings: swiftSettings),
            // Campaigns measured and targeted: the control-group split, treatment against
            // control with intervals, uplift models and Qini curves (docs/CAMPAIGNS.md).
            .target(
                name: "Uplift", dependencies: ["Math", "DataStructures", "Store", "Wire", "Classifiers"], path: "Shared/Uplift",
                swiftSettings: swiftSettings),
        ]
        + services.flatMap { service($0.name, $0.dependencies) }
        + [
            // The risk team's console (`persona-console`): people and sessions of its own, every
            // page rendered from what it asks the services over RPC (docs/CONSOLE.md).
            .target(
                name: "Console",
                dependencies: [
                    "ServiceKit", "RPC", "Wire", "SQLite", "Charts", "Datasets", "DataStructures", logging, argumentParser,
                    .product(name: "Hummingbird", package: "hummingbird"),
                    .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                    .product(name: "Mustache", package: "swift-mustache"),
                ],
                path: "Services/Console/Console", swiftSettings: swiftSettings),
            .executableTarget(
                name: "ConsoleServer", dependencies: ["Console", "ServiceKit", "RPC", argumentParser, logging],
                path: "Services/Console/ConsoleServer", swiftSettings: swiftSettings),

            // The public datasets' rows as events (`persona import`, and tests that need the same events).
            .target(name: "Datasets", dependencies: ["Wire", "DataStructures"], path: "Shared/Datasets", swiftSettings: swiftSettings),
            .executableTarget(
                name: "PersonaCLI",
                dependencies: [
                    "RPC", "Wire", "ServiceKit", "Datasets", "Math", "Recommenders", "Charts", "Console",
                    .product(name: "ArgumentParser", package: "swift-argument-parser"),
                ],
                path: "CLI/PersonaCLI", swiftSettings: swiftSettings),

            .target(
                name: "TestSupport",
                dependencies: ["RPC", "Wire", "ServiceKit", "Math", "Ingest", "Feature", "Model", "Datasets", logging] + nio,
                path: "Tests/TestSupport", swiftSettings: swiftSettings),
            .testTarget(
                name: "WireTests", dependencies: ["Wire", "TestSupport"],
                path: "Tests/WireTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "RPCTests",
                dependencies: [
                    "RPC", "Wire", "TestSupport", logging,
                    .product(name: "NIOTestUtils", package: "swift-nio"),
                    .product(name: "NIOEmbedded", package: "swift-nio"),
                ] + nio,
                path: "Tests/RPCTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "ModelTests",
                dependencies: [
                    "Model", "Recommend", "Feature", "Math", "Recommenders", "Classifiers", "Datasets", "Ingest", "ServiceKit", "RPC",
                    "Wire", "TestSupport", "Uplift",
                ],
                path: "Tests/ModelTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "RecommendTests",
                dependencies: [
                    "Recommend", "Model", "Feature", "Ingest", "Recommenders", "Math", "DataStructures", "ServiceKit", "RPC", "Wire",
                    "TestSupport",
                ],
                path: "Tests/RecommendTests", swiftSettings: swiftSettings),
            .testTarget(name: "MathTests", dependencies: ["Math"], path: "Tests/MathTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "DataStructuresTests", dependencies: ["DataStructures"], path: "Tests/DataStructuresTests",
                swiftSettings: swiftSettings),
            .testTarget(
                name: "StoreTests", dependencies: ["Store"],
                path: "Tests/StoreTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "IngestTests",
                dependencies: [
                    "Ingest", "EventLog", "PersonalData", "ServiceKit", "RPC", "Wire", "Store", "TestSupport", "DataStructures",
                ],
                path: "Tests/IngestTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "EventLogTests", dependencies: ["EventLog", "Store", "TestSupport"],
                path: "Tests/EventLogTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "UpliftTests", dependencies: ["Uplift", "Datasets", "Math", "Wire", "TestSupport"],
                path: "Tests/UpliftTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "ChartsTests", dependencies: ["Charts"],
                path: "Tests/ChartsTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "DatasetsTests", dependencies: ["Datasets", "TestSupport"],
                path: "Tests/DatasetsTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "FeatureTests",
                dependencies: [
                    "Feature", "DataStructures", "Math", "Ingest", "EventLog", "ServiceKit", "RPC", "Wire", "Store", "Datasets",
                    "Profiles", "TestSupport",
                ],
                path: "Tests/FeatureTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "RiskTests",
                dependencies: [
                    "RiskControl", "Feature", "Model", "Ingest", "Datasets", "ServiceKit", "RPC", "Wire", "TestSupport", "EventLog",
                    "Rules",
                ],
                path: "Tests/RiskTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "ConsoleTests",
                dependencies: ["Console", "RiskControl", "Ingest", "Datasets", "ServiceKit", "RPC", "Wire", "TestSupport", logging],
                path: "Tests/ConsoleTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "ServiceTests",
                dependencies: [
                    "ServiceKit", "RPC", "Wire", "Store", "TestSupport", "Ingest", "Feature", "Model", "RiskControl", "Recommend",
                ] + nio,
                path: "Tests/ServiceTests", swiftSettings: swiftSettings),
        ]
)
