import XCTest

@testable import ZPubCore

final class UpstreamValueTests: XCTestCase {
    /// The wrapping carries the digest the downstream computes from its own cache entry of the
    /// same value, and only that value's.
    func testTheWrappingsDigestIsTheCachedValuesDigest() {
        let value = [Array("s.a".utf8), Array("v1".utf8), []]
        let wrapped = UpstreamValue.wrapped(value)
        XCTAssertEqual(Array(wrapped.dropFirst()), value)
        XCTAssertTrue(wrapped[0].starts(with: UpstreamValue.prefix))
        XCTAssertTrue(wrapped[0].starts(with: BrokerState.internalPrefix), "dropped by brokers that do not unwrap")
        let carried = wrapped[0].withUnsafeBytes { UpstreamValue.digest(inFirstFrame: $0) }
        var cache = LastValueCache(
            prefixes: [Array("s.".utf8)], maxEntries: 10, maxBytes: 1 << 20, maxAgeMilliseconds: 0)
        cache.store(value, nowMilliseconds: 1)
        let topic = Array("s.a".utf8)
        XCTAssertTrue(topic.withUnsafeBytes { cache.holds($0, digest: carried!, nowMilliseconds: 1) })
        XCTAssertEqual(cache.upstreamValuesKnown, 1)
        cache.store([Array("s.a".utf8), Array("v2".utf8), []], nowMilliseconds: 2)
        XCTAssertFalse(topic.withUnsafeBytes { cache.holds($0, digest: carried!, nowMilliseconds: 2) })
        XCTAssertFalse(Array("s.b".utf8).withUnsafeBytes { cache.holds($0, digest: carried!, nowMilliseconds: 2) })
        XCTAssertEqual(cache.upstreamValuesKnown, 1)
    }

    func testOtherInternalTopicsAreNotWrappings() {
        for frame in ["$zpub/value/", "$zpub/value/12345678abcdef0", "$zpub/value/12345678abcdef0g", "$zpub/seq/x"] {
            XCTAssertNil(Array(frame.utf8).withUnsafeBytes { UpstreamValue.digest(inFirstFrame: $0) }, frame)
        }
        XCTAssertEqual(
            Array("$zpub/value/00000000000000ff".utf8).withUnsafeBytes { UpstreamValue.digest(inFirstFrame: $0) }, 255)
    }
}
