import Shared
import Testing

@Suite("Redis URLs")
struct RedisEndpointTests {
    @Test func tcpWithPasswordAndDatabase() throws {
        let endpoint = try RedisEndpoint.parse("redis://app:s%40cret@10.0.0.5:6380/2")
        #expect(endpoint.address == .tcp(host: "10.0.0.5", port: 6380))
        #expect(endpoint.username == "app")
        #expect(endpoint.password == "s@cret")
        #expect(endpoint.database == 2)
        // Printed forms never show the password.
        #expect(endpoint.description == "redis://app:***@10.0.0.5:6380/2")
        #expect(!"\(endpoint)".contains("cret"))
    }

    @Test func defaultsAndShorthands() throws {
        #expect(try RedisEndpoint.parse("redis://localhost") == RedisEndpoint(address: .tcp(host: "localhost", port: 6379)))
        #expect(try RedisEndpoint.parse("redis://pw@[::1]:7000").address == .tcp(host: "::1", port: 7000))
        #expect(try RedisEndpoint.parse("redis://pw@[::1]:7000").password == "pw")
        let unix = try RedisEndpoint.parse("unix:///run/redis.sock?db=3")
        #expect(unix.address == .unix(path: "/run/redis.sock"))
        #expect(unix.database == 3)
    }

    @Test(arguments: [
        "rediss://host", "http://host", "redis://", "redis://host:0", "redis://host:99999", "redis://host/x",
        "redis://[::1", "unix://relative.sock", "unix:///s.sock?db=x",
    ])
    func rejected(url: String) {
        #expect(throws: RedisEndpoint.ParseError.self) { try RedisEndpoint.parse(url) }
    }
}
