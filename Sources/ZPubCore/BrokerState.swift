/// Everything the forwarding loop knows and counts: traffic per socket, subscriptions, topics.
///
/// Owned and mutated by the forwarding loop's thread only. The control server gets a copy
/// (copy-on-write: taking one costs nothing until the loop next changes a table) and builds its
/// replies from it with the pure functions below.
public struct BrokerState: Sendable {
    public var pull = TrafficCounters()
    public var xsub = TrafficCounters()
    public var xpub = TrafficCounters()
    public var control = TrafficCounters()
    public var subscriptions: SubscriptionTable
    public var topics: TopicTable
    public var topicAccounting: Bool
    public var unwantedMessages: UInt64 = 0
    public var sendFailures: UInt64 = 0
    public var paused = false

    public init(configuration: BrokerConfiguration) {
        subscriptions = SubscriptionTable(
            maxPrefixes: configuration.maxSubscriptions, maxPrefixLength: configuration.maxSubscriptionLength)
        topics = TopicTable(maxTopics: configuration.maxTopics)
        topicAccounting = configuration.topicAccounting
    }

    /// Applies the limits of a reloaded configuration. Existing entries are kept; the new limits
    /// govern what is added from now on.
    public mutating func apply(_ configuration: BrokerConfiguration) {
        subscriptions.maxPrefixes = configuration.maxSubscriptions
        subscriptions.maxPrefixLength = configuration.maxSubscriptionLength
        topics.maxTopics = configuration.maxTopics
        topicAccounting = configuration.topicAccounting
    }

    /// Counts a message on `topic` (bytes are added later with `topics.addBytes`), and counts it
    /// as unwanted when no subscription matches. Returns the topic's index, nil if untracked.
    @inline(__always)
    public mutating func recordTopic(_ topic: UnsafeRawBufferPointer, nowMilliseconds: UInt64) -> Int? {
        let (wanted, index) = topics.record(
            topic: topic, bytes: 0, nowMilliseconds: nowMilliseconds, subscriptions: subscriptions)
        if !wanted { unwantedMessages &+= 1 }
        return index
    }

    public var forwardingState: String { paused ? "paused" : "running" }

    public func statsSnapshot(uptimeSeconds: Double) -> StatsSnapshot {
        StatsSnapshot(
            messagesIn: pull.messagesIn &+ xsub.messagesIn,
            messagesOut: xpub.messagesOut,
            bytesIn: pull.bytesIn &+ xsub.bytesIn,
            bytesOut: xpub.bytesOut,
            uptimeSeconds: uptimeSeconds,
            forwarding: forwardingState,
            sockets: ["pull": pull, "xsub": xsub, "xpub": xpub, "control": control],
            subscriptions: .init(
                total: subscriptions.totalSubscriptions, prefixes: subscriptions.prefixCount,
                limit: subscriptions.maxPrefixes, subscribeEvents: subscriptions.subscribeEvents,
                unsubscribeEvents: subscriptions.unsubscribeEvents, refusedTooLong: subscriptions.refusedTooLong,
                refusedTableFull: subscriptions.refusedTableFull),
            topics: .init(
                accounting: topicAccounting, tracked: topics.count, limit: topics.maxTopics,
                untrackedMessages: topics.untrackedMessages, untrackedBytes: topics.untrackedBytes),
            unwantedMessages: unwantedMessages,
            sendFailures: sendFailures)
    }

    public func subscriptionList(prefix: [UInt8]) -> SubscriptionList {
        SubscriptionList(
            total: subscriptions.totalSubscriptions,
            prefixes: subscriptions.prefixCount,
            subscriptions: subscriptions.entries(withPrefix: prefix).map { .init(prefix: $0.prefix, count: $0.count) })
    }

    public func topicList(prefix: [UInt8]) -> TopicList {
        TopicList(
            accounting: topicAccounting, tracked: topics.count, limit: topics.maxTopics,
            untrackedMessages: topics.untrackedMessages,
            topics: topics.entries(withPrefix: prefix).map { .init(topic: $0.topic, counters: $0.counters) })
    }
}
