/// The reply to `STATS`: the broker's counters at one instant. Shared by the daemon (which
/// encodes it), the CLI and the tests (which decode it). Every field is documented in
/// docs/control-protocol.md.
public struct StatsSnapshot: Codable, Equatable, Sendable {
    /// Data messages received from producers (PULL and XSUB together).
    public var messagesIn: UInt64
    /// Data messages handed to the XPUB socket (once per message, whatever the fan-out).
    public var messagesOut: UInt64
    /// Bytes of all frames of those messages.
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    public var uptimeSeconds: Double
    /// Running or paused.
    public var forwarding: ForwardingState
    /// Per socket role.
    public var sockets: [BrokerSocketRole: TrafficCounters]
    public var subscriptions: SubscriptionStats
    public var topics: TopicStats
    /// Messages that no subscription wanted when they passed (topic accounting on).
    public var unwantedMessages: UInt64
    /// Messages XPUB refused to take (should stay 0: XPUB drops per subscriber silently).
    public var sendFailures: UInt64
    /// Messages from producers or upstreams on zpubd's own topics (`$zpub/`), dropped (absent
    /// in replies of older zpubd).
    public var internalTopicMessages: UInt64?
    /// Log records of the forwarding loop dropped because the log's reader did not keep up
    /// (absent in replies of older zpubd).
    public var droppedLogRecords: UInt64?
    /// Connection events the forwarding loop took as counts, not one by one, because it had
    /// fallen too far behind them (absent in replies of older zpubd).
    public var connectionEventsSummarized: UInt64?
    /// Control replies not sent because their client had 16 replies unread already: a DEALER
    /// that sends requests and reads no replies (absent in replies of older zpubd).
    public var controlRepliesDropped: UInt64?
    /// Connected peers per data socket (pull, xsub, xpub).
    public var peers: [BrokerSocketRole: Int]
    /// Connections dropped during the ZeroMQ handshake.
    public var handshakeFailures: UInt64
    /// Running out of file descriptors (optional: absent in replies of zpubd before 0.x).
    public var descriptors: DescriptorStats?
    /// A held backlog going out at the subscribers' pace (after RESUME, the start's hold, or
    /// in a stop's drain: `BacklogCatchUp`); absent when none is.
    public var catchUp: CatchUpStats?
    /// How long producers are still not read after start (`start_hold_ms`); absent once they
    /// are (and always from an older zpubd).
    public var startHoldLeftMilliseconds: UInt64?

    public struct CatchUpStats: Codable, Equatable, Sendable {
        /// "RESUME", "start_hold_ms" or "stop".
        public var cause: String
        public var forwarded: UInt64
        public var elapsedMilliseconds: UInt64
        /// How long the message in hand has waited for a subscriber's room; absent when none waits.
        public var waitingMilliseconds: UInt64?
        /// How many times subscribers that read nothing for a second were let go (they lose
        /// what goes out until they read again); absent from an older zpubd's reply.
        public var stalls: UInt64?

        public init(
            cause: String, forwarded: UInt64, elapsedMilliseconds: UInt64, waitingMilliseconds: UInt64?,
            stalls: UInt64? = nil
        ) {
            self.cause = cause
            self.forwarded = forwarded
            self.elapsedMilliseconds = elapsedMilliseconds
            self.waitingMilliseconds = waitingMilliseconds
            self.stalls = stalls
        }

        enum CodingKeys: String, CodingKey {
            case cause, forwarded, stalls
            case elapsedMilliseconds = "elapsed_ms"
            case waitingMilliseconds = "waiting_ms"
        }
    }
    public var lastValue: LastValueStats
    /// The upstream brokers the XSUB socket connects to, and their state.
    public var upstreams: [UpstreamLink]
    /// Who was let in and who was not (the ZAP handler's counts).
    public var security: SecurityStats = .init()
    /// Message history, when prefixes are configured (absent otherwise).
    public var history: HistoryStats?
    /// One of a primary/backup pair: role, state, replication lag (absent for a single broker).
    public var pair: PairStatus?

