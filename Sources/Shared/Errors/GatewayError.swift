/// A refusal the gateway answers itself, at any stage: it carries the spec's
/// error code, the decision-log reason and everything needed to write the
/// HTTP response (SPEC §2 body, `Retry-After`, `Allow`, rate-limit headers).
public struct GatewayError: Error, Sendable, Equatable {
    public var status: Int
    public var code: ErrorCode
    public var reason: String
    public var message: String
    public var retryAfterSeconds: Int?
    public var allow: String?
    public var closeConnection: Bool

    public init(
        status: Int,
        code: ErrorCode,
        reason: String,
        message: String,
        retryAfterSeconds: Int? = nil,
        allow: String? = nil,
        closeConnection: Bool = false
    ) {
        self.status = status
        self.code = code
        self.reason = reason
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
        self.allow = allow
        self.closeConnection = closeConnection
    }

    public init(
        _ status: Int, _ code: ErrorCode, _ reason: ReasonCode, _ message: String,
        retryAfterSeconds: Int? = nil, closeConnection: Bool = false
    ) {
        self.init(
            status: status, code: code, reason: reason.rawValue, message: message,
            retryAfterSeconds: retryAfterSeconds, closeConnection: closeConnection
        )
    }

    /// `{"error": …, "message": …, "request_id": …}` (SPEC §2).
    public func jsonBody(requestID: String) -> String {
        var out = "{\"error\":"
        JSON.appendString(self.code.rawValue, to: &out)
        out += ",\"message\":"
        JSON.appendString(self.message, to: &out)
        out += ",\"request_id\":"
        JSON.appendString(requestID, to: &out)
        out += "}"
        return out
    }
}

extension GatewayError {
    public static func workerUnavailable(_ message: String = "the worker for this client is restarting; retry shortly") -> GatewayError {
        GatewayError(503, .workerUnavailable, .workerUnavailable, message, retryAfterSeconds: 1)
    }
    public static let upstreamTimeout = GatewayError(504, .upstreamTimeout, .upstreamTimeout, "the upstream did not answer in time")
    public static func badGateway(_ reason: ReasonCode, _ message: String) -> GatewayError {
        GatewayError(502, .badGateway, reason, message)
    }
    public static let malformedRequest = GatewayError(400, .badRequest, .malformedRequest, "malformed HTTP request", closeConnection: true)
    public static let headersTooLarge = GatewayError(
        431, .headersTooLarge, .headersTooLarge, "request line and headers exceed the size limit", closeConnection: true)
    public static let bodyTooLarge = GatewayError(413, .payloadTooLarge, .bodyTooLarge, "request body exceeds the size limit", closeConnection: true)
    public static let headerTimeout = GatewayError(408, .requestTimeout, .headerTimeout, "request headers not received in time", closeConnection: true)
}
