import Foundation
import NIOCore
import NIOSSL
import Shared

/// The optional TLS listener (`server.tls`, SPEC §9): TLS 1.2+, the same
/// HTTP handling as the plain listener (`HTTPListener.bind(tls:)`) behind
/// a NIOSSL server handler.
/// With `client_ca` the handshake asks for a client certificate without
/// requiring one (other profiles use the same port); a certificate that is
/// presented must verify against the CA, or the handshake fails, so an
/// untrusted or expired certificate never reaches a worker.
enum TLSListener {
    struct SetupError: Error, CustomStringConvertible {
        let description: String
    }

    /// Loads the certificate, key and client CA (paths relative to the
    /// config file's directory), naming the field that failed.
    static func context(_ tls: TLSConfig, relativeTo directory: String) throws(SetupError) -> NIOSSLContext {
        func resolve(_ path: String) -> String {
            path.hasPrefix("/") || directory.isEmpty ? path : directory + "/" + path
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(resolve(tls.cert))
        } catch {
            throw SetupError(description: "server.tls.cert: cannot load \(resolve(tls.cert)): \(error)")
        }
        guard !chain.isEmpty else { throw SetupError(description: "server.tls.cert: no certificate in \(resolve(tls.cert))") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: resolve(tls.key), format: .pem)
        } catch {
            throw SetupError(description: "server.tls.key: cannot load \(resolve(tls.key)): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let ca = tls.clientCA {
            let path = resolve(ca)
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw SetupError(description: "server.tls.client_ca: cannot read \(path)")
            }
            configuration.trustRoots = .file(path)
            configuration.certificateVerification = .optionalVerification
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SetupError(description: "server.tls: \(error) (does the key match the certificate?)")
        }
    }

    /// The verified client certificate of a completed handshake, as the
    /// worker's mtls check reads it; nil when the client sent none.
    static func peerIdentity(_ pipeline: ChannelPipeline) -> CertificateIdentity? {
        guard let handler = try? pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let certificate = handler.peerCertificate, let der = try? certificate.toDERBytes(),
            let subject = X509Identity.subjectRFC2253(der: der)
        else { return nil }
        return CertificateIdentity(subject: subject, fingerprint: X509Identity.fingerprint(der: der))
    }
}
