import CPortcullisProto
import CProtobufC
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Encodes and decodes router<->worker frames: a 4-byte big-endian length,
/// then one protobuf-c `Envelope`. This is the only file that touches the
/// generated C structs; pointers never outlive a call.
public enum FrameCodec {
    public static let lengthPrefixBytes = 4

    // MARK: encoding

    /// Appends one length-prefixed frame to `buffer`; callers batch several
    /// frames into one buffer and one write.
    public static func encode(_ frame: Frame, into buffer: inout ByteBuffer) {
        var envelope = Portcullis__V1__Envelope()
        portcullis__v1__envelope__init(&envelope)
        envelope.id = frame.id
        switch frame.body {
        case .hello(let hello):
            var message = Portcullis__V1__Hello()
            portcullis__v1__hello__init(&message)
            message.protocol_version = hello.protocolVersion
            message.worker_index = hello.workerIndex
            message.pid = hello.pid
            withCStrings([hello.role.rawValue]) { strings in
                message.role = strings[0]
                withUnsafeMutablePointer(to: &message) { pointer in
                    envelope.body_case = PORTCULLIS__V1__ENVELOPE__BODY_HELLO
                    envelope.hello = pointer
                    pack(&envelope, into: &buffer)
                }
            }
        case .decide(let request):
            withBinaryViews([
                request.clientID, request.profileID, request.method, request.path,
                request.authorization, request.certSubject, request.certFingerprint,
            ]) { v in
                let views = DecisionRequestBytes(
                    clientID: v[0], profileID: v[1], method: v[2], path: v[3], authorization: v[4],
                    certSubject: v[5], certFingerprint: v[6], sourceIP: request.sourceIP)
                self.encodeDecide(id: frame.id, views, into: &buffer)
            }
            return
        case .decision(let decision):
            self.encodeDecision(id: frame.id, decision, template: nil, into: &buffer)
        case .config(let snapshot):
            var message = Portcullis__V1__ConfigSnapshot()
            portcullis__v1__config_snapshot__init(&message)
            message.version = snapshot.version
            message.base_version = snapshot.baseVersion
            snapshot.modelJSON.withUnsafeBufferPointer { json in
                message.model_json = ProtobufCBinaryData(len: json.count, data: UnsafeMutablePointer(mutating: json.baseAddress))
                snapshot.deltaJSON.withUnsafeBufferPointer { delta in
                    message.delta_json = ProtobufCBinaryData(len: delta.count, data: UnsafeMutablePointer(mutating: delta.baseAddress))
                    withUnsafeMutablePointer(to: &message) { pointer in
                        envelope.body_case = PORTCULLIS__V1__ENVELOPE__BODY_CONFIG
                        envelope.config = pointer
                        pack(&envelope, into: &buffer)
                    }
                }
            }
        case .configAck(let ack):
            var message = Portcullis__V1__ConfigAck()
            portcullis__v1__config_ack__init(&message)
            message.version = ack.version
            withCStrings([ack.error]) { s in
                message.error = s[0]
                withUnsafeMutablePointer(to: &message) { pointer in
                    envelope.body_case = PORTCULLIS__V1__ENVELOPE__BODY_CONFIG_ACK
                    envelope.config_ack = pointer
                    pack(&envelope, into: &buffer)
                }
            }
        case .status(let status):
            var message = Portcullis__V1__WorkerStatus()
            portcullis__v1__worker_status__init(&message)
            message.quota_accounts = UInt32(clamping: status.quotaAccounts)
            message.quota_unsynced = UInt64(clamping: status.quotaUnsynced)
            message.quota_batches = status.quotaBatches
            message.quota_failures = status.quotaFailures
            message.quota_last_sync_unix_ms = status.quotaLastSyncUnixMs
            withCStrings([status.quotaHealth, status.quotaLastError]) { s in
                message.quota_health = s[0]
                message.quota_last_error = s[1]
                withUnsafeMutablePointer(to: &message) { pointer in
                    envelope.body_case = PORTCULLIS__V1__ENVELOPE__BODY_STATUS
                    envelope.status = pointer
                    pack(&envelope, into: &buffer)
                }
            }
        case .keySet(let keys):
            var message = Portcullis__V1__KeySet()
            portcullis__v1__key_set__init(&message)
            message.version = keys.version
            message.attempted_unix_ms = keys.attemptedUnixMs
            withCStrings([keys.source, keys.error]) { s in
                message.source = s[0]
                message.error = s[1]
                keys.jwksJSON.withUnsafeBufferPointer { json in
                    message.jwks_json = ProtobufCBinaryData(len: json.count, data: UnsafeMutablePointer(mutating: json.baseAddress))
                    withUnsafeMutablePointer(to: &message) { pointer in
                        envelope.body_case = PORTCULLIS__V1__ENVELOPE__BODY_KEY_SET
                        envelope.key_set = pointer
                        pack(&envelope, into: &buffer)
                    }
                }
            }
        case .keyRefresh(let source):
            var message = Portcullis__V1__KeyRefresh()
            portcullis__v1__key_refresh__init(&message)
            withCStrings([source]) { s in
                message.source = s[0]
                withUnsafeMutablePointer(to: &message) { pointer in
                    envelope.body_case = PORTCULLIS__V1__ENVELOPE__BODY_KEY_REFRESH
                    envelope.key_refresh = pointer
                    pack(&envelope, into: &buffer)
                }
            }
        }
    }

