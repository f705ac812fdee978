/// Messages and bytes through one socket, in each direction.
///
/// For PULL and XSUB "in" is data from producers; for XPUB "out" is data to subscribers and
/// "in" the subscription frames subscribers send; for XSUB "out" is subscription frames sent
/// upstream; for the control socket, requests in and replies out (those to clients that left before
/// their reply included; those dropped for a client with no room are `controlRepliesDropped`).
public struct TrafficCounters: Codable, Equatable, Sendable {
    public var messagesIn: UInt64 = 0
    public var messagesOut: UInt64 = 0
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case messagesIn = "messages_in"
        case messagesOut = "messages_out"
        case bytesIn = "bytes_in"
        case bytesOut = "bytes_out"
    }
}