    public struct DescriptorStats: Codable, Equatable, Sendable {
        /// New TCP connections are paused because the descriptors ran out.
        public var acceptPaused: Bool
        /// Times that happened since start.
        public var acceptPauses: UInt64

        public init(acceptPaused: Bool = false, acceptPauses: UInt64 = 0) {
            self.acceptPaused = acceptPaused
            self.acceptPauses = acceptPauses
        }

        enum CodingKeys: String, CodingKey {
            case acceptPaused = "accept_paused"
            case acceptPauses = "accept_pauses"
        }
    }

    public struct SecurityStats: Codable, Equatable, Sendable {
        /// Sockets that require CURVE.
        public var curve: [String]
        /// Connections the ZAP handler let in, and those it refused.
        public var allowed: UInt64
        public var denied: UInt64
        public var deniedBySocket: [String: UInt64]

        public init(
            curve: [String] = [], allowed: UInt64 = 0, denied: UInt64 = 0, deniedBySocket: [String: UInt64] = [:]
        ) {
            self.curve = curve
            self.allowed = allowed
            self.denied = denied
            self.deniedBySocket = deniedBySocket
        }

        enum CodingKeys: String, CodingKey {
            case curve, allowed, denied
            case deniedBySocket = "denied_by_socket"
        }
    }

    public struct LastValueStats: Codable, Equatable, Sendable {
        /// Whether any prefix is cached.
        public var enabled: Bool
        /// Whether a new subscriber gets the cached value (libzmq's XPUB_MANUAL_LAST_VALUE).
        public var onSubscribe: Bool
        public var prefixes: [String]
        public var entries: Int
        public var bytes: Int
        public var maxEntries: Int
        public var maxBytes: Int
        /// Values sent to new subscribers; subscriptions that found nothing cached.
        public var hits: UInt64
        public var misses: UInt64
        public var updates: UInt64
        public var deletions: UInt64
        public var evictions: UInt64
        public var snapshots: UInt64
        /// Messages larger than `max_bytes`, not cached (optional: absent before 2026-12-07).
        public var tooLarge: UInt64?
        /// Values an upstream zpubd sent on subscription that the cache held already, dropped
        /// rather than forwarded again (`UpstreamValue`; optional: absent before 2026-12-07).
        public var upstreamValuesKnown: UInt64?

        public init(
            enabled: Bool = false, onSubscribe: Bool = false, prefixes: [String] = [], entries: Int = 0, bytes: Int = 0,
            maxEntries: Int = 0, maxBytes: Int = 0, hits: UInt64 = 0, misses: UInt64 = 0, updates: UInt64 = 0,
            deletions: UInt64 = 0, evictions: UInt64 = 0, snapshots: UInt64 = 0, tooLarge: UInt64? = nil,
            upstreamValuesKnown: UInt64? = nil
        ) {
            self.enabled = enabled
            self.onSubscribe = onSubscribe
            self.prefixes = prefixes
            self.entries = entries
            self.bytes = bytes
            self.maxEntries = maxEntries
            self.maxBytes = maxBytes
            self.hits = hits
            self.misses = misses
            self.updates = updates
            self.deletions = deletions
            self.evictions = evictions
            self.snapshots = snapshots
            self.tooLarge = tooLarge
            self.upstreamValuesKnown = upstreamValuesKnown
        }

        enum CodingKeys: String, CodingKey {
            case enabled, prefixes, entries, bytes, hits, misses, updates, deletions, evictions, snapshots
            case tooLarge = "too_large"
            case upstreamValuesKnown = "upstream_values_known"
            case onSubscribe = "on_subscribe"
            case maxEntries = "max_entries"
            case maxBytes = "max_bytes"
        }
    }

