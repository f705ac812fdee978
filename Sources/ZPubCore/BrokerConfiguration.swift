/// Everything zpubd can be configured with. The defaults are the embedded configuration that
/// `zpubd` runs with when no file is given; each is a named constant with the reason for it.
public struct BrokerConfiguration: Codable, Equatable, Sendable {
    public enum Defaults {
        /// Loopback only: a fresh install exposes nothing to the network.
        public static let controlEndpoints = ["tcp://127.0.0.1:5555"]
        public static let xpubEndpoints = ["tcp://127.0.0.1:5556"]
        public static let pullEndpoints = ["tcp://127.0.0.1:5557"]
        public static let xsubEndpoints = ["tcp://127.0.0.1:5558"]
        public static let logLevel = "info"
        /// Per-peer queue, in messages. libzmq's default of 1000 drops bursts a broker should
        /// absorb; 10,000 of 1 KiB is 10 MiB per slow subscriber at worst.
        public static let sendHighWaterMark = 10_000
        public static let receiveHighWaterMark = 10_000
        /// Bounded so that shutdown is bounded even with a stalled subscriber, and well below
        /// systemd's default TimeoutStopSec of 90 s.
        public static let lingerMilliseconds = 1_000
        /// 16 MiB: large enough for any sane frame. libzmq checks each frame, not a whole
        /// multipart message, and holds a message's frames until its last one arrives (the
        /// high-water mark counts whole messages), so one peer that never ends a message can
        /// still grow memory: docs/security.md says what bounds that.
        public static let maxMessageSize = 16 * 1024 * 1024
        /// How long a connection may take to complete the ZMTP handshake before it is dropped.
        public static let handshakeMilliseconds = 10_000
        /// libzmq's I/O threads (ZMQ_IO_THREADS): they encode, decode and move bytes for every
        /// connection. libzmq's rule of thumb: one per gigabyte per second in or out.
        public static let ioThreads = 1
        /// Multicast (pgm/epgm) rate in kbit/s. libzmq's own default, 100, would throttle a
        /// broker's traffic to some hundreds of messages a second.
        public static let multicastRateKbps = 10_000
        /// ZMTP heartbeats, so that dead peers are noticed; 0 turns them off.
        public static let heartbeatIntervalMilliseconds = 10_000
        public static let heartbeatTimeoutMilliseconds = 30_000
        /// TCP keepalive on every TCP connection: probes after this many idle seconds (0 = off),
        /// every interval, and a peer that answers `count` probes in a row with nothing is gone.
        /// It also keeps NAT and firewall state alive on quiet links, below their usual timeouts.
        public static let tcpKeepaliveIdleSeconds = 60
        public static let tcpKeepaliveIntervalSeconds = 10
        public static let tcpKeepaliveCount = 6
        public static let maxTopics = 10_000
        public static let maxSubscriptions = 100_000
        /// Subscriptions of all connections together (a prefix held by ten connections is ten):
        /// zpubd records each connection's prefixes (`SubscriberConnections`), and libzmq its
        /// frames; `max_subscriptions` counts distinct prefixes only, so connections holding
        /// the same ones grew both without bound. A connection that subscribes past it is
        /// dropped (a refusal could not be counted right: `ForwardingLoop.dropOverTheTotal`).
        public static let maxLiveSubscriptions = 1_000_000
        /// Longer subscriptions are refused: very long ones crash libzmq 4.3.4's XSUB trie.
        /// At most 4,096, for the same reason.
        public static let maxSubscriptionLength = 1_024
        public static let maxControlRequest = 4_096
        public static let topicAccounting = true
        /// After SIGTERM, how long to keep forwarding what producers had already sent.
        public static let shutdownDrainMilliseconds = 2_000
        /// After RESUME, how long the backlog may go out at the slowest subscriber's pace.
        public static let resumeCatchUpMilliseconds = 5_000
        /// While a backlog is paced, a message that waits this long for a subscriber's room
        /// lets the subscribers that read nothing go.
        public static let catchUpStallMilliseconds = 1_000
        /// At start, producers are read only after this long: subscribers reconnect within
        /// libzmq's reconnect interval (100 ms) and subscribe first.
        public static let startHoldMilliseconds = 500
        /// No upstream brokers: a single broker is the common case.
        public static let upstreamEndpoints: [String] = []
        /// The last-value cache is off unless prefixes are configured.
        public static let lastValuePrefixes: [String] = []
        public static let lastValueMaxEntries = 10_000
        /// 64 MiB of cached messages at most.
        public static let lastValueMaxBytes = 64 * 1024 * 1024
        /// 0: cached values do not expire.
        public static let lastValueMaxAgeSeconds = 0
        /// A new subscriber gets the newest cached value under its prefix (docs/last-value.md).
        public static let lastValueOnSubscribe = true
        /// History is off unless prefixes are configured.
        public static let historyPrefixes: [String] = []
        /// A million stored messages at most (the oldest go first).
        public static let historyMaxMessages = 1_000_000
        /// 1 GiB of stored frames at most.
        public static let historyMaxBytes = 1 << 30
        /// 0: stored messages do not expire by age.
        public static let historyMaxAgeSeconds = 0
        /// Everything received more than this long before a SIGKILL or a power loss is on disk.
        public static let historySyncIntervalMilliseconds = 1_000
        /// Bytes of messages waiting for the history writer; past this, history drops (forwarding
        /// does not).
        public static let historyQueueBytes = 64 * 1024 * 1024
        /// How many sequence numbers a persistent history reserves ahead (docs/history.md,
        /// "Numbering"): what an unclean stop may skip.
        public static let historySequenceReserve = 1 << 30
        /// An ipc control socket: the owner and its group may connect (and nobody else).
        public static let controlIPCMode = FileMode(0o660)
    }

