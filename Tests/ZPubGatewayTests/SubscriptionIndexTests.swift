import XCTest

@testable import ZPubGateway

final class SubscriptionIndexTests: XCTestCase {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testTheFirstClientSubscribesUpstreamAndTheLastUnsubscribes() {
        var index = SubscriptionIndex()
        XCTAssertTrue(index.add(1, bytes("a.")))
        XCTAssertFalse(index.add(2, bytes("a.")))
        XCTAssertFalse(index.add(2, bytes("a.")), "a client's second identical subscription changes nothing")
        XCTAssertEqual(index.distinctPrefixes, 1)
        XCTAssertFalse(index.remove(1, bytes("a.")))
        XCTAssertTrue(index.remove(2, bytes("a.")))
        XCTAssertEqual(index.distinctPrefixes, 0)
        XCTAssertFalse(index.remove(2, bytes("a.")), "removing what is not there changes nothing")
    }

    func testMatchingByPrefixDeliversOncePerClient() {
        var index = SubscriptionIndex()
        index.add(1, bytes("a"))
        index.add(1, bytes("a.b"))
        index.add(2, bytes("a.b.c"))
        index.add(3, bytes(""))
        index.add(4, bytes("b"))
        XCTAssertEqual(Set(index.clients(matching: bytes("a.b.c.d"))), [1, 2, 3])
        XCTAssertEqual(index.clients(matching: bytes("a.b.c.d")).count, 3, "client 1 matches twice, gets it once")
        XCTAssertEqual(Set(index.clients(matching: bytes("b"))), [3, 4])
        XCTAssertEqual(Set(index.clients(matching: bytes(""))), [3])
    }

    func testRemovingAClientReturnsThePrefixesNobodyWantsAnyMore() {
        var index = SubscriptionIndex()
        index.add(1, bytes("x"))
        index.add(1, bytes("y"))
        index.add(2, bytes("y"))
        XCTAssertEqual(index.removeAll(1), [bytes("x")])
        XCTAssertEqual(index.clients(matching: bytes("x1")), [])
        XCTAssertEqual(index.clients(matching: bytes("y1")), [2])
        XCTAssertEqual(index.removeAll(2), [bytes("y")])
        XCTAssertEqual(index.removeAll(2), [])
    }
}
