import NIOCore

/// Prefixes that no gateway client wants any more but that stay subscribed upstream for a
/// while: a client that comes back meanwhile (a page reload, a reconnection, a subscribe after
/// an unsubscribe) costs the broker's forwarding loop no subscription frame. A client that
/// reconnects in a loop with the same prefixes then costs the broker one subscription, where
/// it cost two frames a loop (each connection gets a fresh allowance of subscription changes,
/// `SubscriptionChangeLimit`). Messages under a lingering prefix still arrive, and go to no
/// client. Owned by the gateway's ZeroMQ thread (`BrokerLink`).
struct UpstreamLinger {
    /// Long enough for a browser to reload a page and a client library to reconnect; short
    /// enough that a prefix nobody wants stops flowing soon.
    static let nanoseconds: UInt64 = 2_000_000_000
    /// At most this many prefixes linger; past it, the one that has lingered longest goes at
    /// once (the table grows with what clients choose).
    static let limit = 10_000

    private struct Entry {
        let prefix: [UInt8]
        /// When it goes (monotonic ns).
        let deadline: UInt64
        /// Which release of the prefix this is: two releases may read the same clock.
        let release: UInt64
    }

    /// Prefix -> its latest release, while it lingers.
    private var latest: [[UInt8]: Entry] = [:]
    /// Every release in the order its linger ends (deadlines only grow). One whose prefix was
    /// wanted again, or let go again later, is stale and skipped.
    private var queue = CircularBuffer<Entry>()
    private var releases: UInt64 = 0

    /// Prefixes lingering now (still subscribed upstream).
    var count: Int { latest.count }
    /// Releases queued, stale ones included (for tests: bounded by the compaction).
    var queued: Int { queue.count }

    /// A prefix a client wants again: true when it was lingering, so is still subscribed
    /// upstream and nothing needs to be sent.
    mutating func reclaim(_ prefix: [UInt8]) -> Bool {
        latest.removeValue(forKey: prefix) != nil
    }

    /// A prefix no client wants any more, at `now`: it lingers. Returns the prefixes to
    /// unsubscribe at once: none, or the longest lingering when more than `capacity` (at most
    /// `limit`) would linger: the room `max_upstream_prefixes` leaves beside claimed prefixes.
    mutating func release(_ prefix: [UInt8], now: UInt64, capacity: Int = Self.limit) -> [[UInt8]] {
        releases &+= 1
        let entry = Entry(prefix: prefix, deadline: now &+ Self.nanoseconds, release: releases)
        latest[prefix] = entry
        queue.append(entry)
        let gone = shrink(to: capacity)
        // Stale entries pile up only while prefixes are let go and taken back faster than they
        // expire; dropping them all keeps the queue within a few times the limit.
        if queue.count > 4 * Self.limit {
            queue = CircularBuffer(queue.filter(isLatest))
        }
        return gone
    }

    /// Ends the longest lingers until at most `capacity` (and `limit`) prefixes linger: a
    /// claimed prefix new upstream takes a lingering one's room. Returns those to unsubscribe.
    mutating func shrink(to capacity: Int) -> [[UInt8]] {
        var gone: [[UInt8]] = []
        while latest.count > max(0, min(capacity, Self.limit)), let first = queue.popFirst() {
            if take(first) { gone.append(first.prefix) }
        }
        return gone
    }

    /// The prefixes whose linger is over at `now`, to unsubscribe.
    mutating func expire(now: UInt64) -> [[UInt8]] {
        var gone: [[UInt8]] = []
        while let first = queue.first, first.deadline <= now {
            queue.removeFirst()
            if take(first) { gone.append(first.prefix) }
        }
        return gone
    }

    private func isLatest(_ entry: Entry) -> Bool {
        latest[entry.prefix]?.release == entry.release
    }

    /// Ends `entry`'s prefix's linger if the entry is its latest release; false for a stale one.
    private mutating func take(_ entry: Entry) -> Bool {
        guard isLatest(entry) else { return false }
        latest[entry.prefix] = nil
        return true
    }
}
