import Foundation
import XCTest

@testable import ZPubCore

final class BrokerStateTests: XCTestCase {
    func testStatsSnapshotSumsProducersAndEncodesDocumentedKeys() throws {
        var state = BrokerState(configuration: BrokerConfiguration())
        state.pull.messagesIn = 3
        state.pull.bytesIn = 30
        state.xsub.messagesIn = 2
        state.xsub.bytesIn = 20
        state.xpub.messagesOut = 5
        state.xpub.bytesOut = 50
        _ = state.subscriptions.subscribe(Array("a".utf8))
        let stats = state.statsSnapshot(uptimeSeconds: 1.5)
        XCTAssertEqual(stats.messagesIn, 5)
        XCTAssertEqual(stats.bytesIn, 50)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(stats)) as? [String: Any])
        for key in [
            "messages_in", "messages_out", "bytes_in", "bytes_out", "uptime_s", "sockets", "subscriptions", "topics",
        ] {
            XCTAssertNotNil(json[key], "STATS lacks \(key)")
        }
        XCTAssertEqual(json["messages_in"] as? Int, 5)
        let sockets = try XCTUnwrap(json["sockets"] as? [String: [String: Any]])
        XCTAssertEqual(Set(sockets.keys), ["pull", "xsub", "xpub", "control"])
        XCTAssertEqual(sockets["pull"]?["bytes_in"] as? Int, 30)
    }

    /// STATS' `peers` holds the data sockets only, whatever a summary of events counts.
    func testPeersCountTheDataSocketsOnly() {
        var state = BrokerState(configuration: BrokerConfiguration())
        state.peerChanged(.control, by: 3)
        state.peerChanged(.xpub, by: 2)
        state.peerChanged(.xpub, by: -5)
        XCTAssertEqual(state.peers, [.pull: 0, .xsub: 0, .xpub: 0])
        state.peerChanged(.pull, by: 1)
        XCTAssertEqual(state.peers[.pull], 1)
    }

    func testRecordTopicCountsUnwantedMessages() {
        var state = BrokerState(configuration: BrokerConfiguration())
        _ = state.subscriptions.subscribe(Array("a".utf8))
        state.prepareToCountTopics()
        for topic in ["a1", "b1"] {
            let found = Array(topic.utf8).withUnsafeBytes { state.lookupTopic($0) }
            state.countTopicPrepared(found, bytes: 2, nowMilliseconds: 1)
        }
        XCTAssertEqual(state.unwantedMessages, 1)
        XCTAssertEqual(state.topicList(prefix: []).topics.map(\.topic), ["a1", "b1"])
        XCTAssertEqual(state.topicList(prefix: Array("b".utf8)).topics.map(\.topic), ["b1"])
    }

    /// As the forwarding loop counts: each message in place, through the lookup's index.
    /// Every topic ends with its own messages, bytes, unwanted count and last time, whatever the
    /// order, with short and long topics, and across a change of subscriptions.
    func testMessagesCountedInPlaceAddUpPerTopic() {
        var state = BrokerState(configuration: BrokerConfiguration())
        _ = state.subscriptions.subscribe(Array("a".utf8))
        let long = "a.long.topic.name.over.16.bytes"
        let sequence = ["a1", "a1", "b1", "a1", long, long, "b1", "b1", "c1", long, "a1"]
        state.prepareToCountTopics()
        for (time, topic) in sequence.enumerated() {
            if time == 6 { _ = state.subscriptions.subscribe(Array("b".utf8)) }
            let now = UInt64(time + 1)
            let found = Array(topic.utf8).withUnsafeBytes { state.lookupTopic($0) }
            state.countTopicPrepared(found, bytes: UInt64(topic.utf8.count), nowMilliseconds: now)
        }
        // Last seen: the time of the topic's last message.
        let expected: [String: (messages: UInt64, unwanted: UInt64, lastSeen: UInt64)] = [
            "a1": (4, 0, 11), "b1": (3, 1, 8), "c1": (1, 1, 9), long: (3, 0, 10),
        ]
        for (topic, counts) in expected {
            let counters = state.topics.counters(of: Array(topic.utf8))
            XCTAssertEqual(counters?.messages, counts.messages, topic)
            XCTAssertEqual(counters?.bytes, counts.messages * UInt64(topic.utf8.count), topic)
            XCTAssertEqual(counters?.unwanted, counts.unwanted, topic)
            XCTAssertEqual(counters?.lastSeenMilliseconds, counts.lastSeen, topic)
        }
        XCTAssertEqual(state.unwantedMessages, 2)
    }

    /// As the loop runs: a copy handed to a reader (TOPICS) between bursts, then a burst
    /// prepared and counted in place. The copy keeps the counts it was taken with, and the
    /// loop's counts go on from where they were.
    func testACopyForReadersKeepsItsCountsWhileTheNextBurstCountsInPlace() {
        var state = BrokerState(configuration: BrokerConfiguration())
        func burst(_ topics: [String], at time: UInt64) {
            state.prepareToCountTopics()
            for topic in topics {
                let found = Array(topic.utf8).withUnsafeBytes { state.lookupTopic($0) }
                state.countTopicPrepared(found, bytes: 10, nowMilliseconds: time)
            }
        }
        burst(["t", "u", "t"], at: 1)
        let copy = state.forReaders
        burst(["t", "t", "v"], at: 2)
        XCTAssertEqual(copy.topicList(prefix: []).topics.map(\.topic), ["t", "u"])
        XCTAssertEqual(copy.topics.counters(of: Array("t".utf8))?.messages, 2)
        XCTAssertEqual(copy.topics.counters(of: Array("t".utf8))?.lastSeenMilliseconds, 1)
        XCTAssertEqual(state.topics.counters(of: Array("t".utf8))?.messages, 4)
        XCTAssertEqual(state.topics.counters(of: Array("t".utf8))?.bytes, 40)
        XCTAssertEqual(state.topics.counters(of: Array("v".utf8))?.messages, 1)
    }

    /// The copy a TOPICS request gets lists every topic, and does not share the loop's topic
    /// cache: the loop's next write to its cache (a new topic) goes to the same storage, not to
    /// a copy of it (up to 3 MiB with many topics).
    func testACopyForReadersLeavesTheLoopsTopicCacheUnshared() {
        var state = BrokerState(configuration: BrokerConfiguration())
        func record(_ topic: String) {
            let found = Array(topic.utf8).withUnsafeBytes { state.lookupTopic($0) }
            state.countTopic(found, bytes: 1, nowMilliseconds: 1)
        }
        for number in 0..<100 { record("t.\(number)") }
        let storage = state.topics.recentIndexes.storageAddress
        let copy = state.forReaders
        record("t.new")
        XCTAssertEqual(state.topics.recentIndexes.storageAddress, storage, "the cache was copied")
        XCTAssertEqual(copy.topicList(prefix: []).topics.count, 100)
        XCTAssertEqual(state.topicList(prefix: []).topics.count, 101)
        record("t.7")
        XCTAssertEqual(state.topics.counters(of: Array("t.7".utf8))?.messages, 2)
        XCTAssertEqual(copy.topics.counters(of: Array("t.7".utf8))?.messages, 1)
    }

    func testApplyingAConfigurationWithARepeatedUpstreamKeepsOneLink() {
        var configuration = BrokerConfiguration()
        configuration.upstreamEndpoints = ["tcp://10.0.0.1:5556", "tcp://10.0.0.1:5556"]
        var state = BrokerState(configuration: configuration)
        // A second apply once the table has the repeat in it: what used to stop the process.
        state.apply(configuration)
        state.apply(configuration)
        XCTAssertEqual(state.upstreams.map(\.endpoint), configuration.upstreamEndpoints)
    }

    /// Lower last-value bounds on reload evict the oldest updates at once, as the history
    /// store trims its persisted copy at once: left for the next update, the cache kept values
    /// the store had dropped, and a restart before that update restored fewer.
    func testLowerLastValueBoundsOnReloadEvictTheOldestAtOnce() {
        var configuration = BrokerConfiguration()
        configuration.lastValuePrefixes = ["s."]
        var state = BrokerState(configuration: configuration)
        for index in 0..<10 { state.lastValue.store([Array("s.\(index)".utf8), [1, 2, 3]], nowMilliseconds: 1) }
        configuration.lastValueMaxEntries = 4
        state.apply(configuration)
        XCTAssertEqual(
            Set(
                state.lastValue.entries(under: [], nowMilliseconds: 1).map {
                    String(decoding: $0.frames[0], as: UTF8.self)
                }),
            ["s.6", "s.7", "s.8", "s.9"])
        configuration.lastValueMaxBytes = 2 * (4 + 3 + 4 + 3)
        state.apply(configuration)
        XCTAssertEqual(state.lastValue.count, 2)
        XCTAssertLessThanOrEqual(state.lastValue.totalBytes, configuration.lastValueMaxBytes)
    }

    func testNonUTF8TopicsCarryAHexSpelling() {
        let item = TopicList.Item(topic: [0xFF, 0x41], counters: TopicTable.Counters())
        XCTAssertEqual(item.topicHex, "ff41")
        XCTAssertNil(TopicList.Item(topic: Array("ok".utf8), counters: .init()).topicHex)
    }
}

