import ZPubCore
import ZeroMQ

/// What the connection event reader has handed the forwarding loop and the loop has not yet
/// handled, kept bounded: up to `limit` events wait one by one in the loop's mailbox; past
/// that, the reader adds them up in one `ConnectionEventSummary` until the loop takes it.
///
/// Why: the reader never waits for the loop, and the loop can be held for seconds (inside
/// libzmq by a subscription flood, or by a stalled log reader; docs/reliability.md). Peers
/// connecting and hanging up meanwhile, a few hundred a second or tens of thousands from a
/// flood, would otherwise grow the mailbox without bound. Nothing can be dropped instead: the
/// peer counts and the record of which connection holds which subscription depend on every
/// connection and disconnection. A summary is bounded by the process's file descriptors (it
/// keeps descriptors, not events) and the configured endpoints.
///
/// Order is kept: once one event went into the summary, every later one does too, until the
/// loop takes it (`takeSummary`, when it reaches the one `.connectionEventSummary` the
/// reader posted for it), so the summary always holds the newest events, after every queued
/// one.
final class ConnectionEventBacklog: Sendable {
    /// 4,096 queued events are some 600 KiB; the loop takes that many in a few milliseconds.
    static let defaultLimit = 4_096

    enum Admission: Equatable {
        /// Post the event to the loop's mailbox.
        case queue
        /// Added to the summary; `wakeLoop`: it was empty, so post `.connectionEventSummary`.
        case summarized(wakeLoop: Bool)
    }

    let limit: Int
    private struct State: Sendable {
        var queued = 0
        var summary = ConnectionEventSummary()
    }
    private let state = Locked(State())

    init(limit: Int = defaultLimit) {
        self.limit = limit
    }

    /// The reader, for each event it reads.
    func admit(_ event: MonitorEvent, of role: BrokerSocketRole, accepted: SubscriberReachability.Accepted?)
        -> Admission
    {
        state.withLock { state in
            if state.summary.isEmpty && state.queued < limit {
                state.queued += 1
                return .queue
            }
            let wasEmpty = state.summary.isEmpty
            state.summary.add(event, of: role, accepted: accepted)
            return .summarized(wakeLoop: wasEmpty)
        }
    }

    /// The loop, once it handled a queued event.
    func handled() {
        state.withLock { $0.queued -= 1 }
    }

    /// The loop, at `.connectionEventSummary`: the events added up since the reader posted it.
    func takeSummary() -> ConnectionEventSummary {
        state.withLock { state in
            defer { state.summary = ConnectionEventSummary() }
            return state.summary
        }
    }
}

/// Connection events added up (`ConnectionEventBacklog`): what the forwarding loop needs of
/// them, in a size bounded by the process's descriptors, not by how many events there were.
/// Applied at once, it leaves the peer counts, the subscribers' connections and the upstream
/// links as the events one by one would; what it leaves out is their log lines.
struct ConnectionEventSummary: Sendable {
    /// How many events it holds.
    private(set) var events = 0
    private(set) var opened: [BrokerSocketRole: Int] = [:]
    private(set) var closed: [BrokerSocketRole: Int] = [:]
    /// Subscriber (XPUB) connections that closed, by descriptor: applied before `openedSubscribers`.
    private(set) var closedSubscribers: Set<Int32> = []
    /// Subscriber connections opened after their descriptor's last close here (a descriptor
    /// closed again is taken out): as the reader saw each, moments after the accept.
    private(set) var openedSubscribers: [Int32: SubscriberReachability.Accepted] = [:]
    /// Changes per endpoint of XSUB's connections (upstream links are XSUB's connects; each
    /// event names its endpoint: the upstream's, or the local address of an accepted
    /// connection, which is no link and which the loop passes over). At most
    /// `maximumEndpoints`: far more than a configuration's upstreams and XSUB's listening
    /// addresses, but a bound on the table all the same; changes of further endpoints are not
    /// kept (counted in `events` only).
    private(set) var links: [String: UpstreamLink.Changes] = [:]
    private(set) var handshakeFailures = 0
    /// Handshakes that completed, or that a refusal (ZAP) ended, by socket.
    private(set) var handshakesEnded: [BrokerSocketRole: Int] = [:]

    static let maximumEndpoints = 1_024

    var isEmpty: Bool { events == 0 }

    mutating func add(_ event: MonitorEvent, of role: BrokerSocketRole, accepted: SubscriberReachability.Accepted?) {
        events += 1
        let kind = event.event
        if kind.contains(.accepted) || kind.contains(.connected) {
            opened[role, default: 0] += 1
            if role == .xpub, let accepted { openedSubscribers[event.value] = accepted }
            record(.connected, endpoint: event.endpoint, of: role)
        } else if kind.contains(.disconnected) {
            closed[role, default: 0] += 1
            if role == .xpub {
                closedSubscribers.insert(event.value)
                openedSubscribers[event.value] = nil
            }
            record(.disconnected, endpoint: event.endpoint, of: role)
        } else if kind.contains(.connectRetried) {
            record(.retrying, endpoint: event.endpoint, of: role)
        } else if kind.contains(.connectDelayed) {
            record(.connecting, endpoint: event.endpoint, of: role)
        } else if kind.contains(.acceptFailed) {
            // Nothing to keep: the loop reads the descriptor guard's status when it applies.
        } else if kind.contains(.handshakeSucceeded) {
            handshakesEnded[role, default: 0] += 1
        } else if !kind.intersection(.handshakeFailed).isEmpty {
            // As `ForwardingLoop.handle`: only a refusal ends what ZAP decided on.
            if kind.contains(.handshakeFailedAuth) { handshakesEnded[role, default: 0] += 1 }
            handshakeFailures += 1
        }
    }

    private mutating func record(_ change: UpstreamLink.Change, endpoint: String, of role: BrokerSocketRole) {
        guard role == .xsub else { return }
        if links[endpoint] == nil && links.count >= Self.maximumEndpoints { return }
        links[endpoint, default: UpstreamLink.Changes()].record(change)
    }
}