    public struct SubscriptionStats: Codable, Equatable, Sendable {
        /// Live subscriptions (a prefix wanted by three subscribers counts three).
        public var total: Int
        /// Distinct prefixes.
        public var prefixes: Int
        public var limit: Int
        /// `max_live_subscriptions`, the bound on `total` (nil from a zpubd before 2026-12-07).
        public var totalLimit: Int?
        /// Connections dropped for subscribing while `total` was past `totalLimit`.
        public var droppedOverTheTotal: UInt64
        public var subscribeEvents: UInt64
        public var unsubscribeEvents: UInt64
        public var refusedTooLong: UInt64
        public var refusedTableFull: UInt64
        /// Subscriptions a connection sent for a prefix it held already: applied, not counted.
        public var repeated: UInt64
        /// Unsubscriptions a connection sent for a prefix it did not hold: not counted.
        public var unheldUnsubscribes: UInt64
        /// Messages a peer of the XPUB sent that were no subscription (dropped).
        public var notSubscriptions: UInt64
        /// Connections dropped for them: the subscribers' libzmq would have paired wrongly
        /// meanwhile (they reconnect and subscribe again; the sender is not dropped).
        public var droppedForMisdirection: UInt64
        /// Subscriptions refused for a full table and admitted once it had room, and those
        /// still waiting for room (their subscribers connected), and those that gave their
        /// place to another connection's at the bounds (never to be admitted while connected).
        public var admittedLater: UInt64
        public var waitingForRoom: Int
        public var waitingGivenUp: UInt64

        public init(
            total: Int, prefixes: Int, limit: Int, subscribeEvents: UInt64, unsubscribeEvents: UInt64,
            refusedTooLong: UInt64, refusedTableFull: UInt64, repeated: UInt64 = 0, unheldUnsubscribes: UInt64 = 0,
            notSubscriptions: UInt64 = 0, droppedForMisdirection: UInt64 = 0, admittedLater: UInt64 = 0,
            waitingForRoom: Int = 0, waitingGivenUp: UInt64 = 0, totalLimit: Int? = nil, droppedOverTheTotal: UInt64 = 0
        ) {
            self.total = total
            self.prefixes = prefixes
            self.limit = limit
            self.totalLimit = totalLimit
            self.droppedOverTheTotal = droppedOverTheTotal
            self.subscribeEvents = subscribeEvents
            self.unsubscribeEvents = unsubscribeEvents
            self.refusedTooLong = refusedTooLong
            self.refusedTableFull = refusedTableFull
            self.repeated = repeated
            self.unheldUnsubscribes = unheldUnsubscribes
            self.notSubscriptions = notSubscriptions
            self.droppedForMisdirection = droppedForMisdirection
            self.admittedLater = admittedLater
            self.waitingForRoom = waitingForRoom
            self.waitingGivenUp = waitingGivenUp
        }

        /// The later ones are read as 0 (or nil) when absent: a newer `zpub` asking an older zpubd.
        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            total = try container.decode(Int.self, forKey: .total)
            prefixes = try container.decode(Int.self, forKey: .prefixes)
            limit = try container.decode(Int.self, forKey: .limit)
            subscribeEvents = try container.decode(UInt64.self, forKey: .subscribeEvents)
            unsubscribeEvents = try container.decode(UInt64.self, forKey: .unsubscribeEvents)
            refusedTooLong = try container.decode(UInt64.self, forKey: .refusedTooLong)
            refusedTableFull = try container.decode(UInt64.self, forKey: .refusedTableFull)
            repeated = try container.decodeIfPresent(UInt64.self, forKey: .repeated) ?? 0
            unheldUnsubscribes = try container.decodeIfPresent(UInt64.self, forKey: .unheldUnsubscribes) ?? 0
            notSubscriptions = try container.decodeIfPresent(UInt64.self, forKey: .notSubscriptions) ?? 0
            droppedForMisdirection =
                try container.decodeIfPresent(UInt64.self, forKey: .droppedForMisdirection) ?? 0
            admittedLater = try container.decodeIfPresent(UInt64.self, forKey: .admittedLater) ?? 0
            waitingForRoom = try container.decodeIfPresent(Int.self, forKey: .waitingForRoom) ?? 0
            waitingGivenUp = try container.decodeIfPresent(UInt64.self, forKey: .waitingGivenUp) ?? 0
            totalLimit = try container.decodeIfPresent(Int.self, forKey: .totalLimit)
            droppedOverTheTotal = try container.decodeIfPresent(UInt64.self, forKey: .droppedOverTheTotal) ?? 0
        }

