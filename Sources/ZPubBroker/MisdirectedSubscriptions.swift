import Glibc
import ZPubCore

/// The subscribers whose subscriptions libzmq would apply to somebody else, after a peer of the
/// XPUB sent it a message that is no subscription.
///
/// With XPUB_MANUAL, libzmq 4.3.4 (and its master in 2026) queues each frame a peer sends
/// together with that peer, and `zmq_setsockopt(ZMQ_SUBSCRIBE)` applies a prefix to the peer
/// of the frame read last. A message that is no subscription (an XSUB may send data upstream)
/// is queued without its peer, but its read still takes the next peer off that queue: each
/// subscription read after it, until the XPUB is read dry, is paired with the peer of the one
/// behind it. Applied, a subscriber's prefix went to another subscriber, and the one that
/// asked got nothing (measured: one such frame, and a pyzmq SUB's subscription queued behind it
/// received nothing, every run). zpubd knows each frame's real connection (its metadata), but
/// cannot make libzmq apply a prefix to it; it can start those connections afresh.
///
/// So from such a message until the XPUB is read dry (the queue is empty, and libzmq pairs
/// frames rightly again) subscription frames are counted but not applied, and then the sender
/// and every connection whose subscription was held back are dropped (`drop`): libzmq ends
/// them, the peers reconnect and subscribe again, each frame paired with its own peer.
/// Frames without a connection (the in-process gateway's; libzmq's own unsubscriptions for a
/// connection that closed) cannot be dropped: their subscriptions are applied as before, their
/// unsubscriptions not (libzmq's are for a connection gone; the gateway's would only leave it a
/// prefix its own index filters out).
struct MisdirectedSubscriptions {
    /// Whether libzmq may pair the frames read now with the wrong peers.
    private(set) var isOpen = false
    /// The connections to drop at the end, by descriptor (bounded by the descriptors open).
    private var toDrop: [Int32: SubscriberConnections.Identity] = [:]
    /// The senders among them (those known: not in-process, not gone already).
    private var senders: Set<Int32> = []

    /// A message that is no subscription, from `sender` (nil: unknown, or closed already).
    mutating func notASubscription(from sender: SubscriberConnections.Identity?) {
        isOpen = true
        if let sender, sender.inode != 0 || sender.device != 0 {
            toDrop[sender.descriptor] = sender
            senders.insert(sender.descriptor)
        }
    }

    /// What of `actions` may be carried out for a subscription frame from `connection` while
    /// the window is open: the counting is done; applying it (and a last value, which goes to
    /// the peer it is applied to) waits for the peer's new connection.
    mutating func withhold(
        _ actions: SubscriptionActions, from connection: SubscriberConnections.Identity?, closed: Bool
    ) -> SubscriptionActions {
        var actions = actions
        guard let connection else {
            if actions.apply == .unsubscribe { actions.apply = nil }
            return actions
        }
        actions.apply = nil
        actions.lastValue = nil
        actions.admitted.removeAll()
        if !closed { toDrop[connection.descriptor] = connection }
        return actions
    }

    /// The XPUB was read dry: the connections to drop now; the window closes.
    mutating func readDry() -> (connections: [SubscriberConnections.Identity], senders: Int) {
        defer {
            isOpen = false
            toDrop.removeAll()
            senders.removeAll()
        }
        return (Array(toDrop.values), senders.count)
    }

    /// Ends `connection` under libzmq, if its descriptor still shows its socket: shutdown, not
    /// close (the descriptor stays libzmq's, which reads the end of the stream and closes it).
    /// `current`: what a descriptor shows now. False when it was gone already.
    static func drop(
        _ connection: SubscriberConnections.Identity, current: (Int32) -> SubscriberConnections.Socket?
    ) -> Bool {
        guard connection.isCurrent(current(connection.descriptor)) else { return false }
        return shutdown(connection.descriptor, Int32(SHUT_RDWR)) == 0
    }
}
