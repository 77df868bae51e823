/// The request headers the gateway itself acts on, read in one pass.
struct RequestIdentity {
    var clientID = ""
    var profileID = ""
    var authorization = ""
    var requestID: String? = nil
    var forwardedFor: [Substring] = []
    var expectsContinue = false
    /// An identity or credential header sent twice: ambiguous, so refused
    /// rather than guessing which one the client meant.
    var duplicate: String? = nil

    init(_ head: HTTPHead) {
        var seenClient = false
        var seenProfile = false
        var seenAuthorization = false
        for field in head.fields {
            switch field.nameEnd - field.nameStart {
            case 11 where head.nameIs(field, "x-client-id"):
                if seenClient { self.duplicate = "X-Client-ID" }
                seenClient = true
                self.clientID = head.value(field)
            case 12 where head.nameIs(field, "x-profile-id"):
                if seenProfile { self.duplicate = "X-Profile-ID" }
                seenProfile = true
                self.profileID = head.value(field)
            case 12 where head.nameIs(field, "x-request-id"):
                if self.requestID == nil { self.requestID = head.value(field) }
            case 13 where head.nameIs(field, "authorization"):
                if seenAuthorization { self.duplicate = "Authorization" }
                seenAuthorization = true
                self.authorization = head.value(field)
            case 15 where head.nameIs(field, "x-forwarded-for"):
                self.forwardedFor.append(Substring(head.value(field)))
            case 6 where head.nameIs(field, "expect"):
                self.expectsContinue = head.valueHasToken(field, "100-continue")
            default:
                break
            }
        }
    }
}
