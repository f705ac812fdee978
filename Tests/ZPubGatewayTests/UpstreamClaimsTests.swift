import XCTest

@testable import ZPubGateway

/// The gateway's distinct prefixes, capped at `max_upstream_prefixes`, and per user at
/// `max_user_prefixes` (`UpstreamClaims`).
final class UpstreamClaimsTests: XCTestCase {
    private func set(_ prefixes: String...) -> Set<[UInt8]> { Set(prefixes.map { Array($0.utf8) }) }

    func testNewPrefixesPastTheLimitAreRefusedAndHeldOnesCostNothing() {
        let claims = UpstreamClaims(limit: 3)
        XCTAssertEqual(claims.claim(set("a", "b"), user: nil), .claimed)
        XCTAssertEqual(claims.claim(set("c", "d"), user: nil), .gatewayFull, "two new ones do not fit in one place")
        XCTAssertEqual(claims.count, 2, "a refused claim takes nothing")
        XCTAssertEqual(claims.claim(set("c"), user: nil), .claimed)
        XCTAssertEqual(claims.claim(set("d"), user: nil), .gatewayFull)
        XCTAssertEqual(claims.wouldAdmit(set("a", "d"), user: nil), .gatewayFull)
        XCTAssertEqual(claims.wouldAdmit(set("a", "b"), user: nil), .claimed)
        XCTAssertEqual(claims.claim(set("a", "b", "c"), user: nil), .claimed, "held by another client already")
        XCTAssertEqual(claims.count, 3)
    }

    func testAPrefixIsFreedWhenItsLastHolderLetsGo() {
        let claims = UpstreamClaims(limit: 2)
        XCTAssertEqual(claims.claim(set("a", "b"), user: nil), .claimed)
        XCTAssertEqual(claims.claim(set("a"), user: nil), .claimed)
        claims.release(set("a"), user: nil)
        XCTAssertEqual(claims.claim(set("c"), user: nil), .gatewayFull, "a is still held by its other client")
        claims.release(set("a"), user: nil)
        XCTAssertEqual(claims.claim(set("c"), user: nil), .claimed)
        claims.release(set("x"), user: nil)
        XCTAssertEqual(claims.count, 2, "releasing what nobody holds changes nothing")
    }

    /// A reload that lowers the limit keeps what is held, and refuses new prefixes until
    /// enough are let go.
    func testALowerLimitRefusesNewPrefixesAndTakesNothingAway() {
        let claims = UpstreamClaims(limit: 3)
        XCTAssertEqual(claims.claim(set("a", "b", "c"), user: nil), .claimed)
        claims.limit = 1
        XCTAssertEqual(claims.count, 3)
        XCTAssertEqual(claims.claim(set("a"), user: nil), .claimed)
        claims.release(set("b", "c"), user: nil)
        XCTAssertEqual(claims.claim(set("d"), user: nil), .gatewayFull)
        claims.release(set("a"), user: nil)
        claims.release(set("a"), user: nil)
        XCTAssertEqual(claims.claim(set("d"), user: nil), .claimed)
        let refusal = claims.refusal(.gatewayFull, set("e"), user: nil)
        XCTAssertEqual(refusal.code, "gateway_full")
        XCTAssertTrue(refusal.message.contains("max_upstream_prefixes (1)"), refusal.message)
    }

    /// One user's clients, over all their connections, hold at most `userLimit` distinct
    /// prefixes; a prefix they hold already costs nothing more, and other users and clients
    /// without a user are not held to it.
    func testOneUsersClientsHoldAtMostItsLimitOverAllTheirConnections() {
        let claims = UpstreamClaims(limit: 100, userLimit: 3)
        XCTAssertEqual(claims.claim(set("a", "b"), user: "alice"), .claimed)
        XCTAssertEqual(claims.claim(set("c", "d"), user: "alice"), .userFull, "a second connection of alice's")
        XCTAssertEqual(claims.count(of: "alice"), 2, "a refused claim takes nothing")
        XCTAssertEqual(claims.claim(set("a", "b", "c"), user: "alice"), .claimed, "only c is new to alice")
        XCTAssertEqual(claims.wouldAdmit(set("d"), user: "alice"), .userFull)
        XCTAssertEqual(claims.claim(set("d", "e", "f", "g"), user: "bob"), .userFull, "bob has a limit of his own")
        XCTAssertEqual(claims.claim(set("a", "d"), user: "bob"), .claimed, "a, which alice holds, counts for bob too")
        XCTAssertEqual(claims.claim(set("x", "y", "z", "w"), user: nil), .claimed, "no user, no such limit")
        XCTAssertEqual(claims.count, 8)
        let refusal = claims.refusal(.userFull, set("d"), user: "alice")
        XCTAssertEqual(refusal.code, "user_full")
        XCTAssertTrue(refusal.message.contains("alice hold max_user_prefixes (3)"), refusal.message)

        // One of alice's connections leaves: a and b are still held by her other, c is not.
        claims.release(set("a", "b"), user: "alice")
        XCTAssertEqual(claims.count(of: "alice"), 3)
        claims.release(set("a", "b", "c"), user: "alice")
        XCTAssertEqual(claims.count(of: "alice"), 0)
        XCTAssertEqual(claims.claim(set("d", "e", "f"), user: "alice"), .claimed)
        XCTAssertEqual(claims.count, 8, "b and c are gone from the gateway (a is bob's too), e and f are new")

        // When both would refuse, the gateway's pool is what the client is told about.
        claims.limit = 8
        XCTAssertEqual(claims.claim(set("q"), user: "alice"), .gatewayFull)
    }

    /// A refreshed token of another user takes the client's prefixes with it, even past that
    /// user's limit (they are held already); 0 means no limit per user.
    func testARefreshToAnotherUserMovesItsPrefixesAndZeroMeansNoLimit() {
        let claims = UpstreamClaims(limit: 100, userLimit: 2)
        XCTAssertEqual(claims.claim(set("a", "b"), user: "alice"), .claimed)
        XCTAssertEqual(claims.claim(set("c", "d"), user: "bob"), .claimed)
        claims.move(set("c", "d"), from: "bob", to: "alice")
        XCTAssertEqual(claims.count(of: "alice"), 4)
        XCTAssertEqual(claims.count(of: "bob"), 0)
        XCTAssertEqual(claims.count, 4, "the gateway's own count does not change")
        XCTAssertEqual(claims.claim(set("a"), user: "alice"), .claimed, "held already")
        XCTAssertEqual(claims.claim(set("e"), user: "alice"), .userFull)
        claims.userLimit = 0
        XCTAssertEqual(claims.claim(set("e", "f", "g"), user: "alice"), .claimed)
    }
}
