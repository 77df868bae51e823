import Shared
import Testing

@testable import Router

/// Router-side auth pieces: the OIDC key fetch schedule and the ingress
/// certificate headers.
@Suite("OIDC key schedule and ingress certificate headers")
struct AuthEdgeTests {
    func state() -> KeySourceState {
        KeySourceState(source: "s", issuer: "https://idp", location: .jwks(FetchURL("https://idp/keys")!))
    }

    @Test func refreshesBeforeExpiryAndBacksOffOnFailure() {
        var state = self.state()
        #expect(state.isDue(mono: 0))
        state.started(mono: 0, unix: 1_000)
        #expect(!state.isDue(mono: 0))
        let changed = state.succeeded(document: Array("{\"keys\":[]}".utf8), maxAgeSeconds: 300, mono: 100, unix: 1_100)
        #expect(changed)
        #expect(state.version == 1)
        #expect(!state.isDue(mono: 100 + 239_999))
        #expect(state.isDue(mono: 100 + 240_000))  // 80% of max-age 300 s
        state.started(mono: 240_100, unix: 2_000)
        let again = state.succeeded(document: Array("{\"keys\":[]}".utf8), maxAgeSeconds: nil, mono: 240_200, unix: 2_100)
        #expect(!again)
        #expect(state.version == 1)  // unchanged document: same version
        state.started(mono: 800_000, unix: 3_000)
        state.failed(error: "down", mono: 800_100)
        #expect(state.message.jwksJSON == Array("{\"keys\":[]}".utf8))  // keys kept
        #expect(state.message.error == "down")
        #expect(state.isDue(mono: 805_100) && !state.isDue(mono: 805_099))  // 5 s backoff
        state.started(mono: 805_100, unix: 3_100)
        state.failed(error: "down", mono: 805_200)
        #expect(state.isDue(mono: 815_200) && !state.isDue(mono: 815_199))  // 10 s
        // Bounds on max-age.
        #expect(KeySourceState.maxAge(cacheControl: "public, max-age=3600") == 3600)
        #expect(KeySourceState.maxAge(cacheControl: "no-store") == 0)
        #expect(KeySourceState.maxAge(cacheControl: nil) == nil)
    }

    @Test func workerRequestsForFreshKeysAreRateLimited() {
        var state = self.state()
        state.started(mono: 0, unix: 0)
        let during = state.refreshRequested(mono: 10)
        #expect(during == .wait)
        _ = state.succeeded(document: [1], maxAgeSeconds: 600, mono: 50, unix: 50)
        let early = state.refreshRequested(mono: 9_999)
        #expect(early == .answerNow)
        let later = state.refreshRequested(mono: 10_000)
        #expect(later == .fetchNow)
        #expect(state.isDue(mono: 10_000))
    }

    @Test func forwardedClientCertElements() {
        let elements = ForwardedClientCert.elements(
            #"By=spiffe://a;Hash=aa;Subject="CN=first,OU=x",By=spiffe://b;Hash=bb;Subject="CN=last\"q,OU=y";URI="#)
        #expect(elements.count == 2)
        #expect(elements.last?["hash"] == "bb")
        #expect(elements.last?["subject"] == "CN=last\"q,OU=y")
        #expect(elements.first?["subject"] == "CN=first,OU=x")
    }
}
