import XCTest

@testable import ZPubCore

final class HTTPSettingsTests: XCTestCase {
    private func problems(_ text: String) -> [String] {
        if case .failure(let failure) = ConfigurationFile.parse(text) { return failure.problems.map(\.description) }
        return []
    }

    func testEveryHTTPKeyIsRead() throws {
        let configuration = try ConfigurationFile.parse(
            """
            [http]
            enabled = true
            listen = "[::1]:9090"
            allowed_origins = ["https://app.example", "*"]
            client_queue = 5
            max_clients = 6
            max_frame = 1024
            max_client_prefixes = 7
            ping_interval = 9
            write_delay_ms = 25
            publish_prefixes = ["chat."]
            tokens = ["private.=0123456789"]
            """
        ).get()
        let http = configuration.http
        XCTAssertTrue(http.enabled)
        XCTAssertEqual(http.hostAndPort?.host, "::1")
        XCTAssertEqual(http.hostAndPort?.port, 9090)
        XCTAssertEqual(http.allowedOrigins, ["https://app.example", "*"])
        XCTAssertEqual(
            [
                http.clientQueue, http.maxClients, http.maxFrame, http.maxClientPrefixes, http.pingInterval,
                http.writeDelayMilliseconds,
            ],
            [5, 6, 1024, 7, 9, 25])
        XCTAssertEqual(HTTPSettings().writeDelayMilliseconds, 0, "each message is written at once unless asked")
        XCTAssertTrue(problems("[http]\nwrite_delay_ms = 1001\n").contains { $0.contains("write_delay_ms") })
        XCTAssertEqual(http.publishPrefixes, ["chat."])
        XCTAssertEqual(http.tokenRules.map(\.prefix), ["private."])
        XCTAssertEqual(http.tokenRules.map(\.token), ["0123456789"])
    }

    func testCredentialAndTLSKeysAreReadAndChecked() throws {
        let http = try ConfigurationFile.parse(
            """
            [http]
            jwt_secret_file = "/etc/zpub/jwt.secret"
            jwt_public_key_file = "/etc/zpub/jwt.pub"
            allow_anonymous = true
            tls_certificate_file = "/etc/zpub/cert.pem"
            tls_key_file = "/etc/zpub/key.pem"
            """
        ).get().http
        XCTAssertEqual(http.jwtSecretFile, "/etc/zpub/jwt.secret")
        XCTAssertEqual(http.jwtPublicKeyFile, "/etc/zpub/jwt.pub")
        XCTAssertEqual(http.allowAnonymous, true)
        XCTAssertTrue(http.usesTLS)
        XCTAssertTrue(http.usesJWT)
        var withJWT = HTTPSettings()
        withJWT.jwtSecretFile = "/x"
        XCTAssertFalse(withJWT.allowsAnonymous, "JWT keys close anonymous access unless allowed")

        let found = problems(
            """
            [http]
            tls_certificate_file = "/etc/zpub/cert.pem"
            jwt_secret_file = "relative/secret"
            allow_anonymous = "yes"
            """)
        XCTAssertEqual(found.count, 3, "\(found)")
        XCTAssertTrue(found.contains { $0.contains("tls_key_file") }, "\(found)")
        XCTAssertTrue(found.contains { $0.hasPrefix("line 3:") && $0.contains("absolute path") }, "\(found)")
        XCTAssertTrue(found.contains { $0.hasPrefix("line 4:") && $0.contains("true or false") }, "\(found)")
    }

    func testOffAndOnLoopbackByDefault() {
        XCTAssertFalse(HTTPSettings().enabled)
        XCTAssertEqual(HTTPSettings().hostAndPort?.host, "127.0.0.1")
    }

