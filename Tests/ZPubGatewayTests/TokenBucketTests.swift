import XCTest

@testable import ZPubGateway

/// The arithmetic of `TokenBucket`, on a clock the test moves by hand (nanoseconds).
final class TokenBucketTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000
    /// An arbitrary start, far from 0, as `NIODeadline.now().uptimeNanoseconds` is.
    private let start: UInt64 = 7_000_000_000_000

    /// How many tokens can be taken at `now`, taking them all.
    private func drain(_ bucket: inout TokenBucket, now: UInt64) -> Int {
        var taken = 0
        while bucket.take(now: now) { taken += 1 }
        return taken
    }

    func testAFullBucketGivesItsBurstAtOnceAndThenNothing() {
        var bucket = TokenBucket(burst: 128, perSecond: 20, now: start)
        XCTAssertEqual(bucket.interval, 50_000_000, "20 a second: one every 50 ms")
        XCTAssertEqual(drain(&bucket, now: start), 128)
        XCTAssertFalse(bucket.take(now: start))
        XCTAssertEqual(bucket.untilNext(now: start), 50_000_000)
        XCTAssertEqual(bucket.untilNext(now: start + 20_000_000), 30_000_000)
    }

    func testTokensComeBackAtTheRateWithTheRemainderCarriedOver() {
        var bucket = TokenBucket(burst: 10, perSecond: 20, now: start)
        XCTAssertEqual(drain(&bucket, now: start), 10)
        XCTAssertFalse(bucket.take(now: start + 49_999_999), "not a whole token yet")
        XCTAssertTrue(bucket.take(now: start + 50_000_000))
        XCTAssertFalse(bucket.take(now: start + 50_000_001))
        // 70 ms later: one token, and 20 ms towards the next, which comes 30 ms on, not 50.
        XCTAssertTrue(bucket.take(now: start + 120_000_000))
        XCTAssertFalse(bucket.take(now: start + 149_999_999))
        XCTAssertTrue(bucket.take(now: start + 150_000_000))
        // Asked a thousand times a second for 3 s: exactly 20 a second are given.
        var given = 0
        for millisecond in 1...3_000 where bucket.take(now: start + 150_000_000 + UInt64(millisecond) * 1_000_000) {
            given += 1
        }
        XCTAssertEqual(given, 60)
    }

    func testAnIdleBucketFillsToItsBurstAndNoFurther() {
        var bucket = TokenBucket(burst: 16, perSecond: 20, now: start)
        XCTAssertEqual(drain(&bucket, now: start), 16)
        XCTAssertEqual(drain(&bucket, now: start + 3 * second / 10), 6, "300 ms earn 6")
        // An hour, a year, the clock's whole range: still the burst, and nothing overflows.
        XCTAssertEqual(drain(&bucket, now: start + 3_600 * second), 16)
        XCTAssertEqual(drain(&bucket, now: UInt64.max), 16)
        XCTAssertEqual(drain(&bucket, now: UInt64.max), 0)
        XCTAssertEqual(bucket.untilNext(now: UInt64.max), 50_000_000)
        // Full all along: time spent full earns nothing beyond it.
        var full = TokenBucket(burst: 3, perSecond: 1, now: start)
        XCTAssertEqual(drain(&full, now: start + 10 * second), 3)
        XCTAssertFalse(full.take(now: start + 10 * second + second - 1))
        XCTAssertTrue(full.take(now: start + 11 * second))
    }

    func testOverAnyStretchAtMostTheBurstPlusTheRateTimesTheTimeIsTaken() {
        var bucket = TokenBucket(burst: 32, perSecond: 20, now: start)
        // Irregular calls, some close together, some far apart, for 10 s.
        var now = start
        var taken = 0
        var step: UInt64 = 1
        while now < start + 10 * second {
            if bucket.take(now: now) { taken += 1 }
            step = (step * 7_919 + 13) % 40_000_000
            now += step
        }
        XCTAssertLessThanOrEqual(taken, 32 + 20 * 10)
        XCTAssertGreaterThanOrEqual(taken, 32 + 20 * 10 - 1, "and all of it when asked often")
    }

    /// Work charged beyond the tokens (a catch-up's subscriptions) is a debt: nothing is given
    /// until the rate has repaid it, however deep it is, so that over any stretch the rate
    /// still holds.
    func testAChargeBeyondTheTokensIsADebtRepaidAtTheRate() {
        var bucket = TokenBucket(burst: 10, perSecond: 20, now: start)
        XCTAssertFalse(bucket.inDebt(now: start))
        for _ in 0..<15 { bucket.charge(now: start) }
        XCTAssertTrue(bucket.inDebt(now: start))
        XCTAssertFalse(bucket.take(now: start))
        XCTAssertEqual(bucket.untilNext(now: start), 6 * 50_000_000, "5 owed, then one to take")
        XCTAssertEqual(bucket.untilNext(now: start + 20_000_000), 6 * 50_000_000 - 20_000_000)
        XCTAssertTrue(bucket.inDebt(now: start + 5 * 50_000_000 - 1))
        XCTAssertFalse(bucket.inDebt(now: start + 5 * 50_000_000))
        XCTAssertFalse(bucket.take(now: start + 5 * 50_000_000), "repaid, nothing earned yet")
        XCTAssertTrue(bucket.take(now: start + 6 * 50_000_000))

        var deep = TokenBucket(burst: 4, perSecond: 1, now: start)
        for _ in 0..<100 { deep.charge(now: start) }
        XCTAssertEqual(deep.available(now: start), -96, "deeper than the burst: all of it owed")
        XCTAssertEqual(drain(&deep, now: start + 96 * second), 0)
        XCTAssertEqual(drain(&deep, now: start + 97 * second), 1)
        XCTAssertEqual(drain(&deep, now: start + 1_000 * second), 4, "full again, and no further")

        var carried = TokenBucket(burst: 10, perSecond: 10, now: start, tokens: -3)
        XCTAssertTrue(carried.inDebt(now: start + 299_999_999))
        XCTAssertEqual(carried.available(now: start + 400_000_000), 1)
    }

    func testAClockThatWentBackEarnsNothing() {
        var bucket = TokenBucket(burst: 2, perSecond: 20, now: start)
        XCTAssertEqual(drain(&bucket, now: start), 2)
        XCTAssertFalse(bucket.take(now: start - second))
        XCTAssertEqual(bucket.untilNext(now: start - second), 50_000_000)
        XCTAssertTrue(bucket.take(now: start + 50_000_000))
    }

    func testTheGatewaysAllowanceLetsAClientSubscribeToAllItsPrefixesTwice() {
        XCTAssertEqual(SubscriptionChangeLimit.burst(maxClientPrefixes: 64), 128)
        var bucket = SubscriptionChangeLimit.bucket(maxClientPrefixes: 64, now: start)
        XCTAssertEqual(drain(&bucket, now: start), 128)
        XCTAssertEqual(drain(&bucket, now: start + second), SubscriptionChangeLimit.perSecond)
    }
}
