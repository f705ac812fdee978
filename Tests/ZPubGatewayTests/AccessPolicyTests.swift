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
        XCTAssertEqual(policy(origins: ["*"]).corsOrigin(for: "https://any.example"), "*")
    }

    func testATokenGuardsEverySubscriptionThatOverlapsItsPrefix() {
        let guarded = policy(tokens: ["private.=secret-token"])
        let none: Set<String> = []
        XCTAssertNil(guarded.checkSubscribe(Array("public.".utf8), presented: none))
        XCTAssertEqual(
            guarded.checkSubscribe(Array("private.x".utf8), presented: none), .tokenRequired(prefix: "private."))
        XCTAssertNotNil(guarded.checkSubscribe(Array("".utf8), presented: none), "everything includes private.")
        XCTAssertNotNil(guarded.checkSubscribe(Array("priv".utf8), presented: none))
        XCTAssertNil(guarded.checkSubscribe(Array("".utf8), presented: ["secret-token"]))
        XCTAssertNotNil(guarded.checkSubscribe(Array("private.".utf8), presented: ["wrong-token"]))
    }

    func testPublishingNeedsAListedPrefixAndItsToken() {
        let open = policy(publish: ["chat."], tokens: ["chat.admin.=admin-token"])
        XCTAssertNil(open.checkPublish(Array("chat.room".utf8), presented: []))
        XCTAssertEqual(open.checkPublish(Array("news.x".utf8), presented: []), .publishNotAllowed(topic: "news.x"))
        XCTAssertEqual(
            open.checkPublish(Array("chat.admin.x".utf8), presented: []), .tokenRequired(prefix: "chat.admin."))
        XCTAssertNil(open.checkPublish(Array("chat.admin.x".utf8), presented: ["admin-token"]))
        XCTAssertNotNil(policy().checkPublish(Array("anything".utf8), presented: []), "nothing by default")
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
