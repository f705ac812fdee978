import XCTest

@testable import ZPubCore

final class TopicIndexCacheTests: XCTestCase {
    /// A cache of 4,096 sets (grown for 512 topics).
    private func cache(seed: UInt64) -> TopicIndexCache {
        var cache = TopicIndexCache(topics: 4_096, seed: seed)
        _ = cache.grow(toHold: 512)
        XCTAssertEqual(cache.setCount, 4_096)
        return cache
    }

    private func sets(of topics: [[UInt8]], seed: UInt64) -> Set<Int> {
        let cache = cache(seed: seed)
        return Set(topics.map { topic in topic.withUnsafeBytes { cache.set(of: TopicKey($0), topic: $0) } })
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

    /// Numbered topics spread over the sets as random ones would, whatever the run's seed, in
    /// decimal and in hex: 10,000 of them in 32,768 sets (the default `max_topics`) leave some
    /// 3.7% in sets that three or more share (those miss the cache every round). Folding the last multiply's halves is
    /// what makes hex work: without it a topic's last characters moved only the product's top
    /// bits, and `id.%08x` topics shared sets by the seed (up to a quarter of them missing).
    func testNumberedTopicsSpreadOverTheSetsWhateverTheSeed() {
        let families: [(String, (Int) -> String)] = [
            ("id.%08x", { "id." + String($0, radix: 16).padding(8) }),
            ("order-%08x", { "order-" + String($0, radix: 16).padding(8) }),
            ("user:%08X", { "user:" + String($0, radix: 16, uppercase: true).padding(8) }),
            ("t.%d", { "t.\($0)" }),
        ]
        for (name, topic) in families {
            let topics = (0..<10_000).map { Array(topic($0).utf8) }
            var worst = 0.0
            for seed: UInt64 in 1...20 {
                var cache = TopicIndexCache(topics: 20_000, seed: seed)
                _ = cache.grow(toHold: 4_096)
                XCTAssertEqual(cache.setCount, 32_768)
                var perSet: [Int: Int] = [:]
                for bytes in topics {
                    let set = bytes.withUnsafeBytes { cache.set(of: TopicKey($0), topic: $0) }
                    perSet[set, default: 0] += 1
                }
                let missing = perSet.values.filter { $0 >= 3 }.reduce(0, +)
                worst = max(worst, Double(missing) / Double(topics.count))
            }
            XCTAssertLessThan(worst, 0.06, "\(name): up to \(Int(worst * 100))% in sets of three or more")
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
        var cache = cache(seed: 3)
        let (five, six, seven) = (key("five"), key("six"), key("seven"))
        func index(_ key: TopicKey, in set: Int = 9) -> Int? { cache.lookUp(key, in: set, confirm: { _ in true }) }
        XCTAssertNil(index(five))
        cache.remember(five, at: 5, in: 9)
        cache.remember(six, at: 6, in: 9)
        XCTAssertEqual(index(five), 5)
        XCTAssertEqual(index(six), 6)
        cache.remember(seven, at: 7, in: 9)
        XCTAssertEqual(index(seven), 7)
        XCTAssertEqual(index(six), 6)
        XCTAssertNil(index(five), "pushed out")
        XCTAssertNil(index(seven, in: 10), "another set")
    }

    /// A topic longer than 16 bytes is proposed by its key's words and confirmed by `confirm`
    /// (the table's key): two topics with the same first and last 8 bytes and length are told
    /// apart there, and either way can hold the right one.
    func testALongTopicIsConfirmedByItsWholeKey() {
        var cache = cache(seed: 5)
        let (left, right) = (key("sensors.A.temperature"), key("sensors.B.temperature"))
        XCTAssertEqual(left, right, "same length, same first and last 8 bytes")
        XCTAssertFalse(left.isExact)
        cache.remember(left, at: 1, in: 2)
        cache.remember(right, at: 2, in: 2)
        XCTAssertEqual(cache.lookUp(left, in: 2, confirm: { $0 == 1 }), 1, "the second way's")
        XCTAssertEqual(cache.lookUp(right, in: 2, confirm: { $0 == 2 }), 2, "the first way's")
        XCTAssertNil(cache.lookUp(right, in: 2, confirm: { _ in false }))
    }

    /// The length is part of what a way must match: "a", "aa" and "aaa" have the same words.
    func testTopicsOfOneByteRepeatedAreToldApartByTheirLength() {
        var cache = cache(seed: 11)
        cache.remember(key("a"), at: 1, in: 9)
        XCTAssertEqual(cache.lookUp(key("a"), in: 9, confirm: { _ in true }), 1)
        XCTAssertNil(cache.lookUp(key("aa"), in: 9, confirm: { _ in true }))
        XCTAssertNil(cache.lookUp(key("aaa"), in: 9, confirm: { _ in true }))
    }

    /// The sets follow the table: 1,024 at first, eight per topic as topics come, up to two per
    /// topic `max_topics` allows (powers of two, at most 65,536); each growth empties them.
    func testTheSetsGrowWithTheTable() {
        var cache = TopicIndexCache(topics: 10_000, seed: 1)
        XCTAssertEqual(cache.setCount, 1_024)
        XCTAssertEqual(cache.maxSetCount, 32_768)
        XCTAssertFalse(cache.grow(toHold: 128))
        cache.remember(key("a"), at: 0, in: 0)
        XCTAssertTrue(cache.grow(toHold: 129))
        XCTAssertEqual(cache.setCount, 2_048)
        XCTAssertNil(cache.lookUp(key("a"), in: 0, confirm: { _ in true }), "emptied")
        XCTAssertTrue(cache.grow(toHold: 10_000))
        XCTAssertEqual(cache.setCount, 32_768)
        XCTAssertFalse(cache.grow(toHold: 1_000_000), "bounded by max_topics")
        XCTAssertEqual(TopicIndexCache(topics: 10_000_000).maxSetCount, 65_536)
        XCTAssertEqual(TopicIndexCache(topics: 10).maxSetCount, 1_024)
    }

    private func key(_ topic: String) -> TopicKey {
        Array(topic.utf8).withUnsafeBytes { TopicKey($0) }
    }
}

extension String {
    /// Left-padded with zeros to `width` characters.
    fileprivate func padding(_ width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
