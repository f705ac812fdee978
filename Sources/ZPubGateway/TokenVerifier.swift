import Dispatch
import JWTKit
import Synchronization
import ZPubCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A user vouched for by a JWT the web app issued (docs/http.md, "JWT credentials"): who, until
/// when, and which topic prefixes they may read and write.
struct TokenUser: Sendable, Equatable {
    /// The `sub` claim, shown in logs and /stats; "(no sub)" without one.
    var subject: String
    /// The `exp` claim, in seconds since 1970.
    var expires: Double
    var subscribe: [[UInt8]]
    var publish: [[UInt8]]

    func maySubscribe(_ prefix: [UInt8]) -> Bool { subscribe.contains { prefix.starts(with: $0) } }
    func mayPublish(_ topic: [UInt8]) -> Bool { publish.contains { topic.starts(with: $0) } }
    /// Every prefix of `prefixes` is also granted by this token.
    func covers(_ prefixes: some Sequence<String>) -> Bool {
        prefixes.allSatisfy { maySubscribe(Array($0.utf8)) }
    }
}

/// Why a JWT was refused; `message` is what the client is told.
struct TokenRejection: Error, Equatable {
    enum Reason: String { case expired = "token_expired", invalid = "bad_token" }
    var reason: Reason
    var message: String
}

/// Checks JWTs against the keys in `jwt_secret_file` (HS256) and `jwt_public_key_file` (RS256
/// or EdDSA, PEM), with vapor/jwt-kit. Immutable: a reload builds a new one.
///
/// The algorithm is chosen by the token's `alg` among the configured keys only, so a token can
/// never pick a key of another kind (an RSA public key is never used as an HMAC secret), and
/// `none` is never accepted.
final class TokenVerifier: Sendable {
    /// "HS256", "RS256" or "EdDSA" to the key that checks it.
    private let algorithms: [String: any JWTAlgorithm]
    /// Longer tokens are refused before they are decoded.
    static let maxTokenLength = 8_192

    var acceptedAlgorithms: [String] { algorithms.keys.sorted() }

    private init(algorithms: [String: any JWTAlgorithm]) {
        self.algorithms = algorithms
    }

    /// The verifier for these files, or nil when neither is set. Throws `GatewayError` naming
    /// the file and what is wrong with it.
    static func load(secretFile: String?, publicKeyFile: String?) throws -> TokenVerifier? {
        guard secretFile != nil || publicKeyFile != nil else { return nil }
        var keys: [(name: String, add: @Sendable (JWTKeyCollection) async -> Void)] = []
        if let secretFile {
            let secret = try readKeyFile(secretFile, key: "jwt_secret_file")
            // A trailing newline (echo > file) is not part of the secret.
            var bytes = Array(secret.utf8)
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            guard bytes.count >= 32 else {
                throw GatewayError(
                    "jwt_secret_file \(secretFile) holds \(bytes.count) bytes; an HS256 secret needs at least 32 (e.g. openssl rand -hex 32 > \(secretFile))"
                )
            }
            let key = HMACKey(from: bytes)
            keys.append(("HS256", { await $0.add(hmac: key, digestAlgorithm: .sha256) }))
        }
        if let publicKeyFile {
            let pem = try readKeyFile(publicKeyFile, key: "jwt_public_key_file")
            if let key = try? EdDSA.PublicKey(pem: pem) {
                keys.append(("EdDSA", { await $0.add(eddsa: key) }))
            } else {
                do {
                    let key = try Insecure.RSA.PublicKey(pem: pem)
                    keys.append(("RS256", { await $0.add(rsa: key, digestAlgorithm: .sha256) }))
                } catch {
                    throw GatewayError(
                        "jwt_public_key_file \(publicKeyFile) is neither an Ed25519 nor an RSA (2048 bits or more) public key in PEM (\(error)); export one with openssl pkey -pubout"
                    )
                }
            }
        }
        // jwt-kit hands out its checkers through an actor; fetched once here, they are plain
        // immutable values that every event loop may use without waiting.
        let fetched = Locked<[String: any JWTAlgorithm]>([:])
        let done = DispatchSemaphore(value: 0)
        Task {
            for (name, add) in keys {
                let collection = JWTKeyCollection()
                await add(collection)
                if let algorithm = try? await collection.getKey() {
                    fetched.withLock { $0[name] = algorithm }
                }
            }
            done.signal()
        }
        done.wait()
        return TokenVerifier(algorithms: fetched.withLock { $0 })
    }

    private static func readKeyFile(_ path: String, key: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GatewayError(
                "\(key) \(path) cannot be read (missing, or not readable by zpubd's user); check the path and its permissions"
            )
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The token's user when its signature, `exp` (required) and `nbf` (if any) hold at `now`.
    func verify(_ token: String, now: Date = Date()) -> Result<TokenUser, TokenRejection> {
        func invalid(_ message: String) -> Result<TokenUser, TokenRejection> {
            .failure(TokenRejection(reason: .invalid, message: message))
        }
        let bytes = Array(token.utf8)
        guard bytes.count <= Self.maxTokenLength else {
            return invalid("the token is longer than \(Self.maxTokenLength) bytes")
        }
        let parser = DefaultJWTParser()
        let header: JWTHeader
        let claims: TokenClaims
        let signature: Data
        do {
            (header, claims, signature) = try parser.parse(bytes, as: TokenClaims.self)
        } catch {
            return invalid("the token is not a JWT zpubd can read (header.claims.signature, base64url JSON)")
        }
        guard let alg = header.alg, let algorithm = algorithms[alg] else {
            return invalid(
                "the token is signed with \(header.alg ?? "no algorithm"); this gateway accepts \(acceptedAlgorithms.joined(separator: ", "))"
            )
        }
        do {
            let parts = try parser.getTokenParts(bytes)
            let signed = Array(parts.header) + [UInt8(ascii: ".")] + Array(parts.payload)
            guard try algorithm.verify(signature, signs: signed) else {
                return invalid("the token's signature does not match the gateway's \(alg) key")
            }
        } catch {
            return invalid("the token's signature cannot be checked: \(error)")
        }
        guard let exp = claims.exp else {
            return invalid("the token has no exp claim; zpubd accepts only tokens that expire")
        }
        guard now < exp.value else {
            return .failure(
                TokenRejection(reason: .expired, message: "the token expired; get a fresh one from the app"))
        }
        if let nbf = claims.nbf, now < nbf.value {
            return invalid("the token is not valid yet (nbf)")
        }
        return .success(
            TokenUser(
                subject: claims.sub?.value ?? "(no sub)", expires: exp.value.timeIntervalSince1970,
                subscribe: (claims.subscribe ?? []).map { Array($0.utf8) },
                publish: (claims.publish ?? []).map { Array($0.utf8) }))
    }
}

/// The claims zpubd reads; others are ignored.
private struct TokenClaims: JWTPayload {
    var sub: SubjectClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var subscribe: [String]?
    var publish: [String]?

    /// Checked by `TokenVerifier.verify`, which needs no await.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