    /// The same, for a worker's connection: a decision goes out as a
    /// reference to one of `templates` when it can (see `DecisionTemplates`).
    public static func encode(_ frame: Frame, into buffer: inout ByteBuffer, templates: inout DecisionTemplateEncoder) {
        guard case .decision(let decision) = frame.body else { return self.encode(frame, into: &buffer) }
        self.encodeDecision(id: frame.id, decision, template: templates.template(for: decision), into: &buffer)
    }

    /// A decision frame: whole (defining `template` if given), or only its
    /// per-request fields when `template` is already defined as it.
    private static func encodeDecision(
        id: UInt64, _ decision: DecisionResponse, template: (id: UInt32, define: Bool)?, into buffer: inout ByteBuffer
    ) {
        var envelope = Portcullis__V1__Envelope()
        portcullis__v1__envelope__init(&envelope)
        envelope.id = id
        // The per-request fields, which both forms carry.
        let retryAfter = UInt32(clamping: decision.retryAfterSeconds)
        let remaining = UInt64(max(0, decision.rateLimit?.remaining ?? 0))
        let reset = UInt64(max(0, decision.rateLimit?.reset ?? 0))
        if let template, !template.define {
            var ref = Portcullis__V1__DecisionRef()
            portcullis__v1__decision_ref__init(&ref)
            ref.template_id = template.id
            ref.retry_after_s = retryAfter
            ref.ratelimit_remaining = remaining
            ref.ratelimit_reset = reset
            withUnsafeMutablePointer(to: &ref) { pointer in
                envelope.body_case = PORTCULLIS__V1__ENVELOPE__BODY_DECISION_REF
                envelope.decision_ref = pointer
                pack(&envelope, bound: packedBound(textBytes: 0, fields: 4), into: &buffer)
            }
            return
        }
        var message = Portcullis__V1__DecisionResponse()
        portcullis__v1__decision_response__init(&message)
        message.retry_after_s = retryAfter
        message.ratelimit_remaining = remaining
        message.ratelimit_reset = reset
        message.define_template = template?.id ?? 0
        message.outcome = switch decision.outcome {
        case .allow: PORTCULLIS__V1__DECISION_RESPONSE__OUTCOME__ALLOW
        case .deny: PORTCULLIS__V1__DECISION_RESPONSE__OUTCOME__DENY
        case .unavailable: PORTCULLIS__V1__DECISION_RESPONSE__OUTCOME__UNAVAILABLE
        }
        message.status = UInt32(clamping: decision.status)
        message.strip_prefix_bytes = UInt32(clamping: decision.stripPrefixBytes)
        withBinaryViews([
            decision.errorCode, decision.reason, decision.message, decision.allow, decision.rateLimitPolicy,
            decision.rateLimit?.name ?? "", decision.collectionID, decision.authType, decision.policyID,
        ]) { v in
            message.error_code = v[0].binaryData
            message.reason = v[1].binaryData
            message.message = v[2].binaryData
            message.allow = v[3].binaryData
            message.ratelimit_policy = v[4].binaryData
            message.ratelimit_name = v[5].binaryData
            message.collection_id = v[6].binaryData
            message.auth_type = v[7].binaryData
            message.policy_id = v[8].binaryData
            var textBytes = 0
            for view in v { textBytes += view.count }
            withUnsafeMutablePointer(to: &message) { pointer in
                envelope.body_case = PORTCULLIS__V1__ENVELOPE__BODY_DECISION
                envelope.decision = pointer
                pack(&envelope, bound: packedBound(textBytes: textBytes, fields: 16), into: &buffer)
            }
        }
    }

