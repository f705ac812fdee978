import CKernel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Which of the XPUB's connections still reach their subscriber: what a pair's passive broker
/// counts before it takes over (docs/topologies.md, "The rules"). Cut off from its clients by a
/// partition, it must not take over; so it must see them gone within the failover interval.
///
/// Asked of the kernel (TCP_INFO), not of libzmq's heartbeat timeout. A ZMTP ping waits behind
/// whatever the socket buffers hold for a subscriber, so a timeout short enough for the pair
/// (half the failover interval) also dropped healthy TCP subscribers that had fallen that far
/// behind in their reading, and what XPUB held for them (4,002 of 20,000 delivered, failover
/// 1000). The peer's kernel acknowledges a segment however far behind its process is: a
/// connection whose data in flight (the XPUB's pings, ten per failover interval, keep some
/// there) has gone unacknowledged for `silenceMilliseconds` is cut off. Taking a live one for
/// cut off (a lost packet, an overloaded host) only delays a takeover; the check errs that way.
struct SubscriberReachability {
    /// Each open XPUB connection's descriptor, with its inode when it was accepted: a descriptor
    /// closed and reused by another socket before its disconnection event is read is not taken
    /// for the connection. One entry per open connection (bounded by the descriptor limit).
    private var connections: [Int32: UInt64] = [:]

    var count: Int { connections.count }

    mutating func opened(descriptor: Int32) {
        guard descriptor >= 0, let inode = Self.inode(of: descriptor) else { return }
        connections[descriptor] = inode
    }

    mutating func closed(descriptor: Int32) {
        connections[descriptor] = nil
    }

    /// The connections not cut off: every ipc one (same host), and every TCP one that is
    /// established with nothing unacknowledged for `silenceMilliseconds`.
    func reachable(silenceMilliseconds: UInt32) -> Int {
        connections.reduce(0) { count, connection in
            count + (Self.isReachable(connection.key, inode: connection.value, silence: silenceMilliseconds) ? 1 : 0)
        }
    }

    static func isReachable(_ descriptor: Int32, inode: UInt64, silence: UInt32) -> Bool {
        // Gone, or another socket now: its disconnection event is on its way.
        guard Self.inode(of: descriptor) == inode else { return false }
        var peer = ckernel_tcp_peer()
        // Not TCP (ipc's Unix sockets): on this host, no partition between.
        guard ckernel_tcp_peer(descriptor, &peer) == 0 else { return true }
        return peer.established != 0 && (peer.unacknowledged == 0 || peer.last_ack_ms < silence)
    }

    private static func inode(of descriptor: Int32) -> UInt64? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        return UInt64(status.st_ino)
    }
}
