import Glibc
import ZPubCore

/// The subscribers whose subscriptions libzmq would apply to somebody else, after a peer of the
/// XPUB sent it a message that is no subscription.
///
/// With XPUB_MANUAL, libzmq 4.3.4 (and its master in 2026) queues each frame a peer sends
/// together with that peer, and `zmq_setsockopt(ZMQ_SUBSCRIBE)` applies a prefix to the peer
/// of the frame read last. A message that is no subscription (an XSUB may send data upstream)
/// is queued without its peer, but each of its frames read still takes the next peer off that
/// queue: each subscription read after it, until the XPUB is read dry, is paired with the peer
/// of a later one (or, the queue empty, of the last). Applied, a subscriber's prefix went to
/// another subscriber, and the one that asked got nothing (measured: one such frame, and a
/// pyzmq SUB's subscription queued behind it received nothing, every run); the peer taken may
/// even be one that closed, which libzmq 4.3.4 may have freed. zpubd knows each frame's real
/// connection (its metadata), but cannot make libzmq apply a prefix to it; it can start those
/// connections afresh.
///
/// So from such a message until the XPUB is read dry (the queue is empty, and libzmq pairs
/// frames rightly again) subscription frames are counted but nothing is applied, and then every
/// connection that had something held back (a change to apply, a last value) is dropped
/// (`drop`): libzmq ends them, the peers reconnect and subscribe again, each frame paired with
/// its own peer. The sender is not: it is known only by its descriptor, which may belong to
/// another connection by then (it sent and closed while the loop was behind, and the kernel
/// gave the number to the next connection accepted: a producer's, whose queued messages the
/// drop lost; a probe), and once the window is over its message did no harm. A frame that applies nothing (`$zpub/retry`, a refused
/// subscription) costs its connection nothing. Frames without a connection cannot be dropped:
/// the in-process gateway's subscriptions are held (`inProcessHeld`) and applied at its next
/// subscription frame read outside such a window (it sends `$zpub/retry` every second); the
/// unsubscriptions are not applied (libzmq's own, for a connection that closed, need nothing,
/// and the gateway's cannot be told from them: it is left a prefix its own index filters out).
struct MisdirectedSubscriptions {
    /// Whether libzmq may pair the frames read now with the wrong peers.
    private(set) var isOpen = false
    /// The connections to drop at the end, by descriptor (bounded by the descriptors open).
    private var toDrop: [Int32: SubscriberConnections.Identity] = [:]
    /// The in-process gateway's subscriptions held back, to apply at its next frame read
    /// outside a window; bounded (`maxInProcessHeldBytes`): beyond, one is lost (`inProcessLost`).
    private(set) var inProcessHeld: [[UInt8]] = []
    private var inProcessHeldBytes = 0
    static let maxInProcessHeldBytes = 16 << 20
    private(set) var inProcessLost: UInt64 = 0

    /// A message that is no subscription was read.
    mutating func notASubscription() {
        isOpen = true
    }

    /// What of `actions` may be carried out for the subscription frame `frame` from
    /// `connection` while the window is open: the counting is done; applying it (and a last
    /// value, which goes to the peer it is applied to) waits for the peer's new connection. A
    /// snapshot marker's subscription is not taken as arrived: the client's new connection
    /// brings it again, and the marker then goes where it is wanted.
    mutating func withhold(
        _ actions: SubscriptionActions, frame: UnsafeRawBufferPointer, from connection: SubscriberConnections.Identity?,
        closed: Bool
    ) -> SubscriptionActions {
        var actions = actions
        let heldBack = actions.apply != nil || actions.lastValue != nil
        actions.apply = nil
        actions.lastValue = nil
        if case .subscribed = actions.marker { actions.marker = nil }
        guard let connection else {
            if heldBack && frame.first == 1 { holdInProcess(Array(frame[1...])) }
            return actions
        }
        if heldBack && !closed { toDrop[connection.descriptor] = connection }
        return actions
    }

    private mutating func holdInProcess(_ prefix: [UInt8]) {
        guard inProcessHeldBytes + prefix.count <= Self.maxInProcessHeldBytes else {
            inProcessLost &+= 1
            return
        }
        inProcessHeld.append(prefix)
        inProcessHeldBytes += prefix.count
    }

    /// The gateway's subscriptions held back, to apply now: its frame was just read, outside a
    /// window.
    mutating func takeInProcessHeld() -> [[UInt8]] {
        defer {
            inProcessHeld.removeAll()
            inProcessHeldBytes = 0
        }
        return inProcessHeld
    }

    /// The XPUB was read dry: the connections to drop now; the window closes.
    mutating func readDry() -> [SubscriberConnections.Identity] {
        defer {
            isOpen = false
            toDrop.removeAll()
        }
        return Array(toDrop.values)
    }

    /// Ends `connection` under libzmq, if its descriptor still shows its socket and that socket
    /// is one the XPUB accepted (`isSubscriber`: its accept event named this descriptor and
    /// socket): a connection whose frame was read after it closed, its number since given to
    /// another connection, is taken for that one when it has no record yet, and that one may
    /// be a producer's. Shutdown, not close (the descriptor stays libzmq's, which reads the end
    /// of the stream and closes it). `current`: what a descriptor shows now. False when it was
    /// not dropped.
    static func drop(
        _ connection: SubscriberConnections.Identity, current: (Int32) -> SubscriberConnections.Socket?,
        isSubscriber: (Int32, SubscriberConnections.Socket) -> Bool
    ) -> Bool {
        guard let socket = current(connection.descriptor), connection.isCurrent(socket),
            isSubscriber(connection.descriptor, socket)
        else { return false }
        return shutdown(connection.descriptor, Int32(SHUT_RDWR)) == 0
    }
}