    /// Appends one decision request frame whose fields are views of memory
    /// the caller holds for the call: the router's hot path, which packs
    /// straight from the request head instead of building Strings first.
    public static func encodeDecide(id: UInt64, _ request: DecisionRequestBytes, into buffer: inout ByteBuffer) {
        var envelope = Portcullis__V1__Envelope()
        portcullis__v1__envelope__init(&envelope)
        envelope.id = id
        var message = Portcullis__V1__DecisionRequest()
        portcullis__v1__decision_request__init(&message)
        message.client_id = request.clientID.binaryData
        message.profile_id = request.profileID.binaryData
        message.method = request.method.binaryData
        message.path = request.path.binaryData
        message.authorization = request.authorization.binaryData
        message.cert_subject = request.certSubject.binaryData
        message.cert_fingerprint = request.certFingerprint.binaryData
        // The address's bytes on the stack (an array was a heap allocation
        // per request).
        var ipRaw: (UInt64, UInt64) = (0, 0)
        let ipCount = withUnsafeMutableBytes(of: &ipRaw) { request.sourceIP?.store(into: $0) ?? 0 }
        withUnsafeBytes(of: &ipRaw) { ipBytes in
            message.source_ip = UnsafeRawBufferPointer(rebasing: ipBytes[0..<ipCount]).binaryData
            let textBytes =
                request.clientID.count + request.profileID.count + request.method.count + request.path.count
                + request.authorization.count + request.certSubject.count + request.certFingerprint.count + ipCount
            withUnsafeMutablePointer(to: &message) { pointer in
                envelope.body_case = PORTCULLIS__V1__ENVELOPE__BODY_DECIDE
                envelope.decide = pointer
                pack(&envelope, bound: packedBound(textBytes: textBytes, fields: 9), into: &buffer)
            }
        }
    }

