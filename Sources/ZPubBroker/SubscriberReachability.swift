import CKernel
import ZPubCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Which of the XPUB's connections still reach their subscriber: what a pair's broker that is
/// not active counts before it takes over (docs/topologies.md, "The rules"). Cut off from its
/// clients by a partition, it must not take over; so it must see them gone within the failover
/// interval.
///
/// Asked of the kernel (TCP_INFO), not of libzmq's heartbeat timeout. A ZMTP ping waits behind
/// whatever the socket buffers hold for a subscriber, so a timeout short enough for the pair
/// (half the failover interval) also dropped healthy TCP subscribers that had fallen that far
/// behind in their reading, and what XPUB held for them. A broker that is not active sends its
/// subscribers nothing but those pings (ten per failover interval), so nothing delays them
/// there, and each is answered with a PONG: a TCP connection counts if data came from the peer
/// within `silence`. Data, not acknowledgements: a proxy that ends TCP in the middle (HAProxy,
/// stunnel, a sidecar) acknowledges whatever the client's fate, the client's PONG comes from
/// the client. A connection also counts only once it is `silence` old, so that one that connects
/// and says nothing (a health check, a scanner) never does. Taking a live client for cut off
/// (an overloaded host, a lost packet) only delays a takeover; the check errs that way.
struct SubscriberReachability {
    /// A connection as the connection event reader saw it, moments after libzmq accepted it:
    /// its descriptor's inode (a descriptor closed and reused by another socket is not taken
    /// for it) and when (its age is counted from then; it is at least that old).
    struct Accepted: Sendable {
        let inode: UInt64
        let seenNanoseconds: UInt64

        /// Nil when the descriptor is closed already (its disconnection event follows).
        init?(descriptor: Int32, nowNanoseconds: UInt64 = SystemClock.monotonicNanoseconds()) {
            guard descriptor >= 0, let inode = SubscriberReachability.inode(of: descriptor) else { return nil }
            self.inode = inode
            seenNanoseconds = nowNanoseconds
        }
    }

    /// One entry per open XPUB connection (bounded by the process's descriptor limit).
    private var connections: [Int32: Accepted] = [:]

    var count: Int { connections.count }

    mutating func opened(descriptor: Int32, _ accepted: Accepted) {
        connections[descriptor] = accepted
    }

    mutating func closed(descriptor: Int32) {
        connections[descriptor] = nil
    }

    /// The connections not cut off, counted up to `limit`: every Unix-socket (ipc) one, whose
    /// peer is on this host, and every TCP one that is established, at least
    /// `silenceMilliseconds` old, and has received data within that time. Three system calls
    /// per connection looked at: a takeover needs one client, and counted whole at every
    /// heartbeat, 10,000 subscribers of a passive broker cost its forwarding loop some 50 ms
    /// a heartbeat (a review, 2026-12-07). All are looked at only while fewer reach.
    func reachable(silenceMilliseconds silence: UInt32, nowNanoseconds now: UInt64, limit: Int = .max) -> Int {
        var count = 0
        for (descriptor, connection) in connections {
            if count >= limit { break }
            // Gone, or another socket now: its disconnection event is on its way.
            guard Self.inode(of: descriptor) == connection.inode else { continue }
            var peer = ckernel_peer()
            guard ckernel_peer(descriptor, &peer) == 0 else { continue }
            let age = (now &- connection.seenNanoseconds) / 1_000_000
            let reaches =
                switch peer.kind {
                case 2: true
                case 1: peer.established != 0 && age >= UInt64(silence) && peer.last_data_ms < silence
                default: false
                }
            if reaches { count += 1 }
        }
        return count
    }

    static func inode(of descriptor: Int32) -> UInt64? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        return UInt64(status.st_ino)
    }
}
