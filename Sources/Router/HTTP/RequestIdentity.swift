/// The request headers the gateway itself acts on, found in one pass as
/// offsets into the head: nothing becomes a `String` on the request path
/// unless something reads it as one (the decision log, a refusal's text).
struct RequestIdentity {
    /// Value offsets of each header in the head; empty when absent.
    var clientID = 0..<0
    var profileID = 0..<0
    var authorization = 0..<0
    var requestID: Range<Int>? = nil
    var forwardedFor: [HTTPField] = []
    var expectsContinue = false
    /// Verified-certificate headers of an ingress proxy (SPEC §9). Found
    /// always, believed only from a trusted peer (see `certificate(trusted:in:)`).
    var sslClientVerify: HTTPField? = nil
    var sslClientSubject: HTTPField? = nil
    var sslClientFingerprint: HTTPField? = nil
    var forwardedClientCert: [HTTPField] = []
    /// An identity or credential header sent twice: ambiguous, so refused
    /// rather than guessing which one the client meant.
    var duplicate: String? = nil

    init(_ head: HTTPHead) {
        var seenClient = false
        var seenProfile = false
        var seenAuthorization = false
        for field in head.fields {
            switch field.name {
            case .xClientID:
                if seenClient { self.duplicate = "X-Client-ID" }
                seenClient = true
                self.clientID = field.valueRange
            case .xProfileID:
                if seenProfile { self.duplicate = "X-Profile-ID" }
                seenProfile = true
                self.profileID = field.valueRange
            case .xRequestID:
                if self.requestID == nil { self.requestID = field.valueRange }
            case .authorization:
                if seenAuthorization { self.duplicate = "Authorization" }
                seenAuthorization = true
                self.authorization = field.valueRange
            case .xForwardedFor:
                self.forwardedFor.append(field)
            case .expect:
                self.expectsContinue = head.valueHasToken(field, "100-continue")
            case .xSSLClientSubject:
                if self.sslClientSubject != nil { self.duplicate = "X-SSL-Client-S-DN" }
                self.sslClientSubject = field
            case .xSSLClientVerify:
                if self.sslClientVerify != nil { self.duplicate = "X-SSL-Client-Verify" }
                self.sslClientVerify = field
            case .xForwardedClientCert:
                // Several fields are one comma-separated list (RFC 9110 §5.3).
                self.forwardedClientCert.append(field)
            case .xSSLClientFingerprint:
                if self.sslClientFingerprint != nil { self.duplicate = "X-SSL-Client-Fingerprint" }
                self.sslClientFingerprint = field
            default:
                break
            }
        }
    }

    /// The `X-Forwarded-For` values, for `ForwardedFor.clientAddress`.
    func forwardedForValues(in head: HTTPHead) -> [Substring] {
        self.forwardedFor.map { Substring(head.value($0)) }
    }
}

extension HTTPField {
    var valueRange: Range<Int> { Int(self.valueStart)..<Int(self.valueEnd) }
}

/// A client certificate a trusted proxy verified, as the worker receives it.
struct CertificateIdentity: Equatable {
    var subject: String
    var fingerprint: String
}

extension RequestIdentity {
    /// The certificate an ingress proxy vouches for. Only a `trusted_proxies`
    /// peer is believed; from anyone else these headers mean nothing (and
    /// are not forwarded). nginx style: `X-SSL-Client-Verify: SUCCESS` with
    /// the subject DN and the SHA-256 fingerprint. Envoy style:
    /// `X-Forwarded-Client-Cert`, whose last element is the one our
    /// adjacent (trusted) proxy added for the client it verified.
    func certificate(trusted: Bool, in head: HTTPHead) -> CertificateIdentity? {
        guard trusted else { return nil }
        if let verify = self.sslClientVerify {
            guard head.value(verify).uppercased() == "SUCCESS" else { return nil }
            let identity = CertificateIdentity(
                subject: self.sslClientSubject.map { head.value($0) } ?? "",
                fingerprint: self.sslClientFingerprint.map { head.value($0) } ?? "")
            return identity.subject.isEmpty && identity.fingerprint.isEmpty ? nil : identity
        }
        if !self.forwardedClientCert.isEmpty {
            let xfcc = self.forwardedClientCert.map { head.value($0) }.joined(separator: ",")
            guard let element = ForwardedClientCert.elements(xfcc).last else { return nil }
            let identity = CertificateIdentity(subject: element["subject"] ?? "", fingerprint: element["hash"] ?? "")
            return identity.subject.isEmpty && identity.fingerprint.isEmpty ? nil : identity
        }
        return nil
    }
}

/// Envoy's `X-Forwarded-Client-Cert`: elements separated by `,`, pairs by
/// `;`, values optionally double-quoted (with `\"` escapes) when they hold
/// those separators, as a subject DN does.
enum ForwardedClientCert {
    static func elements(_ text: String) -> [[String: String]] {
        var elements: [[String: String]] = []
        var current: [String: String] = [:]
        var key = ""
        var value = ""
        var inKey = true
        var quoted = false
        var escaped = false
        func endPair() {
            let name = key.trimmingASCIIWhitespace().lowercased()
            if !name.isEmpty { current[name] = value }
            key = ""
            value = ""
            inKey = true
        }
        for character in text {
            if quoted {
                if escaped {
                    value.append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    quoted = false
                } else {
                    value.append(character)
                }
                continue
            }
            switch character {
            case "=" where inKey: inKey = false
            case "\"" where !inKey && value.isEmpty: quoted = true
            case ";": endPair()
            case ",":
                endPair()
                if !current.isEmpty { elements.append(current) }
                current = [:]
            default:
                if inKey { key.append(character) } else { value.append(character) }
            }
        }
        endPair()
        if !current.isEmpty { elements.append(current) }
        return elements
    }
}
