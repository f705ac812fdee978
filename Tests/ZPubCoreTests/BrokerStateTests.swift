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

    func testRecordTopicCountsUnwantedMessages() {
        var state = BrokerState(configuration: BrokerConfiguration())
        _ = state.subscriptions.subscribe(Array("a".utf8))
        for topic in ["a1", "b1"] {
            let (wanted, index) = Array(topic.utf8).withUnsafeBytes { state.lookupTopic($0) }
            state.countTopic(at: index, bytes: 2, wanted: wanted, nowMilliseconds: 1)
        }
        XCTAssertEqual(state.unwantedMessages, 1)
        XCTAssertEqual(state.topicList(prefix: []).topics.map(\.topic), ["a1", "b1"])
        XCTAssertEqual(state.topicList(prefix: Array("b".utf8)).topics.map(\.topic), ["b1"])
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
    }
}
