import XCTest

@testable import ZPubGateway

final class PendingResumesTests: XCTestCase {
    private func bytes(_ prefixes: String...) -> [[UInt8]] { prefixes.map { Array($0.utf8) } }

    func testRequestsComeOutOldestFirst() {
        var pending = PendingResumes()
        pending.add(bytes("a."), after: 1)
        pending.add(bytes("b.", "c."), after: 2)
        XCTAssertEqual(pending.next(), .init(prefixes: bytes("a."), after: 1))
        XCTAssertEqual(pending.next(), .init(prefixes: bytes("b.", "c."), after: 2))
        XCTAssertNil(pending.next())
    }

    /// Asking again for a prefix replaces the earlier request for it, so a client repeating its
    /// request cannot grow the queue past its distinct prefixes.
    func testARepeatedPrefixReplacesItsEarlierRequest() {
        var pending = PendingResumes()
        for round in 0..<1_000 { pending.add(bytes("a."), after: UInt64(round)) }
        pending.add(bytes("a.", "b."), after: 5_000)
        pending.add(bytes("b."), after: 6_000)
        XCTAssertEqual(
            pending.requests, [.init(prefixes: bytes("a."), after: 5_000), .init(prefixes: bytes("b."), after: 6_000)])
    }

    func testAnUnsubscribedPrefixLeavesTheQueue() {
        var pending = PendingResumes()
        pending.add(bytes("a.", "b."), after: 1)
        pending.add(bytes("c."), after: 2)
        pending.remove(bytes("a."))
        pending.remove(bytes("c."))
        XCTAssertEqual(pending.requests, [.init(prefixes: bytes("b."), after: 1)])
        pending.remove(bytes("b."))
        XCTAssertTrue(pending.isEmpty)
    }
}
