/// An address range: `10.0.0.0/24`, `2001:db8::/32`, or a single address
/// (`192.168.1.100` is `/32`, an IPv6 address alone is `/128`).
///
/// Host bits below the prefix are masked off at parse time, as Kong and Envoy
/// do, so `10.0.0.7/24` means `10.0.0.0/24`.
public struct CIDRBlock: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    public init?<S: StringProtocol>(_ text: S) {
        let trimmed = text.trimmingASCIIWhitespace()
        let parts = trimmed.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let maximum: Int
        switch address {
        case .v4: maximum = 32
        case .v6: maximum = 128
        }
        var prefix = maximum
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), parts[1].count <= 3,
                let value = Int(parts[1]), value <= maximum
            else { return nil }
            prefix = value
        }
        self.prefixLength = prefix
        self.network = CIDRBlock.mask(address, prefix: prefix)
    }

    public func contains(_ address: IPAddress) -> Bool {
        switch (self.network, address) {
        case (.v4, .v4), (.v6, .v6):
            return CIDRBlock.mask(address, prefix: self.prefixLength) == self.network
        default:
            return false
        }
    }

    public var description: String { "\(self.network)/\(self.prefixLength)" }

    static func mask(_ address: IPAddress, prefix: Int) -> IPAddress {
        switch address {
        case .v4(let value):
            let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefix)
            return .v4(value & mask)
        case .v6(let high, let low):
            let highMask: UInt64 = prefix >= 64 ? ~0 : (prefix == 0 ? 0 : ~UInt64(0) << UInt64(64 - prefix))
            let lowBits = prefix - 64
            let lowMask: UInt64 = lowBits <= 0 ? 0 : (lowBits >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - lowBits))
            return .v6(high: high & highMask, low: low & lowMask)
        }
    }
}

/// A set of ranges; empty means "no restriction" only where the caller says so.
public struct IPRangeSet: Sendable, Equatable {
    public let blocks: [CIDRBlock]

    public init(_ blocks: [CIDRBlock]) { self.blocks = blocks }

    public var isEmpty: Bool { self.blocks.isEmpty }

    public func contains(_ address: IPAddress) -> Bool {
        for block in self.blocks where block.contains(address) { return true }
        return false
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's OWS).
    public func trimmingASCIIWhitespace() -> Substring {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return slice
    }
}
