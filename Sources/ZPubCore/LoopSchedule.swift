/// The forwarding loop's periodic duties and its shutdown drain, decided from the monotonic
/// time the loop passes in (the clock is injected, so tests drive it in memory).
public struct LoopSchedule: Sendable {
    /// What is due at one iteration.
    public struct Due: Equatable, Sendable {
        /// Tell systemd the loop is alive (WATCHDOG=1): every half watchdog interval.
        public var watchdogPing = false
        /// Refresh STATUS= for `systemctl status`: every second, while systemd listens.
        public var statusReport = false
        /// Expire cached values and stale snapshot requests, read the descriptor guard: every second.
        public var housekeeping = false

        public init(watchdogPing: Bool = false, statusReport: Bool = false, housekeeping: Bool = false) {
            self.watchdogPing = watchdogPing
            self.statusReport = statusReport
            self.housekeeping = housekeeping
        }
    }

    public static let secondNanoseconds: UInt64 = 1_000_000_000

    private let watchdogNanoseconds: UInt64?
    private let reportsStatus: Bool
    private var lastPing: UInt64 = 0
    /// When STATUS= was last sent, for the rates it shows.
    public private(set) var lastStatus: UInt64
    private var lastHousekeeping: UInt64
    private var drainDeadline: UInt64?
    /// While draining: when producers last had something to read (or the drain began).
    private var lastProducerActivity: UInt64 = 0

    /// `watchdogMicroseconds`: systemd's WATCHDOG_USEC, nil when no watchdog is asked for.
    public init(watchdogMicroseconds: UInt64?, reportsStatus: Bool, nowNanoseconds: UInt64) {
        watchdogNanoseconds = watchdogMicroseconds.map { $0 * 1_000 }
        self.reportsStatus = reportsStatus
        lastStatus = nowNanoseconds
        lastHousekeeping = nowNanoseconds
    }

    /// How long one poll may sleep: short enough for four polls per watchdog interval (so a
    /// ping is never late by more than a quarter of it), at most 500 ms; 100 ms while draining.
    public var pollTimeoutMilliseconds: Int {
        if drainDeadline != nil { return 100 }
        return watchdogNanoseconds.map { max(1, min(500, Int($0 / 4_000_000))) } ?? 500
    }

    public mutating func tick(nowNanoseconds now: UInt64) -> Due {
        var due = Due()
        if let interval = watchdogNanoseconds, now &- lastPing >= interval / 2 {
            due.watchdogPing = true
            lastPing = now
        }
        if reportsStatus && now &- lastStatus >= Self.secondNanoseconds {
            due.statusReport = true
        }
        if now &- lastHousekeeping >= Self.secondNanoseconds {
            due.housekeeping = true
            lastHousekeeping = now
        }
        return due
    }

    /// STATUS= was sent at `now` (the loop computes rates since `lastStatus` first).
    public mutating func statusReported(nowNanoseconds now: UInt64) {
        lastStatus = now
    }

    // MARK: Shutdown

    /// Whether a stop was asked for: producers' sockets are drained until `drainFinished`.
    public var isDraining: Bool { drainDeadline != nil }

    /// A stop was asked for: forward what producers already sent, for at most `milliseconds`.
    public mutating func startDrain(nowNanoseconds now: UInt64, milliseconds: Int) {
        guard drainDeadline == nil else { return }
        drainDeadline = now &+ UInt64(max(0, milliseconds)) * 1_000_000
        lastProducerActivity = now
    }

    /// Ends the drain at `now` (a second SIGTERM): `drainFinished` says so at once.
    public mutating func endDrainNow(nowNanoseconds now: UInt64) {
        guard let deadline = drainDeadline else { return }
        drainDeadline = min(deadline, now)
    }

    /// How a drain ended.
    public enum DrainEnd: Sendable, Equatable {
        /// Producers were quiet: what they had sent is out.
        case quiet
        /// At the deadline (`shutdown_drain_ms`, or a second SIGTERM's `endDrainNow`).
        case deadline
    }

    /// After each turn of a drain: whether it ends, and how. It ends when producers are quiet:
    /// a poll found nothing at all to read (`pollWasEmpty`), or polls woken by others (a
    /// control request, a subscription) found nothing from producers for a poll's timeout
    /// (100 ms); or at the deadline. (Any readable socket kept it going before: a load
    /// balancer asking /healthz every 50 ms held every stop to its shutdown_drain_ms, and the
    /// log blamed producers.)
    public mutating func drainEnd(
        pollWasEmpty: Bool, producersWereQuiet: Bool, nowNanoseconds now: UInt64
    ) -> DrainEnd? {
        guard let deadline = drainDeadline else { return nil }
        if !producersWereQuiet { lastProducerActivity = now }
        let quietFor = now &- min(now, lastProducerActivity)
        if producersWereQuiet && (pollWasEmpty || quietFor >= UInt64(pollTimeoutMilliseconds) * 1_000_000) {
            return .quiet
        }
        return now >= deadline ? .deadline : nil
    }
}
