import Shared

/// How an mtls profile names its certificate (SPEC §9): a subject (CN, and
/// optionally one of its OUs) or the certificate's SHA-256 fingerprint.
enum CertBinding {
    case subject(cn: String, ou: String?)
    case fingerprint(SHA256Digest)
}

/// Check 6 for mtls. The router put the verified certificate's identity in
/// the decision request (its own TLS listener, or headers from a trusted
/// proxy); an unverified certificate never gets this far.
enum CertAuthenticator {
    static func verify(subject: String, fingerprint: String, binding: CertBinding) -> GatewayError? {
        guard !subject.isEmpty || !fingerprint.isEmpty else {
            return AuthFailure.missing("a verified client certificate is required")
        }
        let mismatch = AuthFailure.forbidden(.certMismatch, "the client certificate is not the one bound to this profile")
        switch binding {
        case .fingerprint(let expected):
            guard let presented = SHA256Digest(fingerprint: fingerprint), presented.constantTimeEquals(expected) else {
                return mismatch
            }
            return nil
        case .subject(let cn, let ou):
            guard let name = DistinguishedName(rfc4514: subject) else { return mismatch }
            guard name.values("CN") == [cn] else { return mismatch }
            if let ou, !name.values("OU").contains(ou) { return mismatch }
            return nil
        }
    }
}

/// An RFC 4514 (RFC 2253) distinguished name as OpenSSL, nginx
/// (`$ssl_client_s_dn`) and Envoy write it: `CN=a,OU=b,O=c`, with `\,`,
/// `\+`, `\"`, `\\`, `\XX` escapes and `+` joining multi-valued RDNs.
struct DistinguishedName {
    let attributes: [(type: String, value: String)]

    init?(rfc4514 text: String) {
        var attributes: [(String, String)] = []
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            // type
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { return nil }
            let type = String(decoding: bytes[bytes.startIndex..<equals], as: UTF8.self).trimmingASCIIWhitespace().uppercased()
            guard !type.isEmpty else { return nil }
            bytes = bytes[(equals + 1)...]
            // value, up to an unescaped , or +
            var value: [UInt8] = []
            var ended = false
            while let c = bytes.first, !ended {
                bytes = bytes.dropFirst()
                switch c {
                case UInt8(ascii: "\\"):
                    guard let next = bytes.first else { return nil }
                    if let high = Self.hexValue(next), let low = bytes.dropFirst().first.flatMap(Self.hexValue) {
                        value.append(high << 4 | low)
                        bytes = bytes.dropFirst(2)
                    } else {
                        value.append(next)
                        bytes = bytes.dropFirst()
                    }
                case UInt8(ascii: ","), UInt8(ascii: "+"):
                    ended = true
                default:
                    value.append(c)
                }
            }
            guard let decoded = String(validating: value, as: UTF8.self) else { return nil }
            attributes.append((type, decoded))
        }
        guard !attributes.isEmpty else { return nil }
        self.attributes = attributes
    }

    func values(_ type: String) -> [String] {
        self.attributes.filter { $0.type == type }.map(\.value)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
