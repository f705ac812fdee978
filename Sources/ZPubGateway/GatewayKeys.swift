import NIOSSL
import ZPubCore

/// What `[http]` names by file: the JWT keys and the TLS certificate with its key. Read at start
/// and again on every reload (SIGHUP), before anything is applied, so that a missing or broken
/// file refuses the start, or the reload with the old keys kept in force.
public struct GatewayKeys: Sendable {
    let verifier: TokenVerifier?
    /// Nil: plain HTTP.
    let tls: NIOSSLContext?

    public var servesTLS: Bool { tls != nil }

    /// No JWT and no TLS.
    public static let none = GatewayKeys(verifier: nil, tls: nil)

    /// Throws `GatewayError` naming the file and what is wrong with it.
    public static func load(_ settings: HTTPSettings) throws -> GatewayKeys {
        let verifier = try TokenVerifier.load(
            secretFile: settings.jwtSecretFile, publicKeyFile: settings.jwtPublicKeyFile)
        var tls: NIOSSLContext?
        if let certificateFile = settings.tlsCertificateFile, let keyFile = settings.tlsKeyFile {
            tls = try makeTLSContext(certificateFile: certificateFile, keyFile: keyFile)
        }
        return GatewayKeys(verifier: verifier, tls: tls)
    }

    /// For the start and reload log lines: "JWT HS256, EdDSA; TLS", or "".
    public var summary: String {
        var parts: [String] = []
        if let verifier { parts.append("JWT \(verifier.acceptedAlgorithms.joined(separator: ", "))") }
        if tls != nil { parts.append("TLS") }
        return parts.joined(separator: "; ")
    }

    private static func makeTLSContext(certificateFile: String, keyFile: String) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(try TextFile.resolve(certificateFile))
        } catch {
            throw GatewayError(
                "tls_certificate_file \(certificateFile) cannot be read as PEM certificates (\(error)); check the path, its permissions and that it holds -----BEGIN CERTIFICATE-----"
            )
        }
        guard !chain.isEmpty else {
            throw GatewayError("tls_certificate_file \(certificateFile) holds no certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: try TextFile.resolve(keyFile), format: .pem)
        } catch {
            throw GatewayError(
                "tls_key_file \(keyFile) cannot be read as a PEM private key (\(error)); check the path and that zpubd's user may read it"
            )
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        // WebSocket and SSE ride on HTTP/1.1.
        configuration.applicationProtocols = ["http/1.1"]
        // A connection the gateway ends (a goodbye, an expired token, a client too slow) is
        // closed a second after its close_notify at most, as a goodbye waits for a client that
        // does not read (`Goodbye.grace`): NIO SSL's default waits 5 s for the client's own,
        // which most never send (Python's ssl, curl), and the connection kept its max_clients
        // slot, and zpubd's stop, that long (a walkthrough, 2026-12-07). The second lets what
        // a client still sends meanwhile be read, not answered with a reset that could take
        // the goodbye with it (a review).
        configuration.shutdownTimeout = .seconds(1)
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw GatewayError(
                "tls_key_file \(keyFile) does not fit tls_certificate_file \(certificateFile) (\(error)); the key must be the certificate's own"
            )
        }
    }
}
