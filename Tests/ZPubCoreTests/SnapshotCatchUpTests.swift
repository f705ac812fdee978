import XCTest
import ZPubCore

/// The client side of the snapshot handshake, in memory: every order in which the reply, the
/// marker and live messages can reach a client, and what it may deliver at each step.
final class SnapshotCatchUpTests: XCTestCase {
    /// A reply caching `cached.` whose snapshot holds one value.
    private let reply: SnapshotReply = {
        var cache = LastValueCache(
            prefixes: [Array("cached.".utf8)], maxEntries: 10, maxBytes: 1_000, maxAgeMilliseconds: 0)
        cache.store([Array("cached.a".utf8), [1]], nowMilliseconds: 0)
        return SnapshotReply(
            token: "t", sequence: cache.lastSequence, prefixes: ["cached."],
            entries: cache.entries(under: [], nowMilliseconds: 0).map(MessageJSON.init))
    }()
    private let marker = SnapshotReply.markerFrames(token: "t", sequence: 1)

    func testReplyFirstReleasesTheEntriesThenFiltersUntilTheMarker() {
        var catchUp = SnapshotCatchUp<String>(token: "t")
        let release = catchUp.replied(reply)
        XCTAssertEqual(release.entries.map(\.topic), ["cached.a"])
        XCTAssertEqual(release.items, [])
        XCTAssertNil(catchUp.received(topic: Array("cached.a".utf8), "old a"), "in the snapshot already")
        XCTAssertEqual(catchUp.received(topic: Array("other".utf8), "other 1"), "other 1", "not cached: live at once")
        XCTAssertFalse(catchUp.isComplete)
        XCTAssertTrue(catchUp.isMarker(topic: marker[0]))
        catchUp.markerReceived(frames: marker)
        XCTAssertTrue(catchUp.isComplete)
        XCTAssertEqual(catchUp.markerSequence, 1)
        XCTAssertEqual(catchUp.received(topic: Array("cached.a".utf8), "new a"), "new a", "after the marker: newer")
        XCTAssertEqual(catchUp.heldCount, 0)
    }

    func testMarkerBeforeReplyHoldsEverythingAndReleasesItInOrder() {
        var catchUp = SnapshotCatchUp<String>(token: "t")
        XCTAssertNil(catchUp.received(topic: Array("cached.a".utf8), "old a"))
        XCTAssertNil(catchUp.received(topic: Array("other".utf8), "other 1"))
        catchUp.markerReceived(frames: marker)
        XCTAssertFalse(catchUp.isComplete, "the reply is still out")
        XCTAssertNil(catchUp.received(topic: Array("cached.a".utf8), "new a"))
        XCTAssertNil(catchUp.received(topic: Array("other".utf8), "other 2"))
        XCTAssertEqual(catchUp.heldCount, 4)
        let release = catchUp.replied(reply)
        XCTAssertEqual(release.entries.count, 1)
        XCTAssertEqual(release.items, ["other 1", "new a", "other 2"], "old a is in the snapshot; the rest in order")
        XCTAssertTrue(catchUp.isComplete)
        XCTAssertEqual(catchUp.heldCount, 0)
    }

    func testAFailedRequestReleasesEverythingHeldUnfiltered() {
        var catchUp = SnapshotCatchUp<String>(token: "t")
        XCTAssertNil(catchUp.received(topic: Array("cached.a".utf8), "old a"))
        XCTAssertNil(catchUp.received(topic: Array("other".utf8), "other 1"))
        let release = catchUp.failed()
        XCTAssertEqual(release.entries.count, 0)
        XCTAssertEqual(release.items, ["old a", "other 1"], "no snapshot: nothing may be skipped")
        XCTAssertTrue(catchUp.isComplete, "no marker is waited for after a failure")
        XCTAssertEqual(catchUp.received(topic: Array("cached.a".utf8), "later"), "later")
    }

    func testLateAndRepeatedEventsChangeNothing() {
        var catchUp = SnapshotCatchUp<String>(token: "t")
        _ = catchUp.failed()
        let late = catchUp.replied(reply)
        XCTAssertEqual(late.entries.count, 0, "a reply after the failure was reported must not add a snapshot")
        catchUp.markerReceived(frames: marker)
        XCTAssertEqual(catchUp.received(topic: Array("cached.a".utf8), "x"), "x")

        var twice = SnapshotCatchUp<String>(token: "t")
        _ = twice.replied(reply)
        XCTAssertEqual(twice.replied(reply).entries.count, 0, "entries are released once")
        twice.markerReceived(frames: marker)
        twice.markerReceived(frames: SnapshotReply.markerFrames(token: "t", sequence: 99))
        XCTAssertEqual(twice.markerSequence, 1, "the first marker counts")
    }

    func testAnotherTokensMarkerIsNotThisOne() {
        let catchUp = SnapshotCatchUp<String>(token: "t")
        XCTAssertFalse(catchUp.isMarker(topic: SnapshotReply.markerFrames(token: "t2", sequence: 0)[0]))
        XCTAssertFalse(catchUp.isMarker(topic: Array("$zpub/snapshot/".utf8)))
    }

    func testMarkerSequenceIsReadOnlyFromANumber() {
        XCTAssertEqual(SnapshotReply.markerSequence(SnapshotReply.markerFrames(token: "a", sequence: 42)), 42)
        XCTAssertNil(SnapshotReply.markerSequence([Array("$zpub/snapshot/a".utf8)]))
        XCTAssertNil(SnapshotReply.markerSequence([Array("$zpub/snapshot/a".utf8), Array("x1".utf8)]))
    }

    func testAReplayCoversItsHistoryPrefixesOnly() {
        var catchUp = SnapshotCatchUp<String>(token: "t")
        XCTAssertNil(catchUp.received(topic: Array("h.kept".utf8), "kept, before the marker"))
        XCTAssertNil(catchUp.received(topic: Array("h.live".utf8), "live only"))
        let release = catchUp.replied(entries: [], covering: ["h.kept"])
        XCTAssertEqual(release.items, ["live only"], "the replay has h.kept; h.live is not kept")
        XCTAssertNil(catchUp.received(topic: Array("h.kept".utf8), "kept, still before the marker"))
        catchUp.markerReceived(frames: SnapshotReply.markerFrames(token: "t", sequence: 9))
        XCTAssertEqual(catchUp.markerSequence, 9)
        XCTAssertEqual(catchUp.received(topic: Array("h.kept".utf8), "new"), "new")
    }
}
