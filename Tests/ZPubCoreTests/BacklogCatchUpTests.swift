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

    func testOneMessageHeldForTheStallTimeEndsItWhateverTheLimit() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 600_000)
        catchUp.refused(nowNanoseconds: 3 * second)
        // Refused again and again: the wait counts from the first refusal.
        catchUp.refused(nowNanoseconds: 3 * second + BacklogCatchUp.stallNanoseconds / 2)
        XCTAssertNil(
            catchUp.ending(nowNanoseconds: 3 * second + BacklogCatchUp.stallNanoseconds - 1, producersEmpty: false))
        XCTAssertEqual(
            catchUp.ending(nowNanoseconds: 3 * second + BacklogCatchUp.stallNanoseconds, producersEmpty: false),
            .stalled
        )
        XCTAssertEqual(catchUp.waits, 1)
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
