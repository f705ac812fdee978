import XCTest

@testable import ZPubCore

final class TopicTableTests: XCTestCase {
    private func record(
        _ table: inout TopicTable, _ topic: String, bytes: Int, at time: UInt64 = 1, subscriptions: SubscriptionTable
    ) -> Bool {
        // As the forwarding loop does: look up while the topic is at hand, count at the end.
        let found = Array(topic.utf8).withUnsafeBytes {
            table.lookup(topic: $0, subscriptions: subscriptions)
        }
        table.count(found, bytes: UInt64(bytes), nowMilliseconds: time)
        return found.wanted
    }

    /// A lookup's index and wanted bit share one word: each combination comes back as it went
    /// in, the largest index the topic cache can file (a UInt32) included, and an untracked one counts as such.
    func testALookupKeepsItsIndexAndWantedBitApart() {
        for index in [nil, 0, 1, 12_345, Int(UInt32.max)] as [Int?] {
            for wanted in [false, true] {
                let found = TopicTable.Lookup(index: index, wanted: wanted)
                XCTAssertEqual(found.index, index)
                XCTAssertEqual(found.wanted, wanted)
            }
        }
        var table = TopicTable(maxTopics: 1)
        table.count(TopicTable.Lookup(index: nil, wanted: true), bytes: 5, nowMilliseconds: 1)
        table.count(TopicTable.Lookup(index: 7, wanted: false), bytes: 6, nowMilliseconds: 1)
        XCTAssertEqual(table.untrackedMessages, 2, "an index the table does not have is counted as untracked")
        XCTAssertEqual(table.untrackedBytes, 11)
    }

    func testCountsMessagesBytesAndLastSeen() {
        var table = TopicTable(maxTopics: 10)
        let subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        _ = record(&table, "t", bytes: 10, at: 100, subscriptions: subscriptions)
        _ = record(&table, "t", bytes: 5, at: 200, subscriptions: subscriptions)
        let counters = table.counters(of: Array("t".utf8))
        XCTAssertEqual(counters?.messages, 2)
        XCTAssertEqual(counters?.bytes, 15)
        XCTAssertEqual(counters?.lastSeenMilliseconds, 200)
    }

    /// Messages counted in place (`prepareToCount` once, then `countPrepared`, as the forwarding
    /// loop counts a burst) end with each topic's own messages, bytes, unwanted count and last
    /// time, worked out here message by message: runs of one topic, alternating topics,
    /// unwanted ones, and untracked ones beyond the limit.
    func testCountingInPlaceGivesEachTopicItsOwnCounts() {
        var subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        _ = Array("a".utf8).withUnsafeBytes { subscriptions.subscribe($0) }
        let topics = ["a", "a", "a", "b", "a", "b", "b", "c", "d", "a", "d", "d"]
        var table = TopicTable(maxTopics: 3)
        table.prepareToCount()
        var expected: [String: TopicTable.Counters] = [:]
        var untracked: (messages: UInt64, bytes: UInt64) = (0, 0)
        for (position, topic) in topics.enumerated() {
            let (bytes, time) = (UInt64(position + 1), UInt64(position * 10))
            let found = Array(topic.utf8).withUnsafeBytes {
                table.lookup(topic: $0, subscriptions: subscriptions)
            }
            XCTAssertEqual(found.wanted, topic == "a", topic)
            table.countPrepared(found, bytes: bytes, nowMilliseconds: time)
            if topic == "d" {
                untracked = (untracked.messages + 1, untracked.bytes + bytes)
            } else {
                expected[topic, default: .init()].messages += 1
                expected[topic, default: .init()].bytes += bytes
                expected[topic, default: .init()].lastSeenMilliseconds = time
                if !found.wanted { expected[topic, default: .init()].unwanted += 1 }
            }
        }
        XCTAssertEqual(table.entries().map(\.topic), [Array("a".utf8), Array("b".utf8), Array("c".utf8)])
        for (topic, counters) in expected {
            XCTAssertEqual(table.counters(of: Array(topic.utf8)), counters, topic)
        }
        XCTAssertEqual(expected["a"]?.messages, 5)
        XCTAssertEqual(table.untrackedMessages, untracked.messages, "d is beyond the limit of 3 topics")
        XCTAssertEqual(table.untrackedMessages, 3)
        XCTAssertEqual(table.untrackedBytes, untracked.bytes)
    }

