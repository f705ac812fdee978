import XCTest
import ZPubCore

final class DescriptorBudgetTests: XCTestCase {
    func testHeadroomIsAnEighthBetweenSixteenAndOneThousandAndTwentyFour() {
        XCTAssertEqual(DescriptorBudget.headroom(forLimit: 64), 16)
        XCTAssertEqual(DescriptorBudget.headroom(forLimit: 1_024), 128)
        XCTAssertEqual(DescriptorBudget.headroom(forLimit: 65_536), 1_024)
        XCTAssertEqual(DescriptorBudget.pausePoint(forLimit: 64), 48)
        XCTAssertEqual(DescriptorBudget.pausePoint(forLimit: 8), 0)
        XCTAssertEqual(DescriptorBudget.resumePoint(forLimit: 64), 42)
    }

    func testAConnectionBelowThePausePointChangesNothing() {
        var budget = DescriptorBudget()
        XCTAssertEqual(budget.opened(descriptor: 47, softLimit: 64), .none)
        XCTAssertFalse(budget.paused)
        XCTAssertEqual(budget.pauses, 0)
    }

    func testAConnectionAtThePausePointPausesOnceWithTheLimitInForce() {
        var budget = DescriptorBudget()
        XCTAssertEqual(budget.opened(descriptor: 48, softLimit: 64), .pause)
        XCTAssertTrue(budget.paused)
        XCTAssertEqual(budget.limitBeforePause, 64)
        // Connections still arriving (the kernel's queue) and the raised limit change nothing.
        XCTAssertEqual(budget.opened(descriptor: 60, softLimit: 256), .none)
        XCTAssertEqual(budget.acceptFailed(outOfDescriptors: true, softLimit: 256), .none)
        XCTAssertEqual(budget.pauses, 1)
    }

    func testResumesBelowTheResumePointWithTheOldLimit() {
        var budget = DescriptorBudget()
        _ = budget.opened(descriptor: 50, softLimit: 64)
        XCTAssertEqual(budget.counted(open: 120), .none)
        XCTAssertEqual(budget.counted(open: 42), .none)
        XCTAssertEqual(budget.counted(open: 41), .resume(restoredLimit: 64))
        XCTAssertFalse(budget.paused)
        XCTAssertEqual(budget.counted(open: 10), .none, "not paused: nothing to resume")
        XCTAssertEqual(budget.opened(descriptor: 48, softLimit: 64), .pause)
        XCTAssertEqual(budget.pauses, 2)
    }

    func testTheProbeCatchesWhatNoMonitorReports() {
        var budget = DescriptorBudget()
        XCTAssertEqual(budget.probed(lowestFree: 30, softLimit: 64), .none)
        XCTAssertEqual(budget.probed(lowestFree: 64, softLimit: 64), .pause)
    }

    func testOnlyDescriptorErrorsPauseAFailedAccept() {
        var budget = DescriptorBudget()
        XCTAssertEqual(budget.acceptFailed(outOfDescriptors: false, softLimit: 64), .none)
        XCTAssertEqual(budget.acceptFailed(outOfDescriptors: true, softLimit: 64), .pause)
    }

    func testTheStartLimitKeepsAReserve() {
        XCTAssertEqual(DescriptorBudget.startLimit(hard: 65_536), 64_512)
        XCTAssertEqual(DescriptorBudget.startLimit(hard: 256), 240)
    }
}
