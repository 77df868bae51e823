import Foundation
import Shared
import Testing
import Yams

/// deploy/: the Kubernetes manifests validate against the Kubernetes
/// schemas offline (`kubernetes-validate`, installed by scripts/setup), say
/// what an operator relies on (probes, non-root, drain, secrets by
/// reference, hashing on X-Client-ID), carry a config the gateway accepts,
/// and the Dockerfile's runtime image holds every library the binaries load.
@Suite("Deploy manifests and image")
struct DeployTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let k8s = root.appendingPathComponent("deploy/k8s")

    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func documents(_ file: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: k8s.appendingPathComponent(file), encoding: .utf8)
        return try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
    }

    static func resources() throws -> [String] {
        let kustomization = try #require(try Self.documents("kustomization.yaml").first)
        return (kustomization["resources"] as? [String]) ?? []
    }

    @Test func everyManifestValidatesAgainstTheKubernetesSchemas() throws {
        let listed = try Self.resources()
        let present = try FileManager.default.contentsOfDirectory(atPath: Self.k8s.path).filter { $0.hasSuffix(".yaml") && $0 != "kustomization.yaml" }
        #expect(Set(listed) == Set(present), "kustomization.yaml lists exactly the manifests in deploy/k8s")
        let (status, output) = try Self.run("kubernetes-validate", ["--strict"] + listed.map { Self.k8s.appendingPathComponent($0).path })
        #expect(status == 0, "\(output)")
        #expect(output.components(separatedBy: "passed for resource").count - 1 >= listed.count, "\(output)")
    }

    @Test func theManifestsSayWhatOperatorsRelyOn() throws {
        let deployment = try #require(try Self.documents("deployment.yaml").first)
        let pod = try #require((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])["spec"] as? [String: Any]
        let container = try #require((pod?["containers"] as? [[String: Any]])?.first)
        #expect(((container["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])?["path"] as? String == "/readyz")
        #expect(((container["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])?["path"] as? String == "/healthz")
        #expect((pod?["securityContext"] as? [String: Any])?["runAsNonRoot"] as? Bool == true)
        let security = container["securityContext"] as? [String: Any]
        #expect(security?["readOnlyRootFilesystem"] as? Bool == true && security?["allowPrivilegeEscalation"] as? Bool == false)
        // The grace period covers the preStop pause and the router's 30 s drain.
        let grace = pod?["terminationGracePeriodSeconds"] as? Int ?? 0
        let preStop = (((container["lifecycle"] as? [String: Any])?["preStop"] as? [String: Any])?["sleep"] as? [String: Any])?["seconds"] as? Int ?? 0
        #expect(preStop > 0 && grace >= 30 + preStop, "grace \(grace) s, preStop \(preStop) s")
        // Secrets only by reference.
        let env = container["env"] as? [[String: Any]] ?? []
        for name in ["ENCRYPTION_KEY", "MONGODB_URI", "REDIS_URL"] {
            let entry = env.first { $0["name"] as? String == name }
            #expect(entry?["value"] == nil && ((entry?["valueFrom"] as? [String: Any])?["secretKeyRef"]) != nil, "\(name) comes from a Secret")
        }
        #expect(!(try Self.resources()).contains { $0.lowercased().contains("secret") }, "no Secret with values is committed")
        let ingress = try #require(try Self.documents("ingress.yaml").first)
        let annotations = (ingress["metadata"] as? [String: Any])?["annotations"] as? [String: Any]
        #expect(annotations?["nginx.ingress.kubernetes.io/upstream-hash-by"] as? String == "$http_x_client_id")

        // The ConfigMap's config is one the gateway accepts.
        let configMap = try #require(try Self.documents("configmap.yaml").first)
        let yaml = try #require((configMap["data"] as? [String: Any])?["portcullis.yaml"] as? String)
        let config = try ConfigLoader.validate(ConfigLoader.parse(yaml: yaml), environment: [:])
        #expect(config.model.server.snapshotPath?.hasPrefix("/var/lib/portcullis") == true, "the snapshot goes to the writable volume")
        #expect(config.model.server.admin != nil)
    }

    /// The runtime stage installs a package for every shared library the
    /// binaries need, except the Swift runtime (linked in with
    /// --static-swift-stdlib) and what debian:bookworm-slim already has.
    @Test func theRuntimeImageHoldsEveryLibraryTheBinariesLoad() throws {
        let dockerfile = try String(contentsOf: Self.root.appendingPathComponent("deploy/Dockerfile"), encoding: .utf8)
        let runtime = try #require(dockerfile.components(separatedBy: "FROM debian:bookworm-slim").last)
        #expect(dockerfile.contains("--static-swift-stdlib"))
        #expect(runtime.contains("USER 10001"), "the image runs as non-root")
        let base: Set<String> = ["libc6", "libgcc-s1", "libstdc++6", "zlib1g"]
        var needed = Set<String>()
        for binary in ["portcullis", "portcullis-worker"] {
            let (status, dynamic) = try Self.run("readelf", ["-d", Binaries.path(binary)])
            #expect(status == 0)
            for line in dynamic.split(separator: "\n") where line.contains("(NEEDED)") {
                guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { continue }
                let soname = String(line[line.index(after: open)..<close])
                if soname.hasPrefix("libswift") || soname.hasPrefix("libFoundation") || soname.hasPrefix("libdispatch")
                    || soname.hasPrefix("libBlocksRuntime") || soname.hasPrefix("lib_Foundation") || soname.hasPrefix("libicu")
                {
                    continue
                }
                let (found, owner) = try Self.run("dpkg", ["-S", "*/\(soname)"])
                #expect(found == 0, "\(soname) belongs to no package: \(owner)")
                if let package = owner.split(separator: ":").first { needed.insert(String(package)) }
            }
        }
        #expect(needed.contains("libmongoc-1.0-0") && needed.contains("libhiredis0.14"), "\(needed)")
        for package in needed.subtracting(base) {
            #expect(runtime.contains(" \(package)"), "the runtime image does not install \(package)")
        }
    }
}
