import XCTest
import ZPubCore

@testable import ZPubGateway

final class BacklogWatchTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000

    func testARunningCatchUpIsABacklog() {
        let watch = BacklogWatch()
        XCTAssertTrue(watch.isBacklog(.init(isRunning: true, lastEndNanoseconds: 0), nowNanoseconds: { 0 }))
        XCTAssertFalse(watch.isBacklog(.init(isRunning: false, lastEndNanoseconds: 0), nowNanoseconds: { 0 }))
    }

    /// The case the one-second window got wrong: the link reads the end of the backlog
    /// minutes (here 20 s) after the broker sent it.
    func testAnEndedCatchUpLastsUntilTheLinkFindsItsQueueEmpty() {
        var watch = BacklogWatch()
        let ended = BacklogCatchUpState(isRunning: false, lastEndNanoseconds: 100 * second)
        watch.readStarts(ended)
        XCTAssertTrue(watch.isBacklog(ended, nowNanoseconds: { 120 * self.second }))
        watch.foundEmpty()
        XCTAssertFalse(watch.isBacklog(ended, nowNanoseconds: { 120 * self.second }))
    }

    /// A read that began before the end may have emptied the queue before the backlog's last
    /// messages were in it: it does not count as having read them.
    func testAQueueFoundEmptyBeforeTheEndWasKnownDoesNotEndTheBacklog() {
        var watch = BacklogWatch()
        watch.readStarts(.init(isRunning: true, lastEndNanoseconds: 0))
        let ended = BacklogCatchUpState(isRunning: false, lastEndNanoseconds: 5 * second)
        watch.foundEmpty()
        XCTAssertTrue(watch.isBacklog(ended, nowNanoseconds: { 5 * self.second }))
        watch.readStarts(ended)
        watch.foundEmpty()
        XCTAssertFalse(watch.isBacklog(ended, nowNanoseconds: { 5 * self.second }))
        // The next catch-up's end is a new one.
        let next = BacklogCatchUpState(isRunning: false, lastEndNanoseconds: 9 * second)
        XCTAssertTrue(watch.isBacklog(next, nowNanoseconds: { 9 * self.second }))
    }

    /// A link that never finds its queue empty lets the backlog go after the patience.
    func testALinkThatIsBehindForGoodLetsTheBacklogGo() {
        let watch = BacklogWatch()
        let ended = BacklogCatchUpState(isRunning: false, lastEndNanoseconds: second)
        let patience = BacklogWatch.patienceNanoseconds
        XCTAssertTrue(watch.isBacklog(ended, nowNanoseconds: { self.second + patience - 1 }))
        XCTAssertFalse(watch.isBacklog(ended, nowNanoseconds: { self.second + patience }))
    }
}
