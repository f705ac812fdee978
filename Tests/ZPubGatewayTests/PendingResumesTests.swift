import XCTest

@testable import ZPubGateway

final class PendingResumesTests: XCTestCase {
    private func bytes(_ prefixes: String...) -> [[UInt8]] { prefixes.map { Array($0.utf8) } }

    func testRequestsComeOutOldestFirst() {
        var pending = PendingResumes()
        pending.add(bytes("a."), from: .history(after: 1))
        pending.add(bytes("b.", "c."), from: .history(after: 2))
        XCTAssertEqual(pending.next(), .init(prefixes: bytes("a."), point: .history(after: 1)))
        XCTAssertEqual(pending.next(), .init(prefixes: bytes("b.", "c."), point: .history(after: 2)))
        XCTAssertNil(pending.next())
    }

    /// Asking again for a prefix replaces the earlier request for it, so a client repeating its
    /// request cannot grow the queue past its distinct prefixes.
    func testARepeatedPrefixReplacesItsEarlierRequest() {
        var pending = PendingResumes()
        for round in 0..<1_000 { pending.add(bytes("a."), from: .history(after: UInt64(round))) }
        pending.add(bytes("a.", "b."), from: .history(after: 5_000))
        pending.add(bytes("b."), from: .history(after: 6_000))
        XCTAssertEqual(
            pending.requests,
            [
                .init(prefixes: bytes("a."), point: .history(after: 5_000)),
                .init(prefixes: bytes("b."), point: .history(after: 6_000)),
            ]
        )
    }

    func testAnUnsubscribedPrefixLeavesTheQueue() {
        var pending = PendingResumes()
        pending.add(bytes("a.", "b."), from: .history(after: 1))
        pending.add(bytes("c."), from: .history(after: 2))
        pending.remove(bytes("a."))
        pending.remove(bytes("c."))
        XCTAssertEqual(pending.requests, [.init(prefixes: bytes("b."), point: .history(after: 1))])
        pending.remove(bytes("b."))
        XCTAssertTrue(pending.isEmpty)
    }

    /// Subscribes of cached prefixes one after the other (one per prefix of a WebSocket request)
    /// make one catch-up; one from another point starts a new request, and later ones of the
    /// first kind do not join an older request past it (they would be served out of order).
    func testRequestsFromOnePointInARowJoin() {
        var pending = PendingResumes()
        for prefix in ["a.", "b.", "c."] { pending.add(bytes(prefix), from: .lastValue(after: 0)) }
        pending.add(bytes("d."), from: .history(after: 7))
        pending.add(bytes("e."), from: .lastValue(after: 0))
        pending.add(bytes("b."), from: .lastValue(after: 0))
        XCTAssertEqual(
            pending.requests,
            [
                .init(prefixes: bytes("a.", "c."), point: .lastValue(after: 0)),
                .init(prefixes: bytes("d."), point: .history(after: 7)),
                .init(prefixes: bytes("e.", "b."), point: .lastValue(after: 0)),
            ])
    }

    /// A prefix under one waiting to catch up joins the oldest such request, whatever its point
    /// (that catch-up brings its messages); one under none is left to the caller.
    func testAPrefixUnderAWaitingOneJoinsTheOldestRequestOfIt() {
        var pending = PendingResumes()
        pending.add(bytes("a."), from: .history(after: 3))
        pending.add(bytes("b."), from: .lastValue(after: 0))
        pending.add(bytes("a.x."), from: .lastValue(after: 0))
        XCTAssertTrue(pending.join(Array("a.x.y".utf8)))
        XCTAssertTrue(pending.join(Array("b.z".utf8)))
        XCTAssertFalse(pending.join(Array("c.".utf8)))
        XCTAssertFalse(pending.join(Array("a".utf8)), "wider, not under")
        XCTAssertEqual(
            pending.requests,
            [
                .init(prefixes: bytes("a.", "a.x.y"), point: .history(after: 3)),
                .init(prefixes: bytes("b.", "a.x.", "b.z"), point: .lastValue(after: 0)),
            ])
    }

    /// Prefixes under a new wider one that wait for every cached value leave their requests
    /// (the wider one's catch-up brings them); those of `since` requests stay.
    func testPrefixesWaitingForEveryValueAreTakenAndOthersStay() {
        var pending = PendingResumes()
        pending.add(bytes("a.x", "b."), from: .lastValue(after: 0))
        pending.add(bytes("a.y"), from: .history(after: 3))
        pending.add(bytes("a.z"), from: .lastValue(after: 0))
        let taken = pending.takeWaitingForValues { $0.starts(with: Array("a.".utf8)) }
        XCTAssertEqual(taken, bytes("a.x", "a.z"))
        XCTAssertEqual(
            pending.requests,
            [
                .init(prefixes: bytes("b."), point: .lastValue(after: 0)),
                .init(prefixes: bytes("a.y"), point: .history(after: 3)),
            ])
    }
}