    private static func pack(_ envelope: inout Portcullis__V1__Envelope, into buffer: inout ByteBuffer) {
        let size = portcullis__v1__envelope__get_packed_size(&envelope)
        buffer.writeInteger(UInt32(size))
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            guard let base = out.baseAddress, size > 0 else { return 0 }
            return portcullis__v1__envelope__pack(&envelope, base.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Packs into room for `bound` bytes rather than asking protobuf-c for
    /// the exact size first: `get_packed_size` walks the whole message once
    /// more, and packing sizes nested messages itself anyway. For the two
    /// per-request frames; `bound` comes from `packedBound`.
    private static func pack(_ envelope: inout Portcullis__V1__Envelope, bound: Int, into buffer: inout ByteBuffer) {
        let lengthAt = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        let written = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out -> Int in
            guard let base = out.baseAddress else { return 0 }
            return portcullis__v1__envelope__pack(&envelope, base.assumingMemoryBound(to: UInt8.self))
        }
        buffer.setInteger(UInt32(written), at: lengthAt)
    }

    /// An upper bound on the encoding of an Envelope holding one message of
    /// at most `fields` fields whose bytes fields total `textBytes`. Each
    /// field costs at most 16 bytes besides its contents: a one-byte tag
    /// (every field number here is below 16) and a varint of at most 10
    /// bytes (a value, or a length). The envelope's id and the message's
    /// own tag and length are two more such fields.
    static func packedBound(textBytes: Int, fields: Int) -> Int { textBytes + 16 * (fields + 2) }

    /// Copies `strings` NUL-terminated into one temporary allocation (on the
    /// stack when small) and hands protobuf-c `char *`s into it. An
    /// InlineArray, not an Array: the two per-request frames would otherwise
    /// allocate a heap array just to pass their strings here.
    private static func withCStrings<let N: Int, R>(
        _ strings: InlineArray<N, String>, _ body: (UnsafeBufferPointer<UnsafeMutablePointer<CChar>>) -> R
    ) -> R {
        var total = 0
        for index in strings.indices { total += strings[index].utf8.count + 1 }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: total) { bytes in
            withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<CChar>.self, capacity: N) { pointers in
                var offset = 0
                for index in strings.indices {
                    let start = bytes.baseAddress! + offset
                    var copy = strings[index]
                    let count = copy.withUTF8 { utf8 -> Int in
                        if let source = utf8.baseAddress, utf8.count > 0 {
                            UnsafeMutableRawPointer(start).copyMemory(from: source, byteCount: utf8.count)
                        }
                        return utf8.count
                    }
                    start[count] = 0
                    pointers.initializeElement(at: index, to: start)
                    offset += count + 1
                }
                return body(UnsafeBufferPointer(pointers))
            }
        }
    }

    /// Copies `strings` into one temporary allocation (on the stack when
    /// small) and hands out byte views of each, for the `bytes` fields.
    private static func withBinaryViews<let N: Int, R>(
        _ strings: InlineArray<N, String>, _ body: (UnsafeBufferPointer<UnsafeRawBufferPointer>) -> R
    ) -> R {
        var total = 0
        for index in strings.indices { total += strings[index].utf8.count }
        return withUnsafeTemporaryAllocation(byteCount: max(total, 1), alignment: 1) { bytes in
            withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: N) { views in
                var offset = 0
                for index in strings.indices {
                    var copy = strings[index]
                    let count = copy.withUTF8 { utf8 -> Int in
                        let target = UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<(offset + utf8.count)])
                        target.copyMemory(from: UnsafeRawBufferPointer(utf8))
                        return utf8.count
                    }
                    views.initializeElement(at: index, to: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
                    offset += count
                }
                return body(UnsafeBufferPointer(views))
            }
        }
    }

    // MARK: decoding

    /// Decodes one Envelope (without its length prefix).
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(FrameError) -> Frame {
        var texts = RecentTexts()
        var templates = DecisionTemplateTable()
        return try self.decode(bytes, texts: &texts, templates: &templates)
    }

    /// The same, reusing `texts`' Strings for decision fields that repeat,
    /// and keeping and using the connection's decision `templates`.
    public static func decode(
        _ bytes: UnsafeRawBufferPointer, texts: inout RecentTexts, templates: inout DecisionTemplateTable
    ) throws(FrameError) -> Frame {
        // Unpacked into this thread's arena (see pcl_arena.h): everything is
        // copied into Swift values before this function returns.
        pcl_arena_rewind()
        let allocator = pcl_arena_allocator()
        guard
            let envelope = portcullis__v1__envelope__unpack(
                allocator, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
        else { throw FrameError.malformed }
        defer { if pcl_arena_spilled() != 0 { portcullis__v1__envelope__free_unpacked(envelope, allocator) } }
        let e = envelope.pointee
        let body: FrameBody
        switch e.body_case {
        case PORTCULLIS__V1__ENVELOPE__BODY_HELLO:
            guard let m = e.hello?.pointee else { throw FrameError.missingBody }
            guard let role = Hello.Role(rawValue: string(m.role)) else { throw FrameError.invalidField("hello.role") }
            body = .hello(Hello(protocolVersion: m.protocol_version, role: role, workerIndex: m.worker_index, pid: m.pid))
        case PORTCULLIS__V1__ENVELOPE__BODY_DECIDE:
            guard let m = e.decide?.pointee else { throw FrameError.missingBody }
            var ip: IPAddress? = nil
            if m.source_ip.len > 0 {
                guard let data = m.source_ip.data,
                    let address = IPAddress(bytes: UnsafeBufferPointer(start: data, count: m.source_ip.len))
                else { throw FrameError.invalidField("decide.source_ip") }
                ip = address
            }
            body = .decide(
                DecisionRequest(
                    clientID: text(m.client_id), profileID: text(m.profile_id), method: text(m.method),
                    path: text(m.path), sourceIP: ip, authorization: text(m.authorization),
                    certSubject: text(m.cert_subject),
                    certFingerprint: text(m.cert_fingerprint)
                ))
        case PORTCULLIS__V1__ENVELOPE__BODY_DECISION:
            guard let m = e.decision?.pointee else { throw FrameError.missingBody }
            let outcome: DecisionResponse.Outcome
            switch m.outcome {
            case PORTCULLIS__V1__DECISION_RESPONSE__OUTCOME__ALLOW: outcome = .allow
            case PORTCULLIS__V1__DECISION_RESPONSE__OUTCOME__DENY: outcome = .deny
            case PORTCULLIS__V1__DECISION_RESPONSE__OUTCOME__UNAVAILABLE: outcome = .unavailable
            default: throw FrameError.invalidField("decision.outcome")
            }
            let decision = DecisionResponse(
                outcome: outcome, status: Int(m.status), errorCode: texts.text(m.error_code, &texts.errorCode),
                reason: texts.text(m.reason, &texts.reason), message: texts.text(m.message, &texts.message),
                retryAfterSeconds: Int(m.retry_after_s), allow: texts.text(m.allow, &texts.allow),
                rateLimitPolicy: texts.text(m.ratelimit_policy, &texts.rateLimitPolicy),
                rateLimit: m.ratelimit_name.len == 0
                    ? nil
                    : RateLimitValue(
                        name: texts.text(m.ratelimit_name, &texts.rateLimitName),
                        remaining: Int(clamping: m.ratelimit_remaining), reset: Int(clamping: m.ratelimit_reset)),
                collectionID: texts.text(m.collection_id, &texts.collectionID), stripPrefixBytes: Int(m.strip_prefix_bytes),
                authType: texts.text(m.auth_type, &texts.authType), policyID: texts.text(m.policy_id, &texts.policyID)
            )
            if m.define_template != 0 {
                guard templates.define(m.define_template, decision) else { throw FrameError.invalidField("decision.define_template") }
            }
            body = .decision(decision)
        case PORTCULLIS__V1__ENVELOPE__BODY_DECISION_REF:
            guard let m = e.decision_ref?.pointee else { throw FrameError.missingBody }
            guard let t = templates.template(m.template_id) else { throw FrameError.invalidField("decision_ref.template_id") }
            body = .decision(
                DecisionResponse(
                    outcome: t.outcome, status: t.status, errorCode: t.errorCode, reason: t.reason, message: t.message,
                    retryAfterSeconds: Int(m.retry_after_s), allow: t.allow, rateLimitPolicy: t.rateLimitPolicy,
                    rateLimit: t.rateLimit.map {
                        RateLimitValue(name: $0.name, remaining: Int(clamping: m.ratelimit_remaining), reset: Int(clamping: m.ratelimit_reset))
                    },
                    collectionID: t.collectionID, stripPrefixBytes: t.stripPrefixBytes, authType: t.authType, policyID: t.policyID))
        case PORTCULLIS__V1__ENVELOPE__BODY_CONFIG:
            guard let m = e.config?.pointee else { throw FrameError.missingBody }
            let json: [UInt8] = m.model_json.len > 0 ? Array(UnsafeBufferPointer(start: m.model_json.data, count: m.model_json.len)) : []
            let delta: [UInt8] = m.delta_json.len > 0 ? Array(UnsafeBufferPointer(start: m.delta_json.data, count: m.delta_json.len)) : []
            body = .config(ConfigSnapshotMessage(version: m.version, modelJSON: json, deltaJSON: delta, baseVersion: m.base_version))
        case PORTCULLIS__V1__ENVELOPE__BODY_CONFIG_ACK:
            guard let m = e.config_ack?.pointee else { throw FrameError.missingBody }
            body = .configAck(ConfigAck(version: m.version, error: string(m.error)))
        case PORTCULLIS__V1__ENVELOPE__BODY_STATUS:
            guard let m = e.status?.pointee else { throw FrameError.missingBody }
            body = .status(
                WorkerStatusMessage(
                    quotaHealth: string(m.quota_health), quotaAccounts: Int(m.quota_accounts),
                    quotaUnsynced: Int(clamping: m.quota_unsynced), quotaBatches: m.quota_batches,
                    quotaFailures: m.quota_failures, quotaLastSyncUnixMs: m.quota_last_sync_unix_ms,
                    quotaLastError: string(m.quota_last_error)))
        case PORTCULLIS__V1__ENVELOPE__BODY_KEY_SET:
            guard let m = e.key_set?.pointee else { throw FrameError.missingBody }
            let json: [UInt8] = m.jwks_json.len > 0 ? Array(UnsafeBufferPointer(start: m.jwks_json.data, count: m.jwks_json.len)) : []
            body = .keySet(
                KeySetMessage(
                    source: string(m.source), version: m.version, jwksJSON: json, attemptedUnixMs: m.attempted_unix_ms,
                    error: string(m.error)))
        case PORTCULLIS__V1__ENVELOPE__BODY_KEY_REFRESH:
            guard let m = e.key_refresh?.pointee else { throw FrameError.missingBody }
            body = .keyRefresh(source: string(m.source))
        default:
            throw FrameError.missingBody
        }
        return Frame(id: e.id, body: body)
    }

    /// A `bytes` field holding UTF-8 text (invalid sequences repaired, as
    /// `String(cString:)` did for the former `string` fields).
    @inline(__always)
    fileprivate static func text(_ field: ProtobufCBinaryData) -> String {
        guard field.len > 0, let data = field.data else { return "" }
        return String(decoding: UnsafeBufferPointer(start: data, count: field.len), as: UTF8.self)
    }

    @inline(__always)
    private static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer, pointer.pointee != 0 else { return "" }
        return String(cString: pointer)
    }
}

