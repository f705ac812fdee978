/// Lets a repeated log message through at most once per interval and counts what it held back,
/// so that a flood of bad input (refused subscriptions, failed handshakes) cannot flood the
/// journal as well. The counters in STATS still count every one.
public struct LogRateLimit: Sendable {
    public let intervalNanoseconds: UInt64
    private var lastAdmitted: UInt64?
    private var heldBack = 0

    public init(intervalSeconds: UInt64 = 10) {
        intervalNanoseconds = intervalSeconds * 1_000_000_000
    }

    /// nil: stay quiet. Otherwise log now, saying that this many were held back since the last.
    public mutating func admit(nowNanoseconds: UInt64) -> Int? {
        if let last = lastAdmitted, nowNanoseconds &- last < intervalNanoseconds {
            heldBack += 1
            return nil
        }
        lastAdmitted = nowNanoseconds
        defer { heldBack = 0 }
        return heldBack
    }
}
