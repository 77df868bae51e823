import NIOCore
import Testing

@testable import Shared

@Suite("Frame codec")
struct FrameCodecTests {
    let parser = FrameParser(maxFrameBytes: 4096)

    static let samples: [Frame] = [
        Frame(id: 0, body: .hello(Hello(role: .router, workerIndex: 3, pid: 4242))),
        Frame(
            id: 7,
            body: .decide(
                DecisionRequest(
                    clientID: "acme-mobile", profileID: "partner-prod", method: "POST", path: "/orders/7?x=1",
                    sourceIP: IPAddress("10.1.2.3"), authorization: "Bearer pcl_abc"))),
        Frame(id: 8, body: .decide(DecisionRequest(clientID: "ü-ñicode", sourceIP: IPAddress("2001:db8::1")))),
        Frame(id: 9, body: .decide(DecisionRequest())),
        Frame(
            id: .max,
            body: .decision(
                DecisionResponse(
                    outcome: .deny, status: 429, errorCode: "rate_limit_exceeded", reason: "rate_limit", message: "slow down",
                    retryAfterSeconds: 3, allow: "", rateLimitPolicy: "\"second\";q=10;w=1", rateLimit: RateLimitValue(name: "second", remaining: 0, reset: 1),
                    collectionID: "orders", stripPrefixBytes: 0, authType: "token", policyID: "standard"))),
        Frame(id: 10, body: .decision(DecisionResponse(outcome: .allow, collectionID: "orders", stripPrefixBytes: 7))),
        Frame(id: 11, body: .decision(DecisionResponse(outcome: .unavailable, status: 503))),
        Frame(id: 0, body: .config(ConfigSnapshotMessage(version: 12, modelJSON: Array("{\"a\":1}".utf8)))),
        Frame(id: 0, body: .configAck(ConfigAck(version: 12, error: "nope"))),
    ]

    @Test("every message kind survives a round trip", arguments: samples)
    func roundTrip(_ frame: Frame) throws {
        var buffer = ByteBuffer()
        FrameCodec.encode(frame, into: &buffer)
        let decoded = try #require(try self.parser.next(from: &buffer))
        #expect(decoded == frame)
        #expect(buffer.readableBytes == 0)
    }

    /// The two per-request frames are packed into a computed bound instead
    /// of an exact size (`FrameCodec.packedBound`): overrunning it would
    /// write past the buffer, so it is held at the varint boundaries and at
    /// every numeric field's largest value.
    @Test("per-request frames fit their packed bound and carry their exact length", arguments: [0, 1, 127, 128, 16_383, 16_384, 70_000])
    func packedBound(_ length: Int) throws {
        let text = String(repeating: "x", count: length)
        let frames = [
            Frame(
                id: .max,
                body: .decision(
                    DecisionResponse(
                        outcome: .unavailable, status: .max, errorCode: text, reason: text, message: text,
                        retryAfterSeconds: .max, allow: text, rateLimitPolicy: text,
                        rateLimit: RateLimitValue(name: text.isEmpty ? "n" : text, remaining: .max, reset: .max), collectionID: text,
                        stripPrefixBytes: .max, authType: text, policyID: text))),
            Frame(
                id: .max,
                body: .decide(
                    DecisionRequest(
                        clientID: text, profileID: text, method: text, path: text, sourceIP: IPAddress("2001:db8::1"),
                        authorization: text, certSubject: text, certFingerprint: text))),
        ]
        for (frame, (texts, fields)) in zip(frames, [(9 * length + 1, 16), (7 * length + 16, 9)]) {
            var buffer = ByteBuffer()
            FrameCodec.encode(frame, into: &buffer)
            let prefix = try #require(buffer.getInteger(at: buffer.readerIndex, as: UInt32.self))
            #expect(Int(prefix) == buffer.readableBytes - FrameCodec.lengthPrefixBytes)
            #expect(Int(prefix) <= FrameCodec.packedBound(textBytes: texts, fields: fields))
            let decoded = try #require(try FrameParser(maxFrameBytes: 1 << 24).next(from: &buffer))
            if case .decision(let response) = decoded.body {
                // Numbers clamp to the wire's uint32.
                #expect(response.status == Int(UInt32.max) && response.retryAfterSeconds == Int(UInt32.max))
                #expect(response.reason == text && response.policyID == text)
                #expect(response.rateLimit?.remaining == .max && response.rateLimit?.reset == .max)
            } else if case .decide(let request) = decoded.body {
                #expect(request.authorization == text && request.certFingerprint == text)
            } else {
                Issue.record("unexpected frame \(decoded)")
            }
        }
    }

    @Test("a stream reuses repeated decision texts and never hands out a stale one")
    func recentTexts() throws {
        let decisions = [
            DecisionResponse(outcome: .allow, rateLimit: RateLimitValue(name: "second", remaining: 9, reset: 1), collectionID: "orders", authType: "token", policyID: "gold"),
            DecisionResponse(outcome: .allow, rateLimit: RateLimitValue(name: "minute", remaining: 8, reset: 60), collectionID: "orders", authType: "token", policyID: "gold"),
            DecisionResponse(outcome: .allow, collectionID: "orders-archive-2026", authType: "jwt", policyID: ""),
            DecisionResponse(outcome: .deny, status: 403, errorCode: "forbidden", reason: "collection_denied", collectionID: "orders"),
        ]
        var buffer = ByteBuffer()
        for (index, decision) in decisions.enumerated() { FrameCodec.encode(Frame(id: UInt64(index), body: .decision(decision)), into: &buffer) }
        var stream = FrameStream(maxFrameBytes: 4096)
        stream.append(buffer)
        for (index, expected) in decisions.enumerated() {
            let frame = try #require(try stream.next())
            #expect(frame == Frame(id: UInt64(index), body: .decision(expected)))
        }
    }

