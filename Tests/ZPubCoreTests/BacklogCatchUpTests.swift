import XCTest
import ZPubCore

final class BacklogCatchUpTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000

    func testATurnThatFindsTheProducersEmptyWithNothingHeldEndsIt() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        XCTAssertNil(catchUp.ending(nowNanoseconds: 1, producersEmpty: false))
        catchUp.sent()
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 2, producersEmpty: true), .caughtUp)
        XCTAssertEqual(catchUp.forwarded, 1)
    }

    func testAHeldMessageIsNotCaughtUpHoweverEmptyTheProducers() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        catchUp.refused(nowNanoseconds: 10)
        XCTAssertTrue(catchUp.isHolding)
        XCTAssertNil(catchUp.ending(nowNanoseconds: 20, producersEmpty: true))
    }

    func testOneMessageHeldForTheStallTimeIsStalledAndLettingGoGoesOn() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 600_000)
        let refused = 3 * second
        catchUp.refused(nowNanoseconds: refused)
        // Refused again and again: the wait counts from the first refusal.
        catchUp.refused(nowNanoseconds: refused + BacklogCatchUp.stallNanoseconds / 2)
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: refused + BacklogCatchUp.stallNanoseconds - 1))
        XCTAssertTrue(catchUp.isStalled(nowNanoseconds: refused + BacklogCatchUp.stallNanoseconds))
        // A stall does not end pacing: the loop lets the stalled subscribers go.
        XCTAssertNil(catchUp.ending(nowNanoseconds: refused + BacklogCatchUp.stallNanoseconds, producersEmpty: false))
        catchUp.sent()
        catchUp.letGo()
        XCTAssertFalse(catchUp.isHolding)
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: refused + 2 * BacklogCatchUp.stallNanoseconds))
        XCTAssertEqual(catchUp.waits, 1)
        XCTAssertEqual(catchUp.stalls, 1)
        XCTAssertEqual(catchUp.stats(nowNanoseconds: refused + BacklogCatchUp.stallNanoseconds).stalls, 1)
        // The next refusal waits a whole stall time anew.
        let next = refused + BacklogCatchUp.stallNanoseconds + 1
        catchUp.refused(nowNanoseconds: next)
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: next + BacklogCatchUp.stallNanoseconds - 1))
        XCTAssertTrue(catchUp.isStalled(nowNanoseconds: next + BacklogCatchUp.stallNanoseconds))
    }

    func testAStopsDrainBringsTheLimitForwardButNeverBack() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        catchUp.endPacing(byNanoseconds: 2 * second)
        XCTAssertNil(catchUp.ending(nowNanoseconds: 2 * second - 1, producersEmpty: false))
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 2 * second, producersEmpty: false), .timeLimit)
        catchUp.endPacing(byNanoseconds: 9 * second)
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 2 * second, producersEmpty: false), .timeLimit)
    }

    func testPacingBegunAgainAfterAPauseKeepsTheCountsAndTakesANewLimit() {
        var suspended = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        suspended.sent()
        suspended.refused(nowNanoseconds: 1)
        suspended.sent()
        suspended.letGo()
        let resumed = BacklogCatchUp(resuming: suspended, .stop, nowNanoseconds: 10 * second, limitMilliseconds: 1_000)
        XCTAssertEqual([resumed.forwarded, resumed.waits, resumed.stalls], [2, 1, 1])
        XCTAssertEqual(resumed.cause, .stop)
        XCTAssertFalse(resumed.isHolding)
        XCTAssertNil(resumed.ending(nowNanoseconds: 11 * second - 1, producersEmpty: false))
        XCTAssertEqual(resumed.ending(nowNanoseconds: 11 * second, producersEmpty: false), .timeLimit)
    }

    func testNothingHeldIsNeverStalled() {
        let catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 600_000)
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: 100 * second))
    }

    func testMessagesThatEachWaitLessThanTheStallTimeGoOnUntilTheLimit() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        var now: UInt64 = 0
        while now + BacklogCatchUp.stallNanoseconds / 2 < 5 * second {
            catchUp.refused(nowNanoseconds: now)
            now += BacklogCatchUp.stallNanoseconds / 2
            XCTAssertNil(catchUp.ending(nowNanoseconds: now, producersEmpty: false))
            catchUp.sent()
            now += 1
        }
        XCTAssertNil(catchUp.ending(nowNanoseconds: 5 * second - 1, producersEmpty: false))
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 5 * second, producersEmpty: false), .timeLimit)
        XCTAssertEqual(catchUp.waits, catchUp.forwarded)
        XCTAssertEqual(catchUp.elapsedMilliseconds(nowNanoseconds: now), now / 1_000_000)
    }
}
