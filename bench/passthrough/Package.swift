// swift-tools-version:6.0
// The floor under any proxy built the way the contract fixes Portcullis'
// router: bytes moved from a client connection to its own upstream
// connection and back, no HTTP parsing, no auth, no worker. `bench/floor`
// runs both next to nginx and Portcullis under the same load, so what the
// router adds on top of SwiftNIO itself is measured rather than guessed.
//   nio-passthrough    SwiftNIO, one handler per side (what the router is built on)
//   epoll-passthrough  the same loop on raw epoll, for what SwiftNIO itself costs
// Built apart from the main package: it is a benchmark fixture, not product.
import PackageDescription

let package = Package(
    name: "portcullis-floor",
    dependencies: [.package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3")],
    targets: [
        .executableTarget(
            name: "NIOPassthrough",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .target(name: "CEpoll"),
        .executableTarget(name: "EpollPassthrough", dependencies: ["CEpoll"]),
    ]
)
