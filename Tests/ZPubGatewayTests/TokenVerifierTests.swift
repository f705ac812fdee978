import JWTKit
import XCTest

@testable import ZPubGateway

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The claims a web app would sign (docs/http.md, "JWT credentials").
private struct AppClaims: JWTPayload {
    var sub: SubjectClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var subscribe: [String]?
    var publish: [String]?
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

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

    private func file(_ name: String, _ contents: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try contents.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    private func claims(
        exp: Double? = 3_600, nbf: Double? = nil, subscribe: [String] = ["a."], publish: [String] = ["a.out."]
    ) -> AppClaims {
        AppClaims(
            sub: "alice", exp: exp.map { ExpirationClaim(value: Date(timeIntervalSinceNow: $0)) },
            nbf: nbf.map { NotBeforeClaim(value: Date(timeIntervalSinceNow: $0)) }, subscribe: subscribe,
            publish: publish)
    }

    private func hs256(_ payload: AppClaims, secret: String? = nil) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret ?? self.secret), digestAlgorithm: .sha256)
        return try await keys.sign(payload)
    }

    func testAnHS256TokenGivesItsUserAndClaims() async throws {
        let verifier = try XCTUnwrap(
            try TokenVerifier.load(secretFile: try file("secret", secret + "\n"), publicKeyFile: nil))
        let token = try await hs256(claims())
        let user = try verifier.verify(token).get()
        XCTAssertEqual(user.subject, "alice")
        XCTAssertEqual(user.subscribe, [Array("a.".utf8)])
        XCTAssertEqual(user.publish, [Array("a.out.".utf8)])
        XCTAssertEqual(user.expires, Date().timeIntervalSince1970 + 3_600, accuracy: 5)
    }

    func testExpiredForgedUnsignedAndTimelessTokensAreRefused() async throws {
        let verifier = try XCTUnwrap(try TokenVerifier.load(secretFile: try file("secret", secret), publicKeyFile: nil))
        func rejection(_ token: String) -> TokenRejection? {
            if case .failure(let rejection) = verifier.verify(token) { return rejection }
            return nil
        }
        let expired = try await hs256(claims(exp: -10))
        XCTAssertEqual(rejection(expired)?.reason, .expired)
        let forged = try await hs256(claims(), secret: String(repeating: "x", count: 40))
        XCTAssertEqual(rejection(forged)?.reason, .invalid)
        let timeless = try await hs256(claims(exp: nil))
        XCTAssertTrue(rejection(timeless)?.message.contains("exp") ?? false)
        let early = try await hs256(claims(nbf: 600))
        XCTAssertTrue(rejection(early)?.message.contains("nbf") ?? false)
        // alg "none": the header says so, and the signature is empty.
        let good = try await hs256(claims())
        let parts = good.split(separator: ".")
        let none = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64EncodedString()
            .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
        XCTAssertTrue(rejection("\(none).\(parts[1]).")?.message.contains("none") ?? false)
        XCTAssertEqual(rejection("not-a-jwt")?.reason, .invalid)
        XCTAssertEqual(rejection(String(repeating: "a", count: 10_000))?.reason, .invalid)
    }

    func testAnEdDSAKeyChecksEdDSATokensAndNoOthers() async throws {
        let signing = try EdDSA.PrivateKey(curve: .ed25519)
        let publicPEM = signing.publicKey.pemRepresentation
        let verifier = try XCTUnwrap(
            try TokenVerifier.load(secretFile: nil, publicKeyFile: try file("pub.pem", publicPEM)))
        XCTAssertEqual(verifier.acceptedAlgorithms, ["EdDSA"])
        let keys = JWTKeyCollection()
        await keys.add(eddsa: signing)
        let token = try await keys.sign(claims(subscribe: ["b."]))
        XCTAssertEqual(try verifier.verify(token).get().subscribe, [Array("b.".utf8)])
        // An HS256 token (signed with anything) finds no key here.
        let hmac = try await hs256(claims())
        guard case .failure(let rejection) = verifier.verify(hmac) else { return XCTFail("HS256 accepted") }
        XCTAssertTrue(rejection.message.contains("HS256"), rejection.message)
    }

    func testBadKeyFilesAreRefusedWithTheFileAndTheReason() throws {
        XCTAssertNil(try TokenVerifier.load(secretFile: nil, publicKeyFile: nil))
        XCTAssertThrowsError(try TokenVerifier.load(secretFile: "/nonexistent/secret", publicKeyFile: nil)) {
            XCTAssertTrue("\($0)".contains("/nonexistent/secret"), "\($0)")
        }
        XCTAssertThrowsError(try TokenVerifier.load(secretFile: try file("short", "tooshort"), publicKeyFile: nil)) {
            XCTAssertTrue("\($0)".contains("at least 32"), "\($0)")
        }
        XCTAssertThrowsError(try TokenVerifier.load(secretFile: nil, publicKeyFile: try file("junk.pem", "junk"))) {
            XCTAssertTrue("\($0)".contains("PEM"), "\($0)")
        }
    }
}