    public var controlEndpoints = Defaults.controlEndpoints
    public var xpubEndpoints = Defaults.xpubEndpoints
    public var pullEndpoints = Defaults.pullEndpoints
    public var xsubEndpoints = Defaults.xsubEndpoints
    public var logLevel = Defaults.logLevel
    public var sendHighWaterMark = Defaults.sendHighWaterMark
    public var receiveHighWaterMark = Defaults.receiveHighWaterMark
    public var lingerMilliseconds = Defaults.lingerMilliseconds
    public var maxMessageSize = Defaults.maxMessageSize
    public var handshakeMilliseconds = Defaults.handshakeMilliseconds
    public var ioThreads = Defaults.ioThreads
    public var multicastRateKbps = Defaults.multicastRateKbps
    public var heartbeatIntervalMilliseconds = Defaults.heartbeatIntervalMilliseconds
    public var heartbeatTimeoutMilliseconds = Defaults.heartbeatTimeoutMilliseconds
    public var tcpKeepaliveIdleSeconds = Defaults.tcpKeepaliveIdleSeconds
    public var tcpKeepaliveIntervalSeconds = Defaults.tcpKeepaliveIntervalSeconds
    public var tcpKeepaliveCount = Defaults.tcpKeepaliveCount
    public var maxTopics = Defaults.maxTopics
    public var maxSubscriptions = Defaults.maxSubscriptions
    public var maxLiveSubscriptions = Defaults.maxLiveSubscriptions
    public var maxSubscriptionLength = Defaults.maxSubscriptionLength
    public var maxControlRequest = Defaults.maxControlRequest
    public var topicAccounting = Defaults.topicAccounting
    public var shutdownDrainMilliseconds = Defaults.shutdownDrainMilliseconds
    public var resumeCatchUpMilliseconds = Defaults.resumeCatchUpMilliseconds
    public var catchUpStallMilliseconds = Defaults.catchUpStallMilliseconds
    public var startHoldMilliseconds = Defaults.startHoldMilliseconds
    public var upstreamEndpoints = Defaults.upstreamEndpoints
    public var lastValuePrefixes = Defaults.lastValuePrefixes
    public var lastValueMaxEntries = Defaults.lastValueMaxEntries
    public var lastValueMaxBytes = Defaults.lastValueMaxBytes
    public var lastValueMaxAgeSeconds = Defaults.lastValueMaxAgeSeconds
    public var lastValueOnSubscribe = Defaults.lastValueOnSubscribe
    /// Messages under these prefixes get a sequence number and are kept (docs/history.md).
    public var historyPrefixes = Defaults.historyPrefixes
    public var historyMaxMessages = Defaults.historyMaxMessages
    public var historyMaxBytes = Defaults.historyMaxBytes
    public var historyMaxAgeSeconds = Defaults.historyMaxAgeSeconds
    public var historySyncIntervalMilliseconds = Defaults.historySyncIntervalMilliseconds
    public var historyQueueBytes = Defaults.historyQueueBytes
    public var historySequenceReserve = Defaults.historySequenceReserve
    /// Where history and the last-value cache persist (`--state-dir`, `[history] directory`);
    /// nil: in memory only, lost at exit.
    public var stateDirectory: String?
    /// Whether zpubd opens the history store (and runs its writer): for history prefixes, or
    /// for last values that persist in a state directory. Decided at start.
    public var opensHistoryStore: Bool {
        !historyPrefixes.isEmpty || (stateDirectory != nil && !lastValuePrefixes.isEmpty)
    }
    /// The CURVE server's secret key (Z85, as `zpub keygen` writes it); needed when any socket
    /// has `curve = true`. Only the path is ever shown, never the key.
    public var serverSecretKeyFile: String?
    public var controlIPCMode = Defaults.controlIPCMode
    /// Per socket role ("pull", "xsub", "xpub", "control"): CURVE and allow lists.
    public var security: [BrokerSocketRole: SocketSecurity] = [:]
    /// The optional HTTP listener: WebSocket, SSE, health, stats, metrics ([http], docs/http.md).
    public var http = HTTPSettings()
    /// A primary/backup pair ([ha], docs/topologies.md); off by default.
    public var pair = PairSettings()

