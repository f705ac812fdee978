/// `[ha]`: one broker of a primary/backup pair (docs/topologies.md, "A pair"). Off unless
/// `role` is set.
public struct PairSettings: Codable, Equatable, Sendable {
    public enum Role: String, Codable, Sendable, CaseIterable {
        case primary, backup
    }

    public enum Defaults {
        /// How long the peer may be silent before this broker may take over.
        public static let failoverMilliseconds = 2_000
    }

    /// Nil: a single broker, no pair.
    public var role: Role?
    /// This broker's pair endpoint (heartbeats and replication), e.g. "tcp://10.0.0.1:5600".
    public var bind: String?
    /// The other broker's pair endpoint.
    public var peer: String?
    public var failoverMilliseconds = Defaults.failoverMilliseconds
    /// The other broker's CURVE public key (a NAME.public file of `zpub keygen`): the pair link
    /// is then encrypted, and only that key may connect to `bind` ([security]
    /// server_secret_key_file is this broker's own key). Unset: the link is open to whoever
    /// reaches `bind`.
    public var peerPublicKeyFile: String?

    public init() {}

    /// Sequences a takeover skips at least: what the old active may have assigned unseen is
    /// never reused (the peer's burst is unknown until two of its heartbeats were heard, and 64
    /// bits leave room for any number of failovers). A client that sees sequences jump by half
    /// of this knows a takeover happened (`zpub sub` following a pair resumes then).
    public static let minimumTakeoverGap: UInt64 = 1_000_000
    /// A takeover by a broker that has not heard its peer since it started skips this many,
    /// and so does a primary numbering above a backup that was active beside it: the peer may
    /// have numbered all the while (at 100,000 messages a second, a billion is three hours of
    /// it). A follower that sees sequences jump by half of this knows the numberings may have
    /// split (`PairFollower.replayPosition`).
    public static let unheardTakeoverGap: UInt64 = 1 << 30

    /// The ZAP domain of the pair endpoint when it uses CURVE.
    public static let zapDomain = "pair"

    public var isEnabled: Bool { role != nil }

    /// Heartbeats go out four times per failover interval: one or two lost ones are no failover.
    public var heartbeatMilliseconds: Int { max(25, failoverMilliseconds / 4) }

    enum CodingKeys: String, CodingKey {
        case role, bind, peer
        case failoverMilliseconds = "failover_ms"
        case peerPublicKeyFile = "peer_public_key_file"
    }

    /// A tcp endpoint's wildcard the pair cannot use: the peer's host must be named, and this
    /// broker's port fixed (the peer connects to it).
    private static func wildcard(in endpoint: String, key: String) -> String? {
        let address = endpoint.dropFirst("tcp://".count)
        guard let colon = address.lastIndex(of: ":") else { return nil }
        let host = address[..<colon]
        let port = address[address.index(after: colon)...]
        if key == "peer" && (host == "*" || host.isEmpty) {
            return "peer \"\(endpoint)\" must name the other broker's host, e.g. \"tcp://10.0.0.2:5600\""
        }
        if port == "*" || port == "0" {
            return
                "\(key) \"\(endpoint)\" needs a fixed port: \(key == "bind" ? "the peer connects to it" : "this broker connects to it")"
        }
        return nil
    }

    /// Problems, each naming its key.
    public func validate() -> [(key: String, message: String)] {
        guard role != nil else {
            if bind != nil || peer != nil {
                return [("role", "[ha] has bind or peer but no role; set role = \"primary\" or \"backup\"")]
            }
            // Set, and silently ignored, they would let a reader believe the pair is on.
            if failoverMilliseconds != Defaults.failoverMilliseconds {
                return [("failover_ms", "[ha] has failover_ms but no role; set role, bind and peer, or remove it")]
            }
            if peerPublicKeyFile != nil {
                return [
                    (
                        "peer_public_key_file",
                        "[ha] has peer_public_key_file but no role; set role, bind and peer, or remove it"
                    )
                ]
            }
            return []
        }
        var problems: [(key: String, message: String)] = []
        for (key, value) in [("bind", bind), ("peer", peer)] {
            guard let value else {
                // Not in the file, so no line of its own: the role's line is where [ha] is.
                problems.append(
                    (
                        "role",
                        "[ha] needs \(key) (or --ha-\(key)): \(key == "bind" ? "this broker's own" : "the other broker's") pair endpoint, e.g. \"tcp://10.0.0.\(key == "bind" ? 1 : 2):5600\""
                    ))
                continue
            }
            if let problem = Endpoint.problem(with: value) {
                problems.append((key, "\(key) \"\(value)\": \(problem)"))
            } else if Endpoint.isMulticast(value) || value.hasPrefix("inproc://") {
                problems.append((key, "\(key) \"\(value)\" must be tcp or ipc: the pair talks across processes"))
            } else if value.hasPrefix("tcp://"), let wildcard = Self.wildcard(in: value, key: key) {
                problems.append((key, wildcard))
            }
        }
        if bind != nil && bind == peer {
            problems.append(("peer", "peer is this broker's own bind endpoint; it names the other broker"))
        }
        if let problem = BrokerConfiguration.rangeProblem(
            "failover_ms", failoverMilliseconds, 200...600_000, "the milliseconds before the peer counts as gone")
        {
            problems.append(problem)
        }
        return problems
    }
}

