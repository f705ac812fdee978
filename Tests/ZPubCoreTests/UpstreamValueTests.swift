import XCTest

@testable import ZPubCore

final class UpstreamValueTests: XCTestCase {
    /// The wrapping carries the digest the downstream computes from its own cache entry of the
    /// same value, and the time the upstream stored it: a value the downstream holds, or holds
    /// a later one of, is redundant there; an older one held is not.
    func testTheWrappingTellsTheSameValueAndTheNewerOne() {
        let value = [Array("s.a".utf8), Array("v1".utf8), []]
        let wrapped = UpstreamValue.wrapped(value, storedMilliseconds: 5_000)
        XCTAssertEqual(Array(wrapped.dropFirst()), value)
        XCTAssertTrue(wrapped[0].starts(with: BrokerState.internalPrefix), "dropped by brokers that do not unwrap")
        XCTAssertEqual(wrapped[0].count, UpstreamValue.firstFrameSize)
        let header = try! XCTUnwrap(wrapped[0].withUnsafeBytes { UpstreamValue.header(inFirstFrame: $0) })
        XCTAssertEqual(header.storedMilliseconds, 5_000)
        let topic = Array("s.a".utf8)
        func supersedes(_ cache: inout LastValueCache, stored: UInt64) -> Bool {
            topic.withUnsafeBytes {
                cache.supersedes($0, digest: header.digest, storedMilliseconds: stored, nowMilliseconds: 10_000)
            }
        }
        var cache = LastValueCache(
            prefixes: [Array("s.".utf8)], maxEntries: 10, maxBytes: 1 << 20, maxAgeMilliseconds: 0)
        XCTAssertFalse(supersedes(&cache, stored: 5_000), "nothing held: news")
        cache.store([Array("s.a".utf8), Array("v0".utf8), []], nowMilliseconds: 4_000)
        XCTAssertFalse(supersedes(&cache, stored: 5_000), "an older value held: news")
        cache.store(value, nowMilliseconds: 6_000)
        XCTAssertTrue(supersedes(&cache, stored: 5_000), "the same value")
        XCTAssertTrue(supersedes(&cache, stored: 7_000), "the same value, whatever the times say")
        cache.store([Array("s.a".utf8), Array("v2".utf8), []], nowMilliseconds: 8_000)
        XCTAssertTrue(supersedes(&cache, stored: 5_000), "a later value held: the upstream's is older")
        XCTAssertFalse(supersedes(&cache, stored: 9_000), "the upstream's is later")
        XCTAssertEqual(cache.upstreamValuesKnown, 3)
    }

    func testOtherInternalTopicsAreNotWrappings() {
        let zeros = String(repeating: "0", count: 32)
        for frame in [
            "$zpub/value/", "$zpub/value/" + zeros.dropLast(), "$zpub/value/" + zeros.dropLast() + "g", "$zpub/seq/x",
        ] {
            XCTAssertNil(Array(frame.utf8).withUnsafeBytes { UpstreamValue.header(inFirstFrame: $0) }, frame)
        }
        let header = Array(("$zpub/value/00000000000000ff" + "0000000000000100").utf8).withUnsafeBytes {
            UpstreamValue.header(inFirstFrame: $0)
        }
        XCTAssertEqual(header?.digest, 255)
        XCTAssertEqual(header?.storedMilliseconds, 256)
    }
}