    public init() {}

    public func security(for role: BrokerSocketRole) -> SocketSecurity {
        security[role] ?? SocketSecurity()
    }

    /// The log levels zpubd understands, quietest last.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// The smallest `max_message_size`: libzmq checks the handshake's commands against it too,
    /// and CURVE's takes 300 bytes with pyzmq's metadata (measured with libzmq 4.3.4; NULL's,
    /// 64), which a client's own metadata adds to. 1,000 worked, and stays accepted.
    public static let minMaxMessageSize = 512

    /// Linux's ceiling for TCP_KEEPIDLE (MAX_TCP_KEEPIDLE): libzmq sets it on each accepted
    /// connection, and a larger value made every one fail, unlogged.
    public static let maxKeepaliveSeconds = 32_767

    enum CodingKeys: String, CodingKey {
        case controlEndpoints = "control"
        case xpubEndpoints = "xpub"
        case pullEndpoints = "pull"
        case xsubEndpoints = "xsub"
        case logLevel = "log_level"
        case sendHighWaterMark = "send_hwm"
        case receiveHighWaterMark = "receive_hwm"
        case lingerMilliseconds = "linger_ms"
        case maxMessageSize = "max_message_size"
        case handshakeMilliseconds = "handshake_timeout_ms"
        case ioThreads = "io_threads"
        case multicastRateKbps = "multicast_rate_kbps"
        case heartbeatIntervalMilliseconds = "heartbeat_interval_ms"
        case heartbeatTimeoutMilliseconds = "heartbeat_timeout_ms"
        case tcpKeepaliveIdleSeconds = "tcp_keepalive_idle_s"
        case tcpKeepaliveIntervalSeconds = "tcp_keepalive_interval_s"
        case tcpKeepaliveCount = "tcp_keepalive_count"
        case maxTopics = "max_topics"
        case maxSubscriptions = "max_subscriptions"
        case maxLiveSubscriptions = "max_live_subscriptions"
        case maxSubscriptionLength = "max_subscription_length"
        case maxControlRequest = "max_control_request"
        case topicAccounting = "topic_accounting"
        case shutdownDrainMilliseconds = "shutdown_drain_ms"
        case resumeCatchUpMilliseconds = "resume_catch_up_ms"
        case catchUpStallMilliseconds = "catch_up_stall_ms"
        case startHoldMilliseconds = "start_hold_ms"
        case upstreamEndpoints = "upstream"
        case lastValuePrefixes = "last_value_prefixes"
        case lastValueMaxEntries = "last_value_max_entries"
        case lastValueMaxBytes = "last_value_max_bytes"
        case lastValueMaxAgeSeconds = "last_value_max_age_s"
        case lastValueOnSubscribe = "last_value_on_subscribe"
        case historyPrefixes = "history_prefixes"
        case historyMaxMessages = "history_max_messages"
        case historyMaxBytes = "history_max_bytes"
        case historyMaxAgeSeconds = "history_max_age_s"
        case historySyncIntervalMilliseconds = "history_sync_interval_ms"
        case historyQueueBytes = "history_queue_bytes"
        case historySequenceReserve = "history_sequence_reserve"
        case stateDirectory = "state_directory"
        case serverSecretKeyFile = "server_secret_key_file"
        case controlIPCMode = "control_ipc_mode"
        case security
        case http
        case pair = "ha"
    }
}

/// The four kinds of socket zpubd binds.
/// `CodingKeyRepresentable`: tables keyed by role (STATS `sockets` and `peers`, `security`)
/// encode as JSON objects with these names as keys.
public enum BrokerSocketRole: String, CaseIterable, Codable, CodingKeyRepresentable, Sendable {
    case pull, xsub, xpub, control
}

extension BrokerConfiguration {
    public func endpoints(for role: BrokerSocketRole) -> [String] {
        switch role {
        case .pull: pullEndpoints
        case .xsub: xsubEndpoints
        case .xpub: xpubEndpoints
        case .control: controlEndpoints
        }
    }

    public mutating func setEndpoints(_ endpoints: [String], for role: BrokerSocketRole) {
        switch role {
        case .pull: pullEndpoints = endpoints
        case .xsub: xsubEndpoints = endpoints
        case .xpub: xpubEndpoints = endpoints
        case .control: controlEndpoints = endpoints
        }
    }

}

extension BrokerConfiguration {
    /// The problem with an integer setting outside its range, or nil: shared by every section.
    /// `shown`: the key as the file spells it, when `key` (which finds the line) differs.
    static func rangeProblem(
        _ key: String, _ value: Int, _ range: ClosedRange<Int>, _ meaning: String, shown: String? = nil
    ) -> (key: String, message: String)? {
        guard !range.contains(value) else { return nil }
        return (
            key,
            "\(shown ?? key) = \(value) is out of range: \(meaning) must be between \(range.lowerBound) and \(range.upperBound)"
        )
    }
}
