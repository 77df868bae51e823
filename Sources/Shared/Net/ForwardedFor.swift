/// Finds the client address of a request that may have passed through proxies.
///
/// `X-Forwarded-For` is believed only as far as it was written by a trusted
/// proxy: starting from the TCP peer, walk the chain from the right while the
/// hop is trusted; the first untrusted address is the client (SPEC §9). A peer
/// outside `trusted_proxies` means the header is ignored entirely, so a client
/// cannot choose its own source IP. An unparsable hop stops the walk with no
/// address, which no allowlist matches (fail closed).
public enum ForwardedFor {
    public enum Resolution: Equatable, Sendable {
        case address(IPAddress)
        case unknown
    }

    public static func clientAddress(peer: IPAddress, headerValues: [Substring], trusted: IPRangeSet) -> Resolution {
        guard !trusted.isEmpty, trusted.contains(peer), !headerValues.isEmpty else { return .address(peer) }
        var hops: [Substring] = []
        for value in headerValues {
            hops.append(contentsOf: value.split(separator: ",", omittingEmptySubsequences: false))
        }
        var candidate = peer
        for hop in hops.reversed() {
            guard let address = parseHop(hop) else { return .unknown }
            candidate = address
            if !trusted.contains(address) { return .address(address) }
        }
        // Every hop is a trusted proxy: the leftmost is the best we know.
        return .address(candidate)
    }

    /// Accepts `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` and `[2001:db8::1]:443`.
    static func parseHop(_ raw: Substring) -> IPAddress? {
        let hop = raw.trimmingASCIIWhitespace()
        if hop.hasPrefix("[") {
            guard let close = hop.firstIndex(of: "]") else { return nil }
            return IPAddress(hop[hop.index(after: hop.startIndex)..<close])
        }
        if let address = IPAddress(hop) { return address }
        // IPv4 with a port: exactly one colon.
        let parts = hop.split(separator: ":")
        if parts.count == 2, let address = IPAddress(parts[0]), case .v4 = address { return address }
        return nil
    }
}
