import ZPubCore

/// The connections an unbind closes. libzmq ends the connections it accepted on an endpoint
/// when the endpoint is unbound (a reload that removes it, or binds it again for a change of
/// CURVE), and reports no disconnect for them: the peer count and a pair's count of clients
/// kept them for good.
///
/// Each accepted connection is remembered with its endpoint and the socket its descriptor
/// showed. An unbind sets aside the connections of its endpoint; each is counted out once its
/// descriptor no longer shows its socket (libzmq closes it in its I/O thread, at once, or once
/// what was queued for it is sent: `closedByUnbind`, at housekeeping). A disconnect event that
/// comes for one of them afterwards (it closed on its own at the same moment) counts for
/// nothing. Connections are known by role and descriptor: each socket's monitor reports its
/// own, and events of different sockets interleave. Connections accepted while the loop fell
/// behind (`ConnectionEventSummary`) are not remembered, and an unbind leaves them counted, as
/// before; nor can a disconnect taken as a count there be told from one counted out here.
struct UnbindClosures {
    struct Closed: Equatable {
        let descriptor: Int32
        let role: BrokerSocketRole
    }

    private struct Key: Hashable {
        let role: BrokerSocketRole
        let descriptor: Int32
    }

    private struct Accepted {
        let endpoint: String
        let socket: SubscriberConnections.Socket?
    }

    /// Open accepted connections (bounded by the descriptors the process may have).
    private var open: [Key: Accepted] = [:]
    /// Connections of endpoints unbound since, until they are seen closed.
    private var unbound: [Key: Accepted] = [:]
    /// Connections counted out here, until when a disconnect event for them counts for nothing.
    private var countedOut: [Key: UInt64] = [:]
    /// How long after it was counted out a connection's own disconnect event may still come.
    static let lateDisconnectNanoseconds: UInt64 = 5_000_000_000

    mutating func accepted(
        descriptor: Int32, role: BrokerSocketRole, endpoint: String,
        socket: (Int32) -> SubscriberConnections.Socket?
    ) {
        let key = Key(role: role, descriptor: descriptor)
        countedOut[key] = nil
        unbound[key] = nil
        open[key] = Accepted(endpoint: endpoint, socket: socket(descriptor))
    }

    /// Whether `descriptor` shows a connection `role`'s socket accepted, open: its accept
    /// event named this descriptor, and the descriptor showed `socket` when it was taken in.
    func isOpen(descriptor: Int32, role: BrokerSocketRole, socket: SubscriberConnections.Socket) -> Bool {
        open[Key(role: role, descriptor: descriptor)]?.socket == socket
    }

    /// A connection of `role` on `descriptor` that is no accepted one (an upstream link): a
    /// disconnect for the descriptor is its own.
    mutating func connected(descriptor: Int32, role: BrokerSocketRole) {
        countedOut[Key(role: role, descriptor: descriptor)] = nil
    }

    /// A disconnect event for `descriptor`: false when an unbind's closing counted it already.
    mutating func expectsDisconnect(descriptor: Int32, role: BrokerSocketRole) -> Bool {
        let key = Key(role: role, descriptor: descriptor)
        if countedOut.removeValue(forKey: key) != nil { return false }
        open[key] = nil
        unbound[key] = nil
        return true
    }

    /// The loop fell behind and took connection events as counts: which of the connections
    /// remembered are still open is not known, and those are forgotten (an unbind then leaves
    /// them counted, as before; counted out for a second time, it would count others out).
    mutating func summarized() {
        open.removeAll()
        unbound.removeAll()
        countedOut.removeAll()
    }

    /// `endpoints` of `role` (as libzmq resolved them, which its accept events name) were
    /// unbound: their connections are set aside until they close.
    mutating func unbound(_ endpoints: [String], role: BrokerSocketRole) {
        guard !endpoints.isEmpty else { return }
        for (key, connection) in open where key.role == role && endpoints.contains(connection.endpoint) {
            open[key] = nil
            unbound[key] = connection
        }
    }

    /// The connections set aside by unbinds that have closed since (housekeeping).
    mutating func closedByUnbind(now: UInt64, socket: (Int32) -> SubscriberConnections.Socket?) -> [Closed] {
        countedOut = countedOut.filter { $0.value > now }
        guard !unbound.isEmpty else { return [] }
        var closed: [Closed] = []
        for (key, connection) in unbound {
            if let recorded = connection.socket, socket(key.descriptor) == recorded { continue }
            unbound[key] = nil
            countedOut[key] = now &+ Self.lateDisconnectNanoseconds
            closed.append(Closed(descriptor: key.descriptor, role: key.role))
        }
        return closed.sorted { ($0.role.rawValue, $0.descriptor) < ($1.role.rawValue, $1.descriptor) }
    }
}
