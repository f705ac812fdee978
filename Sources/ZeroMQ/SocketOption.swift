import CZeroMQ

/// A libzmq socket option id, named. Only the options zpub uses are listed.
public struct SocketOption: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    // Integer options.
    public static let sendHighWaterMark = SocketOption(rawValue: ZMQ_SNDHWM)
    public static let receiveHighWaterMark = SocketOption(rawValue: ZMQ_RCVHWM)
    public static let linger = SocketOption(rawValue: ZMQ_LINGER)
    public static let sendTimeout = SocketOption(rawValue: ZMQ_SNDTIMEO)
    public static let receiveTimeout = SocketOption(rawValue: ZMQ_RCVTIMEO)
    public static let immediate = SocketOption(rawValue: ZMQ_IMMEDIATE)
    public static let ipv6 = SocketOption(rawValue: ZMQ_IPV6)
    public static let handshakeInterval = SocketOption(rawValue: ZMQ_HANDSHAKE_IVL)
    /// Multicast (pgm/epgm) data rate, kilobits per second; set before bind or connect.
    public static let multicastRate = SocketOption(rawValue: ZMQ_RATE)
    public static let heartbeatInterval = SocketOption(rawValue: ZMQ_HEARTBEAT_IVL)
    public static let heartbeatTimeout = SocketOption(rawValue: ZMQ_HEARTBEAT_TIMEOUT)
    public static let heartbeatTTL = SocketOption(rawValue: ZMQ_HEARTBEAT_TTL)
    public static let tcpKeepalive = SocketOption(rawValue: ZMQ_TCP_KEEPALIVE)
    public static let tcpKeepaliveIdle = SocketOption(rawValue: ZMQ_TCP_KEEPALIVE_IDLE)
    public static let tcpKeepaliveInterval = SocketOption(rawValue: ZMQ_TCP_KEEPALIVE_INTVL)
    public static let tcpKeepaliveCount = SocketOption(rawValue: ZMQ_TCP_KEEPALIVE_CNT)
    public static let reconnectInterval = SocketOption(rawValue: ZMQ_RECONNECT_IVL)
    public static let reconnectIntervalMax = SocketOption(rawValue: ZMQ_RECONNECT_IVL_MAX)
    public static let routerMandatory = SocketOption(rawValue: ZMQ_ROUTER_MANDATORY)
    public static let requestRelaxed = SocketOption(rawValue: ZMQ_REQ_RELAXED)
    public static let requestCorrelate = SocketOption(rawValue: ZMQ_REQ_CORRELATE)
    public static let xpubVerbose = SocketOption(rawValue: ZMQ_XPUB_VERBOSE)
    public static let xpubVerboser = SocketOption(rawValue: ZMQ_XPUB_VERBOSER)
    public static let xpubManual = SocketOption(rawValue: ZMQ_XPUB_MANUAL)
    public static let xpubNoDrop = SocketOption(rawValue: ZMQ_XPUB_NODROP)
    /// Draft-marked in 4.3.4's headers but accepted by Debian's build (see ../shared/NOTES.md).
    public static let xpubManualLastValue = SocketOption(rawValue: CZMQ_XPUB_MANUAL_LAST_VALUE)
    public static let zapEnforceDomain = SocketOption(rawValue: CZMQ_ZAP_ENFORCE_DOMAIN)
    /// ZMTP metadata sent to every peer, "X-Name:value" (each peer reads it with
    /// `Message.property`).
    public static let metadata = SocketOption(rawValue: CZMQ_METADATA)
    public static let useFileDescriptor = SocketOption(rawValue: ZMQ_USE_FD)
    public static let events = SocketOption(rawValue: ZMQ_EVENTS)
    public static let fileDescriptor = SocketOption(rawValue: ZMQ_FD)
    public static let receiveMore = SocketOption(rawValue: ZMQ_RCVMORE)

    // 64-bit integer options.
    public static let maxMessageSize = SocketOption(rawValue: ZMQ_MAXMSGSIZE)

    // Byte-string options.
    public static let subscribe = SocketOption(rawValue: ZMQ_SUBSCRIBE)
    public static let unsubscribe = SocketOption(rawValue: ZMQ_UNSUBSCRIBE)
    public static let routingID = SocketOption(rawValue: ZMQ_ROUTING_ID)
    public static let zapDomain = SocketOption(rawValue: ZMQ_ZAP_DOMAIN)
    public static let lastEndpoint = SocketOption(rawValue: ZMQ_LAST_ENDPOINT)
}
