import XCTest
import ZPubCore

final class DescriptorBudgetTests: XCTestCase {
    func testHeadroomIsAnEighthBetweenSixteenAndOneThousandAndTwentyFour() {
        XCTAssertEqual(DescriptorBudget.headroom(forLimit: 64), 16)
        XCTAssertEqual(DescriptorBudget.headroom(forLimit: 1_024), 128)
        XCTAssertEqual(DescriptorBudget.headroom(forLimit: 65_536), 1_024)
        XCTAssertEqual(DescriptorBudget.pausePoint(forLimit: 64), 48)
        XCTAssertEqual(DescriptorBudget.pausePoint(forLimit: 16), 8, "never below half the limit")
        XCTAssertEqual(DescriptorBudget.resumePoint(forLimit: 64), 42)
    }

    func testAConnectionBelowThePausePointChangesNothing() {
        var budget = DescriptorBudget()
        XCTAssertEqual(budget.opened(descriptor: 47, softLimit: 64, nowSeconds: 0), .none)
        XCTAssertFalse(budget.paused)
        XCTAssertEqual(budget.pauses, 0)
    }

    func testAConnectionAtThePausePointPausesOnceWithTheLimitInForce() {
        var budget = DescriptorBudget()
        XCTAssertEqual(budget.opened(descriptor: 48, softLimit: 64, nowSeconds: 0), .pause)
        XCTAssertTrue(budget.paused)
        XCTAssertEqual(budget.limitBeforePause, 64)
        // Connections still arriving (the kernel's queue) and the raised limit change nothing.
        XCTAssertEqual(budget.opened(descriptor: 60, softLimit: 256, nowSeconds: 0), .none)
        XCTAssertEqual(budget.acceptFailed(.processLimit, softLimit: 256, nowSeconds: 0), .none)
        XCTAssertEqual(budget.pauses, 1)
    }

    func testResumesBelowTheResumePointWithTheOldLimit() {
        var budget = DescriptorBudget()
        _ = budget.opened(descriptor: 50, softLimit: 64, nowSeconds: 0)
        XCTAssertEqual(budget.counted(open: 120, nowSeconds: 0), .none)
        XCTAssertEqual(budget.counted(open: 42, nowSeconds: 0), .none)
        XCTAssertEqual(budget.counted(open: 41, nowSeconds: 0), .reopen, "new connections first")
        XCTAssertFalse(budget.paused)
        XCTAssertTrue(budget.settling)
        XCTAssertEqual(budget.counted(open: 10, nowSeconds: 1.9), .none, "the limit stays raised a while")
        XCTAssertEqual(budget.counted(open: 42, nowSeconds: 5), .none, "and while the table is not low")
        XCTAssertEqual(budget.counted(open: 41, nowSeconds: 5), .resume(restoredLimit: 64))
        XCTAssertFalse(budget.settling)
        XCTAssertEqual(budget.counted(open: 10, nowSeconds: 6), .none, "not paused: nothing to resume")
        XCTAssertEqual(budget.opened(descriptor: 48, softLimit: 64, nowSeconds: 6), .pause)
        XCTAssertEqual(budget.pauses, 2)
    }

    /// Connections that waited arrive in a burst when new ones are taken again: the limit is
    /// still raised then, and the burst pauses again at the old pause point, keeping the old
    /// limit to go back to.
    func testABurstAfterReopeningPausesAgainUnderTheRaisedLimit() {
        var budget = DescriptorBudget()
        _ = budget.opened(descriptor: 48, softLimit: 64, nowSeconds: 0)
        XCTAssertEqual(budget.counted(open: 30, nowSeconds: 1), .reopen)
        XCTAssertEqual(budget.opened(descriptor: 47, softLimit: 256, nowSeconds: 1), .none)
        XCTAssertEqual(budget.probed(lowestFree: 48, softLimit: 256, nowSeconds: 1), .pause, "the old pause point")
        XCTAssertEqual(budget.limitBeforePause, 64, "not the raised limit")
        XCTAssertEqual(budget.counted(open: 30, nowSeconds: 2), .reopen)
        XCTAssertEqual(budget.counted(open: 30, nowSeconds: 4), .resume(restoredLimit: 64))
    }

    func testTheProbeCatchesWhatNoMonitorReports() {
        var budget = DescriptorBudget()
        XCTAssertEqual(budget.probed(lowestFree: 30, softLimit: 64, nowSeconds: 0), .none)
        XCTAssertEqual(budget.probed(lowestFree: 64, softLimit: 64, nowSeconds: 0), .pause)
    }

    func testOnlyDescriptorErrorsPauseAFailedAccept() {
        var budget = DescriptorBudget()
        XCTAssertEqual(budget.acceptFailed(.other, softLimit: 64, nowSeconds: 0), .none)
        XCTAssertEqual(budget.acceptFailed(.processLimit, softLimit: 64, nowSeconds: 0), .pause)
    }

    func testTheStartLimitKeepsAReserve() {
        XCTAssertEqual(DescriptorBudget.startLimit(hard: 65_536), 64_512)
        XCTAssertEqual(DescriptorBudget.startLimit(hard: 256), 240)
    }

    func testASystemWidePauseLastsAtLeastItsMinimum() {
        var budget = DescriptorBudget()
        XCTAssertEqual(budget.acceptFailed(.systemLimit, softLimit: 1_024, nowSeconds: 100), .pause)
        XCTAssertTrue(budget.systemWide)
        // zpubd's own count is low (the system is what ran out): no flapping every second.
        XCTAssertEqual(budget.counted(open: 40, nowSeconds: 101), .none)
        XCTAssertEqual(budget.counted(open: 40, nowSeconds: 109.9), .none)
        XCTAssertEqual(budget.counted(open: 40, nowSeconds: 110), .reopen)
        XCTAssertEqual(budget.counted(open: 40, nowSeconds: 112), .resume(restoredLimit: 1_024))
    }
}
