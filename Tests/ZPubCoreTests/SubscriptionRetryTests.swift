import XCTest
import ZPubCore

/// When `$zpub/retry` is due again, on a clock the test sets.
final class SubscriptionRetryTests: XCTestCase {
    func testARetryIsDueOnceAnIntervalAndNotBefore() {
        var retry = SubscriptionRetry(intervalNanoseconds: 2_000_000_000, nowNanoseconds: 10)
        XCTAssertFalse(retry.isDue(nowNanoseconds: 10))
        // Rounded up: a poll that woke a little early would find it not due, and wait again.
        XCTAssertEqual(retry.millisecondsUntilDue(nowNanoseconds: 10), 2_001)
        XCTAssertEqual(retry.millisecondsUntilDue(nowNanoseconds: 1_000_000_010), 1_001)
        XCTAssertTrue(retry.isDue(nowNanoseconds: 2_000_000_010))
        XCTAssertFalse(retry.isDue(nowNanoseconds: 2_000_000_011), "once")
        // Late (the caller was busy): the next one is an interval after it was sent.
        XCTAssertTrue(retry.isDue(nowNanoseconds: 9_000_000_000))
        XCTAssertEqual(retry.millisecondsUntilDue(nowNanoseconds: 9_000_000_000), 2_001)
        XCTAssertEqual(retry.millisecondsUntilDue(nowNanoseconds: 20_000_000_000), 0)
    }
}
