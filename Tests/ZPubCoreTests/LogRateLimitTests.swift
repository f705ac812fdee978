import XCTest
import ZPubCore

final class LogRateLimitTests: XCTestCase {
    func testOneMessagePerIntervalWithTheCountHeldBack() {
        var limit = LogRateLimit(intervalSeconds: 10)
        let second: UInt64 = 1_000_000_000
        XCTAssertEqual(limit.admit(nowNanoseconds: 5 * second), 0, "the first one goes through")
        XCTAssertNil(limit.admit(nowNanoseconds: 6 * second))
        XCTAssertNil(limit.admit(nowNanoseconds: 14 * second))
        XCTAssertEqual(limit.admit(nowNanoseconds: 15 * second), 2, "two were held back meanwhile")
        XCTAssertNil(limit.admit(nowNanoseconds: 16 * second))
        XCTAssertEqual(limit.admit(nowNanoseconds: 100 * second), 1)
    }
}
