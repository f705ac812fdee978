import Foundation
import XCTest
import ZPubCore

@testable import ZPubGateway

/// The JWT verifier against tokens it did not make: published test vectors (RFC 7515, RFC 8037)
/// and tokens signed by the openssl command line tool, with keys openssl generated.
final class TokenVerifierTests: XCTestCase {
    private let secret = String(repeating: "k", count: 40)
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("zpub-jwt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func file(_ name: String, _ contents: String) throws -> String {
        try contents.write(toFile: path(name), atomically: true, encoding: .utf8)
        return path(name)
    }

    /// Runs /usr/bin/openssl with `input` on its standard input; its standard output.
    @discardableResult
    private func openssl(_ arguments: [String], input: [UInt8] = []) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        try stdin.fileHandleForWriting.write(contentsOf: Data(input))
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(
            process.terminationStatus, 0,
            "openssl \(arguments.joined(separator: " ")): \(String(decoding: errors, as: UTF8.self))")
        return Array(output)
    }

    private func base64URL(_ bytes: [UInt8]) -> String {
        Base64.encode(bytes).replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
    }

    private enum Signer {
        case hmac(String)
        /// A private key file openssl made, for EdDSA or RS256.
        case ed25519(String)
        case rsa(String)
    }

    /// A compact JWS of `claims` (JSON text) under `header`, signed by openssl.
    private func token(_ claims: String, header: String, signer: Signer) throws -> String {
        let input = base64URL(Array(header.utf8)) + "." + base64URL(Array(claims.utf8))
        let signature: [UInt8]
        switch signer {
        case .hmac(let secret):
            signature = try openssl(
                ["dgst", "-sha256", "-mac", "HMAC", "-macopt", "key:\(secret)", "-binary"], input: Array(input.utf8))
        case .ed25519(let key):
            let message = try file("message", input)
            signature = try openssl(["pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", message])
        case .rsa(let key):
            signature = try openssl(["dgst", "-sha256", "-sign", key, "-binary"], input: Array(input.utf8))
        }
        return input + "." + base64URL(signature)
    }

    private func claims(
        exp: Double? = 3_600, nbf: Double? = nil, subscribe: [String] = ["a."], publish: [String] = ["a.out."]
    ) -> String {
        let now = Date().timeIntervalSince1970
        var members = [#""sub":"alice""#]
        if let exp { members.append(#""exp":\#(Int(now + exp))"#) }
        if let nbf { members.append(#""nbf":\#(Int(now + nbf))"#) }
        let list = { (prefixes: [String]) in "[" + prefixes.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
        members.append(#""subscribe":\#(list(subscribe)),"publish":\#(list(publish))"#)
        return "{" + members.joined(separator: ",") + "}"
    }

    private func hs256(_ claims: String, secret: String? = nil) throws -> String {
        try token(claims, header: #"{"alg":"HS256","typ":"JWT"}"#, signer: .hmac(secret ?? self.secret))
    }

    private func rejection(_ verifier: TokenVerifier, _ token: String) -> TokenRejection? {
        if case .failure(let rejection) = verifier.verify(token) { return rejection }
        return nil
    }

    func testAnHS256TokenGivesItsUserAndClaims() throws {
        let verifier = try XCTUnwrap(
            try TokenVerifier.load(secretFile: try file("secret", secret + "\n"), publicKeyFile: nil))
        XCTAssertEqual(verifier.acceptedAlgorithms, ["HS256"])
        let user = try verifier.verify(try hs256(claims())).get()
        XCTAssertEqual(user.subject, "alice")
        XCTAssertEqual(user.subscribe, [Array("a.".utf8)])
        XCTAssertEqual(user.publish, [Array("a.out.".utf8)])
        XCTAssertEqual(user.expires, Date().timeIntervalSince1970 + 3_600, accuracy: 5)
    }

    /// RFC 7515 A.1: a binary 64-byte secret, a header with CR LF inside, exp 1300819380.
    func testTheHS256ExampleOfRFC7515() throws {
        let key = try XCTUnwrap(
            Base64.decodeURL(
                Array("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow".utf8)))
        XCTAssertEqual(key.count, 64)
        XCTAssertTrue(FileManager.default.createFile(atPath: path("binary-secret"), contents: Data(key)))
        let verifier = try XCTUnwrap(try TokenVerifier.load(secretFile: path("binary-secret"), publicKeyFile: nil))
        let token =
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        let user = try verifier.verify(token, now: 1_300_819_379).get()
        XCTAssertEqual(user.expires, 1_300_819_380)
        XCTAssertEqual(user.subject, "(no sub)")
        XCTAssertEqual(user.subscribe, [])
        guard case .failure(let late) = verifier.verify(token, now: 1_300_819_380) else {
            return XCTFail("expired accepted")
        }
        XCTAssertEqual(late.reason, .expired)
        // One bit off in the signature, or the signature cut short, and it is refused.
        var flipped = Array(token.utf8)
        flipped[flipped.count - 2] = UInt8(ascii: "Y")
        for forged in [String(decoding: flipped, as: UTF8.self), String(token.dropLast(11))] {
            guard case .failure(let refusal) = verifier.verify(forged, now: 1_300_819_379) else {
                return XCTFail("\(forged) accepted")
            }
            XCTAssertEqual(refusal.message, "the token's signature does not match the gateway's HS256 key")
        }
    }

    /// RFC 8037 A.4: the Ed25519 example, checked by the key itself (its payload is not claims).
    func testTheEd25519ExampleOfRFC8037() throws {
        let publicKey = try XCTUnwrap(Base64.decodeURL(Array("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".utf8)))
        let key = SignatureKey(publicKey: .ed25519(publicKey))
        let signature = try XCTUnwrap(
            Base64.decodeURL(
                Array("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg".utf8)))
        let input = Array("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc".utf8)
        XCTAssertTrue(key.verifies(signature, of: input))
        XCTAssertFalse(key.verifies(signature, of: input.dropLast() + [UInt8(ascii: "h")]))
        XCTAssertFalse(key.verifies(Array(signature.dropLast()), of: input))
        // S + L (L the group order) is the same signature to libgcrypt; RFC 8032 refuses it.
        let order: [UInt8] =
            [0xED, 0xD3, 0xF5, 0x5C, 0x1A, 0x63, 0x12, 0x58, 0xD6, 0x9C, 0xF7, 0xA2, 0xDE, 0xF9, 0xDE, 0x14]
            + [UInt8](repeating: 0, count: 15) + [0x10]
        var carry = 0
        var malleated = Array(signature[..<32])
        for index in 0..<32 {
            let sum = Int(signature[32 + index]) + Int(order[index]) + carry
            malleated.append(UInt8(sum & 0xFF))
            carry = sum >> 8
        }
        XCTAssertFalse(key.verifies(malleated, of: input))
    }

    func testExpiredForgedUnsignedMalformedAndTimelessTokensAreRefused() throws {
        let verifier = try XCTUnwrap(try TokenVerifier.load(secretFile: try file("secret", secret), publicKeyFile: nil))
        XCTAssertEqual(rejection(verifier, try hs256(claims(exp: -10)))?.reason, .expired)
        let forged = try hs256(claims(), secret: String(repeating: "x", count: 40))
        XCTAssertEqual(rejection(verifier, forged)?.reason, .invalid)
        XCTAssertTrue(rejection(verifier, try hs256(claims(exp: nil)))?.message.contains("exp") ?? false)
        XCTAssertTrue(rejection(verifier, try hs256(claims(nbf: 600)))?.message.contains("nbf") ?? false)
        XCTAssertNil(rejection(verifier, try hs256(claims(nbf: -600))))
        // alg "none": the header says so, and the signature is empty.
        let good = try hs256(claims())
        let parts = good.split(separator: ".")
        let none = base64URL(Array(#"{"alg":"none","typ":"JWT"}"#.utf8))
        XCTAssertTrue(rejection(verifier, "\(none).\(parts[1]).")?.message.contains("none") ?? false)
        // A truncated MAC (libgcrypt would compare a prefix) is refused.
        let truncated = "\(parts[0]).\(parts[1]).\(parts[2].dropLast(11))"
        XCTAssertEqual(rejection(verifier, truncated)?.reason, .invalid)
        // Padding, the standard alphabet, a fourth part, no parts: not a compact JWS.
        XCTAssertNotNil(rejection(verifier, good + "="))
        XCTAssertNotNil(rejection(verifier, good + ".x"))
        XCTAssertEqual(Base64.decodeURL(Array("YQ".utf8)), [0x61])
        XCTAssertEqual(Base64.decodeURL(Array("-_8".utf8)), [0xFB, 0xFF])
        XCTAssertNil(Base64.decodeURL(Array("YQ==".utf8)))
        XCTAssertNil(Base64.decodeURL(Array("+/8".utf8)))
        XCTAssertNil(Base64.decodeURL(Array("YWJjZ".utf8)))
        // Bits after the last whole byte must be zero: "YR" decodes to the same byte as "YQ".
        XCTAssertNil(Base64.decodeURL(Array("YR".utf8)))
        XCTAssertNil(Base64.decodeURL(Array("YWJ".utf8)))
        XCTAssertEqual(Base64.decodeURL(Array("YWI".utf8)), Array("ab".utf8))
        // So a signature cannot be respelled: 43 characters carry 32 bytes and 2 spare bits.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var respelled = Array(good.utf8)
        respelled[respelled.count - 1] = alphabet[alphabet.firstIndex(of: respelled.last!)! ^ 1]
        XCTAssertEqual(rejection(verifier, String(decoding: respelled, as: UTF8.self))?.reason, .invalid)
        XCTAssertEqual(rejection(verifier, "not-a-jwt")?.reason, .invalid)
        XCTAssertEqual(rejection(verifier, String(repeating: "a", count: 10_000))?.reason, .invalid)
        // Extensions zpubd does not understand, and claims of the wrong type.
        let critical = try token(claims(), header: #"{"alg":"HS256","crit":["exp"]}"#, signer: .hmac(secret))
        XCTAssertTrue(rejection(verifier, critical)?.message.contains("crit") ?? false)
        let textExp = try hs256(#"{"exp":"tomorrow"}"#)
        XCTAssertTrue(rejection(verifier, textExp)?.message.contains("numbers") ?? false)
        let textPrefixes = try hs256(#"{"exp":4102444800,"subscribe":"a."}"#)
        XCTAssertTrue(rejection(verifier, textPrefixes)?.message.contains("arrays") ?? false)
        let numericSub = try hs256(#"{"exp":4102444800,"sub":7}"#)
        XCTAssertTrue(rejection(verifier, numericSub)?.message.contains("sub") ?? false)
        let endless = try hs256(#"{"exp":1e999}"#)
        XCTAssertTrue(rejection(verifier, endless)?.message.contains("finite") ?? false)
        // JavaScript's Date.now() is milliseconds: such an exp was a token for 55,000 years.
        let milliseconds = try hs256(#"{"exp":1796601600000}"#)
        XCTAssertTrue(rejection(verifier, milliseconds)?.message.contains("in milliseconds") ?? false)
        XCTAssertNil(rejection(verifier, try hs256(#"{"exp":253402300799}"#)), "9999-12-31, a common 'never'")
        // null is an absent claim, as JSON decoders (and jwt-kit before) read it.
        let nulls = try hs256(#"{"exp":4102444800,"nbf":null,"sub":null,"subscribe":null,"publish":["p."]}"#)
        let user = try verifier.verify(nulls).get()
        XCTAssertEqual(user.subject, "(no sub)")
        XCTAssertEqual(user.publish, [Array("p.".utf8)])
        let notAnObject = try hs256(#"[1]"#)
        XCTAssertEqual(rejection(verifier, notAnObject)?.reason, .invalid)
    }

    func testAnEdDSAKeyChecksEdDSATokensAndNoOthers() throws {
        try openssl(["genpkey", "-algorithm", "ed25519", "-out", path("ed.key")])
        try openssl(["pkey", "-in", path("ed.key"), "-pubout", "-out", path("ed.pub")])
        let verifier = try XCTUnwrap(try TokenVerifier.load(secretFile: nil, publicKeyFile: path("ed.pub")))
        XCTAssertEqual(verifier.acceptedAlgorithms, ["EdDSA"])
        let token = try token(claims(subscribe: ["b."]), header: #"{"alg":"EdDSA"}"#, signer: .ed25519(path("ed.key")))
        XCTAssertEqual(try verifier.verify(token).get().subscribe, [Array("b.".utf8)])
        // An HS256 token (signed with anything) finds no key here.
        guard case .failure(let rejection) = verifier.verify(try hs256(claims())) else {
            return XCTFail("HS256 accepted")
        }
        XCTAssertTrue(rejection.message.contains("HS256"), rejection.message)
        // Another key's signature does not pass.
        try openssl(["genpkey", "-algorithm", "ed25519", "-out", path("other.key")])
        let other = try self.token(claims(), header: #"{"alg":"EdDSA"}"#, signer: .ed25519(path("other.key")))
        XCTAssertEqual(self.rejection(verifier, other)?.reason, .invalid)
    }

    func testAnRSAKeyChecksRS256TokensAndCannotBeUsedAsAnHMACSecret() throws {
        try openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path("rsa.key")])
        try openssl(["pkey", "-in", path("rsa.key"), "-pubout", "-out", path("rsa.pub")])
        let verifier = try XCTUnwrap(try TokenVerifier.load(secretFile: nil, publicKeyFile: path("rsa.pub")))
        XCTAssertEqual(verifier.acceptedAlgorithms, ["RS256"])
        let token = try token(claims(), header: #"{"alg":"RS256","typ":"JWT"}"#, signer: .rsa(path("rsa.key")))
        XCTAssertEqual(try verifier.verify(token).get().subject, "alice")
        // A leading zero byte, or s + n: the same number modulo n to libgcrypt, refused by
        // RFC 8017 (a signature is exactly as long as the modulus, and below it).
        guard
            case .rsa(let modulus, let exponent) = try PublicKeyPEM.parse(
                String(contentsOfFile: path("rsa.pub"), encoding: .utf8))
        else {
            return XCTFail("not an RSA key")
        }
        let key = SignatureKey(publicKey: .rsa(modulus: modulus, exponent: exponent))
        let signingInput = Array(
            token.utf8.split(separator: UInt8(ascii: "."))[0...1].joined(separator: [UInt8(ascii: ".")]))
        let signature = try XCTUnwrap(Base64.decodeURL(Array(token.split(separator: ".")[2].utf8)))
        XCTAssertTrue(key.verifies(signature, of: signingInput))
        XCTAssertFalse(key.verifies([0] + signature, of: signingInput))
        var sum: [UInt8] = []
        var carry = 0
        for (s, n) in zip(signature.reversed(), modulus.reversed()) {
            let digit = Int(s) + Int(n) + carry
            sum.insert(UInt8(digit & 0xFF), at: 0)
            carry = digit >> 8
        }
        if carry > 0 { sum.insert(UInt8(carry), at: 0) }
        XCTAssertFalse(key.verifies(sum, of: signingInput))
        // The classic confusion: HS256 "signed" with the public key's PEM text as the secret.
        let pem = try String(contentsOfFile: path("rsa.pub"), encoding: .utf8)
        let confused = try hs256(claims(), secret: pem.replacingOccurrences(of: "\n", with: ""))
        XCTAssertTrue(rejection(verifier, confused)?.message.contains("accepts RS256") ?? false)
        // The same key as PKCS #1 ("BEGIN RSA PUBLIC KEY") checks the same token.
        try openssl(["rsa", "-pubin", "-in", path("rsa.pub"), "-RSAPublicKey_out", "-out", path("rsa1.pub")])
        let pkcs1 = try XCTUnwrap(try TokenVerifier.load(secretFile: nil, publicKeyFile: path("rsa1.pub")))
        XCTAssertEqual(try pkcs1.verify(token).get().subject, "alice")
        // Both kinds of key at once: each algorithm finds its own.
        let both = try XCTUnwrap(
            try TokenVerifier.load(secretFile: try file("secret", secret), publicKeyFile: path("rsa.pub")))
        XCTAssertEqual(both.acceptedAlgorithms, ["HS256", "RS256"])
        XCTAssertNil(rejection(both, token))
        XCTAssertNil(rejection(both, try hs256(claims())))
        XCTAssertNotNil(rejection(both, confused))
    }

    func testBadKeyFilesAreRefusedWithTheFileAndTheReason() throws {
        XCTAssertNil(try TokenVerifier.load(secretFile: nil, publicKeyFile: nil))
        func refusal(secret: String? = nil, publicKey: String? = nil) -> String {
            do {
                _ = try TokenVerifier.load(secretFile: secret, publicKeyFile: publicKey)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(refusal(secret: "/nonexistent/secret").contains("/nonexistent/secret"))
        XCTAssertTrue(refusal(secret: "/nonexistent/secret").contains("No such file"))
        XCTAssertTrue(refusal(secret: try file("short", "tooshort")).contains("at least 32"))
        XCTAssertTrue(refusal(publicKey: try file("junk.pem", "junk")).contains("PEM"))
        try openssl(["genpkey", "-algorithm", "ed25519", "-out", path("ed.key")])
        let privateKey = refusal(publicKey: path("ed.key"))
        XCTAssertTrue(privateKey.contains("private key") && privateKey.contains("-pubout"), privateKey)
        try openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", path("small.key")])
        try openssl(["pkey", "-in", path("small.key"), "-pubout", "-out", path("small.pub")])
        XCTAssertTrue(
            refusal(publicKey: path("small.pub")).contains("1024 bits"), refusal(publicKey: path("small.pub")))
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path("ec.key")])
        try openssl(["pkey", "-in", path("ec.key"), "-pubout", "-out", path("ec.pub")])
        XCTAssertTrue(refusal(publicKey: path("ec.pub")).contains("neither Ed25519 nor RSA"))
        let pem = try String(contentsOfFile: path("ec.pub"), encoding: .utf8)
        XCTAssertTrue(refusal(publicKey: try file("cut.pem", String(pem.dropLast(30)))).contains("END PUBLIC KEY"))
    }

    /// PKCS #1 RSA public keys made by hand: what openssl would never write.
    func testImplausibleRSAKeysAreRefused() {
        func der(_ tag: UInt8, _ contents: [UInt8]) -> [UInt8] {
            let count = contents.count
            let length: [UInt8] = count < 0x80 ? [UInt8(count)] : [0x82, UInt8(count >> 8), UInt8(count & 0xFF)]
            return [tag] + length + contents
        }
        func pem(modulus: [UInt8], exponent: [UInt8]) -> String {
            let body = der(0x30, der(0x02, modulus) + der(0x02, exponent))
            return "-----BEGIN RSA PUBLIC KEY-----\n\(Base64.encode(body))\n-----END RSA PUBLIC KEY-----\n"
        }
        // 2048 bits, top bit set, odd.
        let modulus = [0x00, 0xC3] + [UInt8](repeating: 0x5A, count: 254) + [0x01]
        XCTAssertNoThrow(try PublicKeyPEM.parse(pem(modulus: modulus, exponent: [0x01, 0x00, 0x01])))
        for (name, modulus, exponent) in [
            ("e = 1", modulus, [0x01]), ("e even", modulus, [0x01, 0x00, 0x00]), ("e = 0", modulus, [0x00]),
            ("n even", Array(modulus.dropLast()) + [0x02], [0x01, 0x00, 0x01]),
            ("2040 bits", Array(modulus.dropFirst(2)), [0x01, 0x00, 0x01]),
            ("16,392 bits", [0x00, 0xC3] + [UInt8](repeating: 0x5A, count: 2048) + [0x01], [0x01, 0x00, 0x01]),
        ] as [(String, [UInt8], [UInt8])] {
            XCTAssertThrowsError(try PublicKeyPEM.parse(pem(modulus: modulus, exponent: exponent)), name)
        }
    }

    func testEveryTruncationOfAKeyIsRefusedWithoutACrash() throws {
        try openssl(["genpkey", "-algorithm", "ed25519", "-out", path("ed.key")])
        let der = try openssl(["pkey", "-in", path("ed.key"), "-pubout", "-outform", "DER"])
        XCTAssertEqual(der.count, 44)
        for length in 0..<der.count {
            let pem =
                "-----BEGIN PUBLIC KEY-----\n\(Base64.encode(Array(der.prefix(length))))\n-----END PUBLIC KEY-----\n"
            XCTAssertThrowsError(try PublicKeyPEM.parse(pem), "\(length) bytes")
        }
        let whole = "-----BEGIN PUBLIC KEY-----\n\(Base64.encode(der))\n-----END PUBLIC KEY-----\n"
        XCTAssertEqual(try PublicKeyPEM.parse(whole), .ed25519(Array(der.suffix(32))))
        let trailing = "-----BEGIN PUBLIC KEY-----\n\(Base64.encode(der + [0]))\n-----END PUBLIC KEY-----\n"
        XCTAssertThrowsError(try PublicKeyPEM.parse(trailing))
    }
}
