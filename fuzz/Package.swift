// swift-tools-version:6.0
// libFuzzer harnesses for the parsers that take bytes from outside: router
// <-> worker frames, JWTs and JWKs, the YAML config, IP addresses, CIDR
// ranges and X-Forwarded-For. Built apart from the main package because
// every target here is compiled with -sanitize=fuzzer,address (each
// harness hands itself to LLVMFuzzerRunDriver). scripts/fuzz builds and runs
// them; scripts/test runs each for a few seconds.
import PackageDescription

let harness: (String) -> Target = { name in
    .executableTarget(name: name, dependencies: ["FuzzSupport", .product(name: "PortcullisShared", package: "main")])
}

let package = Package(
    name: "portcullis-fuzz",
    dependencies: [.package(name: "main", path: "..")],
    targets: [.target(name: "FuzzSupport")] + ["FuzzFrames", "FuzzJOSE", "FuzzConfig", "FuzzAddresses"].map(harness)
)
