import FuzzSupport
import Shared

/// What a client or an IdP controls: a bearer JWT (strict compact JWS
/// parsing, JSON inside) and a JWKS entry (key import through OpenSSL).
func fuzzJOSE(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    if case .success(let jws) = CompactJWS.parse(bytes) {
        // A parsed token is internally consistent.
        precondition(!jws.signature.isEmpty && jws.signingInput.count < size)
    }
    if let json = try? JSONValue.parse(Array(bytes)) {
        if let keys = json["keys"]?.array {
            for key in keys.prefix(4) { _ = try? AsymmetricKey.fromJWK(key) }
        } else {
            _ = try? AsymmetricKey.fromJWK(json)
        }
    }
    return 0
}

runFuzzer(fuzzJOSE)
