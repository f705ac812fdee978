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
    /// Messages from producers or upstreams under `internalPrefix`, dropped.
    public var internalTopicMessages: UInt64 = 0
    public var paused = false
    /// SIGTERM or SIGINT: the loop drains what producers sent (`shutdown_drain_ms`), then exits.
    public var stopping = false
    /// Connected peers per data socket role (pull, xsub, xpub), from socket monitor events.
    public var peers: [BrokerSocketRole: Int] = [.pull: 0, .xsub: 0, .xpub: 0]
    /// Connections dropped during the ZeroMQ handshake (garbage, wrong protocol or mechanism).
    public var handshakeFailures: UInt64 = 0
    /// Out of file descriptors: new TCP connections are paused (docs/reliability.md).
    public var acceptPaused = false
    /// How often that happened.
    public var acceptPauses: UInt64 = 0

    public var totalPeers: Int { peers.values.reduce(0, +) }

    /// Counts a connection (`delta` +1) or a disconnection (-1) on a socket; never below zero.
    /// The data sockets' peers only: a summary of connection events the loop was behind on
    /// counts the control socket's too, and STATS' `peers` gained a `control` key (a walkthrough).
    public mutating func peerChanged(_ role: BrokerSocketRole, by delta: Int) {
        guard let count = peers[role] else { return }
        peers[role] = max(0, count + delta)
    }

    /// The one-line status systemd shows (`systemctl status`), given the message counts of one
    /// second ago.
    public func statusLine(previousIn: UInt64, previousOut: UInt64, seconds: Double) -> String {
        let messagesIn = pull.messagesIn &+ xsub.messagesIn
        let rateIn = seconds > 0 ? Double(messagesIn &- previousIn) / seconds : 0
        let rateOut = seconds > 0 ? Double(xpub.messagesOut &- previousOut) / seconds : 0
        return "\(forwardingState): \(Int(rateIn.rounded())) msg/s in, \(Int(rateOut.rounded())) msg/s out, "
            + "\(subscriptions.totalSubscriptions) subscriptions, \(totalPeers) peers"
    }

    public var lastValue: LastValueCache
    /// Live subscriptions under `$zpub/seq/`: while there are any, every kept message is
    /// followed by its sequence marker (docs/history.md).
    public var sequenceMarkerSubscriptions = 0
    /// Whether libzmq accepted ZMQ_XPUB_MANUAL_LAST_VALUE (probed at start), and this broker
    /// is no passive pair member.
    public var lastValueOnSubscribe = false
    /// `[last_value] on_subscribe`: off, values are served by snapshots only.
    public var lastValueOnSubscribeConfigured = BrokerConfiguration.Defaults.lastValueOnSubscribe
    /// Whether a new subscriber is sent the newest cached value under its prefix.
    public var sendsLastValueOnSubscribe: Bool { lastValueOnSubscribe && lastValueOnSubscribeConfigured }
    /// Which prefixes each subscriber connection holds (counting subscribers, not frames).
    public var subscriberConnections = SubscriberConnections()
    /// Subscriptions a connection repeated, and unsubscriptions from prefixes it did not hold:
    /// applied in libzmq, not counted (STATS).
    public var repeatedSubscriptions: UInt64 = 0
    public var unheldUnsubscriptions: UInt64 = 0
    /// Messages on the XPUB that were no subscription (dropped), and the connections zpubd
    /// dropped for them: their senders', and those libzmq would have paired wrongly then.
    public var nonSubscriptionMessages: UInt64 = 0
    /// Subscriptions refused for a full table and admitted later, when it had room.
    public var admittedSubscriptions: UInt64 = 0
    public var misdirectionDrops: UInt64 = 0
    /// `max_live_subscriptions`, and the connections dropped for subscribing past it.
    public var maxLiveSubscriptions: Int
    public var overTotalDrops: UInt64 = 0
    /// Upstream brokers the XSUB socket connects to, in configuration order.
    public var upstreams: [UpstreamLink] = []

    public init(configuration: BrokerConfiguration) {
        subscriptions = SubscriptionTable(
            maxPrefixes: configuration.maxSubscriptions, maxPrefixLength: configuration.maxSubscriptionLength)
        topics = TopicTable(maxTopics: configuration.maxTopics, maxTopicLength: configuration.maxSubscriptionLength)
        maxLiveSubscriptions = configuration.maxLiveSubscriptions
        topicAccounting = configuration.topicAccounting
        lastValue = LastValueCache(
            prefixes: configuration.lastValuePrefixes.map { Array($0.utf8) },
            maxEntries: configuration.lastValueMaxEntries, maxBytes: configuration.lastValueMaxBytes,
            maxAgeMilliseconds: UInt64(configuration.lastValueMaxAgeSeconds) * 1_000)
        lastValueOnSubscribeConfigured = configuration.lastValueOnSubscribe
        upstreams = configuration.upstreamEndpoints.map { UpstreamLink(endpoint: $0) }
    }

    /// Applies the limits of a reloaded configuration. Existing topics and subscriptions are
    /// kept, and the new limits govern what is added from now on; the last-value cache is
    /// brought within its new bounds at once.
    public mutating func apply(_ configuration: BrokerConfiguration) {
        subscriptions.maxPrefixes = configuration.maxSubscriptions
        maxLiveSubscriptions = configuration.maxLiveSubscriptions
        subscriptions.maxPrefixLength = configuration.maxSubscriptionLength
        topics.maxTopics = configuration.maxTopics
        topics.maxTopicLength = configuration.maxSubscriptionLength
        topicAccounting = configuration.topicAccounting
        lastValue.prefixes = configuration.lastValuePrefixes.map { Array($0.utf8) }
        // Before the new limits: those evict the oldest of what stays covered.
        lastValuesUncoveredByReload = lastValue.dropUncovered()
        lastValue.maxEntries = configuration.lastValueMaxEntries
        lastValue.maxBytes = configuration.lastValueMaxBytes
        lastValue.maxAgeMilliseconds = UInt64(configuration.lastValueMaxAgeSeconds) * 1_000
        // Lower bounds evict at once, as the history store trims its copy at once: left for
        // the next update, the two parted, and a restart before it restored fewer values.
        lastValue.applyLimits()
        lastValueOnSubscribeConfigured = configuration.lastValueOnSubscribe
        // Not `uniqueKeysWithValues`: validation refuses a repeated upstream, but a table
        // built from input must not be able to stop the process if one ever gets through.
        let known = Dictionary(upstreams.map { ($0.endpoint, $0) }, uniquingKeysWith: { first, _ in first })
        upstreams = configuration.upstreamEndpoints.map { known[$0] ?? UpstreamLink(endpoint: $0) }
    }

    /// Marks every upstream link as held by a pair's passive member, or as connecting once it
    /// takes over (`UpstreamLink.hold`).
    public mutating func holdUpstreams(whilePassive passive: Bool) {
        for index in upstreams.indices { upstreams[index].hold(whilePassive: passive) }
    }

    /// The prefixes the forwarding loop holds on XSUB for history and the last-value cache.
    public var heldUpstream: [[UInt8]] = []
    /// Cached values the last `apply` dropped because no prefix covers them any more.
    public private(set) var lastValuesUncoveredByReload = 0

    /// Applies a connection event of the XSUB socket to the upstream link it concerns, if any.
    /// Returns whether `endpoint` is an upstream.
    @discardableResult
    public mutating func upstreamEvent(endpoint: String, _ change: UpstreamLink.Change) -> Bool {
        guard let index = upstreams.firstIndex(where: { $0.endpoint == endpoint }) else { return false }
        upstreams[index].apply(change)
        return true
    }

    /// Several changes of one link at once (the forwarding loop fell behind the connection
    /// events); its state afterwards, or nil when `endpoint` is not an upstream link.
    @discardableResult
    public mutating func upstreamEvents(endpoint: String, _ changes: UpstreamLink.Changes) -> UpstreamLink.State? {
        guard let index = upstreams.firstIndex(where: { $0.endpoint == endpoint }) else { return nil }
        upstreams[index].apply(changes)
        return upstreams[index].state
    }

    /// Counting a message on its topic, in the forwarding loop's two halves: `lookupTopic` while
    /// the topic frame is at hand, `countTopicPrepared` once the message's size is known (one
    /// update of the topic's counters; a message no subscription wanted is counted as unwanted).
    /// Inlined: the previous message's topic (`TopicTable.lookupRepeated`).
    @inlinable @inline(__always)
    public mutating func lookupTopic(_ topic: UnsafeRawBufferPointer) -> TopicTable.Lookup {
        let key = TopicKey(topic)
        if let hit = topics.lookupRepeated(key, topic: topic, generation: subscriptions.generation) { return hit }
        return lookupTopicSlowly(key, topic)
    }

    /// Out of line, and small: another topic than the previous message's. A topic of up to 16
    /// bytes (its key is the whole topic) found in the topic cache with its match known takes
    /// a path with no calls (no hashing or comparing of a long topic's middle), so that few
    /// values are live and few registers saved: three, and no stack slots, where the same
    /// function with the long topics' path saved six and spilled four (callgrind, 1,000 short
    /// topics in turn: 62 instructions a message here against 77).
    @usableFromInline @inline(never)
    mutating func lookupTopicSlowly(_ key: TopicKey, _ topic: UnsafeRawBufferPointer) -> TopicTable.Lookup {
        if key.isExact, let found = topics.cachedShortTopic(key, topic: topic, generation: subscriptions.generation) {
            return found
        }
        return lookupTopicInCache(key, topic)
    }

    /// A topic longer than 16 bytes, or one the short path did not find. Its first form, with
    /// the table's lookup and the match inlined, saved and restored six registers and a 300-byte
    /// frame for every message on a new topic. Tried and measured worse: ending the previous
    /// topic's run here, in the same access to the table's entries as the match (+43
    /// instructions here, -19 in the loop).
    @inline(never)
    mutating func lookupTopicInCache(_ key: TopicKey, _ topic: UnsafeRawBufferPointer) -> TopicTable.Lookup {
        let generation = subscriptions.generation
        let set = topics.cacheSet(of: key, topic: topic)
        guard let index = topics.cachedIndex(of: key, topic: topic, in: set) else {
            return lookupTopicInTable(key, topic, set: set)
        }
        guard let matched = topics.knownMatch(at: index, generation: generation) else {
            return matchTopic(key, topic, at: index)
        }
        return topics.remember(key, at: index, matched: matched, generation: generation)
    }

    /// The rest: a topic the cache does not hold (its `set` in the cache computed already).
    @inline(never)
    mutating func lookupTopicInTable(_ key: TopicKey, _ topic: UnsafeRawBufferPointer, set: Int)
        -> TopicTable.Lookup
    {
        let generation = subscriptions.generation
        let index = topics.findInTable(key, topic: topic, set: set)
        guard let index, let matched = topics.knownMatch(at: index, generation: generation) else {
            return matchTopic(key, topic, at: index)
        }
        return topics.remember(key, at: index, matched: matched, generation: generation)
    }

    /// A topic whose match must be worked out (new, or the subscriptions changed), or that is
    /// untracked. (`TopicTable.lookup`'s steps, each touching one table, so that neither is
    /// copied.)
    @inline(never)
    mutating func matchTopic(_ key: TopicKey, _ topic: UnsafeRawBufferPointer, at index: Int?)
        -> TopicTable.Lookup
    {
        let generation = subscriptions.generation
        let matched = subscriptions.matches(topic)
        guard let index else { return TopicTable.Lookup(index: nil, wanted: matched) }
        return topics.setMatch(matched, key: key, generation: generation, at: index)
    }

    @inlinable @inline(__always)
    public mutating func countTopic(_ found: TopicTable.Lookup, bytes: UInt64, nowMilliseconds: UInt64) {
        if !found.wanted { unwantedMessages &+= 1 }
        topics.count(found, bytes: bytes, nowMilliseconds: nowMilliseconds)
    }

    /// `countTopic` as the forwarding loop calls it, in place: `prepareToCountTopics` first,
    /// once per burst (`TopicTable.countPrepared`).
    @inlinable @inline(__always)
    public mutating func countTopicPrepared(_ found: TopicTable.Lookup, bytes: UInt64, nowMilliseconds: UInt64) {
        if !found.wanted { unwantedMessages &+= 1 }
        topics.countPrepared(found, bytes: bytes, nowMilliseconds: nowMilliseconds)
    }

    @inlinable @inline(__always)
    public mutating func prepareToCountTopics() {
        topics.prepareToCount()
    }

    /// This state for a reader on another thread (TOPICS, SUBSCRIPTIONS): a copy that shares
    /// the tables it lists, but not the topic cache, which only the forwarding loop uses.
    public var forReaders: BrokerState {
        var copy = self
        copy.topics.dropCache()
        return copy
    }

    public var forwardingState: ForwardingState { stopping ? .stopping : paused ? .paused : .running }

    public func statsSnapshot(uptimeSeconds: Double) -> StatsSnapshot {
        StatsSnapshot(
            messagesIn: pull.messagesIn &+ xsub.messagesIn,
            messagesOut: xpub.messagesOut,
            bytesIn: pull.bytesIn &+ xsub.bytesIn,
            bytesOut: xpub.bytesOut,
            uptimeSeconds: uptimeSeconds,
            forwarding: forwardingState,
            sockets: [.pull: pull, .xsub: xsub, .xpub: xpub, .control: control],
            subscriptions: .init(
                total: subscriptions.totalSubscriptions, prefixes: subscriptions.prefixCount,
                limit: subscriptions.maxPrefixes, subscribeEvents: subscriptions.subscribeEvents,
                unsubscribeEvents: subscriptions.unsubscribeEvents, refusedTooLong: subscriptions.refusedTooLong,
                refusedTableFull: subscriptions.refusedTableFull, repeated: repeatedSubscriptions,
                unheldUnsubscribes: unheldUnsubscriptions, notSubscriptions: nonSubscriptionMessages,
                droppedForMisdirection: misdirectionDrops, admittedLater: admittedSubscriptions,
                waitingForRoom: subscriberConnections.waitingCount,
                waitingGivenUp: subscriberConnections.waitingGivenUp, totalLimit: maxLiveSubscriptions,
                droppedOverTheTotal: overTotalDrops),
            topics: .init(
                accounting: topicAccounting, tracked: topics.count, limit: topics.maxTopics,
                untrackedMessages: topics.untrackedMessages, untrackedBytes: topics.untrackedBytes),
            unwantedMessages: unwantedMessages,
            sendFailures: sendFailures,
            internalTopicMessages: internalTopicMessages,
            peers: peers,
            handshakeFailures: handshakeFailures,
            descriptors: .init(acceptPaused: acceptPaused, acceptPauses: acceptPauses),
            lastValue: .init(
                enabled: lastValue.isEnabled, onSubscribe: sendsLastValueOnSubscribe,
                prefixes: lastValue.prefixes.map(TopicText.display), entries: lastValue.count,
                bytes: lastValue.totalBytes, maxEntries: lastValue.maxEntries, maxBytes: lastValue.maxBytes,
                hits: lastValue.hits, misses: lastValue.misses, updates: lastValue.updates,
                deletions: lastValue.deletions, evictions: lastValue.evictions, snapshots: lastValue.snapshots,
                tooLarge: lastValue.tooLarge, upstreamValuesKnown: lastValue.upstreamValuesKnown),
            upstreams: upstreams)
    }

    public func subscriptionList(prefix: [UInt8]) -> SubscriptionList {
        SubscriptionList(
            total: subscriptions.totalSubscriptions,
            prefixes: subscriptions.prefixCount,
            subscriptions: subscriptions.entries(withPrefix: prefix).map { .init(prefix: $0.prefix, count: $0.count) },
            upstreams: upstreams, limit: subscriptions.maxPrefixes,
            waitingForRoom: subscriberConnections.waitingCount,
            heldUpstream: heldUpstream.map(TopicText.display).sorted())
    }

    public func topicList(prefix: [UInt8]) -> TopicList {
        TopicList(
            accounting: topicAccounting, tracked: topics.count, limit: topics.maxTopics,
            untrackedMessages: topics.untrackedMessages,
            topics: topics.entries(withPrefix: prefix).map { .init(topic: $0.topic, counters: $0.counters) })
    }
}
