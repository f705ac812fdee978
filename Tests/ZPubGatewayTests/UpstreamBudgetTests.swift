import XCTest

@testable import ZPubGateway

/// `UpstreamBudget` on a clock the test moves by hand (nanoseconds).
final class UpstreamBudgetTests: XCTestCase {
    private let start: UInt64 = 9_000_000_000_000
    private let millisecond: UInt64 = 1_000_000

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// The burst goes at once; the rest waits and comes back in order, at the rate.
    func testPrefixesOverTheBudgetWaitInOrder() {
        var budget = UpstreamBudget(perSecond: 10, now: start)
        let prefixes = (0..<15).map { bytes("p\($0).") }
        let admitted = prefixes.filter { budget.admit($0, now: start) }
        XCTAssertEqual(admitted, Array(prefixes.prefix(10)))
        XCTAssertEqual(budget.waitingCount, 5)
        XCTAssertEqual(budget.delayed, 5)
        XCTAssertEqual(budget.due(now: start + 99 * millisecond), [])
        XCTAssertEqual(budget.untilNext(now: start + 99 * millisecond), millisecond)
        XCTAssertEqual(budget.due(now: start + 250 * millisecond), [prefixes[10], prefixes[11]])
        XCTAssertEqual(budget.due(now: start + 10_000 * millisecond), Array(prefixes[12...]))
        XCTAssertEqual(budget.waitingCount, 0)
    }

    /// While anything waits, a newcomer waits behind it, even with a token free.
    func testNothingOvertakesWhatWaits() {
        var budget = UpstreamBudget(perSecond: 1, now: start)
        XCTAssertTrue(budget.admit(bytes("a."), now: start))
        XCTAssertFalse(budget.admit(bytes("b."), now: start))
        XCTAssertFalse(budget.admit(bytes("c."), now: start + 1_000 * millisecond), "b. first")
        XCTAssertEqual(budget.due(now: start + 1_000 * millisecond), [bytes("b.")])
        XCTAssertEqual(budget.due(now: start + 2_000 * millisecond), [bytes("c.")])
    }

    /// A prefix nobody wants any more leaves the queue (it was never subscribed), and one asked
    /// for again waits once, at the back: churning one prefix cannot grow the queue, nor keep
    /// an old place.
    func testACancelledPrefixLeavesAndARepeatedOneWaitsOnce() {
        var budget = UpstreamBudget(perSecond: 1, now: start)
        XCTAssertTrue(budget.admit(bytes("a."), now: start))
        for _ in 0..<10_000 {
            XCTAssertFalse(budget.admit(bytes("b."), now: start))
            XCTAssertFalse(budget.admit(bytes("b."), now: start))
            XCTAssertTrue(budget.cancel(bytes("b.")))
        }
        XCTAssertFalse(budget.cancel(bytes("b.")), "not waiting")
        XCTAssertFalse(budget.admit(bytes("b."), now: start))
        XCTAssertFalse(budget.admit(bytes("c."), now: start))
        XCTAssertTrue(budget.cancel(bytes("b.")))
        XCTAssertFalse(budget.admit(bytes("b."), now: start))
        XCTAssertEqual(budget.waitingCount, 2)
        XCTAssertEqual(budget.due(now: start + 1_000 * millisecond), [bytes("c.")], "b. came back after c.")
        XCTAssertEqual(budget.due(now: start + 2_000 * millisecond), [bytes("b.")])
    }

