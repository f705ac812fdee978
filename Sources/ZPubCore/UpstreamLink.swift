/// A connection from this broker's XSUB socket to an upstream broker (or any PUB/XPUB), as
/// libzmq's socket monitor reports it. libzmq reconnects by itself; this records how it goes.
public struct UpstreamLink: Codable, Equatable, Sendable {
    public enum Change: Sendable {
        case connected, disconnected, retrying, connecting
    }

    /// Where a link stands, as STATS spells it. Any string decodes, as `HealthReport.Status`: a
    /// `zpub` reads the STATS of a newer zpubd with states it does not know.
    public struct State: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// An attempt under way.
        public static let connecting = State(rawValue: "connecting")
        public static let connected = State(rawValue: "connected")
        /// Lost or refused: libzmq tries again every `reconnect_ivl` (its default 100 ms, with
        /// no backoff).
        public static let retrying = State(rawValue: "retrying")
        /// A pair's passive member's links: it connects to no upstream until it takes over.
        /// Connected while passive, what an upstream sent waited in XSUB's queue, unread, and
        /// went out at the takeover as new messages, numbered again.
        public static let passive = State(rawValue: "passive")
    }

    public var endpoint: String
    public var state: State
    public var connects: UInt64
    public var disconnects: UInt64

    /// Its state and history, as HEALTH's problem and `zpub stats` say it.
    public var summary: String {
        if state == .passive { return "\(endpoint) passive (connected once this pair member takes over)" }
        return "\(endpoint) \(state) (connected \(connects) times, lost \(disconnects))"
    }

    public init(endpoint: String) {
        self.endpoint = endpoint
        self.state = .connecting
        self.connects = 0
        self.disconnects = 0
    }

    /// Held while this broker is a pair's passive member (`passive`), or let go of as it takes
    /// over (then "connecting", until its connection's events say more).
    public mutating func hold(whilePassive passive: Bool) {
        if passive {
            state = .passive
        } else if state == .passive {
            state = .connecting
        }
    }

    public mutating func apply(_ change: Change) {
        switch change {
        case .connected:
            state = .connected
            connects &+= 1
        case .disconnected:
            state = .retrying
            disconnects &+= 1
        case .retrying:
            state = .retrying
        case .connecting:
            if state != .connected { state = .connecting }
        }
    }

    /// Changes taken together, in order, when the forwarding loop fell behind the connection
    /// events (`ConnectionEventSummary`): applied at once, they leave a link as applying them one
    /// by one would, whatever it was before.
    public struct Changes: Equatable, Sendable {
        public private(set) var connects: UInt64 = 0
        public private(set) var disconnects: UInt64 = 0
        /// The state the changes leave; `connectingUnlessConnected`: "connecting", unless the
        /// link was connected before them (a retry's delay reported while connected).
        enum Outcome: Equatable, Sendable { case unchanged, state(State), connectingUnlessConnected }
        private(set) var outcome = Outcome.unchanged

        public init() {}

        public mutating func record(_ change: Change) {
            switch change {
            case .connected:
                connects &+= 1
                outcome = .state(.connected)
            case .disconnected:
                disconnects &+= 1
                outcome = .state(.retrying)
            case .retrying:
                outcome = .state(.retrying)
            case .connecting:
                switch outcome {
                case .unchanged: outcome = .connectingUnlessConnected
                case .state(let state) where state != .connected: outcome = .state(.connecting)
                case .state, .connectingUnlessConnected: break
                }
            }
        }
    }

    public mutating func apply(_ changes: Changes) {
        connects &+= changes.connects
        disconnects &+= changes.disconnects
        switch changes.outcome {
        case .unchanged: break
        case .state(let new): state = new
        case .connectingUnlessConnected: if state != .connected { state = .connecting }
        }
    }
}