        enum CodingKeys: String, CodingKey {
            case total, prefixes, limit, repeated
            case subscribeEvents = "subscribe_events"
            case unsubscribeEvents = "unsubscribe_events"
            case refusedTooLong = "refused_too_long"
            case refusedTableFull = "refused_table_full"
            case unheldUnsubscribes = "unheld_unsubscribes"
            case notSubscriptions = "not_subscriptions"
            case droppedForMisdirection = "dropped_for_misdirection"
            case admittedLater = "admitted_later"
            case waitingForRoom = "waiting_for_room"
            case waitingGivenUp = "waiting_given_up"
            case totalLimit = "total_limit"
            case droppedOverTheTotal = "dropped_over_the_total"
        }
    }

    public struct TopicStats: Codable, Equatable, Sendable {
        public var accounting: Bool
        public var tracked: Int
        public var limit: Int
        public var untrackedMessages: UInt64
        public var untrackedBytes: UInt64

        public init(accounting: Bool, tracked: Int, limit: Int, untrackedMessages: UInt64, untrackedBytes: UInt64) {
            self.accounting = accounting
            self.tracked = tracked
            self.limit = limit
            self.untrackedMessages = untrackedMessages
            self.untrackedBytes = untrackedBytes
        }

        enum CodingKeys: String, CodingKey {
            case accounting, tracked, limit
            case untrackedMessages = "untracked_messages"
            case untrackedBytes = "untracked_bytes"
        }
    }

    public init(
        messagesIn: UInt64, messagesOut: UInt64, bytesIn: UInt64, bytesOut: UInt64, uptimeSeconds: Double,
        forwarding: ForwardingState, sockets: [BrokerSocketRole: TrafficCounters], subscriptions: SubscriptionStats,
        topics: TopicStats,
        unwantedMessages: UInt64, sendFailures: UInt64, internalTopicMessages: UInt64? = 0,
        peers: [BrokerSocketRole: Int] = [:],
        handshakeFailures: UInt64 = 0,
        descriptors: DescriptorStats? = nil, lastValue: LastValueStats = .init(), upstreams: [UpstreamLink] = []
    ) {
        self.descriptors = descriptors
        self.lastValue = lastValue
        self.upstreams = upstreams
        self.messagesIn = messagesIn
        self.messagesOut = messagesOut
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.uptimeSeconds = uptimeSeconds
        self.forwarding = forwarding
        self.sockets = sockets
        self.subscriptions = subscriptions
        self.topics = topics
        self.unwantedMessages = unwantedMessages
        self.sendFailures = sendFailures
        self.internalTopicMessages = internalTopicMessages
        self.peers = peers
        self.handshakeFailures = handshakeFailures
    }

    enum CodingKeys: String, CodingKey {
        case messagesIn = "messages_in"
        case messagesOut = "messages_out"
        case bytesIn = "bytes_in"
        case bytesOut = "bytes_out"
        case uptimeSeconds = "uptime_s"
        case forwarding, sockets, subscriptions, topics
        case unwantedMessages = "unwanted_messages"
        case sendFailures = "send_failures"
        case internalTopicMessages = "internal_topic_messages"
        case droppedLogRecords = "dropped_log_records"
        case connectionEventsSummarized = "connection_events_summarized"
        case controlRepliesDropped = "control_replies_dropped"
        case peers, upstreams, security, descriptors, history, pair
        case handshakeFailures = "handshake_failures"
        case lastValue = "last_value"
        case catchUp = "catch_up"
        case startHoldLeftMilliseconds = "start_hold_left_ms"
    }
}