    /// A catch-up's subscriptions go now, into debt; the next catch-up and what waits wait
    /// until the rate has repaid it.
    func testACatchUpIsChargedAndTheNextWaitsForTheDebt() {
        var budget = UpstreamBudget(perSecond: 10, now: start)
        XCTAssertTrue(budget.allowsCatchUp(now: start))
        for _ in 0..<15 { budget.charge(now: start) }
        XCTAssertFalse(budget.allowsCatchUp(now: start))
        XCTAssertFalse(budget.admit(bytes("a."), now: start))
        XCTAssertFalse(budget.allowsCatchUp(now: start + 499 * millisecond))
        XCTAssertTrue(budget.allowsCatchUp(now: start + 500 * millisecond), "5 owed at 10 a second")
        XCTAssertEqual(budget.due(now: start + 500 * millisecond), [])
        XCTAssertEqual(budget.due(now: start + 600 * millisecond), [bytes("a.")])
    }

    /// While prefixes wait, catch-ups and prefixes take turns: after a catch-up, as many
    /// waiting prefixes as it cost go first. Catch-ups did not starve them before.
    func testCatchUpsAndWaitingPrefixesTakeTurns() {
        var budget = UpstreamBudget(perSecond: 10, now: start)
        for i in 0..<10 { XCTAssertTrue(budget.admit(bytes("a\(i)."), now: start)) }
        for i in 0..<20 { XCTAssertFalse(budget.admit(bytes("w\(i)."), now: start)) }
        var now = start + 100 * millisecond
        XCTAssertTrue(budget.allowsCatchUp(now: now), "not in debt, nothing owed")
        for _ in 0..<3 { budget.charge(now: now) }  // a catch-up of two new prefixes
        XCTAssertFalse(budget.allowsCatchUp(now: now))
        var served: [[UInt8]] = []
        while served.count < 3 {
            now += 100 * millisecond
            XCTAssertFalse(budget.allowsCatchUp(now: now), "owed to the waiting ones: \(served.count) served")
            served += budget.due(now: now)
        }
        XCTAssertEqual(served, (0..<3).map { bytes("w\($0).") })
        XCTAssertTrue(budget.allowsCatchUp(now: now), "then the next catch-up")
    }

    /// A reload's new rate keeps what waits and the debt (a full new bucket would forgive it).
    func testANewRateKeepsTheDebtAndTheQueue() {
        var budget = UpstreamBudget(perSecond: 10, now: start)
        for _ in 0..<15 { budget.charge(now: start) }
        XCTAssertFalse(budget.admit(bytes("a."), now: start))
        budget.changeRate(perSecond: 100, now: start)
        XCTAssertFalse(budget.allowsCatchUp(now: start + 49 * millisecond), "5 owed at 100 a second")
        XCTAssertEqual(budget.due(now: start + 60 * millisecond), [bytes("a.")])
    }

    /// Over any stretch, what goes upstream is at most the burst plus the rate times the time,
    /// and one catch-up's cost, whatever mix of subscribes, cancels and catch-ups asks for it.
    func testOverAnyStretchTheRateHolds() {
        var budget = UpstreamBudget(perSecond: 50, now: start)
        var now = start
        var upstream = 0
        var generator = SystemRandomNumberGenerator()
        var next = 0
        var seconds = 0.0
        while now < start + 20_000 * millisecond {
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<6:
                if budget.admit(bytes("p\(next)."), now: now) { upstream += 1 }
                next += 1
            case 6:
                _ = budget.cancel(bytes("p\(Int.random(in: 0..<max(1, next), using: &generator))."))
            case 7:
                if budget.allowsCatchUp(now: now) {
                    // Its marker and SNAPSHOT, and up to 9 new prefixes.
                    for _ in 0..<Int.random(in: 1...10, using: &generator) {
                        budget.charge(now: now)
                        upstream += 1
                    }
                }
            default:
                upstream += budget.due(now: now).count
            }
            now += UInt64.random(in: 0...(4 * millisecond), using: &generator)
            seconds = Double(now - start) / 1e9
            // A catch-up may take more than the budget has: its charges come after the check.
            XCTAssertLessThanOrEqual(Double(upstream), 50 + 50 * seconds + 10, "at \(seconds) s")
        }
        XCTAssertGreaterThan(Double(upstream), 50 * seconds - 10, "and the budget is used")
    }
}
