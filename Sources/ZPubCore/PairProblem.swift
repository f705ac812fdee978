/// Something wrong with a pair that still runs, shown by HEALTH and STATS (`pair.problems`) for
/// as long as it lasts, and logged when it begins and ends: the pair does not do what it is
/// for (a standby ready to take over, with everything mirrored), though each broker works.
public struct PairProblem: Codable, Equatable, Sendable {
    /// One of the kinds below; a string, so that a client knows the kinds of later versions.
    public var kind: String
    /// What is wrong and what to do about it.
    public var message: String

    public init(kind: String, message: String) {
        self.kind = kind
        self.message = message
    }

    /// Heartbeats go one way only between the pair (a `peer` that is not the other broker's
    /// `bind`, or a network that drops one direction): the standby mirrors nothing.
    public static let oneWayLink = "one_way_link"
    /// The peer has not been heard for `failover_ms`: no standby, or no active broker.
    public static let peerSilent = "peer_silent"
    /// The two brokers are configured so that the pair cannot work (same role, `peer` leading
    /// back to this broker).
    public static let misconfigured = "misconfigured"
    /// This broker took over but could not bind producers' endpoints: producers cannot reach it
    /// there.
    public static let producersUnbound = "producers_unbound"

    /// Every kind this version knows.
    public static let kinds = [oneWayLink, peerSilent, misconfigured, producersUnbound]

    /// Whether it keeps this broker from serving as the active one, not only the pair from
    /// being redundant: `zpub health` fails on it even without `--passive-ok`.
    public var affectsServing: Bool { kind == Self.producersUnbound }
}

/// Which way the pair's heartbeats travel. Each broker's DEALER connects to the peer's `bind`
/// and sends its heartbeats there; the peer answers each on that connection. So a broker that
/// gets the peer's heartbeats on its own bind but no answers on its connection has a `peer`
/// that leads elsewhere (or a network that drops that way), and the other way round; the
/// standby's requests for history travel on its connection, so it mirrors nothing meanwhile.
public struct PairLinkWatch: Sendable {
    private let failoverNanoseconds: UInt64
    private var heardOnBind: UInt64?
    private var heardOnConnection: UInt64?
    /// Since when the other way's silence counts: the peer heard again after a silence (its
    /// restart, the pair forming late), or this broker's own stall. Its first heartbeat one way
    /// comes up to a heartbeat before the first answer the other way.
    private var countedFrom: UInt64

    public init(failoverMilliseconds: Int, nowNanoseconds: UInt64) {
        failoverNanoseconds = UInt64(max(failoverMilliseconds, 1)) * 1_000_000
        countedFrom = nowNanoseconds
    }

    /// A heartbeat of the peer's came to this broker's bind.
    public mutating func peerHeardOnBind(nowNanoseconds now: UInt64) {
        if !recent(heardOnBind, now: now) && !recent(heardOnConnection, now: now) { countedFrom = now }
        heardOnBind = now
    }

    /// The peer answered a heartbeat on this broker's connection to it.
    public mutating func peerHeardOnConnection(nowNanoseconds now: UInt64) {
        if !recent(heardOnBind, now: now) && !recent(heardOnConnection, now: now) { countedFrom = now }
        heardOnConnection = now
    }

    /// This broker did not run for a while (`PairMachine.noteOwnStall`): what it missed meanwhile
    /// may still be on its way, either way.
    public mutating func noteOwnStall(nowNanoseconds now: UInt64) { countedFrom = now }

    private func recent(_ heard: UInt64?, now: UInt64) -> Bool {
        heard.map { now &- $0 < failoverNanoseconds } ?? false
    }

    /// The problem, when one way has been heard within `failover_ms` and the other not for
    /// twice that (since the start, or since the peer was heard again after a silence): a
    /// moment's difference is a heartbeat in flight.
    public func problem(nowNanoseconds now: UInt64, bind: String, peer: String) -> PairProblem? {
        func recent(_ heard: UInt64?) -> Bool { self.recent(heard, now: now) }
        func silent(_ heard: UInt64?) -> Bool { now &- max(heard ?? 0, countedFrom) > 2 &* failoverNanoseconds }
        if recent(heardOnBind) && silent(heardOnConnection) {
            return PairProblem(
                kind: PairProblem.oneWayLink,
                message:
                    "the peer's heartbeats reach this broker's bind (\(bind)), but its connection to [ha] peer (\(peer)) gets no answer: peer is probably not the other broker's bind (or the network drops that direction); until it is fixed this broker mirrors nothing from the peer"
            )
        }
        if recent(heardOnConnection) && silent(heardOnBind) {
            return PairProblem(
                kind: PairProblem.oneWayLink,
                message:
                    "the peer answers this broker's heartbeats on its connection to \(peer), but sends none of its own to this broker's bind (\(bind)): the peer's [ha] peer probably does not lead here (or the network drops that direction); until it is fixed the peer mirrors nothing from this broker"
            )
        }
        return nil
    }
}