/// The last value of each decision field that repeats from one decision to
/// the next (collection, policy, auth type, reason...). Decoding one
/// compares bytes with it and hands out the same String: no UTF-8
/// validation and, past 15 bytes, no allocation per field per request.
public struct RecentTexts: Sendable {
    var errorCode = ""
    var reason = ""
    var message = ""
    var allow = ""
    var rateLimitPolicy = ""
    var rateLimitName = ""
    var collectionID = ""
    var authType = ""
    var policyID = ""

    public init() {}

    @inline(__always)
    func text(_ field: ProtobufCBinaryData, _ last: inout String) -> String {
        guard field.len > 0, let data = field.data else { return "" }
        let same = last.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
            guard utf8.count == field.len, let base = utf8.baseAddress else { return false }
            return memcmp(base, data, field.len) == 0
        }
        if same == true { return last }
        last = FrameCodec.text(field)
        return last
    }
}

/// Splits a byte stream into frames. Pure (no channel), so the codec's
/// failure modes — truncated, oversized, garbage — are tested directly.
public struct FrameParser: Sendable {
    public let maxFrameBytes: Int

    public init(maxFrameBytes: Int) {
        self.maxFrameBytes = maxFrameBytes
    }

    /// The next whole frame, or nil when more bytes are needed. Throws on an
    /// oversized length (before buffering it) or an undecodable body; the
    /// connection must then be closed, since the stream cannot be resynchronised.
    public func next(from buffer: inout ByteBuffer) throws(FrameError) -> Frame? {
        var texts = RecentTexts()
        var templates = DecisionTemplateTable()
        return try self.next(from: &buffer, texts: &texts, templates: &templates)
    }