/// The reply to `HEALTH`.
public struct HealthReport: Codable, Equatable, Sendable {
    /// Any string decodes, as `ForwardingState`: a status a newer zpubd adds is simply not ok.
    public struct Status: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The forwarding loop answers and is running.
        public static let ok = Status(rawValue: "ok")
        /// PAUSE is in force.
        public static let paused = Status(rawValue: "paused")
        /// The forwarding loop does not answer.
        public static let unhealthy = Status(rawValue: "unhealthy")
        /// The waiting or passive broker of a pair: healthy, and not the one to send clients to.
        public static let passive = Status(rawValue: "passive")
        /// Shutting down (SIGTERM or SIGINT): forwarding what producers already sent, then
        /// exiting; not the one to send clients to.
        public static let stopping = Status(rawValue: "stopping")
    }

    public var status: Status
    public var forwarding: ForwardingState

    /// The pair's first problem that keeps this broker from serving (`PairProblem.affectsServing`).
    public var servingProblem: PairProblem? { pair?.problems?.first { $0.affectsServing } }

    /// Whether a client should be sent here: ok, and no problem that keeps it from serving.
    /// `passiveOK`, for a monitor of the pair: the standby counts as ok, and any problem of
    /// the pair as not (`zpub health --passive-ok`).
    public func isHealthy(passiveOK: Bool = false) -> Bool {
        let up = status == .ok || (passiveOK && status == .passive)
        return up && (passiveOK ? (pair?.problems ?? []).isEmpty : servingProblem == nil)
    }
    public var uptimeSeconds: Double
    /// Seconds since the forwarding loop last completed an iteration.
    public var loopLagSeconds: Double
    public var subscriptions: Int
    public var version: String
    /// One of a primary/backup pair: its role, state and peer (absent for a single broker).
    public var pair: PairStatus?
    /// What does not stop forwarding but wants an operator: history not keeping messages, an
    /// upstream not connected. `status` stays ok (a load balancer must not drop a broker that
    /// forwards); `zpub health --strict` fails on them. Absent when there is none (and from a
    /// zpubd before 2026-12-06).
    public var problems: [HealthProblem]?

    public init(
        status: Status, forwarding: ForwardingState, uptimeSeconds: Double, loopLagSeconds: Double, subscriptions: Int,
        version: String, pair: PairStatus? = nil, problems: [HealthProblem]? = nil
    ) {
        self.pair = pair
        self.problems = problems
        self.status = status
        self.forwarding = forwarding
        self.uptimeSeconds = uptimeSeconds
        self.loopLagSeconds = loopLagSeconds
        self.subscriptions = subscriptions
        self.version = version
    }

    enum CodingKeys: String, CodingKey {
        case status, forwarding, subscriptions, version, pair, problems
        case uptimeSeconds = "uptime_s"
        case loopLagSeconds = "loop_lag_s"
    }
}

/// Something wrong that does not stop forwarding (`HealthReport.problems`).
public struct HealthProblem: Codable, Equatable, Sendable {
    /// A kind is any string: a kind a newer zpubd adds decodes too. As an enum it made an
    /// older `zpub` fail on the whole HEALTH reply (and `zpub sub`, following a pair, skip
    /// that broker).
    public struct Kind: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The last write of history failed (a full disk, say): messages are not kept.
        public static let historyNotStoring = Kind(rawValue: "history_not_storing")
        /// History's file was deleted or replaced under zpubd.
        public static let historyFileGone = Kind(rawValue: "history_file_gone")
        /// History's file is damaged: some of its messages cannot be read.
        public static let historyDamaged = Kind(rawValue: "history_damaged")
        /// An upstream broker is not connected.
        public static let upstreamNotConnected = Kind(rawValue: "upstream_not_connected")
        /// The subscription table is full, and refused subscriptions wait for room.
        public static let subscriptionsWaiting = Kind(rawValue: "subscriptions_waiting")
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// The reply to `SUBSCRIPTIONS [prefix]`.
public struct SubscriptionList: Codable, Equatable, Sendable {
    public struct Item: Codable, Equatable, Sendable {
        public var prefix: String
        /// Present only when the prefix is not valid UTF-8.
        public var prefixHex: String?
        public var count: Int

