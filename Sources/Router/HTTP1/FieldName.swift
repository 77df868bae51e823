/// The header names the gateway acts on, recognised once by the parser.
/// Framing, keep-alive, identity and the head writers all ask about the
/// same few names; comparing each field's name bytes in every one of them
/// was a dozen case-folded comparisons per field per request.
enum FieldName: UInt8 {
    case other
    case host
    case connection
    case keepAlive
    case te
    case trailer
    case upgrade
    case proxyConnection
    case proxyAuthenticate
    case proxyAuthorization
    case transferEncoding
    case contentLength
    case expect
    case authorization
    case xClientID
    case xProfileID
    case xRequestID
    case xForwardedFor
    case xForwardedHost
    case xForwardedProto
    case rateLimit
    case rateLimitPolicy
    case strictTransportSecurity
    case xSSLClientSubject
    case xSSLClientVerify
    case xSSLClientFingerprint
    case xForwardedClientCert
    /// `X-Consumer-*`: the gateway's own identity headers to upstreams.
    case xConsumer

    /// The name of `length` bytes at `start`, compared without case. The
    /// caller guarantees the bytes are inside `raw` and are token
    /// characters (for which OR-ing 0x20 folds case and nothing else).
    @inline(__always)
    static func of(_ raw: UnsafeRawBufferPointer, start: Int, length: Int) -> FieldName {
        guard let base = raw.baseAddress, start >= 0, start + length <= raw.count else { return .other }
        let name = base + start
        @inline(__always)
        func equals(_ lower: StaticString) -> Bool { Self.equalFolded(name, lower) }
        switch length {
        case 2: if equals("te") { return .te }
        case 4: if equals("host") { return .host }
        case 6: if equals("expect") { return .expect }
        case 7:
            if equals("upgrade") { return .upgrade }
            if equals("trailer") { return .trailer }
        case 9: if equals("ratelimit") { return .rateLimit }
        case 10:
            if equals("connection") { return .connection }
            if equals("keep-alive") { return .keepAlive }
        case 11: if equals("x-client-id") { return .xClientID }
        case 12:
            if equals("x-request-id") { return .xRequestID }
            if equals("x-profile-id") { return .xProfileID }
        case 13: if equals("authorization") { return .authorization }
        case 14: if equals("content-length") { return .contentLength }
        case 15: if equals("x-forwarded-for") { return .xForwardedFor }
        case 16:
            if equals("x-forwarded-host") { return .xForwardedHost }
            if equals("proxy-connection") { return .proxyConnection }
            if equals("ratelimit-policy") { return .rateLimitPolicy }
        case 17:
            if equals("transfer-encoding") { return .transferEncoding }
            if equals("x-forwarded-proto") { return .xForwardedProto }
            if equals("x-ssl-client-s-dn") { return .xSSLClientSubject }
        case 18: if equals("proxy-authenticate") { return .proxyAuthenticate }
        case 19:
            if equals("proxy-authorization") { return .proxyAuthorization }
            if equals("x-ssl-client-verify") { return .xSSLClientVerify }
        case 23: if equals("x-forwarded-client-cert") { return .xForwardedClientCert }
        case 24: if equals("x-ssl-client-fingerprint") { return .xSSLClientFingerprint }
        case 25: if equals("strict-transport-security") { return .strictTransportSecurity }
        default: break
        }
        if length > 11 && equals("x-consumer-") { return .xConsumer }
        return .other
    }

    /// Whether the `lower.utf8CodeUnitCount` bytes at `name` equal `lower`
    /// without case, eight at a time. OR-ing 0x20 folds letters; the
    /// literals compared here hold only letters, digits and '-', which no
    /// other byte of a name or a field value folds onto.
    @inline(__always)
    static func equalFolded(_ name: UnsafeRawPointer, _ lower: StaticString) -> Bool {
        let count = lower.utf8CodeUnitCount
        let expected = UnsafeRawPointer(lower.utf8Start)
        var offset = 0
        while offset + 8 <= count {
            let fold: UInt64 = 0x2020_2020_2020_2020
            if name.loadUnaligned(fromByteOffset: offset, as: UInt64.self) | fold
                != expected.loadUnaligned(fromByteOffset: offset, as: UInt64.self) | fold
            {
                return false
            }
            offset += 8
        }
        while offset < count {
            if name.load(fromByteOffset: offset, as: UInt8.self) | 0x20 != expected.load(fromByteOffset: offset, as: UInt8.self) | 0x20 {
                return false
            }
            offset += 1
        }
        return true
    }
}