    @Test("several frames in one buffer come out in order")
    func batch() throws {
        var buffer = ByteBuffer()
        for frame in Self.samples { FrameCodec.encode(frame, into: &buffer) }
        var decoded: [Frame] = []
        while let frame = try self.parser.next(from: &buffer) { decoded.append(frame) }
        #expect(decoded == Self.samples)
    }

    @Test("a stream cut into reads of every size yields every frame once, in order")
    func streamReassembles() throws {
        var whole = ByteBuffer()
        for frame in Self.samples { FrameCodec.encode(frame, into: &whole) }
        let bytes = Array(whole.readableBytesView)
        for chunk in [1, 2, 3, 5, 7, 64, 1000, bytes.count] {
            var stream = FrameStream(maxFrameBytes: 4096)
            var decoded: [Frame] = []
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + chunk)
                stream.append(ByteBuffer(bytes: bytes[offset..<end]))
                while let frame = try stream.next() { decoded.append(frame) }
                offset = end
            }
            #expect(decoded == Self.samples, "chunk \(chunk)")
            #expect(stream.heldBytes == 0)
        }
    }

    @Test("a stream refuses an oversized frame and garbage")
    func streamRefuses() {
        var oversized = FrameStream(maxFrameBytes: 16)
        var big = ByteBuffer()
        big.writeInteger(UInt32(17))
        oversized.append(big)
        #expect(throws: FrameError.oversized(length: 17, limit: 16)) { try oversized.next() }
        var garbage = FrameStream(maxFrameBytes: 4096)
        garbage.append(ByteBuffer(bytes: [0, 0, 0, 3, 0xFF, 0xFF, 0xFF]))
        #expect(throws: FrameError.malformed) { try garbage.next() }
    }

    @Test("a truncated frame waits for more bytes at every cut point")
    func truncated() throws {
        var whole = ByteBuffer()
        FrameCodec.encode(Self.samples[1], into: &whole)
        let bytes = Array(whole.readableBytesView)
        for cut in 0..<bytes.count {
            var partial = ByteBuffer(bytes: bytes[0..<cut])
            #expect(try self.parser.next(from: &partial) == nil, "cut at \(cut)")
            #expect(partial.readableBytes == cut, "nothing consumed at cut \(cut)")
        }
    }

    @Test("an oversized length is refused before its body is buffered")
    func oversized() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(4097))
        #expect(throws: FrameError.oversized(length: 4097, limit: 4096)) { try self.parser.next(from: &buffer) }
        var huge = ByteBuffer()
        huge.writeInteger(UInt32.max)
        #expect(throws: FrameError.oversized(length: Int(UInt32.max), limit: 4096)) { try self.parser.next(from: &huge) }
    }

    @Test("garbage bytes are a malformed frame, not a crash")
    func garbage() {
        var buffer = ByteBuffer()
        let junk: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x12, 0x99]
        buffer.writeInteger(UInt32(junk.count))
        buffer.writeBytes(junk)
        #expect(throws: FrameError.malformed) { try self.parser.next(from: &buffer) }
    }

    @Test("an envelope without a body is refused")
    func emptyEnvelope() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(0))
        #expect(throws: FrameError.missingBody) { try self.parser.next(from: &buffer) }
        var idOnly = ByteBuffer()
        idOnly.writeInteger(UInt32(2))
        idOnly.writeBytes([0x08, 0x05])  // field 1 (id) = 5, no body
        #expect(throws: FrameError.missingBody) { try self.parser.next(from: &idOnly) }
    }

    @Test("a source address of the wrong length is refused")
    func badAddress() {
        // Envelope{decide: DecisionRequest{source_ip: 3 bytes}}
        let request: [UInt8] = [0x2A, 0x03, 1, 2, 3]
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(request.count + 2))
        buffer.writeBytes([0x1A, UInt8(request.count)] + request)
        #expect(throws: FrameError.invalidField("decide.source_ip")) { try self.parser.next(from: &buffer) }
    }

    @Test("random bytes never crash the decoder")
    func fuzzLite() {
        var generator = SplitMix64(seed: 0x5eed)
        var failures = 0
        var successes = 0
        for _ in 0..<20_000 {
            let length = Int(generator.next() % 64)
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt32(length))
            buffer.writeBytes((0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
            do {
                _ = try self.parser.next(from: &buffer)
                successes += 1
            } catch {
                failures += 1
            }
        }
        #expect(failures + successes == 20_000)
        #expect(failures > 0)
    }

    @Test("bit flips in a valid frame decode or fail cleanly")
    func bitFlips() throws {
        var whole = ByteBuffer()
        FrameCodec.encode(Self.samples[1], into: &whole)
        let bytes = Array(whole.readableBytesView)
        for index in 4..<bytes.count {
            for bit in 0..<8 {
                var mutated = bytes
                mutated[index] ^= UInt8(1 << bit)
                var buffer = ByteBuffer(bytes: mutated)
                _ = try? self.parser.next(from: &buffer)
            }
        }
    }
}

/// Deterministic generator so a failing case reproduces.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
