import Testing

@testable import Shared

@Suite("IP addresses and CIDR ranges")
struct NetTests {
    @Test func parsesIPv4() {
        #expect(IPAddress("192.168.1.100") == .v4(0xC0A8_0164))
        #expect(IPAddress("0.0.0.0") == .v4(0))
        #expect(IPAddress("255.255.255.255") == .v4(.max))
        for bad in ["256.1.1.1", "1.2.3", "1.2.3.4.5", "", "a.b.c.d", " 1.2.3.4", "1.2.3.4/8"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test("store(into:) writes the same network-order bytes as `bytes`, which parse back")
    func storesBytesInPlace() {
        for text in ["10.0.0.1", "255.255.255.255", "::1", "2001:db8::1", "fe80::aa:bb:cc:dd"] {
            guard let address = IPAddress(text) else {
                Issue.record("\(text) did not parse")
                continue
            }
            var raw: (UInt64, UInt64) = (0, 0)
            let count = withUnsafeMutableBytes(of: &raw) { address.store(into: $0) }
            let stored = withUnsafeBytes(of: &raw) { Array($0.prefix(count)) }
            #expect(stored == address.bytes, "\(text)")
            #expect(IPAddress(bytes: stored) == address, "\(text)")
        }
    }

    @Test func parsesIPv6AndNormalisesMappedIPv4() {
        #expect(IPAddress("::1") == .v6(high: 0, low: 1))
        #expect(IPAddress("2001:db8::") == .v6(high: 0x2001_0DB8_0000_0000, low: 0))
        #expect(IPAddress("::ffff:10.0.0.1") == .v4(0x0A00_0001))
        #expect(IPAddress("2001:db8::g") == nil)
        #expect(IPAddress("2001:db8::1")?.description == "2001:db8::1")
        #expect(IPAddress("10.0.0.1")?.description == "10.0.0.1")
    }

    @Test func bytesRoundTrip() {
        for text in ["10.1.2.3", "2001:db8::42", "::1", "fe80::1:2:3:4"] {
            let address = IPAddress(text)!
            #expect(IPAddress(bytes: address.bytes) == address)
        }
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
    }

    @Test func cidrContainment() throws {
        let block = try #require(CIDRBlock("10.0.0.0/24"))
        #expect(block.contains(IPAddress("10.0.0.1")!))
        #expect(block.contains(IPAddress("10.0.0.255")!))
        #expect(!block.contains(IPAddress("10.0.1.0")!))
        #expect(!block.contains(IPAddress("2001:db8::1")!))

        let single = try #require(CIDRBlock("192.168.1.100"))
        #expect(single.prefixLength == 32)
        #expect(single.contains(IPAddress("192.168.1.100")!))
        #expect(!single.contains(IPAddress("192.168.1.101")!))

        let v6 = try #require(CIDRBlock("2001:db8::/32"))
        #expect(v6.contains(IPAddress("2001:db8:ffff::1")!))
        #expect(!v6.contains(IPAddress("2001:db9::1")!))
        #expect(!v6.contains(IPAddress("10.0.0.1")!))

        let odd = try #require(CIDRBlock("2001:db8::/65"))
        #expect(odd.contains(IPAddress("2001:db8::7fff:0:0:1")!))
        #expect(!odd.contains(IPAddress("2001:db8::8000:0:0:1")!))

        #expect(CIDRBlock("0.0.0.0/0")!.contains(IPAddress("8.8.8.8")!))
        #expect(CIDRBlock("::/0")!.contains(IPAddress("2001:db8::1")!))
        #expect(CIDRBlock("10.0.0.7/24")!.description == "10.0.0.0/24")
    }

    @Test func rejectsBadRanges() {
        for bad in ["10.0.0.0/33", "10.0.0.0/", "/24", "10.0.0.0/-1", "10.0.0.0/2x", "2001:db8::/129", "10.0.0.0/24/1", "x/8"] {
            #expect(CIDRBlock(bad) == nil, "\(bad)")
        }
    }

    @Test("X-Forwarded-For is believed only from trusted proxies")
    func forwardedFor() {
        let trusted = IPRangeSet([CIDRBlock("10.0.0.0/8")!])
        let proxy = IPAddress("10.0.0.5")!
        let stranger = IPAddress("203.0.113.9")!
        // From an untrusted peer the header is ignored.
        #expect(ForwardedFor.clientAddress(peer: stranger, headerValues: ["1.2.3.4"], trusted: trusted) == .address(stranger))
        // From a trusted proxy, the rightmost untrusted hop is the client.
        #expect(ForwardedFor.clientAddress(peer: proxy, headerValues: ["1.2.3.4, 198.51.100.7, 10.0.0.9"], trusted: trusted) == .address(IPAddress("198.51.100.7")!))
        // Several header lines count as one list.
        #expect(ForwardedFor.clientAddress(peer: proxy, headerValues: ["1.2.3.4", "10.0.0.9"], trusted: trusted) == .address(IPAddress("1.2.3.4")!))
        // Ports and brackets.
        #expect(ForwardedFor.clientAddress(peer: proxy, headerValues: ["198.51.100.7:5555"], trusted: trusted) == .address(IPAddress("198.51.100.7")!))
        #expect(ForwardedFor.clientAddress(peer: proxy, headerValues: ["[2001:db8::1]:443"], trusted: trusted) == .address(IPAddress("2001:db8::1")!))
        // Everything trusted: the leftmost hop.
        #expect(ForwardedFor.clientAddress(peer: proxy, headerValues: ["10.1.1.1, 10.2.2.2"], trusted: trusted) == .address(IPAddress("10.1.1.1")!))
        // A garbage hop ends the walk with no address (matches no allowlist).
        #expect(ForwardedFor.clientAddress(peer: proxy, headerValues: ["1.2.3.4, bogus"], trusted: trusted) == .unknown)
        // No trusted proxies configured: always the peer.
        #expect(ForwardedFor.clientAddress(peer: proxy, headerValues: ["1.2.3.4"], trusted: IPRangeSet([])) == .address(proxy))
    }
}
