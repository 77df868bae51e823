/// Rate limits (short windows, token buckets) and quotas (calendar windows).
public struct PolicyConfig: Codable, Sendable, Equatable {
    public var id: String
    public var rateLimits: [RateLimitConfig]
    public var quotas: [QuotaConfig]
    public var onRedisFailure: RedisFailureMode

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id
        case rateLimits = "rate_limits"
        case quotas
        case onRedisFailure = "on_redis_failure"
    }

    public init(id: String, rateLimits: [RateLimitConfig] = [], quotas: [QuotaConfig] = [], onRedisFailure: RedisFailureMode = .failOpen) {
        self.id = id
        self.rateLimits = rateLimits
        self.quotas = quotas
        self.onRedisFailure = onRedisFailure
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try c.decode(String.self, forKey: .id)
        self.rateLimits = try c.decode(.rateLimits, default: [])
        self.quotas = try c.decode(.quotas, default: [])
        self.onRedisFailure = try c.decode(.onRedisFailure, default: .failOpen)
    }
}

public enum RedisFailureMode: String, Codable, Sendable, Equatable {
    case failOpen = "fail_open"
    case failClosed = "fail_closed"
}

/// Short windows, enforced by token buckets in the owning worker.
public enum RateWindow: String, Codable, Sendable, Equatable, CaseIterable {
    case second, minute, hour

    public var seconds: Int {
        switch self {
        case .second: return 1
        case .minute: return 60
        case .hour: return 3600
        }
    }
}

/// Long windows on UTC calendar boundaries.
public enum QuotaPeriod: String, Codable, Sendable, Equatable, CaseIterable {
    case day, week, month
}

public struct RateLimitConfig: Codable, Sendable, Equatable {
    public var limit: Int
    public var per: RateWindow
    /// Bucket size; defaults to `limit`.
    public var burst: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case limit, per, burst
    }

    public init(limit: Int, per: RateWindow, burst: Int? = nil) {
        self.limit = limit
        self.per = per
        self.burst = burst
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.limit = try c.decode(Int.self, forKey: .limit)
        let per = try c.decode(String.self, forKey: .per)
        guard let window = RateWindow(rawValue: per) else {
            let hint = QuotaPeriod(rawValue: per) != nil ? " (\(per) is a quota period: put it under quotas)" : ""
            throw DecodingError.dataCorruptedError(
                forKey: .per, in: c, debugDescription: "must be second, minute or hour\(hint)")
        }
        self.per = window
        self.burst = try c.decodeIfPresent(Int.self, forKey: .burst)
    }

    public var effectiveBurst: Int { self.burst ?? self.limit }
}

public struct QuotaConfig: Codable, Sendable, Equatable {
    public var limit: Int
    public var per: QuotaPeriod

    enum CodingKeys: String, CodingKey, CaseIterable {
        case limit, per
    }

    public init(limit: Int, per: QuotaPeriod) {
        self.limit = limit
        self.per = per
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.limit = try c.decode(Int.self, forKey: .limit)
        let per = try c.decode(String.self, forKey: .per)
        guard let period = QuotaPeriod(rawValue: per) else {
            let hint = RateWindow(rawValue: per) != nil ? " (\(per) is a rate-limit window: put it under rate_limits)" : ""
            throw DecodingError.dataCorruptedError(forKey: .per, in: c, debugDescription: "must be day, week or month\(hint)")
        }
        self.per = period
    }
}