        public init(prefix: [UInt8], count: Int) {
            self.prefix = TopicText.display(prefix)
            self.prefixHex = TopicText.hexIfNotUTF8(prefix)
            self.count = count
        }

        enum CodingKeys: String, CodingKey {
            case prefix, count
            case prefixHex = "prefix_hex"
        }
    }

    public var total: Int
    public var prefixes: Int
    public var subscriptions: [Item]
    /// Where the subscriptions are forwarded besides publishers connected to XSUB.
    public var upstreams: [UpstreamLink]
    /// `max_subscriptions`, and the subscriptions a full table refused that wait for room:
    /// their subscribers get nothing under those prefixes, which the list alone did not show.
    /// Optional: absent from a zpubd before 2026-12-07.
    public var limit: Int?
    public var waitingForRoom: Int?
    /// The prefixes zpubd holds on XSUB for its own history and last-value cache, whether or
    /// not a subscriber wants them: what publishers send it besides `subscriptions` (they
    /// were shown nowhere; a walkthrough). Optional: absent from a zpubd before 2026-12-07.
    public var heldUpstream: [String]?

    public init(
        total: Int, prefixes: Int, subscriptions: [Item], upstreams: [UpstreamLink] = [], limit: Int? = nil,
        waitingForRoom: Int? = nil, heldUpstream: [String]? = nil
    ) {
        self.total = total
        self.prefixes = prefixes
        self.subscriptions = subscriptions
        self.upstreams = upstreams
        self.limit = limit
        self.waitingForRoom = waitingForRoom
        self.heldUpstream = heldUpstream
    }

    enum CodingKeys: String, CodingKey {
        case total, prefixes, subscriptions, upstreams, limit
        case waitingForRoom = "waiting_for_room"
        case heldUpstream = "held_upstream"
    }
}

/// The reply to `TOPICS [prefix]`.
public struct TopicList: Codable, Equatable, Sendable {
    public struct Item: Codable, Equatable, Sendable {
        public var topic: String
        /// Present only when the topic is not valid UTF-8.
        public var topicHex: String?
        public var messages: UInt64
        public var bytes: UInt64
        /// Milliseconds since the Unix epoch.
        public var lastSeenMilliseconds: UInt64
        public var unwanted: UInt64

        public init(topic: [UInt8], counters: TopicTable.Counters) {
            self.topic = TopicText.display(topic)
            self.topicHex = TopicText.hexIfNotUTF8(topic)
            self.messages = counters.messages
            self.bytes = counters.bytes
            self.lastSeenMilliseconds = counters.lastSeenMilliseconds
            self.unwanted = counters.unwanted
        }

        enum CodingKeys: String, CodingKey {
            case topic, messages, bytes, unwanted
            case topicHex = "topic_hex"
            case lastSeenMilliseconds = "last_seen_ms"
        }
    }

    public var accounting: Bool
    public var tracked: Int
    public var limit: Int
    public var untrackedMessages: UInt64
    public var topics: [Item]

    public init(accounting: Bool, tracked: Int, limit: Int, untrackedMessages: UInt64, topics: [Item]) {
        self.accounting = accounting
        self.tracked = tracked
        self.limit = limit
        self.untrackedMessages = untrackedMessages
        self.topics = topics
    }

    enum CodingKeys: String, CodingKey {
        case accounting, tracked, limit, topics
        case untrackedMessages = "untracked_messages"
    }
}

/// The version of zpub itself.
public enum ZPubVersion {
    public static let current = "0.1.0"
}
