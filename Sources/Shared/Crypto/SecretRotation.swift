/// Re-encrypts every `enc:v1:` value in a text (a YAML file, a stored
/// document's JSON) from one key to another, leaving everything else, even
/// comments, byte for byte. Values already under the new key are left as
/// they are, so a rotation that stopped half-way can simply be run again.
public enum SecretRotation {
    public struct Outcome: Equatable, Sendable {
        public let text: String
        public let rotated: Int
        public let alreadyRotated: Int
    }

    public static func rotate(_ text: String, from old: EncryptionKey, to new: EncryptionKey) throws(SecretError) -> Outcome {
        let prefix = Array(SecretValue.prefix.utf8)
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var rotated = 0, already = 0
        var i = 0
        while i < bytes.count {
            guard bytes[i] == prefix[0], i + prefix.count <= bytes.count, Array(bytes[i..<(i + prefix.count)]) == prefix else {
                out.append(bytes[i])
                i += 1
                continue
            }
            // enc:v1:<8 hex>:<standard base64>
            var end = i + prefix.count
            while end < bytes.count, Self.isValueByte(bytes[end]) { end += 1 }
            let value = String(decoding: bytes[i..<end], as: UTF8.self)
            let kid = value.dropFirst(SecretValue.prefix.count).prefix(8).lowercased()
            if kid == new.kid {
                out += bytes[i..<end]
                already += 1
            } else {
                let plaintext = try SecretValue.resolve(value, key: old, environment: [:])
                let sealed: String
                do {
                    sealed = try SecretValue.encrypt(plaintext, key: new)
                } catch {
                    throw SecretError.undecryptable
                }
                out += Array(sealed.utf8)
                rotated += 1
            }
            i = end
        }
        return Outcome(text: String(decoding: out, as: UTF8.self), rotated: rotated, alreadyRotated: already)
    }

    private static func isValueByte(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: "/")
            || c == UInt8(ascii: "=") || c == UInt8(ascii: ":")
    }
}
