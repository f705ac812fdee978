import ZPubCore

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

/// Checks JWTs (RFC 7519, compact JWS of RFC 7515) against the keys in `jwt_secret_file`
/// (HS256) and `jwt_public_key_file` (RS256 or EdDSA, PEM). Immutable: a reload builds a new
/// one.
///
/// The algorithm is chosen by the token's `alg` among the configured keys only, so a token can
/// never pick a key of another kind (an RSA public key is never used as an HMAC secret), and
/// `none` is never accepted. The signature is checked before any claim is read.
///
/// Written on libgcrypt (`SignatureKey`) and zpub's own JSON reader rather than on a JWT
/// package: jwt-kit and swift-crypto brought Foundation, a second BoringSSL and X.509 into
/// zpubd, 1 MiB of its idle memory and most of its build time (docs/performance.md, "Memory").
final class TokenVerifier: Sendable {
    /// One key per algorithm.
    private let keys: [SignatureKey.Algorithm: SignatureKey]
    /// Longer tokens are refused before they are decoded.
    static let maxTokenLength = 8_192

    var acceptedAlgorithms: [String] { keys.keys.map(\.rawValue).sorted() }

    private init(keys: [SignatureKey]) {
        self.keys = Dictionary(keys.map { ($0.algorithm, $0) }) { first, _ in first }
    }

    /// The verifier for these files, or nil when neither is set. Throws `GatewayError` naming
    /// the file and what is wrong with it.
    static func load(secretFile: String?, publicKeyFile: String?) throws -> TokenVerifier? {
        guard secretFile != nil || publicKeyFile != nil else { return nil }
        guard SignatureKey.libraryReady else {
            throw GatewayError(
                "libgcrypt, which checks JWT signatures, is older than the one zpubd was built with; upgrade libgcrypt20"
            )
        }
        var keys: [SignatureKey] = []
        if let secretFile {
            var secret = try readKeyFile(secretFile, key: "jwt_secret_file")
            // A trailing newline (echo > file) is not part of the secret.
            while let last = secret.last, last == 0x0A || last == 0x0D { secret.removeLast() }
            guard secret.count >= 32 else {
                throw GatewayError(
                    "jwt_secret_file \(secretFile) holds \(secret.count) bytes; an HS256 secret needs at least 32 (e.g. openssl rand -hex 32 > \(secretFile))"
                )
            }
            keys.append(.hmacSHA256(secret: secret))
        }
        if let publicKeyFile {
            let pem = try readKeyFile(publicKeyFile, key: "jwt_public_key_file")
            do {
                keys.append(SignatureKey(publicKey: try PublicKeyPEM.parse(String(decoding: pem, as: UTF8.self))))
            } catch {
                throw GatewayError(
                    "jwt_public_key_file \(publicKeyFile) \(error); it must hold an Ed25519 or an RSA (2048 bits or more) public key in PEM: export one with openssl pkey -in KEY -pubout"
                )
            }
        }
        return TokenVerifier(keys: keys)
    }

    private static func readKeyFile(_ path: String, key: String) throws -> [UInt8] {
        do {
            return try TextFile.readBytes(path)
        } catch {
            throw GatewayError(
                "\(key) \(path) cannot be read (\(error)); check the path and that zpubd's user may read it"
            )
        }
    }

    /// Why a string that does not parse as a JWT is refused.
    static let unreadable = "the token is not a JWT zpubd can read (header.claims.signature, base64url JSON)"

