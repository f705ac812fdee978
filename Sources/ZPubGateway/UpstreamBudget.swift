import NIOCore

/// How fast the gateway adds subscriptions at the broker: `upstream_subscriptions_per_s` new
/// prefixes a second, as many at once. Each costs the broker's forwarding loop some 5 µs (and
/// its unsubscribe as much), and clients choose their prefixes: without a budget, clients that
/// connect in a loop with new prefixes each time (within `max_clients` connections at once,
/// each allowed its `max_client_prefixes`) changed the broker's subscriptions as fast as they
/// could connect. The per-connection allowance (`SubscriptionChangeLimit`) and the linger
/// (`UpstreamLinger`) do not bound that: every connection is new, and so is every prefix.
///
/// A prefix over the budget waits, in the order it came, and is subscribed when its turn
/// comes; its clients get its messages from then on, as if they had subscribed then. A catch-up
/// cannot wait so (its prefixes must reach the broker before its marker): it is charged at once,
/// into debt if need be, and the next catch-up starts only once the debt is repaid. While
/// prefixes wait, catch-ups and prefixes take the budget in turn: after a catch-up, as many
/// waiting prefixes as it cost go first.
///
/// Bounded: a prefix waits at most once, and only while some client wants it (`cancel`), so
/// the queue holds at most the gateway's distinct prefixes. Pure and clocked by the caller, so
/// that `UpstreamBudgetTests` drives it with a clock of its own.
struct UpstreamBudget {
    private var bucket: TokenBucket
    /// The prefixes waiting for their turn, each with its ticket: its entry in `order`.
    private var waiting: [[UInt8]: UInt64] = [:]
    /// Arrivals in order; an entry whose ticket is no longer its prefix's (cancelled, or asked
    /// for again later) is skipped when it comes to the front, and such entries are dropped all
    /// at once when they outnumber the waiting ones.
    private var order = CircularBuffer<(prefix: [UInt8], ticket: UInt64)>()
    private var nextTicket: UInt64 = 0
    /// What catch-ups took while prefixes waited, and the waiting prefixes have not had since:
    /// the next catch-up waits until it is 0.
    private var owedToWaiting = 0
    /// Subscriptions that had to wait, in all.
    private(set) var delayed: UInt64 = 0

    init(perSecond: Int, now: UInt64) {
        bucket = TokenBucket(burst: perSecond, perSecond: perSecond, now: now)
    }

    /// A new rate (a reload). What waits keeps its place, and the tokens (or the debt) carry
    /// over, up to the new burst.
    mutating func changeRate(perSecond: Int, now: UInt64) {
        guard perSecond != bucket.burst else { return }
        let tokens = bucket.available(now: now)
        bucket = TokenBucket(burst: perSecond, perSecond: perSecond, now: now, tokens: tokens)
    }

    var waitingCount: Int { waiting.count }

    /// Whether `prefix` waits for its turn (it is not subscribed at the broker yet).
    func isWaiting(_ prefix: [UInt8]) -> Bool { waiting[prefix] != nil }

    /// A prefix to subscribe at the broker for a client that wants it now: true to subscribe
    /// it now, false when it waits (`due` gives it back when its turn comes). Nothing overtakes
    /// what waits.
    mutating func admit(_ prefix: [UInt8], now: UInt64) -> Bool {
        if waiting.isEmpty, bucket.take(now: now) { return true }
        guard waiting[prefix] == nil else { return false }
        nextTicket += 1
        waiting[prefix] = nextTicket
        order.append((prefix, nextTicket))
        delayed += 1
        return false
    }

    /// No client wants `prefix` any more, or a catch-up takes it now: true when it was waiting
    /// (it was never subscribed at the broker).
    mutating func cancel(_ prefix: [UInt8]) -> Bool {
        guard waiting.removeValue(forKey: prefix) != nil else { return false }
        if waiting.isEmpty { owedToWaiting = 0 }
        if order.count > 2 * waiting.count + 16 {
            order = CircularBuffer(order.filter { waiting[$0.prefix] == $0.ticket })
        }
        return true
    }

    /// A subscription (or a catch-up's marker and SNAPSHOT) that goes ahead now: counted
    /// against the rate, into debt if need be, and owed to the prefixes waiting meanwhile.
    mutating func charge(now: UInt64) {
        bucket.charge(now: now)
        if !waiting.isEmpty { owedToWaiting += 1 }
    }

    /// Whether a catch-up may start now: not while the budget is in debt, nor before the
    /// waiting prefixes have had as much as the catch-ups took while they waited.
    mutating func allowsCatchUp(now: UInt64) -> Bool {
        owedToWaiting == 0 && !bucket.inDebt(now: now)
    }

    /// The waiting prefixes whose turn has come at `now`, oldest first, to subscribe.
    mutating func due(now: UInt64) -> [[UInt8]] {
        var ready: [[UInt8]] = []
        while let first = order.first {
            guard waiting[first.prefix] == first.ticket else {
                order.removeFirst()
                continue
            }
            guard bucket.take(now: now) else { break }
            order.removeFirst()
            waiting[first.prefix] = nil
            ready.append(first.prefix)
            owedToWaiting = waiting.isEmpty ? 0 : max(0, owedToWaiting - 1)
        }
        return ready
    }

    /// Nanoseconds until the budget has a token again (0: it has one now).
    mutating func untilNext(now: UInt64) -> UInt64 {
        bucket.untilNext(now: now)
    }
}