/// The pair's state machine, after the ZeroMQ Guide's Binary Star: pure, so that every rule is
/// unit-tested, and driven by `PairLink` (the heartbeats it hears, the clock, and whether
/// clients are connected).
///
/// The rule against split brain: a backup takes over only when the primary has been silent for
/// `failover` *and* clients are connected to the backup (they would not be, were only the link
/// between the two brokers broken while clients still reached the primary). A primary starting
/// alone becomes active once it has heard nothing for `failover`: it is the preferred one.
/// If both ever find each other active, the backup yields.
public struct PairMachine: Sendable {
    public enum State: String, Codable, Sendable {
        /// Just started: listening for the peer before choosing.
        case waiting
        /// Takes producers and serves subscribers.
        case active
        /// Mirrors the active peer; binds no producer endpoint.
        case passive
    }

    public struct Transition: Equatable, Sendable {
        public var from: State
        public var to: State
        public var reason: String
    }

    public let role: PairSettings.Role
    public private(set) var state = State.waiting
    public let failoverNanoseconds: UInt64
    /// When the peer was last heard, and what it said; nil until then.
    public private(set) var peerHeard: UInt64?
    public private(set) var peerState: State?
    private let started: UInt64
    /// When this broker last came back from a stall of its own (`noteOwnStall`).
    private var ownStallEnded: UInt64 = 0
    /// Where the peer's silence is counted from: its last heartbeat, the start, or this
    /// broker's own last stall, whichever came last.
    private var silenceStart: UInt64 { max(peerHeard ?? started, ownStallEnded) }
    /// When the peer said it stops (its goodbye), if nothing was heard from it since.
    private var peerStoppedAt: UInt64?
    /// When the peer counts as silent for a takeover: `failover` after `silenceStart`, or at
    /// once once it said it stops.
    private var silentFrom: UInt64 {
        if let stopped = peerStoppedAt, stopped >= silenceStart { return stopped }
        return silenceStart &+ failoverNanoseconds
    }

    public init(role: PairSettings.Role, failoverMilliseconds: Int, nowNanoseconds: UInt64) {
        self.role = role
        failoverNanoseconds = UInt64(failoverMilliseconds) * 1_000_000
        started = nowNanoseconds
    }

    public func peerIsSilent(nowNanoseconds now: UInt64) -> Bool {
        now >= silentFrom
    }

    /// The peer said it stops (`BYE` on the pair link, once its forwarding has stopped and its
    /// hand-over is over): its silence is complete at once, not `failover` later. A takeover
    /// still needs clients counted since, as after any silence. Anything heard from it later
    /// (a new run) undoes this.
    public mutating func peerStopped(nowNanoseconds now: UInt64) {
        peerStoppedAt = now
    }

    /// This broker did not run for a while (stopped, or starved of CPU) and runs again at
    /// `now`: the peer's heartbeats of that time may still be on their way in, so its silence
    /// is counted from now. A backup paused past `failover` and resumed took over from a
    /// primary that had been beating all along (3 times in 6), then stood down at its next
    /// heartbeat.
    public mutating func noteOwnStall(nowNanoseconds now: UInt64) {
        ownStallEnded = max(ownStallEnded, now)
    }

    /// Whether clients counted at `countedAt` may decide a takeover: only a count taken once the
    /// peer counted as silent. One taken earlier (the loop's late answer to an earlier question)
    /// can predate a partition by too little for its cut-off clients to have dropped out.
    public func countIsFresh(countedAtNanoseconds countedAt: UInt64) -> Bool {
        countedAt >= silentFrom
    }

    private mutating func move(to next: State, _ reason: String) -> Transition? {
        guard next != state else { return nil }
        defer { state = next }
        return Transition(from: state, to: next, reason: reason)
    }

    /// A heartbeat from the peer taken in without any change of state: a broker that stops
    /// still knows its peer is alive (HEALTH, and no takeover on silence either way).
    public mutating func noteHeard(_ peer: State, nowNanoseconds now: UInt64) {
        peerHeard = now
        peerState = peer
    }

