// swift-tools-version:6.0
import PackageDescription

// Dependencies are few on purpose: every one is rebuilt by every CI run.
// SwiftNIO for sockets and HTTP/1.1, NIOExtras for graceful quiescing,
// NIOSSL for the TLS listener (native mtls: a proven TLS server handler;
// its BoringSSL adds ~3 min to a cold debug build),
// Yams for the YAML config, ArgumentParser for the CLI, swift-log for logs,
// swift-metrics with swift-prometheus for /metrics (small: CoreMetrics,
// Atomics and the exposition code).
// Crypto is OpenSSL's libcrypto through CCrypto, not swift-crypto; Redis
// is hiredis through CHiredis; the router's TLS client (OIDC key fetches)
// is OpenSSL's libssl through CTLS; MongoDB is libmongoc through CMongoc.
// Release builds of our own targets skip the runtime exclusivity checks
// (`swift_beginAccess` and its thread-local access set were ~4% of the
// router's CPU under load). Debug builds, which the tests use, keep them.
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
    name: "portcullis",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "portcullis", targets: ["Router"]),
        .executable(name: "portcullis-worker", targets: ["Worker"]),
        .executable(name: "portcullis-demo-upstream", targets: ["DemoUpstream"]),
        // For the fuzz harnesses in fuzz/ (a separate package built with
        // -sanitize=fuzzer,address), not for outside use.
        .library(name: "PortcullisShared", targets: ["Shared"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // Already built for SwiftNIO; named here for the lock-free request histograms.
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
    ],
    targets: [
        // C libraries: one system-library wrapper each, plus the generated
        // protobuf-c code of the router<->worker protocol and a spawn shim.
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CMongoc",
            pkgConfig: "libmongoc-1.0",
            providers: [.apt(["libmongoc-dev"])]
        ),
        .systemLibrary(
            name: "CTLS",
            pkgConfig: "libssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "CPortcullisProto",
            dependencies: ["CProtobufC"],
            exclude: ["portcullis.proto", "regenerate.sh"]
        ),
        .target(name: "CProcessSpawn"),

        .target(
            name: "Shared",
            dependencies: [
                "CCrypto",
                "CPortcullisProto",
                "CProtobufC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPathSettings
        ),
        .executableTarget(
            name: "Worker",
            dependencies: [
                "Shared",
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPathSettings
        ),
        .executableTarget(
            name: "Router",
            dependencies: [
                "Shared",
                "CProcessSpawn",
                "CTLS",
                "CMongoc",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: hotPathSettings
        ),
        .executableTarget(
            name: "DemoUpstream",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        .testTarget(name: "SharedTests", dependencies: ["Shared"]),
        .testTarget(name: "WorkerTests", dependencies: ["Worker", "Shared"]),
        .testTarget(name: "RouterTests", dependencies: ["Router", "Shared"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["Shared", "Router", .product(name: "Yams", package: "Yams")]
        ),
    ]
)
