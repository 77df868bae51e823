import NIOCore
import Testing

@testable import Shared

/// Decision templates (`DecisionTemplates`): a worker's connection sends a
/// repeated answer as a template number plus its per-request fields, and
/// the router's stream must rebuild exactly the answer the worker gave.
@Suite("Decision templates")
struct DecisionTemplateTests {
    static func allow(remaining: Int, reset: Int = 1, collection: String = "orders", policy: String = "gold") -> DecisionResponse {
        DecisionResponse(
            outcome: .allow, rateLimitPolicy: "\"second\";q=10;w=1", rateLimit: RateLimitValue(name: "second", remaining: remaining, reset: reset),
            collectionID: collection, stripPrefixBytes: 3, authType: "token", policyID: policy)
    }

    /// Encodes `decisions` as one worker connection would, one frame each.
    static func encode(_ decisions: [DecisionResponse], templates: inout DecisionTemplateEncoder) -> [ByteBuffer] {
        decisions.enumerated().map { index, decision in
            var buffer = ByteBuffer()
            FrameCodec.encode(Frame(id: UInt64(index + 1), body: .decision(decision)), into: &buffer, templates: &templates)
            return buffer
        }
    }

    @Test("a repeated answer goes as its per-request fields and comes back whole")
    func repeatedAnswer() throws {
        let decisions = [
            Self.allow(remaining: 9), Self.allow(remaining: 8, reset: 2), Self.allow(remaining: 7),
            DecisionResponse(
                outcome: .deny, status: 429, errorCode: "rate_limit_exceeded", reason: "rate_limit", message: "slow down",
                retryAfterSeconds: 3, rateLimitPolicy: "\"second\";q=10;w=1", rateLimit: RateLimitValue(name: "second", remaining: 0, reset: 3),
                collectionID: "orders", authType: "token", policyID: "gold"),
            DecisionResponse(
                outcome: .deny, status: 429, errorCode: "rate_limit_exceeded", reason: "rate_limit", message: "slow down",
                retryAfterSeconds: 1, rateLimitPolicy: "\"second\";q=10;w=1", rateLimit: RateLimitValue(name: "second", remaining: 0, reset: 1),
                collectionID: "orders", authType: "token", policyID: "gold"),
            Self.allow(remaining: 6),
        ]
        var encoder = DecisionTemplateEncoder()
        let frames = Self.encode(decisions, templates: &encoder)
        // The first of each kind defines a template; the repeats are small.
        #expect(frames[1].readableBytes < frames[0].readableBytes / 2)
        #expect(frames[4].readableBytes < frames[3].readableBytes / 2)
        #expect(frames[5].readableBytes == frames[2].readableBytes)
        var stream = FrameStream(maxFrameBytes: 4096)
        for (index, frame) in frames.enumerated() {
            stream.append(frame)
            let decoded = try #require(try stream.next())
            #expect(decoded == Frame(id: UInt64(index + 1), body: .decision(decisions[index])))
        }
    }

    @Test("answers that share a slot redefine it and still come back exactly")
    func collisions() throws {
        // 300 kinds of answer over 64 slots, in an order that revisits
        // each kind after others have taken its slot.
        var generator = SystemRandomNumberGenerator()
        var decisions: [DecisionResponse] = []
        for round in 0..<2000 {
            let kind = Int.random(in: 0..<300, using: &generator)
            let decision =
                kind % 7 == 0
                ? DecisionResponse(outcome: .deny, status: 403, errorCode: "forbidden", reason: "collection_denied", collectionID: "c\(kind)")
                : Self.allow(remaining: round, collection: "c\(kind)", policy: "p\(kind % 5)")
            decisions.append(decision)
        }
        var encoder = DecisionTemplateEncoder()
        var stream = FrameStream(maxFrameBytes: 4096)
        var small = 0
        for (index, frame) in Self.encode(decisions, templates: &encoder).enumerated() {
            if frame.readableBytes < 24 { small += 1 }
            stream.append(frame)
            let decoded = try #require(try stream.next())
            #expect(decoded == Frame(id: UInt64(index + 1), body: .decision(decisions[index])))
        }
        // Some repeats did find their template still in place.
        #expect(small > 0)
    }

