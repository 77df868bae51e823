import NIOCore
import NIOHTTP1
import Shared

/// Responses the gateway writes itself (SPEC §2 JSON body), always with
/// `X-Request-ID`, and with `Retry-After`, `Allow` and the rate-limit
/// headers when the refusal carries them.
enum LocalResponse {
    static func make(
        _ error: GatewayError, requestID: String, version: HTTPVersion = .http1_1, keepAlive: Bool,
        rateLimitPolicy: String = "", rateLimit: String = "", allocator: ByteBufferAllocator
    ) -> (HTTPResponseHead, ByteBuffer) {
        let body = error.jsonBody(requestID: requestID)
        var headers = HTTPHeaders()
        headers.reserveCapacity(8)
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "X-Request-ID", value: requestID)
        if let retry = error.retryAfterSeconds, retry > 0 { headers.add(name: "Retry-After", value: String(retry)) }
        if let allow = error.allow { headers.add(name: "Allow", value: allow) }
        if !rateLimitPolicy.isEmpty { headers.add(name: "RateLimit-Policy", value: rateLimitPolicy) }
        if !rateLimit.isEmpty { headers.add(name: "RateLimit", value: rateLimit) }
        if error.closeConnection || !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: error.status), headers: headers)
        var buffer = allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        return (head, buffer)
    }

    /// A refusal decided by the worker, as a `GatewayError`.
    static func error(from decision: DecisionResponse) -> GatewayError {
        GatewayError(
            status: decision.status,
            code: ErrorCode(rawValue: decision.errorCode) ?? .forbidden,
            reason: decision.reason,
            message: decision.message,
            retryAfterSeconds: decision.retryAfterSeconds > 0 ? decision.retryAfterSeconds : nil,
            allow: decision.status == 405 ? decision.allow : nil)
    }
}