    /// The counters are written in place, but the table is still a value: a copy taken before
    /// `prepareToCount` (as a TOPICS request's is, between bursts) keeps the counts it was taken
    /// with while the original counts on, and the original's counts go on from where they were.
    func testACopyKeepsItsCountsWhileTheOriginalCountsInPlace() {
        let subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        var table = TopicTable(maxTopics: 10)
        _ = record(&table, "t", bytes: 10, at: 1, subscriptions: subscriptions)
        let copy = table
        table.prepareToCount()
        for time in UInt64(2)...4 {
            let found = Array("t".utf8).withUnsafeBytes {
                table.lookup(topic: $0, subscriptions: subscriptions)
            }
            table.countPrepared(found, bytes: 10, nowMilliseconds: time)
        }
        _ = record(&table, "u", bytes: 1, at: 5, subscriptions: subscriptions)
        XCTAssertEqual(
            copy.counters(of: Array("t".utf8)), .init(messages: 1, bytes: 10, lastSeenMilliseconds: 1, unwanted: 1))
        XCTAssertNil(copy.counters(of: Array("u".utf8)))
        XCTAssertEqual(
            table.counters(of: Array("t".utf8)), .init(messages: 4, bytes: 40, lastSeenMilliseconds: 4, unwanted: 4))
        XCTAssertEqual(table.counters(of: Array("u".utf8))?.messages, 1)
    }

    func testTopicsBeyondTheLimitAreUntrackedAndTheTableStaysBounded() {
        var table = TopicTable(maxTopics: 3)
        let subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        for i in 0..<100 { _ = record(&table, "topic\(i)", bytes: 7, subscriptions: subscriptions) }
        XCTAssertEqual(table.count, 3)
        XCTAssertEqual(table.untrackedMessages, 97)
        XCTAssertEqual(table.untrackedBytes, 97 * 7)
        _ = record(&table, "topic1", bytes: 1, subscriptions: subscriptions)
        XCTAssertEqual(table.counters(of: Array("topic1".utf8))?.messages, 2, "known topics keep counting")
    }

    /// A topic longer than `maxTopicLength` is untracked: 128 distinct topics of 16 MiB filled
    /// the keys' 2 GiB bound and stopped the broker.
    func testTopicsLongerThanTheLimitAreUntracked() {
        var table = TopicTable(maxTopics: 100, maxTopicLength: 8)
        let subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        XCTAssertTrue(
            record(&table, "12345678", bytes: 8, subscriptions: SubscriptionTable(maxPrefixes: 1, maxPrefixLength: 1))
                == false)
        for i in 0..<5 { _ = record(&table, "123456789-\(i)", bytes: 12, subscriptions: subscriptions) }
        XCTAssertEqual(table.count, 1, "only the topic of 8 bytes")
        XCTAssertEqual(table.untrackedMessages, 5)
        XCTAssertEqual(table.untrackedBytes, 5 * 12)
        XCTAssertNil(table.counters(of: Array("123456789-0".utf8)))
    }

    func testWantedFollowsSubscriptionChanges() {
        var table = TopicTable(maxTopics: 10)
        var subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        XCTAssertFalse(record(&table, "news.x", bytes: 1, subscriptions: subscriptions))
        _ = subscriptions.subscribe(Array("news".utf8))
        XCTAssertTrue(
            record(&table, "news.x", bytes: 1, subscriptions: subscriptions), "the cached answer is refreshed")
        _ = subscriptions.unsubscribe(Array("news".utf8))
        XCTAssertFalse(record(&table, "news.x", bytes: 1, subscriptions: subscriptions))
        XCTAssertEqual(table.counters(of: Array("news.x".utf8))?.unwanted, 2)
        // Untracked topics are matched too.
        var full = TopicTable(maxTopics: 0)
        _ = subscriptions.subscribe(Array("n".utf8))
        XCTAssertTrue(record(&full, "news.y", bytes: 1, subscriptions: subscriptions))
        XCTAssertFalse(record(&full, "other", bytes: 1, subscriptions: subscriptions))
    }

    /// Consecutive messages on one topic reuse its slot; a different topic of the same length,
    /// a prefix of it, the empty topic and a cleared table all get their own counts.
    func testTheLastTopicShortcutNeverMixesTopicsUp() {
        var table = TopicTable(maxTopics: 10)
        let subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        let sequence = ["t00001", "t00001", "t00002", "t0000", "t00002", "", "", "t00001"]
        for topic in sequence { _ = record(&table, topic, bytes: 1, subscriptions: subscriptions) }
        for topic in Set(sequence) {
            XCTAssertEqual(
                table.counters(of: Array(topic.utf8))?.messages, UInt64(sequence.filter { $0 == topic }.count),
                "'\(topic)'")
        }
        // The last topic before `removeAll` first after it: the previous-topic shortcut must not
        // reach for its old index.
        table.removeAll()
        _ = record(&table, "t00001", bytes: 1, subscriptions: subscriptions)
        _ = record(&table, "other", bytes: 1, subscriptions: subscriptions)
        XCTAssertEqual(table.counters(of: Array("t00001".utf8))?.messages, 1, "counted afresh after removeAll")
        XCTAssertEqual(table.count, 2)
    }
}

