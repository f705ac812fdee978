import XCTest

@testable import ZPubGateway

/// The gateway's distinct prefixes, capped at `max_upstream_prefixes` (`UpstreamClaims`).
final class UpstreamClaimsTests: XCTestCase {
    private func set(_ prefixes: String...) -> Set<[UInt8]> { Set(prefixes.map { Array($0.utf8) }) }

    func testNewPrefixesPastTheLimitAreRefusedAndHeldOnesCostNothing() {
        let claims = UpstreamClaims(limit: 3)
        XCTAssertTrue(claims.claim(set("a", "b")))
        XCTAssertFalse(claims.claim(set("c", "d")), "two new ones do not fit in one place")
        XCTAssertEqual(claims.count, 2, "a refused claim takes nothing")
        XCTAssertTrue(claims.claim(set("c")))
        XCTAssertFalse(claims.claim(set("d")))
        XCTAssertFalse(claims.wouldAdmit(set("a", "d")))
        XCTAssertTrue(claims.wouldAdmit(set("a", "b")))
        XCTAssertTrue(claims.claim(set("a", "b", "c")), "held by another client already")
        XCTAssertEqual(claims.count, 3)
    }

    func testAPrefixIsFreedWhenItsLastHolderLetsGo() {
        let claims = UpstreamClaims(limit: 2)
        XCTAssertTrue(claims.claim(set("a", "b")))
        XCTAssertTrue(claims.claim(set("a")))
        claims.release(set("a"))
        XCTAssertFalse(claims.claim(set("c")), "a is still held by its other client")
        claims.release(set("a"))
        XCTAssertTrue(claims.claim(set("c")))
        claims.release(set("x"))
        XCTAssertEqual(claims.count, 2, "releasing what nobody holds changes nothing")
    }

    /// A reload that lowers the limit keeps what is held, and refuses new prefixes until
    /// enough are let go.
    func testALowerLimitRefusesNewPrefixesAndTakesNothingAway() {
        let claims = UpstreamClaims(limit: 3)
        XCTAssertTrue(claims.claim(set("a", "b", "c")))
        claims.limit = 1
        XCTAssertEqual(claims.count, 3)
        XCTAssertTrue(claims.claim(set("a")))
        claims.release(set("b", "c"))
        XCTAssertFalse(claims.claim(set("d")))
        claims.release(set("a"))
        claims.release(set("a"))
        XCTAssertTrue(claims.claim(set("d")))
        XCTAssertTrue(claims.refusal(set("e")).contains("max_upstream_prefixes (1)"))
    }
}
