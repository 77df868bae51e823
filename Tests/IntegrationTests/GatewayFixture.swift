import Foundation
import Shared

@testable import Router

/// The config every data-path integration test runs: one client per SPEC §2
/// row, upstreams that work, time out and refuse, and a crowd of plain
/// clients for the worker-failure test.
enum GatewayFixture {
    static func token(_ client: String) -> String { "pcl_it-\(client)" }
    static func hash(_ client: String) -> String { Crypto.sha256(token(client)).hex }
    static let backendKey = "backend-secret-value"
    static let environment = ["IT_BACKEND_KEY": backendKey]
    static let crowd = (0..<120).map { "crowd-\($0)" }

    static func yaml(_ cluster: Cluster, limits: String = "", trustedProxies: String = "[\"127.0.0.2/32\"]") -> String {
        let crowdClients = crowd.map { client in
            """
              - id: \(client)
                collections: [orders]
                profiles:
                  - id: \(client)-token
                    auth: { type: token, token_sha256: "\(hash(client))" }
            """
        }.joined(separator: "\n")
        return cluster.serverBlock(
            extra: """
                  trusted_proxies: \(trustedProxies)
                  limits: { max_header_bytes: 4096, max_body_bytes: 65536, header_timeout_ms: 400\(limits) }
                """)
            + "\n" + """
            collections:
              - id: orders
                upstream: { url: "\(cluster.upstreamURL)", timeout_ms: 3000, credential: backend }
                routes: [ { path_prefix: /orders } ]
              - id: status
                upstream: { url: "\(cluster.upstreamURL)" }
                routes: [ { path_prefix: /status, strip_prefix: true } ]
              - id: billing
                upstream: { url: "\(cluster.upstreamURL)" }
                routes: [ { path_prefix: /billing } ]
              - id: slow
                upstream: { url: "\(cluster.upstreamURL)", timeout_ms: 300 }
                routes: [ { path_prefix: /slow } ]
              - id: down
                upstream: { url: "http://127.0.0.1:\(cluster.deadPort)", timeout_ms: 1000 }
                routes: [ { path_prefix: /down } ]
            credentials:
              - { id: backend, header: X-Backend-Key, value: "$IT_BACKEND_KEY" }
            policies:
              - id: tight
                rate_limits: [ { limit: 2, per: second }, { limit: 100, per: hour } ]
              - id: three-a-day
                quotas: [ { limit: 3, per: day } ]
            clients:
              - id: acme
                collections: [orders, status, slow, down]
                profiles:
                  - id: acme-token
                    auth: { type: token, token_sha256: "\(hash("acme"))" }
                    allowed_methods: [GET, POST, HEAD]
                  - id: acme-open
                    auth: { type: none }
                  - id: acme-off
                    status: inactive
                    auth: { type: none }
                  - id: acme-lan
                    auth: { type: none }
                    allowed_ips: ["10.0.0.0/8", "2001:db8::/32"]
                  - id: acme-xff
                    auth: { type: none }
                    allowed_ips: ["203.0.113.0/24"]
              - id: limited
                collections: [orders]
                policy: tight
                profiles:
                  - id: limited-token
                    auth: { type: token, token_sha256: "\(hash("limited"))" }
              - id: metered
                collections: [orders]
                policy: three-a-day
                profiles:
                  - id: metered-token
                    auth: { type: token, token_sha256: "\(hash("metered"))" }
              - id: dormant
                status: inactive
                collections: [orders]
                profiles:
                  - id: dormant-open
                    auth: { type: none }
              - id: globex
                collections: [orders]
                profiles:
                  - id: globex-token
                    auth: { type: token, token_sha256: "\(hash("globex"))" }
            \(crowdClients)
            """
    }

    static func identity(_ client: String, _ profile: String, token: String? = nil) -> [(String, String)] {
        var headers = [("X-Client-ID", client), ("X-Profile-ID", profile)]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        return headers
    }

    static func acme(_ extra: [(String, String)] = []) -> [(String, String)] {
        identity("acme", "acme-token", token: token("acme")) + extra
    }

    static func start(workers: Int = 2, limits: String = "") throws -> Cluster {
        try Cluster(workers: workers, environment: environment) { yaml($0, limits: limits) }
    }
}