    /// The same, reusing `texts` across frames (see `RecentTexts`) and
    /// keeping the connection's decision `templates`.
    public func next(
        from buffer: inout ByteBuffer, texts: inout RecentTexts, templates: inout DecisionTemplateTable
    ) throws(FrameError) -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let frameLength = Int(length)
        guard frameLength <= self.maxFrameBytes else {
            throw FrameError.oversized(length: frameLength, limit: self.maxFrameBytes)
        }
        guard buffer.readableBytes >= FrameCodec.lengthPrefixBytes + frameLength else { return nil }
        let start = buffer.readerIndex + FrameCodec.lengthPrefixBytes
        let result = buffer.withUnsafeReadableBytes { raw -> Result<Frame, FrameError> in
            let slice = UnsafeRawBufferPointer(rebasing: raw[(start - buffer.readerIndex)..<(start - buffer.readerIndex + frameLength)])
            return Result { () throws(FrameError) in try FrameCodec.decode(slice, texts: &texts, templates: &templates) }
        }
        buffer.moveReaderIndex(forwardBy: FrameCodec.lengthPrefixBytes + frameLength)
        return try result.get()
    }
}

/// A byte stream cut into frames, for the channel handlers on both ends of
/// the router-worker link. They decode in place rather than behind a
/// ByteToMessageHandler, which boxed every Frame into an NIOAny and copied
/// it twice more on the way to the handler: measurable at one frame per
/// request. Bytes of an incomplete frame are held until the rest arrives.
public struct FrameStream: Sendable {
    private let parser: FrameParser
    private var held: ByteBuffer?
    private var texts = RecentTexts()
    private var templates = DecisionTemplateTable()