final class BrokerStatusLineTests: XCTestCase {
    func testStatusLineShowsRatesSubscriptionsAndPeers() {
        var state = BrokerState(configuration: BrokerConfiguration())
        state.pull.messagesIn = 300
        state.xpub.messagesOut = 250
        _ = state.subscriptions.subscribe(Array("a".utf8))
        state.peerChanged(.xpub, by: 1)
        state.peerChanged(.pull, by: 1)
        state.peerChanged(.pull, by: -1)
        state.peerChanged(.pull, by: -1)
        XCTAssertEqual(state.peers[.pull], 0, "never below zero")
        XCTAssertEqual(
            state.statusLine(previousIn: 100, previousOut: 50, seconds: 2),
            "running: 100 msg/s in, 100 msg/s out, 1 subscriptions, 1 peers")
        // Stopping outranks paused: the drain forwards whatever PAUSE held.
        state.paused = true
        XCTAssertEqual(state.forwardingState, .paused)
        state.stopping = true
        XCTAssertEqual(state.forwardingState, .stopping)
        XCTAssertTrue(state.statusLine(previousIn: 0, previousOut: 0, seconds: 1).hasPrefix("stopping: "))
    }
}

/// `UpstreamLink.Changes`: changes taken together leave a link as taking them one by one does.
final class UpstreamLinkChangesTests: XCTestCase {
    /// A pair's passive member holds its links (`passive`, not a problem), and lets go of
    /// them as it takes over: "connecting" until events say more, its counts kept.
    func testAPassiveMembersLinksAreHeldUntilItTakesOver() {
        var configuration = BrokerConfiguration()
        configuration.upstreamEndpoints = ["tcp://10.0.0.9:5556"]
        var state = BrokerState(configuration: configuration)
        state.holdUpstreams(whilePassive: true)
        XCTAssertEqual(state.upstreams.map(\.state), [.passive])
        XCTAssertTrue(state.upstreams[0].summary.contains("connected once this pair member takes over"))
        state.holdUpstreams(whilePassive: false)
        XCTAssertEqual(state.upstreams.map(\.state), [.connecting])
        _ = state.upstreamEvent(endpoint: "tcp://10.0.0.9:5556", .connected)
        state.holdUpstreams(whilePassive: false)
        XCTAssertEqual(state.upstreams.map(\.state), [.connected], "letting go of a link not held changes nothing")
        state.holdUpstreams(whilePassive: true)
        XCTAssertEqual(state.upstreams.map(\.state), [.passive])
        XCTAssertEqual(state.upstreams[0].connects, 1)
    }

    func testEverySequenceOfUpToFiveChangesFromEveryStateMatchesOneByOne() {
        let changes: [UpstreamLink.Change] = [.connected, .disconnected, .retrying, .connecting]
        var sequences: [[UpstreamLink.Change]] = [[]]
        var all: [[UpstreamLink.Change]] = []
        for _ in 1...5 {
            sequences = sequences.flatMap { sequence in changes.map { sequence + [$0] } }
            all += sequences
        }
        for before in [UpstreamLink.Change.connecting, .connected, .disconnected] {
            for sequence in all {
                var oneByOne = UpstreamLink(endpoint: "tcp://upstream:5556")
                oneByOne.apply(before)
                var together = oneByOne
                var recorded = UpstreamLink.Changes()
                for change in sequence {
                    oneByOne.apply(change)
                    recorded.record(change)
                }
                together.apply(recorded)
                XCTAssertEqual(together, oneByOne, "after \(before), \(sequence)")
            }
        }
        XCTAssertEqual(all.count, 4 + 16 + 64 + 256 + 1_024)
    }
}