    /// The token's user when its signature, `exp` (required) and `nbf` (if any) hold at `now`
    /// (seconds since 1970).
    func verify(_ token: String, now: Double = SystemClock.wallSeconds()) -> Result<
        TokenUser, TokenRejection
    > {
        func invalid(_ message: String) -> Result<TokenUser, TokenRejection> {
            .failure(TokenRejection(reason: .invalid, message: message))
        }
        let bytes = Array(token.utf8)
        guard bytes.count <= Self.maxTokenLength else {
            return invalid("the token is longer than \(Self.maxTokenLength) bytes")
        }
        let unreadable = Self.unreadable
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64.decodeURL(parts[0]), let header = JSONValue.parse(headerBytes),
            let signature = Base64.decodeURL(parts[2])
        else { return invalid(unreadable) }
        guard let alg = header["alg"]?.string else { return invalid(unreadable) }
        guard let algorithm = SignatureKey.Algorithm(rawValue: alg), let key = keys[algorithm] else {
            return invalid(
                "the token is signed with \(alg); this gateway accepts \(acceptedAlgorithms.joined(separator: ", "))")
        }
        // RFC 7515 4.1.11: extensions a recipient does not understand make the token invalid;
        // zpubd understands none.
        guard header["crit"] == nil else {
            return invalid("the token has a crit header; zpubd supports no JWS extensions")
        }
        let signingInput = Array(bytes[..<parts[1].endIndex])
        guard key.verifies(signature, of: signingInput) else {
            return invalid("the token's signature does not match the gateway's \(alg) key")
        }
        guard let claimBytes = Base64.decodeURL(parts[1]), let claims = JSONValue.parse(claimBytes),
            case .object = claims.kind
        else { return invalid(unreadable) }
        // Each claim: nil when absent (or null, as JSON decoders read it); a claim of the wrong
        // type refuses the token with `message`.
        struct WrongType: Error { let message: String }
        func claim(_ name: String) -> JSONValue? {
            guard let value = claims[name], value.kind != .null else { return nil }
            return value
        }
        func number(_ name: String) throws(WrongType) -> Double? {
            guard let value = claim(name) else { return nil }
            // Finite: "exp": 1e999 would be a token that never expires.
            guard case .number = value.kind,
                let number = Double(String(decoding: claimBytes[value.range], as: UTF8.self)), number.isFinite
            else { throw WrongType(message: "the token's exp and nbf must be finite numbers (seconds since 1970)") }
            return number
        }
        func strings(_ name: String) throws(WrongType) -> [String] {
            guard let value = claim(name) else { return [] }
            guard let strings = value.strings else {
                throw WrongType(message: "the token's subscribe and publish claims must be arrays of topic prefixes")
            }
            return strings
        }
        func text(_ name: String) throws(WrongType) -> String? {
            guard let value = claim(name) else { return nil }
            guard let text = value.string else {
                throw WrongType(message: "the token's \(name) claim must be a string")
            }
            return text
        }
        let exp: Double
        let nbf: Double?
        let subscribe: [String]
        let publish: [String]
        let subject: String?
        do throws(WrongType) {
            nbf = try number("nbf")
            guard let expiry = try number("exp") else {
                throw WrongType(message: "the token has no exp claim; zpubd accepts only tokens that expire")
            }
            exp = expiry
            (subscribe, publish) = (try strings("subscribe"), try strings("publish"))
            subject = try text("sub")
        } catch {
            return invalid(error.message)
        }
        // Milliseconds (JavaScript's Date.now()) for seconds: a token valid for 55,000 years
        // (a walkthrough). Any Date.now() since 2001 is above 1e12, which seconds reach in the
        // year 33658; "never" written as 9999-12-31 (253402300799) stays below.
        if exp >= 1e12 {
            return invalid(
                "the token's exp (\(exp < 1e18 ? String(Int64(exp)) : String(exp))) is in milliseconds, not seconds since 1970 (in JavaScript: Math.floor(Date.now() / 1000) + lifetime)"
            )
        }
        guard now < exp else {
            return .failure(
                TokenRejection(reason: .expired, message: "the token expired; get a fresh one from the app"))
        }
        if let nbf, now < nbf {
            return invalid("the token is not valid yet (nbf)")
        }
        return .success(
            TokenUser(
                subject: subject ?? "(no sub)", expires: exp, subscribe: subscribe.map { Array($0.utf8) },
                publish: publish.map { Array($0.utf8) }))
    }
}
