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

    /// The token's user when its signature, `exp` (required) and `nbf` (if any) hold at `now`
    /// (seconds since 1970).
    func verify(_ token: String, now: Double = Double(SystemClock.wallMilliseconds()) / 1_000) -> Result<
        TokenUser, TokenRejection
    > {
        func invalid(_ message: String) -> Result<TokenUser, TokenRejection> {
            .failure(TokenRejection(reason: .invalid, message: message))
        }
        let bytes = Array(token.utf8)
        guard bytes.count <= Self.maxTokenLength else {
            return invalid("the token is longer than \(Self.maxTokenLength) bytes")
        }
        let unreadable = "the token is not a JWT zpubd can read (header.claims.signature, base64url JSON)"
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]), let header = JSONValue.parse(headerBytes),
            let signature = Base64URL.decode(parts[2])
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
        guard let claimBytes = Base64URL.decode(parts[1]), let claims = JSONValue.parse(claimBytes),
            case .object = claims.kind
        else { return invalid(unreadable) }
        // A claim that is absent (or null, as JSON decoders read it) is `.some(nil)`; one of the
        // wrong type is nil.
        func claim(_ name: String) -> JSONValue? {
            guard let value = claims[name], value.kind != .null else { return nil }
            return value
        }
        func number(_ name: String) -> Double?? {
            guard let value = claim(name) else { return .some(nil) }
            // Finite: "exp": 1e999 would be a token that never expires.
            guard case .number = value.kind,
                let number = Double(String(decoding: claimBytes[value.range], as: UTF8.self)), number.isFinite
            else { return nil }
            return .some(number)
        }
        func strings(_ name: String) -> [String]?? {
            guard let value = claim(name) else { return .some(nil) }
            guard let strings = value.strings else { return nil }
            return .some(strings)
        }
        guard let exp = number("exp"), let nbf = number("nbf") else {
            return invalid("the token's exp and nbf must be finite numbers (seconds since 1970)")
        }
        guard let exp else {
            return invalid("the token has no exp claim; zpubd accepts only tokens that expire")
        }
        guard let subscribe = strings("subscribe"), let publish = strings("publish") else {
            return invalid("the token's subscribe and publish claims must be arrays of topic prefixes")
        }
        let subject = claim("sub")
        guard subject == nil || subject?.string != nil else { return invalid("the token's sub claim must be a string") }
        guard now < exp else {
            return .failure(
                TokenRejection(reason: .expired, message: "the token expired; get a fresh one from the app"))
        }
        if let nbf, now < nbf {
            return invalid("the token is not valid yet (nbf)")
        }
        return .success(
            TokenUser(
                subject: subject?.string ?? "(no sub)", expires: exp,
                subscribe: (subscribe ?? []).map { Array($0.utf8) },
                publish: (publish ?? []).map { Array($0.utf8) }))
    }
}

/// base64url without padding (RFC 7515 2, RFC 4648 5), as JWTs carry their parts. Strict:
/// each byte string has exactly one spelling, so a signed token cannot be rewritten into
/// another accepted string.
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        Base64.encode(bytes).utf8.compactMap { byte in
            switch byte {
            case UInt8(ascii: "+"): UInt8(ascii: "-")
            case UInt8(ascii: "/"): UInt8(ascii: "_")
            case UInt8(ascii: "="): nil
            default: byte
            }
        }
    }

    static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard let bytes = decodeLeniently(text), encode(bytes).elementsEqual(text) else { return nil }
        return bytes
    }

    /// Also accepts non-zero bits after the last whole byte (RFC 4648 3.5 lets decoders refuse
    /// them; `decode` does).
    private static func decodeLeniently(_ text: some Collection<UInt8>) -> [UInt8]? {
        var standard: [UInt8] = []
        standard.reserveCapacity(text.count + 3)
        for byte in text {
            switch byte {
            case UInt8(ascii: "-"): standard.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): standard.append(UInt8(ascii: "/"))
            // Padding, and the standard alphabet's own two characters, are not base64url.
            case UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "/"): return nil
            default: standard.append(byte)
            }
        }
        guard standard.count % 4 != 1 else { return nil }
        while standard.count % 4 != 0 { standard.append(UInt8(ascii: "=")) }
        return Base64.decode(String(decoding: standard, as: UTF8.self))
    }
}
