import XCTest
import ZPubCore

final class BacklogCatchUpTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000

    func testATurnThatFindsTheProducersEmptyBeforeAnythingWentEndsIt() {
        let catchUp = BacklogCatchUp(.startHold, nowNanoseconds: 0, limitMilliseconds: 5_000)
        XCTAssertNil(catchUp.ending(nowNanoseconds: 1, producersEmpty: false))
        XCTAssertNil(catchUp.millisecondsUntilCaughtUp(nowNanoseconds: 1))
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 1, producersEmpty: true), .caughtUp)
    }

    func testTheBacklogIsOutOnceTheProducersSentNothingForTheDryTime() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        let sent = 10 * BacklogCatchUp.dryNanoseconds
        // Subscribers lack room: only the dry time ends it.
        catchUp.refused(nowNanoseconds: sent - 1)
        catchUp.sent(nowNanoseconds: sent)
        XCTAssertEqual(catchUp.forwarded, 1)
        // Found empty at once: libzmq or the producer refills it a moment later.
        XCTAssertNil(catchUp.ending(nowNanoseconds: sent + 1, producersEmpty: true))
        XCTAssertEqual(
            catchUp.millisecondsUntilCaughtUp(nowNanoseconds: sent + 1), Int(BacklogCatchUp.dryNanoseconds / 1_000_000))
        let dry = sent + BacklogCatchUp.dryNanoseconds
        XCTAssertEqual(catchUp.millisecondsUntilCaughtUp(nowNanoseconds: dry - 1), 1)
        XCTAssertNil(catchUp.ending(nowNanoseconds: dry - 1, producersEmpty: true))
        XCTAssertNil(catchUp.millisecondsUntilCaughtUp(nowNanoseconds: dry))
        XCTAssertEqual(catchUp.ending(nowNanoseconds: dry, producersEmpty: true), .caughtUp)
        XCTAssertTrue(catchUp.producersWentQuiet(nowNanoseconds: dry))
        // Not before a turn finds them empty.
        XCTAssertNil(catchUp.ending(nowNanoseconds: dry, producersEmpty: false))
    }

    func testTrafficThatNeverFillsASubscribersQueueEndsItAfterTheKeptUpTime() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        // A message every millisecond, never refused: never dry, never short of room.
        catchUp.sent(nowNanoseconds: 0)
        var now: UInt64 = 1_000_000
        while now < BacklogCatchUp.keptUpNanoseconds {
            XCTAssertNil(catchUp.ending(nowNanoseconds: now, producersEmpty: true), "at \(now)")
            catchUp.sent(nowNanoseconds: now)
            now += 1_000_000
        }
        XCTAssertEqual(catchUp.ending(nowNanoseconds: now, producersEmpty: true), .caughtUp)
        XCTAssertFalse(catchUp.producersWentQuiet(nowNanoseconds: now), "ended as the subscribers kept up")
    }

    func testARefusalStartsTheKeptUpTimeAnew() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        let refused = BacklogCatchUp.keptUpNanoseconds / 2
        catchUp.refused(nowNanoseconds: refused)
        var now = refused
        while now + 1_000_000 < refused + BacklogCatchUp.keptUpNanoseconds {
            catchUp.sent(nowNanoseconds: now)
            now += 1_000_000
            XCTAssertNil(catchUp.ending(nowNanoseconds: now, producersEmpty: true), "at \(now)")
        }
        XCTAssertEqual(
            catchUp.millisecondsUntilCaughtUp(nowNanoseconds: refused + BacklogCatchUp.keptUpNanoseconds - 1), 1)
        XCTAssertEqual(
            catchUp.ending(nowNanoseconds: refused + BacklogCatchUp.keptUpNanoseconds, producersEmpty: true), .caughtUp)
    }

    func testATurnWhoseClockReadingPrecedesTheStartCountsAsNoTimeAtAll() {
        // The loop read the clock, then began pacing in the same turn.
        var catchUp = BacklogCatchUp(.startHold, nowNanoseconds: second, limitMilliseconds: 5_000)
        catchUp.sent(nowNanoseconds: second - 1)
        XCTAssertNil(catchUp.ending(nowNanoseconds: second - 1, producersEmpty: true))
        XCTAssertEqual(catchUp.elapsedMilliseconds(nowNanoseconds: second - 1), 0)
        catchUp.refused(nowNanoseconds: second - 1)
        XCTAssertEqual(catchUp.stats(nowNanoseconds: second - 2).waitingMilliseconds, 0)
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
        catchUp.refused(nowNanoseconds: refused + catchUp.stallNanoseconds / 2)
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: refused + catchUp.stallNanoseconds - 1))
        XCTAssertTrue(catchUp.isStalled(nowNanoseconds: refused + catchUp.stallNanoseconds))
        // A stall does not end pacing: the loop lets the stalled subscribers go.
        XCTAssertNil(catchUp.ending(nowNanoseconds: refused + catchUp.stallNanoseconds, producersEmpty: false))
        catchUp.sent(nowNanoseconds: refused + catchUp.stallNanoseconds)
        catchUp.letGo()
        XCTAssertFalse(catchUp.isHolding)
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: refused + 2 * catchUp.stallNanoseconds))
        XCTAssertEqual(catchUp.waits, 1)
        XCTAssertEqual(catchUp.stalls, 1)
        XCTAssertEqual(catchUp.stats(nowNanoseconds: refused + catchUp.stallNanoseconds).stalls, 1)
        // The next refusal waits a whole stall time anew.
        let next = refused + catchUp.stallNanoseconds + 1
        catchUp.refused(nowNanoseconds: next)
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: next + catchUp.stallNanoseconds - 1))
        XCTAssertTrue(catchUp.isStalled(nowNanoseconds: next + catchUp.stallNanoseconds))
    }

    func testAStopsDrainBringsTheLimitForwardButNeverBack() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        catchUp.endPacing(byNanoseconds: 2 * second)
        XCTAssertNil(catchUp.ending(nowNanoseconds: 2 * second - 1, producersEmpty: false))
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 2 * second, producersEmpty: false), .drainsEnd)
        catchUp.endPacing(byNanoseconds: 9 * second)
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 2 * second, producersEmpty: false), .drainsEnd)
    }

    /// A RESUME's catch-up whose own limit passes during a stop's drain says so, not that the
    /// drain's end came.
    func testItsOwnLimitPassingDuringADrainIsTheTimeLimit() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        catchUp.endPacing(byNanoseconds: 60 * second)
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 5 * second, producersEmpty: false), .timeLimit)
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 61 * second, producersEmpty: false), .timeLimit)
    }

    func testAReloadShortensTheLimitFromTheStartButNeverLengthensIt() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: second, limitMilliseconds: 5_000)
        catchUp.limit(toMilliseconds: 1_000)
        XCTAssertNil(catchUp.ending(nowNanoseconds: 2 * second - 1, producersEmpty: false))
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 2 * second, producersEmpty: false), .timeLimit)
        catchUp.limit(toMilliseconds: 9_000)
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 2 * second, producersEmpty: false), .timeLimit)
    }

    func testPacingBegunAgainAfterAPauseKeepsTheCountsAndTakesANewLimit() {
        var suspended = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        suspended.sent(nowNanoseconds: 1)
        suspended.refused(nowNanoseconds: 1)
        suspended.sent(nowNanoseconds: 1)
        suspended.letGo()
        let resumed = BacklogCatchUp(resuming: suspended, .stop, nowNanoseconds: 10 * second, limitMilliseconds: 1_000)
        XCTAssertEqual([resumed.forwarded, resumed.waits, resumed.stalls], [2, 1, 1])
        XCTAssertEqual(resumed.cause, .stop)
        XCTAssertFalse(resumed.isHolding)
        XCTAssertNil(resumed.ending(nowNanoseconds: 11 * second - 1, producersEmpty: false))
        XCTAssertEqual(resumed.ending(nowNanoseconds: 11 * second, producersEmpty: false), .timeLimit)
    }

    func testTheStallTimeIsConfiguredAndAReloadChangesItForTheMessageHeld() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 600_000, stallMilliseconds: 3_000)
        catchUp.refused(nowNanoseconds: second)
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: 4 * second - 1))
        XCTAssertTrue(catchUp.isStalled(nowNanoseconds: 4 * second))
        catchUp.stall(afterMilliseconds: 500)
        XCTAssertTrue(catchUp.isStalled(nowNanoseconds: second + second / 2))
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: second + second / 2 - 1))
        let resumed = BacklogCatchUp(
            resuming: catchUp, .resume, nowNanoseconds: 5 * second, limitMilliseconds: 600_000, stallMilliseconds: 200)
        XCTAssertEqual(resumed.stallNanoseconds, 200_000_000)
    }

    func testNothingHeldIsNeverStalled() {
        let catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 600_000)
        XCTAssertFalse(catchUp.isStalled(nowNanoseconds: 100 * second))
    }

    func testMessagesThatEachWaitLessThanTheStallTimeGoOnUntilTheLimit() {
        var catchUp = BacklogCatchUp(.resume, nowNanoseconds: 0, limitMilliseconds: 5_000)
        var now: UInt64 = 0
        while now + catchUp.stallNanoseconds / 2 < 5 * second {
            catchUp.refused(nowNanoseconds: now)
            now += catchUp.stallNanoseconds / 2
            XCTAssertNil(catchUp.ending(nowNanoseconds: now, producersEmpty: false))
            catchUp.sent(nowNanoseconds: now)
            now += 1
        }
        XCTAssertNil(catchUp.ending(nowNanoseconds: 5 * second - 1, producersEmpty: false))
        XCTAssertEqual(catchUp.ending(nowNanoseconds: 5 * second, producersEmpty: false), .timeLimit)
        XCTAssertEqual(catchUp.waits, catchUp.forwarded)
        XCTAssertEqual(catchUp.elapsedMilliseconds(nowNanoseconds: now), now / 1_000_000)
    }
}
