import XCTest

@testable import ZPubGateway

/// Prefixes no client wants stay subscribed upstream for `UpstreamLinger.nanoseconds`, so that a
/// client that comes back costs the broker nothing.
final class UpstreamLingerTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000
    private let linger = UpstreamLinger.nanoseconds

    func testAPrefixTakenBackWithinTheLingerIsNeverUnsubscribed() {
        var lingering = UpstreamLinger()
        XCTAssertEqual(lingering.release(Array("a".utf8), now: 10 * second), [])
        XCTAssertEqual(lingering.count, 1)
        XCTAssertEqual(lingering.expire(now: 10 * second + linger - 1), [])
        XCTAssertTrue(lingering.reclaim(Array("a".utf8)))
        XCTAssertEqual(lingering.count, 0)
        XCTAssertEqual(lingering.expire(now: 100 * second), [], "its old deadline no longer counts")
        XCTAssertFalse(lingering.reclaim(Array("a".utf8)), "a prefix not lingering must be subscribed")
    }

    func testAPrefixGoesWhenItsLingerIsOverCountedFromItsLastRelease() {
        var lingering = UpstreamLinger()
        _ = lingering.release(Array("a".utf8), now: 10 * second)
        _ = lingering.release(Array("b".utf8), now: 11 * second)
        XCTAssertTrue(lingering.reclaim(Array("a".utf8)))
        _ = lingering.release(Array("a".utf8), now: 12 * second)
        XCTAssertEqual(lingering.expire(now: 10 * second + linger), [], "a's first release is stale")
        XCTAssertEqual(lingering.expire(now: 11 * second + linger), [Array("b".utf8)])
        XCTAssertEqual(lingering.expire(now: 12 * second + linger), [Array("a".utf8)])
        XCTAssertEqual(lingering.count, 0)
    }

    func testPastTheLimitTheLongestLingeringGoesAtOnce() {
        var lingering = UpstreamLinger()
        let limit = UpstreamLinger.limit
        for index in 0..<limit {
            XCTAssertEqual(lingering.release(Array("p\(index)".utf8), now: second + UInt64(index)), [])
        }
        XCTAssertEqual(lingering.release(Array("new".utf8), now: 2 * second), [Array("p0".utf8)])
        XCTAssertEqual(lingering.count, limit)
        XCTAssertFalse(lingering.reclaim(Array("p0".utf8)))
        XCTAssertTrue(lingering.reclaim(Array("p1".utf8)))
    }

    /// Lingering prefixes fill only the room claimed ones leave: a new one upstream sends the
    /// longest lingering away, and with no room a released prefix goes at once.
    func testLingeringPrefixesGiveWayToClaimedOnes() {
        var lingering = UpstreamLinger()
        for (index, name) in ["a", "b", "c"].enumerated() {
            XCTAssertEqual(lingering.release(Array(name.utf8), now: second + UInt64(index), capacity: 3), [])
        }
        XCTAssertEqual(lingering.shrink(to: 2), [Array("a".utf8)])
        XCTAssertEqual(lingering.shrink(to: 2), [], "nothing more while there is room")
        XCTAssertEqual(lingering.release(Array("d".utf8), now: 2 * second, capacity: 0).count, 3, "no room: all go")
        XCTAssertEqual(lingering.count, 0)
        XCTAssertEqual(lingering.shrink(to: -5), [])
    }

    /// A prefix let go and taken back in a loop leaves a stale entry each time; dropping them
    /// (past 4 x the limit) keeps every live one.
    func testDroppingStaleEntriesKeepsEveryLingeringPrefix() {
        var lingering = UpstreamLinger()
        let kept = (0..<100).map { Array("kept\($0)".utf8) }
        for prefix in kept { _ = lingering.release(prefix, now: second) }
        for _ in 0...(4 * UpstreamLinger.limit) {
            _ = lingering.release(Array("loop".utf8), now: second)
            XCTAssertTrue(lingering.reclaim(Array("loop".utf8)))
        }
        XCTAssertEqual(lingering.count, kept.count)
        // Every "loop" release has the same deadline (one clock reading): they must still be
        // told apart, or each release past the bound copies the whole queue again.
        XCTAssertLessThanOrEqual(lingering.queued, 4 * UpstreamLinger.limit)
        XCTAssertEqual(Set(lingering.expire(now: second + linger)), Set(kept))
    }

    /// Against a plain model, under random releases, reclaims and time: the same prefixes go,
    /// at the same moments, and the queue's stale entries (and their compaction) change nothing.
    func testMatchesAModelUnderRandomChurn() {
        var generator = SystemRandomNumberGenerator()
        var lingering = UpstreamLinger()
        var model: [[UInt8]: UInt64] = [:]
        var now: UInt64 = second
        for step in 0..<400_000 {
            // Mostly within one linger, with a jump now and then: in between, few prefixes
            // are taken back and let go far more often than they expire, so the queue fills
            // with stale entries and is compacted (past 4 x the limit) several times.
            now += step % 100_000 == 99_999 ? UInt64.random(in: 0...3 * second, using: &generator) : 10
            let prefix = Array("p\(Int.random(in: 0..<50, using: &generator))".utf8)
            if Bool.random(using: &generator) {
                XCTAssertEqual(lingering.release(prefix, now: now), [])
                model[prefix] = now + linger
            } else {
                XCTAssertEqual(lingering.reclaim(prefix), model.removeValue(forKey: prefix) != nil, "step \(step)")
            }
            let gone = Set(lingering.expire(now: now))
            let due = Set(model.filter { $0.value <= now }.keys)
            for prefix in due { model[prefix] = nil }
            guard gone == due, lingering.count == model.count else {
                return XCTFail("step \(step): \(gone) went, \(due) due; \(lingering.count) against \(model.count)")
            }
        }
    }
}