extension TopicTableTests {
    /// Messages on many topics in turn are found through the topic cache, not through the
    /// table's seeded hash (~110 instructions each for a short topic). The cache grows with the
    /// table and empties as it does, so the second round still finds some there; from the third,
    /// with 1,000 topics in 8,192 sets of two, only the topics of the few sets that three or more
    /// share keep missing.
    func testRoundsOfManyTopicsAreFoundWithoutTheSeededHash() {
        var table = TopicTable(maxTopics: 4_096)
        let subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        let topics = (0..<1_000).map { "t.\($0)" }
        for _ in 0..<2 {
            for topic in topics { _ = record(&table, topic, bytes: 1, subscriptions: subscriptions) }
        }
        XCTAssertGreaterThanOrEqual(table.seededLookups, 1_000, "each new topic is looked up in the table")
        let beforeThirdRound = table.seededLookups
        for topic in topics { _ = record(&table, topic, bytes: 1, subscriptions: subscriptions) }
        // About 7 expected (the topics of sets that three or more share: 1 - e^-λ(1 + λ) with
        // λ = 1,000 / 8,192); without the cache, 1,000.
        XCTAssertLessThan(table.seededLookups - beforeThirdRound, 50, "answered from the cache")
        XCTAssertTrue(table.entries().allSatisfy { $0.counters.messages == 3 })
    }

    /// More topics than the cache holds, and a table emptied and filled again with old topics
    /// and new ones in another order: every message is still counted on its own topic. (The
    /// cache confirms a topic of up to 16 bytes by the words it keeps: one left full after
    /// `removeAll` would count the old topics on whatever entries now have their old indexes.)
    func testTheTopicCacheNeverMixesTopicsUp() {
        var table = TopicTable(maxTopics: 20_000)
        let subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        let topics = (0..<20_000).map { "topic/\($0)" }
        /// Records each of `topics` twice, in the given order and then reversed, and checks
        /// that each has its own two messages and bytes.
        func recordTwiceAndCheck(_ topics: [String]) {
            for topic in topics + topics.reversed() {
                _ = record(&table, topic, bytes: topic.utf8.count, subscriptions: subscriptions)
            }
            XCTAssertEqual(table.count, topics.count)
            for topic in topics {
                let counters = table.counters(of: Array(topic.utf8))
                XCTAssertEqual(counters?.messages, 2, topic)
                XCTAssertEqual(counters?.bytes, UInt64(2 * topic.utf8.count), topic)
            }
        }
        recordTwiceAndCheck(topics)
        table.removeAll()
        recordTwiceAndCheck(
            zip((0..<3_000).map { "other/\($0)" }, topics.prefix(3_000).reversed()).flatMap { [$0, $1] })
    }
}

extension TopicTableTests {
    /// The topic cache grows with the table (eight sets per topic, from 1,024) up to two sets for
    /// each topic `maxTopics` allows, and a reload that changes `maxTopics` sizes it again.
    func testTheTopicCacheIsSizedByMaxTopics() {
        XCTAssertEqual(TopicTable(maxTopics: 10).recentIndexes.maxSetCount, 1_024)
        XCTAssertEqual(TopicTable(maxTopics: 10_000).recentIndexes.maxSetCount, 32_768)
        XCTAssertEqual(TopicTable(maxTopics: 10_000_000).recentIndexes.maxSetCount, 65_536)
        var table = TopicTable(maxTopics: 10_000)
        XCTAssertEqual(table.recentIndexes.setCount, 1_024)
        let subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        for topic in (0..<1_000).map({ "t.\($0)" }) {
            _ = record(&table, topic, bytes: 1, subscriptions: subscriptions)
        }
        XCTAssertEqual(table.recentIndexes.setCount, 8_192)
        table.maxTopics = 100_000
        XCTAssertEqual(table.recentIndexes.maxSetCount, 65_536)
        XCTAssertEqual(table.recentIndexes.setCount, 8_192, "sized for the topics held")
        for topic in ["t.1", "t.2", "t.3"] { _ = record(&table, topic, bytes: 1, subscriptions: subscriptions) }
        XCTAssertEqual(table.entries().filter { $0.counters.messages == 2 }.count, 3, "found again in the table")
    }

    /// Topics longer than 16 bytes that share their length and first and last 8 bytes (one key
    /// for the cache and the previous-topic check) are told apart by the table's keys, whether
    /// they come in turn or in runs.
    func testLongTopicsWithTheSameKeyAreToldApart() {
        var table = TopicTable(maxTopics: 100)
        let subscriptions = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 10)
        let topics = (0..<10).map { "sensors.\($0).temperature" }
        let sequence = topics + topics + topics.flatMap { [$0, $0] } + topics.reversed()
        for topic in sequence { _ = record(&table, topic, bytes: 1, subscriptions: subscriptions) }
        XCTAssertEqual(table.count, 10)
        for topic in topics { XCTAssertEqual(table.counters(of: Array(topic.utf8))?.messages, 5, topic) }
    }
}
