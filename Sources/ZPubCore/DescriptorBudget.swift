/// When zpubd stops taking new TCP connections for lack of file descriptors, and when it takes
/// them again: the decisions only, with no system calls, so they can be tested in memory.
/// `ZPubBroker.DescriptorGuard` feeds it what it observes and carries out its actions.
///
/// Why before the limit and not at it: libzmq 4.3.4's ipc listener aborts the whole process when
/// `accept()` fails with EMFILE (`errno_assert` in `src/ipc_listener.cpp`; the TCP and TIPC
/// listeners tolerate it), and sockets adopted from systemd use the same listener classes. So
/// the descriptor table must never be full when an ipc connection arrives. New TCP connections,
/// the only ones strangers can open, are paused once descriptor numbers reach the *pause point*,
/// `headroom` below the soft limit; the headroom is left for ipc and control connections and
/// for the TCP connections already queued in the kernel when the pause begins. Pausing also
/// raises the soft limit to the hard one (zpubd starts below it, `startLimit`), which adds the
/// reserve to that room.
public struct DescriptorBudget: Sendable {
    public enum Action: Equatable, Sendable {
        case none
        /// Stop new TCP connections and raise the soft limit to the hard one.
        case pause
        /// Take new connections again, the soft limit still raised: connections that waited
        /// arrive in a burst (clients retry at once), faster than any probe, and the raised
        /// limit is what keeps that burst away from EMFILE (and libzmq's ipc listener from
        /// aborting). Measured: a burst after resuming at the old limit crashed zpubd under load.
        case reopen
        /// The burst is over: the soft limit goes back to `restoredLimit`.
        case resume(restoredLimit: Int)
    }

    public private(set) var paused = false
    /// How many times a pause began.
    public private(set) var pauses: UInt64 = 0
    /// The soft limit in force when the pause began; restored when it ends.
    public private(set) var limitBeforePause = 0
    /// The pause began with ENFILE: the whole system is out of descriptors, so zpubd's own count
    /// says nothing about when it ends; it is held for `systemPauseSeconds` at least.
    public private(set) var systemWide = false
    private var pausedAtSeconds = 0.0
    /// Reopened, the limit still raised, until the table has stayed below the resume point
    /// for `settleSeconds`; a pause in the meantime keeps the first limit.
    public private(set) var settling = false
    private var reopenedAtSeconds = 0.0
    public static let settleSeconds = 2.0

    /// How long a pause caused by ENFILE lasts at least, so that it does not end and begin
    /// again every second while the system is still out of descriptors.
    public static let systemPauseSeconds = 10.0

    public init() {}

    /// Descriptors kept free below a soft limit of `limit`: an eighth, at least 16 and at most
    /// 1,024. 1,024 is ten times libzmq's accept backlog (100 per listener).
    public static func headroom(forLimit limit: Int) -> Int {
        min(1_024, max(16, limit / 8))
    }

    /// The first descriptor number at which new TCP connections pause; never below half the
    /// limit, so that a tiny limit (zpubd itself needs about 30) still leaves room to work.
    public static func pausePoint(forLimit limit: Int) -> Int {
        max(limit / 2, limit - headroom(forLimit: limit))
    }

    /// Paused, new connections resume once fewer descriptors than this are open: 7/8 of the
    /// pause point, so that a few connections closing do not make it flap.
    public static func resumePoint(forLimit limit: Int) -> Int {
        pausePoint(forLimit: limit) * 7 / 8
    }

    /// The soft limit zpubd sets at start: the hard limit less a reserve that a pause adds to
    /// the headroom: 1/16 of the hard limit, at most 1,024.
    public static func startLimit(hard: Int) -> Int {
        hard - min(1_024, hard / 16)
    }

    /// Why libzmq's listener failed to accept.
    public enum AcceptFailure: Sendable {
        /// EMFILE: zpubd's own limit.
        case processLimit
        /// ENFILE: the system's limit.
        case systemLimit
        /// Anything else (a peer that reset its connection first): not about descriptors.
        case other
    }

    /// A connection got `descriptor` (libzmq's ACCEPTED or CONNECTED event). The kernel hands
    /// out the lowest free number, so a number at the pause point means every one below it is
    /// taken: EMFILE is near whatever the numbers above it hold.
    public mutating func opened(descriptor: Int, softLimit: Int, nowSeconds: Double) -> Action {
        // While settling the soft limit is the raised one; the pause point stays the old one's.
        let limit = settling ? limitBeforePause : softLimit
        guard !paused, descriptor >= Self.pausePoint(forLimit: limit) else { return .none }
        return beginPause(softLimit: softLimit, systemWide: false, nowSeconds: nowSeconds)
    }

    /// The frequent probe: `lowestFree` is the lowest descriptor number not in use (what the
    /// next accept would get). Catches what no monitor reports (control and HTTP connections,
    /// files), and does not depend on the forwarding loop being responsive.
    public mutating func probed(lowestFree: Int, softLimit: Int, nowSeconds: Double) -> Action {
        opened(descriptor: lowestFree, softLimit: softLimit, nowSeconds: nowSeconds)
    }

    /// libzmq's listener failed to accept despite the headroom (the limit lowered from outside,
    /// the system out of descriptors): pause at once.
    public mutating func acceptFailed(_ failure: AcceptFailure, softLimit: Int, nowSeconds: Double) -> Action {
        guard failure != .other, !paused else { return .none }
        return beginPause(softLimit: softLimit, systemWide: failure == .systemLimit, nowSeconds: nowSeconds)
    }

    /// Paused or settling: `open` descriptors are in use now (counted once a second).
    public mutating func counted(open: Int, nowSeconds: Double) -> Action {
        guard open < Self.resumePoint(forLimit: limitBeforePause) else { return .none }
        if settling && !paused {
            guard nowSeconds - reopenedAtSeconds >= Self.settleSeconds else { return .none }
            settling = false
            return .resume(restoredLimit: limitBeforePause)
        }
        guard paused else { return .none }
        if systemWide && nowSeconds - pausedAtSeconds < Self.systemPauseSeconds { return .none }
        paused = false
        settling = true
        reopenedAtSeconds = nowSeconds
        return .reopen
    }

    private mutating func beginPause(softLimit: Int, systemWide: Bool, nowSeconds: Double) -> Action {
        paused = true
        pauses &+= 1
        // Paused again while settling: the limit in force is the raised one, not the one to
        // go back to.
        if !settling { limitBeforePause = softLimit }
        self.systemWide = systemWide
        pausedAtSeconds = nowSeconds
        return .pause
    }
}
