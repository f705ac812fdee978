/// After RESUME, the backlog producers queued while forwarding was paused goes out no faster
/// than the slowest subscriber it is for reads it (and so, after start, what they queued while
/// `start_hold_ms` held them, and what either still held when a stop came, within the stop's
/// drain): the forwarding loop turns on XPUB_NODROP, so
/// libzmq refuses a message while any of its subscribers' queues (`send_hwm`) is full, and the
/// loop holds that message until they have room. At full speed every subscriber is the whole
/// backlog behind at once, and libzmq dropped all but `send_hwm` of it for each (a healthy
/// subscriber got 15,000 to 20,669 of 25,000 messages held by a PAUSE).
///
/// Pacing holds everyone to the slowest reader, which zpubd otherwise never allows, so it is
/// bounded. A message that has waited `stallNanoseconds` (`catch_up_stall_ms`) waits for a
/// subscriber that reads
/// nothing (one that reads empties its queue well within that): the loop lets such
/// subscribers go (`isStalled`, `letGo`), and the rest goes on at the pace of those that read.
/// Pacing ends when the backlog is forwarded (a turn finds the producers' sockets empty, and
/// either nothing has come from them for `dryNanoseconds` or no subscriber lacked room for
/// `keptUpNanoseconds`), or at the configured limit (`resume_catch_up_ms`). This type decides
/// when; the loop does the sending.
public struct BacklogCatchUp: Sendable {
    /// What held the backlog, for the loop's log lines.
    public enum Cause: String, Sendable {
        case resume = "RESUME"
        case startHold = "start_hold_ms"
        /// A stop while paused or held at start: the drain forwards the backlog.
        case stop = "stop"

        /// A backlog a PAUSE held (released by RESUME, or by a stop's drain), not the start
        /// hold's, which is mostly what producers send as zpubd starts.
        public var isHeldBacklog: Bool { self != .startHold }

        /// "the backlog RESUME released", ... (log lines).
        public var backlog: String {
            switch self {
            case .resume: "the backlog RESUME released"
            case .startHold: "the backlog held at start (start_hold_ms)"
            case .stop: "the backlog the stop's drain forwards"
            }
        }
    }

    /// Why pacing ended, for the loop's log line.
    public enum Ending: Equatable, Sendable {
        /// The producers' sockets were found empty with nothing held, and they had sent
        /// nothing for `dryNanoseconds` or the subscribers had room for `keptUpNanoseconds`:
        /// the backlog is out.
        case caughtUp
        /// `resume_catch_up_ms` passed with the backlog still going out.
        case timeLimit
        /// A stop's drain reached its last quarter, which goes at full speed (`endPacing`).
        case drainsEnd
    }

    /// A subscriber that lets one message wait this long is not reading (`catch_up_stall_ms`,
    /// a second by default). libzmq tells XPUB of reads in steps of half a queue
    /// (`send_hwm`/2), so one that reads fewer messages than that in this time counts as not
    /// reading.
    public private(set) var stallNanoseconds: UInt64

    /// A turn that finds the producers' sockets empty has not seen the end of the backlog:
    /// libzmq refills a socket's queue from the connection only after the loop has read part
    /// of it, on its I/O thread, and a producer whose own queue holds the rest sends it as it
    /// is scheduled. Ended at the first such turn, the rest went at full speed (a reader lost
    /// 3,750 of 5,000 in a test, 65,000 of 100,000 beside a subscriber that read nothing). So
    /// the backlog is out once nothing more has come for this long.
    public static let dryNanoseconds: UInt64 = 100_000_000

    /// Or once no subscriber has lacked room for this long: pacing has changed nothing (the
    /// producers send no faster without it), and what still comes, backlog or live traffic,
    /// reaches the subscribers at full speed as it did. Without this, live traffic a moment
    /// apart kept pacing on to the time limit, and each subscriber that stopped reading
    /// meanwhile held everyone for a second (FaultTests' stalled subscriber, 0.47x). Traffic
    /// faster than a subscriber reads is paced until the producers stop for `dryNanoseconds`,
    /// or to the limit.
    public static let keptUpNanoseconds: UInt64 = 250_000_000

    public let cause: Cause
    public let startedNanoseconds: UInt64
    public let limitMilliseconds: Int
    private var deadline: UInt64
    /// When a stop's drain ends pacing, if it came before `deadline`.
    private var drainDeadline: UInt64?
    /// Since when the held message has waited; nil while nothing is held.
    public private(set) var heldSince: UInt64?
    /// Messages forwarded while pacing.
    public private(set) var forwarded: UInt64 = 0
    /// How many times a message had to wait for a subscriber's room.
    public private(set) var waits: UInt64 = 0
    /// How many times subscribers that read nothing were let go (`letGo`).
    public private(set) var stalls: UInt64 = 0
    /// When a message last went out while pacing; nil if none has.
    private var lastSent: UInt64?
    /// When a message was last refused for a subscriber's full queue (at first, the start).
    private var lastRefused: UInt64

    public init(
        _ cause: Cause, nowNanoseconds now: UInt64, limitMilliseconds: Int,
        stallMilliseconds: Int = BrokerConfiguration.Defaults.catchUpStallMilliseconds
    ) {
        self.cause = cause
        startedNanoseconds = now
        self.limitMilliseconds = limitMilliseconds
        stallNanoseconds = UInt64(max(1, stallMilliseconds)) * 1_000_000
        lastRefused = now
        deadline = now &+ UInt64(max(0, limitMilliseconds)) &* 1_000_000
    }

