import XCTest
import ZPubCore

@testable import ZPubGateway

final class AccessPolicyTests: XCTestCase {
    private func policy(origins: [String] = [], publish: [String] = [], tokens: [String] = []) -> AccessPolicy {
        var settings = HTTPSettings()
        settings.allowedOrigins = origins
        settings.publishPrefixes = publish
        settings.tokens = tokens
        return AccessPolicy(settings)
    }

    func testOrigins() {
        let strict = policy()
        XCTAssertNil(strict.checkOrigin(nil, host: "x"), "not a browser")
        XCTAssertNil(strict.checkOrigin("http://127.0.0.1:8080", host: "127.0.0.1:8080"), "zpubd's own pages")
        XCTAssertEqual(
            strict.checkOrigin("https://evil.example", host: "127.0.0.1:8080"),
            .originNotAllowed("https://evil.example"))
        XCTAssertNil(strict.corsOrigin(for: "https://evil.example"))
        let listed = policy(origins: ["https://app.example/"])
        XCTAssertNil(listed.checkOrigin("https://APP.example", host: "zpub:8080"))
        XCTAssertEqual(listed.corsOrigin(for: "https://APP.example"), "https://APP.example")
        XCTAssertNotNil(listed.checkOrigin("https://app.example.evil", host: "zpub:8080"))
        XCTAssertNil(policy(origins: ["*"]).checkOrigin("https://any.example", host: nil))
        // Same origin under an address or localhost; under a DNS name only if listed, since
        // DNS rebinding makes a page's Origin and Host name the attacker's domain both.
        XCTAssertNil(strict.checkOrigin("http://[::1]:8080", host: "[::1]:8080"))
        XCTAssertNil(strict.checkOrigin("http://localhost:8080", host: "localhost:8080"))
        XCTAssertNil(strict.checkOrigin("http://10.0.0.5", host: "10.0.0.5"))
        XCTAssertEqual(
            strict.checkOrigin("http://evil.example:8080", host: "evil.example:8080"),
            .originNotAllowed("http://evil.example:8080"))
        XCTAssertNil(
            policy(origins: ["https://zpub.example.com"]).checkOrigin(
                "https://zpub.example.com", host: "zpub.example.com"))
        XCTAssertEqual(policy(origins: ["*"]).corsOrigin(for: "https://any.example"), "*")
    }

    /// DNS rebinding: a browser's same-origin GET or EventSource carries no Origin, and its
    /// Host names the attacker's domain; taken only for an address, localhost, this machine's
    /// name or a listed origin's host. Clients that are no browser are asked only over loopback.
    func testHosts() {
        var settings = HTTPSettings()
        settings.listen = "0.0.0.0:8080"
        let strict = AccessPolicy(settings, machineName: "Web1")
        XCTAssertEqual(
            strict.checkHost("evil.example:8080", fromBrowser: true, viaLoopback: false),
            .hostNotAllowed("evil.example:8080"))
        XCTAssertEqual(
            strict.checkHost("evil.example:8080", fromBrowser: false, viaLoopback: true),
            .hostNotAllowed("evil.example:8080"),
            "over loopback no other name is legitimate: a plain-HTTP page sends no Sec-Fetch-Site")
        XCTAssertNil(strict.checkHost("zpub.internal:8080", fromBrowser: false, viaLoopback: false), "curl, Prometheus")
        XCTAssertNil(strict.checkHost("web1:8080", fromBrowser: false, viaLoopback: true), "this machine's name")
        XCTAssertNil(strict.checkHost("WEB1", fromBrowser: true, viaLoopback: true))
        XCTAssertNotNil(strict.checkHost("web1.evil.example", fromBrowser: true, viaLoopback: true))
        XCTAssertNotNil(AccessPolicy(settings, machineName: "").checkHost("", fromBrowser: true, viaLoopback: true))
        XCTAssertNil(strict.checkHost("127.0.0.1:8080", fromBrowser: true, viaLoopback: true))
        XCTAssertNil(strict.checkHost("[::1]:8080", fromBrowser: true, viaLoopback: true))
        XCTAssertNil(strict.checkHost("LOCALHOST:8080", fromBrowser: true, viaLoopback: true))
        XCTAssertNil(strict.checkHost(nil, fromBrowser: true, viaLoopback: true), "HTTP/1.0 (hostFieldProblem)")
        let listed = policy(origins: ["https://zpub.example.com", "http://app.example:8080"])
        XCTAssertNil(listed.checkHost("zpub.example.com", fromBrowser: true, viaLoopback: true))
        XCTAssertNil(
            listed.checkHost("zpub.example.com:443", fromBrowser: true, viaLoopback: true),
            "the default port, spelled out")
        XCTAssertNil(listed.checkHost("app.example:8080", fromBrowser: true, viaLoopback: true))
        XCTAssertNotNil(listed.checkHost("app.example:9090", fromBrowser: true, viaLoopback: true))
        XCTAssertNotNil(listed.checkHost("zpub.example.com.evil", fromBrowser: true, viaLoopback: true))
        XCTAssertNil(policy(origins: ["*"]).checkHost("any.example", fromBrowser: true, viaLoopback: true))
        // A listed page's request, whatever name the gateway was reached under.
        XCTAssertNil(
            listed.checkHost(
                "zpub.other.example", origin: "https://zpub.example.com", fromBrowser: true, viaLoopback: true))
        XCTAssertNotNil(
            listed.checkHost("zpub.other.example", origin: "http://evil.example", fromBrowser: true, viaLoopback: true))
        XCTAssertEqual(AccessPolicy.Denial.hostNotAllowed("x").code, "host_not_allowed")
    }

