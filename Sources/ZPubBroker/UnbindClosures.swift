import ZPubCore

/// The connections an unbind closes. libzmq ends the connections it accepted on an endpoint
/// when the endpoint is unbound (a reload that removes it, or binds it again for a change of
/// CURVE), and reports no disconnect for them: the peer count and a pair's count of clients
/// kept them for good.
///
/// Each accepted connection is remembered with its endpoint and the socket its descriptor
/// showed. After an unbind, the connections of that endpoint whose descriptor no longer shows
/// their socket (libzmq closes them in its I/O thread, a moment after `zmq_unbind` returns) are
/// counted out, looked at for a few seconds (`closedByUnbind`); a disconnect event that comes
/// for one of them afterwards (it closed on its own at the same moment) counts for nothing.
/// Connections accepted while the loop fell behind (`ConnectionEventSummary`) are not
/// remembered, and an unbind leaves them counted, as before.
struct UnbindClosures {
    struct Closed: Equatable {
        let descriptor: Int32
        let role: BrokerSocketRole
    }

    private struct Accepted {
        let role: BrokerSocketRole
        let endpoint: String
        let socket: SubscriberConnections.Socket?
    }

    /// Open accepted connections by descriptor (bounded by the descriptors the process may have).
    private var open: [Int32: Accepted] = [:]
    /// Endpoints unbound lately, per role, until when their connections are looked at.
    private var watched: [(role: BrokerSocketRole, endpoint: String, until: UInt64)] = []
    /// Descriptors counted out here whose disconnect event, if one comes, counts for nothing.
    private var countedOut: Set<Int32> = []
    /// How long after an unbind its connections are looked for: libzmq closes them at once.
    static let watchNanoseconds: UInt64 = 5_000_000_000

    mutating func accepted(
        descriptor: Int32, role: BrokerSocketRole, endpoint: String,
        socket: (Int32) -> SubscriberConnections.Socket?
    ) {
        countedOut.remove(descriptor)
        open[descriptor] = Accepted(role: role, endpoint: endpoint, socket: socket(descriptor))
    }

    /// A disconnect event for `descriptor`: false when an unbind's closing counted it already.
    mutating func expectsDisconnect(descriptor: Int32) -> Bool {
        if countedOut.remove(descriptor) != nil { return false }
        open[descriptor] = nil
        return true
    }

    /// The loop fell behind and took connection events as counts: which of the connections
    /// remembered are still open is not known, and those are forgotten (an unbind then leaves
    /// them counted, as before; counted out for a second time, it would count others out).
    mutating func summarized() { open.removeAll() }

    /// `endpoints` (as libzmq resolved them, which its accept events name) were unbound.
    mutating func unbound(_ endpoints: [String], role: BrokerSocketRole, now: UInt64) {
        for endpoint in endpoints { watched.append((role, endpoint, now &+ Self.watchNanoseconds)) }
    }

    /// The connections of the endpoints unbound lately that have closed since (housekeeping).
    mutating func closedByUnbind(now: UInt64, socket: (Int32) -> SubscriberConnections.Socket?) -> [Closed] {
        guard !watched.isEmpty else { return [] }
        var closed: [Closed] = []
        for (descriptor, connection) in open
        where watched.contains(where: { $0.role == connection.role && $0.endpoint == connection.endpoint }) {
            if let recorded = connection.socket, socket(descriptor) == recorded { continue }
            open[descriptor] = nil
            countedOut.insert(descriptor)
            closed.append(Closed(descriptor: descriptor, role: connection.role))
        }
        watched.removeAll { $0.until <= now }
        return closed
    }
}
