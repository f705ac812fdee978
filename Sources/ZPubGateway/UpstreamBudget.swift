import NIOCore

/// How fast the gateway adds subscriptions at the broker: `upstream_subscriptions_per_s` a
/// second, as many at once. Each costs the broker's forwarding loop some 5 µs (and its
/// unsubscribe as much), and clients choose their prefixes: without a budget, clients that
/// connect in a loop with new prefixes each time (within `max_clients` connections at once,
/// each allowed its `max_client_prefixes`) changed the broker's subscriptions as fast as they
/// could connect. The per-connection allowance (`SubscriptionChangeLimit`) and the linger
/// (`UpstreamLinger`) do not bound that: every connection is new, and so is every prefix.
///
/// A prefix over the budget waits, in the order it came, and is subscribed when its turn
/// comes; its clients get its messages from then on, as if they had subscribed then. A catch-up
/// cannot wait so (its prefixes must reach the broker before its marker): it is charged at once,
/// into debt if need be, and the next catch-up starts only once the debt is repaid.
///
/// Bounded: a prefix waits at most once, and only while some client wants it (`cancel`), so
/// the queue holds at most the gateway's distinct prefixes. Pure and clocked by the caller, so
/// that `UpstreamBudgetTests` drives it with a clock of its own.
struct UpstreamBudget {
    private var bucket: TokenBucket
    /// The prefixes waiting for their turn.
    private var waiting = Set<[UInt8]>()
    /// Their order of arrival; entries of prefixes no longer waiting are skipped when they come
    /// to the front, and dropped all at once when they outnumber the waiting ones.
    private var order = CircularBuffer<[UInt8]>()
    /// Subscriptions that had to wait, in all.
    private(set) var delayed: UInt64 = 0

    init(perSecond: Int, now: UInt64) {
        bucket = TokenBucket(burst: perSecond, perSecond: perSecond, now: now)
    }

    /// A new rate (a reload); what waits keeps its place. The new bucket starts full.
    mutating func changeRate(perSecond: Int, now: UInt64) {
        guard perSecond != bucket.burst else { return }
        bucket = TokenBucket(burst: perSecond, perSecond: perSecond, now: now)
    }

    var waitingCount: Int { waiting.count }

    /// A prefix to subscribe at the broker for a client that wants it now: true to subscribe
    /// it now, false when it waits (`due` gives it back when its turn comes). Nothing overtakes
    /// what waits.
    mutating func admit(_ prefix: [UInt8], now: UInt64) -> Bool {
        if waiting.isEmpty, bucket.take(now: now) { return true }
        if waiting.insert(prefix).inserted {
            order.append(prefix)
            delayed += 1
        }
        return false
    }

    /// No client wants `prefix` any more, or a catch-up takes it now: true when it was waiting
    /// (it was never subscribed at the broker).
    mutating func cancel(_ prefix: [UInt8]) -> Bool {
        guard waiting.remove(prefix) != nil else { return false }
        if order.count > 2 * waiting.count + 16 {
            var seen = Set<[UInt8]>()
            order = CircularBuffer(order.filter { waiting.contains($0) && seen.insert($0).inserted })
        }
        return true
    }

    /// A subscription (or a catch-up's marker and SNAPSHOT) that goes ahead now: counted
    /// against the rate, into debt if need be.
    mutating func charge(now: UInt64) {
        bucket.charge(now: now)
    }

    /// Whether a catch-up may start now: not while the budget is in debt.
    mutating func allowsCatchUp(now: UInt64) -> Bool {
        !bucket.inDebt(now: now)
    }

    /// The waiting prefixes whose turn has come at `now`, oldest first, to subscribe.
    mutating func due(now: UInt64) -> [[UInt8]] {
        var ready: [[UInt8]] = []
        while let first = order.first {
            guard waiting.contains(first) else {
                order.removeFirst()
                continue
            }
            guard bucket.take(now: now) else { break }
            order.removeFirst()
            waiting.remove(first)
            ready.append(first)
        }
        return ready
    }

    /// Nanoseconds until the budget has a token again (0: it has one now).
    mutating func untilNext(now: UInt64) -> UInt64 {
        bucket.untilNext(now: now)
    }
}
