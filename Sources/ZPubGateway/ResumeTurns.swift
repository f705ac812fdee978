import NIOCore

/// Resuming clients take turns to ask the broker: at most `places` catch-ups wait for a
/// control reply at once, the others wait here, first come first served.
///
/// Every catch-up's requests go through the control thread's queue, which /healthz, /stats,
/// /metrics and the status page need too (`ControlDispatcher.maxQueued`). Without turns, a
/// crowd reconnecting at once (a restart, a flapping proxy, or anyone opening streams with
/// `Last-Event-ID` in a loop) filled that queue, and /healthz answered 503. The control thread
/// serves one request at a time anyway, so a few places keep it busy.
///
/// A client holds at most one place and waits at most once: the queue is bounded by the
/// number of clients (`max_clients`). A client that leaves is skipped when its turn comes.
struct ResumeTurns {
    static let places = 4

    /// Catch-ups with a request out to the broker.
    private(set) var asking = 0
    private var queue = CircularBuffer<ClientID>()
    private var queued = Set<ClientID>()

    /// Clients waiting for their turn.
    var waiting: Int { queued.count }

    /// Queues `id` (once, however often it is asked).
    mutating func wait(_ id: ClientID) {
        guard queued.insert(id).inserted else { return }
        queue.append(id)
    }

    /// The client left: it gets no turn. Its place in `queue` goes at the next turn, or here
    /// once those left behind outnumber the clients waiting: while every place is taken, no
    /// turn comes, and clients that reconnect in a loop would grow `queue` without end.
    mutating func leave(_ id: ClientID) {
        guard queued.remove(id) != nil, queue.count > 2 * queued.count + 16 else { return }
        queue = CircularBuffer(queue.filter { queued.contains($0) })
    }

    /// Entries in the queue, those of clients that left included (a test's look at the bound).
    var queueLength: Int { queue.count }

    /// The next waiting client, when a place is free; the caller then calls `started` (or
    /// leaves the place free if the client has nothing to ask after all).
    mutating func next() -> ClientID? {
        guard asking < Self.places else { return nil }
        while let id = queue.popFirst() {
            if queued.remove(id) != nil { return id }
        }
        return nil
    }

    mutating func started() { asking += 1 }

    /// A catch-up has its last reply: its place is free.
    mutating func finished() {
        precondition(asking > 0, "a catch-up finished asking twice")
        asking -= 1
    }
}
