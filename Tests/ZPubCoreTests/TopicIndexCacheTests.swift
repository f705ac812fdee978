import XCTest

@testable import ZPubCore

final class TopicIndexCacheTests: XCTestCase {
    private func sets(of topics: [[UInt8]], seed: UInt64) -> Set<Int> {
        let cache = TopicIndexCache(seed: seed)
        return Set(topics.map { topic in topic.withUnsafeBytes { cache.set(of: $0) } })
    }

    /// Topics that share a long prefix and suffix and differ only in the middle (the usual
    /// shape of topic names) spread over the sets as random ones would: 1,000 topics in 4,096
    /// sets fill some 885 of them. A hash of only the first and last words would put them all
    /// in one.
    func testTopicsThatDifferOnlyInTheMiddleSpreadOverTheSets() {
        let topics = (0..<1_000).map { Array("sensors.building-7.floor-\($0).room-12.temperature".utf8) }
        for seed: UInt64 in [0, 1, 0xdead_beef, .max] {
            XCTAssertGreaterThan(sets(of: topics, seed: seed).count, 800, "seed \(seed)")
        }
    }

    /// Every byte of a topic counts, at every length up to three words and a tail: the 256
    /// values of one byte in one position land in ~248 of the 4,096 sets (a byte left out:
    /// all in one set).
    func testEveryByteOfATopicChangesItsSet() {
        for length in 1...27 {
            for position in 0..<length {
                let topics = (0...255).map { value -> [UInt8] in
                    var bytes = [UInt8](repeating: UInt8(ascii: "x"), count: length)
                    bytes[position] = UInt8(value)
                    return bytes
                }
                let filled = sets(of: topics, seed: 42).count
                XCTAssertGreaterThan(filled, 200, "length \(length), byte \(position)")
            }
        }
    }

    /// Topics of different lengths made of the same bytes are told apart (the length is
    /// hashed), and so is the empty topic.
    func testTheLengthCounts() {
        let topics = (0...64).map { [UInt8](repeating: 0, count: $0) }
        XCTAssertGreaterThan(sets(of: topics, seed: 7).count, 60)
    }

    /// A set keeps the two topics found last through the table: a third pushes the oldest
    /// out.
    func testASetRemembersTheTwoLatestIndexes() {
        var cache = TopicIndexCache(seed: 3)
        XCTAssertTrue(cache.candidates(in: 9) == (-1, -1))
        cache.remember(5, in: 9)
        cache.remember(6, in: 9)
        XCTAssertTrue(cache.candidates(in: 9) == (6, 5))
        cache.remember(7, in: 9)
        XCTAssertTrue(cache.candidates(in: 9) == (7, 6))
        XCTAssertTrue(cache.candidates(in: 10) == (-1, -1))
        cache.removeAll()
        XCTAssertTrue(cache.candidates(in: 9) == (-1, -1))
    }
}
