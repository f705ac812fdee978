import XCTest

@testable import ZPubCore

final class SystemClockTests: XCTestCase {
    /// A timed wait's deadline is `milliseconds` after the moment it was made, on the monotonic
    /// clock, with its nanoseconds below a second (pthread and sem_clockwait refuse others).
    func testADeadlineLiesThatFarAheadAndIsNormalized() {
        for milliseconds in [0, 1, 999, 1_000, 1_001, 1_500, 60_000, 3_600_123] {
            let before = SystemClock.monotonicNanoseconds()
            let deadline = SystemClock.monotonicDeadline(afterMilliseconds: milliseconds)
            let after = SystemClock.monotonicNanoseconds()
            XCTAssertTrue((0..<1_000_000_000).contains(deadline.tv_nsec), "\(milliseconds): \(deadline.tv_nsec)")
            let at = UInt64(deadline.tv_sec) * 1_000_000_000 + UInt64(deadline.tv_nsec)
            let ahead = UInt64(milliseconds) * 1_000_000
            XCTAssertGreaterThanOrEqual(at, before + ahead, "\(milliseconds)")
            XCTAssertLessThanOrEqual(at, after + ahead, "\(milliseconds)")
        }
    }
}
