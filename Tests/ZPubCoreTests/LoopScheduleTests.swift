import XCTest
import ZPubCore

/// The forwarding loop's timers and shutdown drain, driven by an injected clock.
final class LoopScheduleTests: XCTestCase {
    private let ms: UInt64 = 1_000_000

    func testTheWatchdogIsPingedEveryHalfIntervalAndPollsAreShortEnough() {
        // WATCHDOG_USEC=1 s: ping every 500 ms, poll at most 250 ms.
        var schedule = LoopSchedule(watchdogMicroseconds: 1_000_000, reportsStatus: false, nowNanoseconds: 0)
        XCTAssertEqual(schedule.pollTimeoutMilliseconds, 250)
        XCTAssertTrue(schedule.tick(nowNanoseconds: 500 * ms).watchdogPing)
        XCTAssertFalse(schedule.tick(nowNanoseconds: 999 * ms).watchdogPing)
        XCTAssertTrue(schedule.tick(nowNanoseconds: 1_000 * ms).watchdogPing)
    }

    func testWithoutAWatchdogNothingIsPingedAndPollsWaitHalfASecond() {
        var schedule = LoopSchedule(watchdogMicroseconds: nil, reportsStatus: false, nowNanoseconds: 0)
        XCTAssertEqual(schedule.pollTimeoutMilliseconds, 500)
        XCTAssertEqual(schedule.tick(nowNanoseconds: 10_000 * ms), LoopSchedule.Due(housekeeping: true))
    }

    func testAVeryShortWatchdogStillPollsAtLeastAMillisecond() {
        let schedule = LoopSchedule(watchdogMicroseconds: 1_000, reportsStatus: false, nowNanoseconds: 0)
        XCTAssertEqual(schedule.pollTimeoutMilliseconds, 1)
    }

    func testStatusAndHousekeepingComeOnceASecond() {
        var schedule = LoopSchedule(watchdogMicroseconds: nil, reportsStatus: true, nowNanoseconds: 0)
        XCTAssertEqual(schedule.tick(nowNanoseconds: 999 * ms), LoopSchedule.Due())
        XCTAssertEqual(
            schedule.tick(nowNanoseconds: 1_000 * ms), LoopSchedule.Due(statusReport: true, housekeeping: true))
        XCTAssertTrue(schedule.tick(nowNanoseconds: 1_100 * ms).statusReport, "due until it is reported")
        schedule.statusReported(nowNanoseconds: 1_100 * ms)
        XCTAssertEqual(schedule.lastStatus, 1_100 * ms)
        XCTAssertFalse(schedule.tick(nowNanoseconds: 1_200 * ms).statusReport)
    }

    func testTheDrainEndsWhenProducersAreQuietOrAtTheDeadline() {
        var schedule = LoopSchedule(watchdogMicroseconds: nil, reportsStatus: false, nowNanoseconds: 0)
        XCTAssertNil(
            schedule.drainEnd(pollWasEmpty: true, producersWereQuiet: true, nowNanoseconds: 0), "no stop asked for")
        schedule.startDrain(nowNanoseconds: 1_000 * ms, milliseconds: 2_000)
        XCTAssertTrue(schedule.isDraining)
        XCTAssertEqual(schedule.pollTimeoutMilliseconds, 100)
        XCTAssertNil(schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: false, nowNanoseconds: 2_999 * ms))
        XCTAssertEqual(
            schedule.drainEnd(pollWasEmpty: true, producersWereQuiet: true, nowNanoseconds: 2_999 * ms), .quiet)
        XCTAssertEqual(
            schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: false, nowNanoseconds: 3_000 * ms), .deadline)
        schedule.startDrain(nowNanoseconds: 5_000 * ms, milliseconds: 2_000)
        XCTAssertEqual(
            schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: false, nowNanoseconds: 3_000 * ms), .deadline,
            "a second stop keeps the deadline")
    }

    /// Polls woken by others (control requests, subscriptions) do not keep the drain going:
    /// producers with nothing to read for a poll's timeout are quiet. A load balancer's
    /// /healthz every 50 ms held the drain to its deadline before.
    func testOnlyProducersKeepTheDrainGoing() {
        var schedule = LoopSchedule(watchdogMicroseconds: nil, reportsStatus: false, nowNanoseconds: 0)
        schedule.startDrain(nowNanoseconds: 1_000 * ms, milliseconds: 60_000)
        XCTAssertNil(
            schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: true, nowNanoseconds: 1_050 * ms),
            "a control request 50 ms in: producers may still send")
        XCTAssertEqual(
            schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: true, nowNanoseconds: 1_100 * ms), .quiet)
        schedule = LoopSchedule(watchdogMicroseconds: nil, reportsStatus: false, nowNanoseconds: 0)
        schedule.startDrain(nowNanoseconds: 1_000 * ms, milliseconds: 60_000)
        XCTAssertNil(schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: false, nowNanoseconds: 1_090 * ms))
        XCTAssertNil(
            schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: true, nowNanoseconds: 1_150 * ms),
            "60 ms since the producers' last message")
        XCTAssertEqual(
            schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: true, nowNanoseconds: 1_190 * ms), .quiet)
    }

    func testEndingTheDrainNowEndsItAtOnceAndOnlyADrain() {
        var schedule = LoopSchedule(watchdogMicroseconds: nil, reportsStatus: false, nowNanoseconds: 0)
        schedule.endDrainNow(nowNanoseconds: 500 * ms)
        XCTAssertFalse(schedule.isDraining, "no drain to end: none starts")
        schedule.startDrain(nowNanoseconds: 1_000 * ms, milliseconds: 60_000)
        XCTAssertNil(schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: false, nowNanoseconds: 1_200 * ms))
        schedule.endDrainNow(nowNanoseconds: 1_200 * ms)
        XCTAssertEqual(
            schedule.drainEnd(pollWasEmpty: false, producersWereQuiet: false, nowNanoseconds: 1_200 * ms), .deadline)
    }
}
