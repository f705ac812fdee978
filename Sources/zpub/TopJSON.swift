import Foundation
import ZPubCore

/// One `zpub top --json` line: the rates of one interval, for scripts and logs.
/// A rate is left out when it cannot be known (a counter went down: zpubd restarted).
struct TopJSON: Encodable {
    struct Topic: Encodable {
        let topic: String
        /// As TOPICS gives it: the bytes in hex, for a topic that is not UTF-8.
        let topicHex: String?
        let messages: UInt64
        let bytes: UInt64
        let unwanted: UInt64
        let messagesPerSecond: Double?
        let bytesPerSecond: Double?

        enum CodingKeys: String, CodingKey {
            case topic, messages, bytes, unwanted
            case topicHex = "topic_hex"
            case messagesPerSecond = "messages_per_s"
            case bytesPerSecond = "bytes_per_s"
        }
    }

    let uptimeSeconds: Double
    let intervalSeconds: Double?
    let messagesInPerSecond: Double?
    let messagesOutPerSecond: Double?
    let bytesInPerSecond: Double?
    let bytesOutPerSecond: Double?
    let subscriptions: Int
    let peers: [BrokerSocketRole: Int]
    let unwantedMessages: UInt64
    let sendFailures: UInt64
    let refusedSubscriptions: UInt64
    let handshakeFailures: UInt64
    let deniedConnections: UInt64
    /// STATS' history section with the writer's rate, when history prefixes are configured.
    let history: HistoryStats?
    let historyWritesPerSecond: Double?
    /// One of a pair: role, state, replication lag.
    let pair: PairStatus?
    let topics: [Topic]

    init(_ view: TopView, limit: Int, sort: TopSortKey) {
        let stats = view.sample.stats
        uptimeSeconds = stats.uptimeSeconds
        intervalSeconds = view.interval
        messagesInPerSecond = view.messagesInPerSecond
        messagesOutPerSecond = view.messagesOutPerSecond
        bytesInPerSecond = view.bytesInPerSecond
        bytesOutPerSecond = view.bytesOutPerSecond
        subscriptions = stats.subscriptions.total
        peers = stats.peers
        unwantedMessages = stats.unwantedMessages
        sendFailures = stats.sendFailures
        refusedSubscriptions = stats.subscriptions.refusedTooLong + stats.subscriptions.refusedTableFull
        handshakeFailures = stats.handshakeFailures
        deniedConnections = stats.security.denied
        history = stats.history.flatMap { $0.prefixes.isEmpty ? nil : $0 }
        historyWritesPerSecond = history == nil ? nil : view.historyWritesPerSecond
        pair = stats.pair
        topics = view.sortedTopics(by: sort).prefix(limit).map {
            Topic(
                topic: $0.topic, topicHex: $0.topicHex, messages: $0.messages, bytes: $0.bytes,
                unwanted: $0.unwanted,
                messagesPerSecond: $0.messagesPerSecond, bytesPerSecond: $0.bytesPerSecond)
        }
    }

    enum CodingKeys: String, CodingKey {
        case subscriptions, peers, topics, history, pair
        case historyWritesPerSecond = "history_written_per_s"
        case uptimeSeconds = "uptime_s"
        case intervalSeconds = "interval_s"
        case messagesInPerSecond = "messages_in_per_s"
        case messagesOutPerSecond = "messages_out_per_s"
        case bytesInPerSecond = "bytes_in_per_s"
        case bytesOutPerSecond = "bytes_out_per_s"
        case unwantedMessages = "unwanted_messages"
        case sendFailures = "send_failures"
        case refusedSubscriptions = "refused_subscriptions"
        case handshakeFailures = "handshake_failures"
        case deniedConnections = "denied_connections"
    }

    func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }
}
