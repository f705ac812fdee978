/// A connection from this broker's XSUB socket to an upstream broker (or any PUB/XPUB), as
/// libzmq's socket monitor reports it. libzmq reconnects by itself; this records how it goes.
public struct UpstreamLink: Codable, Equatable, Sendable {
    public enum Change: Sendable {
        case connected, disconnected, retrying, connecting
    }

    public var endpoint: String
    /// "connecting" (never connected yet), "connected", or "retrying" (lost or refused; libzmq
    /// retries with backoff).
    public var state: String
    public var connects: UInt64
    public var disconnects: UInt64

    public init(endpoint: String) {
        self.endpoint = endpoint
        self.state = "connecting"
        self.connects = 0
        self.disconnects = 0
    }

    public mutating func apply(_ change: Change) {
        switch change {
        case .connected:
            state = "connected"
            connects &+= 1
        case .disconnected:
            state = "retrying"
            disconnects &+= 1
        case .retrying:
            state = "retrying"
        case .connecting:
            if state != "connected" { state = "connecting" }
        }
    }
}