    public init(maxFrameBytes: Int) {
        self.parser = FrameParser(maxFrameBytes: maxFrameBytes)
    }

    /// Bytes held for a frame not yet complete.
    public var heldBytes: Int { self.held?.readableBytes ?? 0 }

    /// Adds bytes read from the channel.
    public mutating func append(_ bytes: ByteBuffer) {
        guard var held = self.held, held.readableBytes > 0 else {
            self.held = bytes
            return
        }
        self.held = nil  // keep `held` uniquely referenced while appending
        var bytes = bytes
        held.discardReadBytes()
        held.writeBuffer(&bytes)
        self.held = held
    }

    /// The next whole frame, or nil until more bytes arrive. After a throw
    /// the stream is unusable: the connection must close (see `FrameParser`).
    public mutating func next() throws(FrameError) -> Frame? {
        guard var buffer = self.held else { return nil }
        self.held = nil
        defer { if buffer.readableBytes > 0 { self.held = buffer } }
        return try self.parser.next(from: &buffer, texts: &self.texts, templates: &self.templates)
    }
}

/// A decision request as views of memory the caller owns for the duration
/// of one `FrameCodec.encodeDecide` call.
public struct DecisionRequestBytes {
    public var clientID: UnsafeRawBufferPointer
    public var profileID: UnsafeRawBufferPointer
    public var method: UnsafeRawBufferPointer
    public var path: UnsafeRawBufferPointer
    public var authorization: UnsafeRawBufferPointer
    public var certSubject: UnsafeRawBufferPointer
    public var certFingerprint: UnsafeRawBufferPointer
    public var sourceIP: IPAddress?

    public init(
        clientID: UnsafeRawBufferPointer, profileID: UnsafeRawBufferPointer, method: UnsafeRawBufferPointer,
        path: UnsafeRawBufferPointer, authorization: UnsafeRawBufferPointer,
        certSubject: UnsafeRawBufferPointer, certFingerprint: UnsafeRawBufferPointer, sourceIP: IPAddress?
    ) {
        self.clientID = clientID
        self.profileID = profileID
        self.method = method
        self.path = path
        self.authorization = authorization
        self.certSubject = certSubject
        self.certFingerprint = certFingerprint
        self.sourceIP = sourceIP
    }
}

extension UnsafeRawBufferPointer {
    /// protobuf-c's (length, pointer) for a `bytes` field; it only reads
    /// through the pointer when packing.
    var binaryData: ProtobufCBinaryData {
        ProtobufCBinaryData(
            len: self.count, data: self.count > 0 ? UnsafeMutablePointer(mutating: self.baseAddress?.assumingMemoryBound(to: UInt8.self)) : nil)
    }
}
