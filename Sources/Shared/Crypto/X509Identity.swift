import CCrypto

/// What the gateway binds an mtls profile to, read from a certificate the
/// TLS layer already verified: its subject as an RFC 2253 string (the same
/// form nginx's `$ssl_client_s_dn` uses, so both modes look alike to the
/// worker) and the SHA-256 of its DER encoding.
public enum X509Identity {
    public static func fingerprint(der: [UInt8]) -> String {
        Crypto.sha256(der).hex
    }

    /// nil when the bytes are not a certificate.
    public static func subjectRFC2253(der: [UInt8]) -> String? {
        let certificate: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor = buffer.baseAddress
            return d2i_X509(nil, &cursor, buffer.count)
        }
        guard let certificate else { return nil }
        defer { X509_free(certificate) }
        guard let name = X509_get_subject_name(certificate), let bio = BIO_new(BIO_s_mem()) else { return nil }
        defer { BIO_free(bio) }
        guard X509_NAME_print_ex(bio, name, 0, PCL_XN_FLAG_RFC2253) >= 0 else { return nil }
        let pending = Int(BIO_ctrl_pending(bio))
        var text = [UInt8](repeating: 0, count: pending)
        let read = text.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32(pending)) }
        guard read >= 0 else { return nil }
        return String(decoding: text.prefix(Int(read)), as: UTF8.self)
    }
}