    func testBadValuesAreReportedWithTheirLines() {
        let found = problems(
            """
            [http]
            listen = "8080"
            client_queue = 0
            allowed_origins = ["example.com"]
            tokens = ["no-equals-sign", "short.=abc"]
            operator_token = "short"
            """)
        XCTAssertEqual(found.count, 6, "\(found)")
        XCTAssertTrue(
            found.contains { $0.hasPrefix("line 6:") && $0.contains("operator_token is shorter than 8") }, "\(found)")
        XCTAssertTrue(found.contains { $0.hasPrefix("line 2:") && $0.contains("host:port") }, "\(found)")
        XCTAssertTrue(found.contains { $0.hasPrefix("line 3:") && $0.contains("client_queue") }, "\(found)")
        XCTAssertTrue(found.contains { $0.hasPrefix("line 4:") && $0.contains("scheme://") }, "\(found)")
        XCTAssertTrue(found.contains { $0.contains("PREFIX=TOKEN") }, "\(found)")
        XCTAssertTrue(found.contains { $0.contains("shorter than 8") }, "\(found)")
    }

    /// An address that is no IPv4 address is refused with the file (it failed at the bind, after
    /// --check-config said the file was good); a scheme in capitals is a scheme.
    func testAListenAddressThatIsNoAddressIsRefusedAndASchemeMayBeInCapitals() {
        let found = problems("[http]\nlisten = \"300.1.1.1:8080\"\nallowed_origins = [\"HTTPS://Upper.Example\"]\n")
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertTrue(found.contains { $0.hasPrefix("line 2:") && $0.contains("is not an IPv4 address") }, "\(found)")
        XCTAssertEqual(problems("[http]\nlisten = \"10.1.2.3:8080\"\n"), [])
        XCTAssertEqual(problems("[http]\nlisten = \"gateway.example:8080\"\n"), [])
    }

    /// An entry without its = may be all token: it is named by its place, never echoed (it was,
    /// in the log and in RELOAD's reply).
    func testATokenEntryWithoutItsSeparatorIsNotEchoed() {
        var settings = HTTPSettings()
        settings.enabled = true
        settings.tokens = ["ok.=a-long-random-token", "secret.SUPERSECRETTOKEN"]
        let found = settings.validate().map(\.message)
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertTrue(found[0].hasPrefix("entry 2 of [http] tokens (counting from 1) has no ="), found[0])
        XCTAssertFalse(found[0].contains("SUPERSECRET"), found[0])
        XCTAssertFalse(found[0].contains("secret."), found[0])
    }

    func testCONFIGNeverShowsTokens() throws {
        var settings = HTTPSettings()
        settings.tokens = ["private.=very-secret-token"]
        let text = String(decoding: try JSONEncoder().encode(settings), as: UTF8.self)
        XCTAssertFalse(text.contains("very-secret-token"))
        XCTAssertTrue(text.contains("private.=(hidden)"))
    }

    func testInternalEndpointsCannotBeConfigured() {
        XCTAssertTrue(problems("[endpoints]\npull = [\"inproc://zpubd/pull\"]").contains { $0.contains("reserved") })
    }

    /// Where a client without a token may publish: what zpubd warns of when the gateway listens
    /// beyond loopback.
    func testOpenPublishPrefixesAreThoseNoTokenCoversWhole() {
        var settings = HTTPSettings()
        settings.publishPrefixes = ["jobs.", "sec.", "sec.deep.", ""]
        settings.tokens = ["sec.=t1"]
        XCTAssertEqual(settings.openPublishPrefixes, ["jobs.", ""], "sec.deep. is under sec.'s token")
        settings.tokens = ["jobs.x=t2"]
        XCTAssertEqual(settings.openPublishPrefixes, ["jobs.", "sec.", "sec.deep.", ""], "jobs.y is open")
        settings.jwtSecretFile = "/secret"
        XCTAssertEqual(settings.openPublishPrefixes, [], "with JWT keys anonymous clients are refused")
        settings.allowAnonymous = true
        XCTAssertEqual(settings.openPublishPrefixes.count, 4)
    }
}