    @Test("an answer that differs only in a fixed field is not sent as the template")
    func fixedFieldsMatter() throws {
        let base = Self.allow(remaining: 5)
        let variants = [
            DecisionResponse(outcome: .allow, rateLimitPolicy: base.rateLimitPolicy, rateLimit: base.rateLimit, collectionID: "orders", stripPrefixBytes: 4, authType: "token", policyID: "gold"),
            DecisionResponse(outcome: .allow, rateLimitPolicy: base.rateLimitPolicy, rateLimit: nil, collectionID: "orders", stripPrefixBytes: 3, authType: "token", policyID: "gold"),
            DecisionResponse(outcome: .allow, rateLimitPolicy: "", rateLimit: base.rateLimit, collectionID: "orders", stripPrefixBytes: 3, authType: "token", policyID: "gold"),
            DecisionResponse(outcome: .allow, rateLimitPolicy: base.rateLimitPolicy, rateLimit: base.rateLimit, collectionID: "orders", stripPrefixBytes: 3, authType: "jwt", policyID: "gold"),
        ]
        for variant in variants {
            #expect(!DecisionTemplates.sameFixedFields(base, variant), "\(variant)")
            var encoder = DecisionTemplateEncoder()
            var stream = FrameStream(maxFrameBytes: 4096)
            for (index, frame) in Self.encode([base, variant, base], templates: &encoder).enumerated() {
                stream.append(frame)
                let decoded = try #require(try stream.next())
                #expect(decoded.body == .decision([base, variant, base][index]))
            }
        }
        #expect(DecisionTemplates.sameFixedFields(base, Self.allow(remaining: 0, reset: 9)))
    }

    @Test("a template used before it is defined closes the stream; a fresh connection starts empty")
    func undefinedTemplate() throws {
        var encoder = DecisionTemplateEncoder()
        let frames = Self.encode([Self.allow(remaining: 2), Self.allow(remaining: 1)], templates: &encoder)
        var stream = FrameStream(maxFrameBytes: 4096)
        stream.append(frames[1])
        #expect(throws: FrameError.invalidField("decision_ref.template_id")) { try stream.next() }
        // The one-off decoders keep no table either.
        var lone = frames[1]
        #expect(throws: FrameError.invalidField("decision_ref.template_id")) { try FrameParser(maxFrameBytes: 4096).next(from: &lone) }
    }

    /// The bytes of fuzz/seeds/FuzzFrames/decision-template, written by
    /// hand from the .proto: the first frame's field 16 defines template 5,
    /// the second is a DecisionRef (envelope field 10) to it.
    @Test("the wire form is the .proto's: DecisionResponse field 16, Envelope field 10")
    func wireForm() throws {
        let bytes: [UInt8] = [
            0, 0, 0, 0x12, 0x08, 1, 0x22, 0x0E, 0x10, 0xC8, 0x01, 0x52, 6, 0x6F, 0x72, 0x64, 0x65, 0x72, 0x73, 0x80, 0x01, 5,
            0, 0, 0, 0x08, 0x08, 2, 0x52, 0x04, 0x08, 5, 0x18, 3,
        ]
        var stream = FrameStream(maxFrameBytes: 4096)
        stream.append(ByteBuffer(bytes: bytes))
        let first = try #require(try stream.next())
        let second = try #require(try stream.next())
        let expected = DecisionResponse(outcome: .allow, status: 200, collectionID: "orders")
        #expect(first == Frame(id: 1, body: .decision(expected)))
        #expect(second == Frame(id: 2, body: .decision(expected)))
    }

    @Test("template numbers outside 1...64 are refused")
    func outOfRange() {
        var table = DecisionTemplateTable()
        let answer = Self.allow(remaining: 1)
        #expect(!table.define(0, answer) && !table.define(65, answer))
        #expect(table.define(64, answer) && table.template(64) === answer)
        #expect(table.template(0) == nil && table.template(65) == nil && table.template(1) == nil)
    }
}