    /// RFC 9112 3.2: one Host, a valid one; HTTP/1.0 may send none.
    func testHostFields() {
        XCTAssertNil(AccessPolicy.hostFieldProblem(["127.0.0.1:8080"], http11: true))
        XCTAssertNil(AccessPolicy.hostFieldProblem(["[::1]:8080"], http11: true))
        XCTAssertNil(AccessPolicy.hostFieldProblem(["zpub.example.com"], http11: true))
        XCTAssertNil(AccessPolicy.hostFieldProblem([], http11: false))
        XCTAssertNotNil(AccessPolicy.hostFieldProblem([], http11: true))
        XCTAssertNotNil(AccessPolicy.hostFieldProblem(["a", "a"], http11: false))
        XCTAssertNotNil(AccessPolicy.hostFieldProblem(["a b"], http11: true))
        XCTAssertNotNil(AccessPolicy.hostFieldProblem(["a/b"], http11: true))
        XCTAssertNotNil(AccessPolicy.hostFieldProblem(["user@a"], http11: true))
        XCTAssertNotNil(AccessPolicy.hostFieldProblem([""], http11: true), "an http target has a host")
        for valid in [
            "localhost:8080", "[::1]", "[::1]:8080", "zpub.example.com:", "127.0.0.1:65535", "xn--bcher-kva.example",
        ] {
            XCTAssertTrue(AccessPolicy.isHostAndPort(valid), valid)
        }
        for invalid in [
            "127.0.0.1:abc", "localhost:99999", "localhost:123456", "[::1]junk", "[zz]:80", "[::1", ":8080", "a:b:c",
            "127.0.0.1:80 x",
        ] {
            XCTAssertFalse(AccessPolicy.isHostAndPort(invalid), invalid)
        }
    }

