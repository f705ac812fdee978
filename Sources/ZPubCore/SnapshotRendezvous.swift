/// Pairs a SNAPSHOT request with its marker subscription, whichever reaches the forwarding loop
/// first: the decisions of the Clone handshake's broker side (docs/last-value.md), with no
/// sockets, so that its races can be tested in memory.
///
/// The request comes from the control thread; the marker subscription (`$zpub/snapshot/<token>`)
/// from the subscriber's own SUB socket. The snapshot may be taken only once both are in: then
/// every data subscription the client sent before its marker has reached the broker too.
/// Both sides are bounded: at most `capacity` requests wait (the oldest goes), each for at most
/// `timeoutNanoseconds`, and at most `capacity` early markers are remembered.
public struct SnapshotRendezvous<Request> {
    public static var capacity: Int { 64 }
    /// As long as the control thread waits for the snapshot (5 s): a request served later
    /// would be work for a client that was already told it timed out.
    public static var timeoutNanoseconds: UInt64 { 5_000_000_000 }

    private var waiting: [(token: String, request: Request, deadline: UInt64)] = []
    private var earlyMarkers: [String] = []

    public init() {}

    /// Requests waiting for their marker.
    public var waitingCount: Int { waiting.count }

    /// A SNAPSHOT request for `token`. Returns the request when its marker is already in (serve
    /// it now); otherwise it waits, and nil is returned.
    public mutating func requested(token: String, _ request: Request, nowNanoseconds: UInt64) -> Request? {
        // The marker stays remembered until it is unsubscribed, as the subscription itself does.
        if earlyMarkers.contains(token) { return request }
        if waiting.count >= Self.capacity { waiting.removeFirst() }
        waiting.append((token, request, nowNanoseconds &+ Self.timeoutNanoseconds))
        return nil
    }

    /// The marker subscription for `token` arrived. Returns the waiting request to serve now,
    /// or nil (the marker is remembered for a request still on its way).
    public mutating func markerSubscribed(token: String) -> Request? {
        if let index = waiting.firstIndex(where: { $0.token == token }) {
            return waiting.remove(at: index).request
        }
        earlyMarkers.append(token)
        if earlyMarkers.count > Self.capacity { earlyMarkers.removeFirst() }
        return nil
    }

    /// The marker subscription for `token` went away (the client gave up, or it was served).
    public mutating func markerUnsubscribed(token: String) {
        earlyMarkers.removeAll { $0 == token }
    }

    /// Every request still waiting, removed: the loop has stopped, and their markers will
    /// not come.
    public mutating func removeAll() -> [Request] {
        defer {
            waiting.removeAll()
            earlyMarkers.removeAll()
        }
        return waiting.map(\.request)
    }

    /// Drops requests whose marker did not come in time; returns them (their clients get the
    /// timeout from the control thread, which stops waiting on its own clock).
    @discardableResult
    public mutating func expire(nowNanoseconds: UInt64) -> [Request] {
        let expired = waiting.filter { $0.deadline < nowNanoseconds }.map(\.request)
        waiting.removeAll { $0.deadline < nowNanoseconds }
        return expired
    }
}