    /// Pacing begun again after a PAUSE suspended `previous`: the time limit anew, the counts
    /// (what was forwarded, waited, let go) carried on, so that the log's and STATS's figures
    /// are the backlog's, not what was left of it.
    public init(
        resuming previous: BacklogCatchUp, _ cause: Cause, nowNanoseconds now: UInt64, limitMilliseconds: Int,
        stallMilliseconds: Int = BrokerConfiguration.Defaults.catchUpStallMilliseconds
    ) {
        self.init(
            cause, nowNanoseconds: now, limitMilliseconds: limitMilliseconds, stallMilliseconds: stallMilliseconds)
        (forwarded, waits, stalls) = (previous.forwarded, previous.waits, previous.stalls)
    }

    /// Whether a message waits for room: the loop then stops reading producers and wakes when
    /// XPUB hears that a subscriber read.
    public var isHolding: Bool { heldSince != nil }

    /// The message in hand was refused (a subscriber's queue is full).
    public mutating func refused(nowNanoseconds now: UInt64) {
        lastRefused = now
        guard heldSince == nil else { return }
        heldSince = now
        waits &+= 1
    }

    /// The message in hand went out.
    public mutating func sent(nowNanoseconds now: UInt64) {
        heldSince = nil
        forwarded &+= 1
        lastSent = now
    }

    /// What waited (markers zpubd made) went out: no message is held any more.
    public mutating func unblocked() {
        heldSince = nil
    }

    /// A reload's `catch_up_stall_ms`: a message held now waits that long from when it was first
    /// refused.
    public mutating func stall(afterMilliseconds milliseconds: Int) {
        stallNanoseconds = UInt64(max(1, milliseconds)) * 1_000_000
    }

    /// A stop's drain: pacing ends by `deadline` at the latest.
    public mutating func endPacing(byNanoseconds deadline: UInt64) {
        drainDeadline = min(drainDeadline ?? deadline, deadline)
    }

    /// A reload's shorter `resume_catch_up_ms`, counted from the start; a longer one waits for
    /// the next catch-up.
    public mutating func limit(toMilliseconds milliseconds: Int) {
        deadline = min(deadline, startedNanoseconds &+ UInt64(max(0, milliseconds)) &* 1_000_000)
    }

    /// Whether what is held has waited `stallNanoseconds` at `now`: the loop is to let the
    /// subscribers it waits for go.
    public func isStalled(nowNanoseconds now: UInt64) -> Bool {
        heldSince.map { Self.nanoseconds(since: $0, at: now) >= stallNanoseconds } ?? false
    }

    /// What was held went out without waiting (after `sent` for a message), dropped for the
    /// subscribers whose queues were full; pacing goes on without them.
    public mutating func letGo() {
        heldSince = nil
        stalls &+= 1
    }

    /// How pacing ends at `now`, or nil to go on. `producersEmpty`: this turn read nothing
    /// from PULL or XSUB.
    public func ending(nowNanoseconds now: UInt64, producersEmpty: Bool) -> Ending? {
        if heldSince == nil && producersEmpty && millisecondsUntilCaughtUp(nowNanoseconds: now) == nil {
            return .caughtUp
        }
        // Whichever came first says why: its own limit can pass during a stop's drain.
        if let drainDeadline, now >= drainDeadline, drainDeadline < deadline { return .drainsEnd }
        if now >= deadline { return .timeLimit }
        return nil
    }

    /// Whether pacing that ends at `now` ends because the producers sent nothing for
    /// `dryNanoseconds` (the backlog is out), rather than because the subscribers kept up (what
    /// still comes, backlog or live, goes at full speed).
    public func producersWentQuiet(nowNanoseconds now: UInt64) -> Bool {
        lastSent.map { Self.nanoseconds(since: $0, at: now) >= Self.dryNanoseconds } ?? true
    }

    /// How long, rounded up, until a turn that finds the producers' sockets empty ends pacing
    /// (nil: one would now): the loop polls no longer than that, to end it on time.
    public func millisecondsUntilCaughtUp(nowNanoseconds now: UInt64) -> Int? {
        let sinceSent = lastSent.map { Self.nanoseconds(since: $0, at: now) } ?? Self.dryNanoseconds
        let sinceRefused = Self.nanoseconds(since: lastRefused, at: now)
        guard sinceSent < Self.dryNanoseconds && sinceRefused < Self.keptUpNanoseconds else { return nil }
        let left = min(Self.dryNanoseconds - sinceSent, Self.keptUpNanoseconds - sinceRefused)
        return Int((left + 999_999) / 1_000_000)
    }

    /// What STATS shows of it at `now`.
    public func stats(nowNanoseconds now: UInt64) -> StatsSnapshot.CatchUpStats {
        StatsSnapshot.CatchUpStats(
            cause: cause.rawValue, forwarded: forwarded, elapsedMilliseconds: elapsedMilliseconds(nowNanoseconds: now),
            waitingMilliseconds: heldSince.map { Self.nanoseconds(since: $0, at: now) / 1_000_000 }, stalls: stalls)
    }

    /// Milliseconds since pacing began, for the log.
    public func elapsedMilliseconds(nowNanoseconds now: UInt64) -> UInt64 {
        Self.nanoseconds(since: startedNanoseconds, at: now) / 1_000_000
    }

    /// The time from `then` to `now`, 0 if `now` is earlier: the loop reads the clock once per
    /// turn, and a catch-up begun in that turn started after it (a start hold's ended
    /// "18446744073709 ms" after it began, and at once, its last refusal in the future).
    private static func nanoseconds(since then: UInt64, at now: UInt64) -> UInt64 {
        now > then ? now - then : 0
    }
}
