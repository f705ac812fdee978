/// When a subscriber sends `BrokerState.retryPrefix` again: `zpub sub` and the gateway's link
/// send one every `intervalNanoseconds`, so that what a full broker refused them is admitted at
/// their next frame once there is room, and what the broker held back while libzmq paired frames
/// wrongly is applied (`SubscriberConnections`, docs/control-protocol.md). The clock is passed in.
public struct SubscriptionRetry: Sendable {
    public let intervalNanoseconds: UInt64
    private var due: UInt64

    /// The first one is due one interval from `now`.
    public init(intervalNanoseconds: UInt64, nowNanoseconds now: UInt64) {
        self.intervalNanoseconds = intervalNanoseconds
        due = now &+ intervalNanoseconds
    }

    /// How long a poll may wait before the next one is due (0: now).
    public func millisecondsUntilDue(nowNanoseconds now: UInt64) -> Int {
        now >= due ? 0 : Int((due - now) / 1_000_000) + 1
    }

    /// True when one is due, and then the next is scheduled an interval from `now`.
    public mutating func isDue(nowNanoseconds now: UInt64) -> Bool {
        guard now >= due else { return false }
        due = now &+ intervalNanoseconds
        return true
    }
}
