import FuzzSupport
import Shared

/// Addresses from allowlists and X-Forwarded-For: whatever parses prints
/// back to text that parses to the same value, and the forwarded-for walk
/// never crashes.
func fuzzAddresses(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let address = IPAddress(text) {
        precondition(IPAddress(address.description) == address, "\(text) -> \(address) does not round-trip")
    }
    if let block = CIDRBlock(text), let sample = IPAddress(text.split(separator: "/").first ?? "") {
        _ = block.contains(sample)
    }
    let trusted = IPRangeSet([CIDRBlock("10.0.0.0/8"), CIDRBlock("::1")].compactMap { $0 })
    if let peer = IPAddress("10.1.2.3") {
        _ = ForwardedFor.clientAddress(peer: peer, headerValues: text.split(separator: "\n"), trusted: trusted)
    }
    return 0
}

runFuzzer(fuzzAddresses)