    /// A heartbeat from the peer, saying its state.
    public mutating func peerSaid(_ peer: State, nowNanoseconds now: UInt64) -> Transition? {
        peerHeard = now
        peerState = peer
        switch (state, peer) {
        case (.waiting, .active),
            (.active, .active) where role == .backup:
            return move(
                to: .passive,
                state == .active
                    ? "both brokers were active (a partition healed): the primary keeps the role" : "the peer is active"
            )
        case (.waiting, .waiting):
            // Two brokers starting together: the primary leads.
            return role == .primary ? move(to: .active, "the peer is waiting too; the primary leads") : nil
        case (.waiting, .passive):
            // Restarting beside a passive peer: the peer holds the mirrored state and takes
            // over when it hears this broker waiting; this one then joins as passive. (Taking
            // over here too would make both active at once.)
            return nil
        case (.passive, .waiting):
            // The peer restarted; this broker holds the replicated state.
            return move(to: .active, "the peer restarted and is waiting")
        case (.passive, .passive):
            return role == .primary ? move(to: .active, "both brokers were passive; the primary leads") : nil
        default:
            return nil
        }
    }

    /// Time passes: takes over when the peer has been silent long enough (and, for a backup or a
    /// passive broker, clients are connected).
    public mutating func tick(nowNanoseconds now: UInt64, clientsConnected: Bool) -> Transition? {
        guard state != .active, peerIsSilent(nowNanoseconds: now) else { return nil }
        let silence =
            peerStoppedAt.map { $0 >= silenceStart } == true
            ? "the peer said it stops" : "the peer has been silent for \(failoverNanoseconds / 1_000_000) ms"
        if state == .waiting && role == .primary {
            return move(to: .active, "\(silence): the primary starts alone")
        }
        guard clientsConnected else { return nil }
        return move(to: .active, "\(silence) and clients are connected here: taking over")
    }
}

/// Where a pair stands, for HEALTH, STATS, `/metrics` and `zpub top`.
public struct PairStatus: Codable, Equatable, Sendable {
    public var role: PairSettings.Role
    public var state: PairMachine.State
    /// The other broker's pair endpoint.
    public var peer: String
    /// What the peer last said, and how long ago (nil: never heard).
    public var peerState: PairMachine.State?
    public var peerHeardMillisecondsAgo: UInt64?
    /// Where mirroring from the active peer stands: the last mirrored, or, before anything was
    /// mirrored, the last sequence this broker's history held at start (mirroring resumes after
    /// it; while this broker is active it stays there); and the peer's own last assigned
    /// sequence as of its latest heartbeat.
    public var replicatedThrough: UInt64
    public var peerSequence: UInt64
    /// Replication lag: kept messages the peer has that this broker has not mirrored yet, and
    /// the age of the newest one mirrored when the peer had more (0 when caught up).
    public var lagMessages: UInt64
    public var lagMilliseconds: UInt64
    /// Role changes since start.
    public var changes: UInt64
    /// The first sequence this broker assigned when it last took over (0: never): sequences
    /// below it were assigned by the peer.
    public var tookOverAt: UInt64 = 0

    /// `state == .active`, kept as a field so that HEALTH and STATS show it plainly.
    public var active = false
    /// The clients this broker counted at its last look: while it is not active, those a
    /// takeover counts (subscribers whose connections answered within a third of the failover
    /// interval, ipc ones, and the gateway's browsers); while active, every subscriber
    /// connection and browser. Absent in the replies of a zpubd before 2026-12-03.
    public var clients: Int?
    /// What is wrong with the pair now (absent when nothing is, and in the replies of a zpubd
    /// before 2026-12-05).
    public var problems: [PairProblem]?
    /// Pages of last values and of history this broker sent on its pair port (to the peer that
    /// mirrors it, or any client there): absent in the replies of a zpubd before 2026-12-07.
    public var valuePagesServed: UInt64?
    public var historyPagesServed: UInt64?

    public init(role: PairSettings.Role, peer: String) {
        self.role = role
        state = .waiting
        self.peer = peer
        replicatedThrough = 0
        peerSequence = 0
        lagMessages = 0
        lagMilliseconds = 0
        changes = 0
        valuePagesServed = 0
        historyPagesServed = 0
    }

    enum CodingKeys: String, CodingKey {
        case role, state, peer, active, changes, clients, problems
        case peerState = "peer_state"
        case peerHeardMillisecondsAgo = "peer_heard_ms_ago"
        case replicatedThrough = "replicated_through"
        case peerSequence = "peer_sequence"
        case lagMessages = "lag_messages"
        case lagMilliseconds = "lag_ms"
        case tookOverAt = "took_over_at"
        case valuePagesServed = "value_pages_served"
        case historyPagesServed = "history_pages_served"
    }
}