    func testHTTPDates() {
        // RFC 9110 5.6.7's example, and a leap day.
        XCTAssertEqual(HTTPDate.format(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertEqual(HTTPDate.format(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT")
        // Read from the clock it reads (time() may lag it, coarse).
        func realtime() -> Int {
            var clock = timespec()
            clock_gettime(CLOCK_REALTIME, &clock)
            return Int(clock.tv_sec)
        }
        let before = realtime()
        let now = HTTPDate.now()
        let after = realtime()
        XCTAssertTrue([HTTPDate.format(before), HTTPDate.format(after)].contains(now), now)
    }

    private func tokens(_ list: Set<String>) -> Credentials { Credentials(tokens: list) }

    private func user(subscribe: [String], publish: [String] = []) -> Credentials {
        Credentials(
            user: TokenUser(
                subject: "alice", expires: 4_000_000_000, subscribe: subscribe.map { Array($0.utf8) },
                publish: publish.map { Array($0.utf8) }))
    }

    func testATokenGuardsEverySubscriptionThatOverlapsItsPrefix() {
        let guarded = policy(tokens: ["private.=secret-token"])
        let none = Credentials()
        XCTAssertNil(guarded.checkSubscribe(Array("public.".utf8), none))
        XCTAssertEqual(guarded.checkSubscribe(Array("private.x".utf8), none), .tokenRequired(prefix: "private."))
        // A wrong token is told as such, not as a missing one (same code: a token is required).
        let wrong = guarded.checkSubscribe(Array("private.x".utf8), Credentials(presentedUnknown: true))
        XCTAssertEqual(wrong, .tokenRequired(prefix: "private.", presented: true))
        XCTAssertEqual(wrong?.code, "token_required")
        XCTAssertTrue(wrong?.message.contains("the token given is not the one for prefix") == true)
        XCTAssertNotNil(guarded.checkSubscribe(Array("".utf8), none), "everything includes private.")
        XCTAssertNotNil(guarded.checkSubscribe(Array("priv".utf8), none))
        XCTAssertNil(guarded.checkSubscribe(Array("".utf8), tokens(["secret-token"])))
        XCTAssertNotNil(guarded.checkSubscribe(Array("private.".utf8), tokens(["wrong-token"])))
    }

    func testPublishingNeedsAListedPrefixAndItsToken() {
        let open = policy(publish: ["chat."], tokens: ["chat.admin.=admin-token"])
        XCTAssertNil(open.checkPublish(Array("chat.room".utf8), Credentials()))
        XCTAssertEqual(open.checkPublish(Array("news.x".utf8), Credentials()), .publishNotAllowed(topic: "news.x"))
        XCTAssertEqual(
            open.checkPublish(Array("chat.admin.x".utf8), Credentials()), .tokenRequired(prefix: "chat.admin."))
        XCTAssertNil(open.checkPublish(Array("chat.admin.x".utf8), tokens(["admin-token"])))
        XCTAssertNotNil(policy().checkPublish(Array("anything".utf8), Credentials()), "nothing by default")
    }

    /// A JWT's claims are the whole grant: inside them static rules do not apply, outside them
    /// nothing is allowed, not even an open prefix.
    func testAJWTGrantsExactlyItsClaims() {
        let guarded = policy(publish: ["chat."], tokens: ["a.secret.=secret-token"])
        let alice = user(subscribe: ["a."], publish: ["a.out."])
        XCTAssertNil(guarded.checkSubscribe(Array("a.secret.x".utf8), alice), "the app's grant wins")
        XCTAssertNil(guarded.checkSubscribe(Array("a.".utf8), alice))
        XCTAssertEqual(
            guarded.checkSubscribe(Array("b.".utf8), alice), .notInToken(prefix: "b.", subject: "alice"))
        XCTAssertNotNil(guarded.checkSubscribe(Array("".utf8), alice), "everything is more than a.")
        XCTAssertNotNil(guarded.checkSubscribe(Array("a".utf8), alice), "a covers more than a.")
        XCTAssertNil(guarded.checkPublish(Array("a.out.1".utf8), alice))
        XCTAssertNotNil(guarded.checkPublish(Array("chat.room".utf8), alice), "publish_prefixes is not a JWT's")
        XCTAssertNotNil(guarded.checkPublish(Array("a.in".utf8), alice))
        XCTAssertFalse(AccessPolicy.Denial.notInToken(prefix: "b.", subject: "alice").isUnauthorized, "403")
    }

    func testAnonymousClientsAreRefusedWhenJWTKeysAreSetUnlessAllowed() {
        var settings = HTTPSettings()
        settings.jwtSecretFile = "/etc/zpub/jwt.secret"
        settings.tokens = ["ops.=static-token"]
        settings.publishPrefixes = ["chat."]
        let strict = AccessPolicy(settings)
        XCTAssertEqual(
            strict.checkSubscribe(Array("news.".utf8), Credentials()), .credentialsRequired(presented: false))
        XCTAssertEqual(strict.checkPublish(Array("chat.x".utf8), Credentials()), .credentialsRequired(presented: false))
        XCTAssertTrue(AccessPolicy.Denial.credentialsRequired().isUnauthorized, "401")
        // A token it does not know (the operator_token, say) is told as such, not as none.
        let unknown = strict.checkSubscribe(Array("news.".utf8), Credentials(presentedUnknown: true))
        XCTAssertEqual(unknown, .credentialsRequired(presented: true))
        XCTAssertTrue(unknown?.message.contains("the token given is none this gateway admits") == true)
        XCTAssertNil(strict.checkSubscribe(Array("news.".utf8), tokens(["static-token"])), "a static token counts")
        XCTAssertEqual(
            strict.checkSubscribe(Array("news.".utf8), tokens(["made-up-token"])), .credentialsRequired(presented: true)
        )
        settings.allowAnonymous = true
        XCTAssertNil(AccessPolicy(settings).checkSubscribe(Array("news.".utf8), Credentials()))
        XCTAssertTrue(HTTPSettings().allowsAnonymous, "no JWT keys: open as before")
    }
}

final class RequestTargetTests: XCTestCase {
    func testPathAndQueryAreDecoded() throws {
        let target = try XCTUnwrap(RequestTarget(uri: "/events?prefix=a.b&prefix=&prefix=x%20y+z&access_token=t%2Bu"))
        XCTAssertEqual(target.path, "/events")
        XCTAssertEqual(target.values("prefix"), ["a.b", "", "x y z"])
        XCTAssertEqual(target.value("access_token"), "t+u")
        XCTAssertEqual(RequestTarget(uri: "/ws")?.query.count, 0)
        XCTAssertNil(RequestTarget(uri: "http://host/x"))
        XCTAssertNil(RequestTarget(uri: "/x?p=%ZZ"))
        XCTAssertNil(RequestTarget(uri: "/x?p=%C3%28"), "not UTF-8")
    }
}
