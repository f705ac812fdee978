import Logging
import Systemd
import ZPubCore
import ZeroMQ

/// Creates the broker's sockets with the options each role needs, and binds their endpoints.
enum SocketSetup {
    /// libzmq's ZMQ_TYPE for each role.
    static func type(of role: BrokerSocketRole) -> SocketType {
        switch role {
        case .pull: .pull
        case .xsub: .xsub
        case .xpub: .xpub
        case .control: .rep
        }
    }

    /// The hard ceiling on one control request frame. libzmq disconnects a peer that exceeds
    /// ZMQ_MAXMSGSIZE, which leaves a REQ client hanging, so this is far above the configured
    /// `max_control_request` (those requests get an error reply); only absurd frames hit it.
    static let controlHardLimit: Int64 = 4 * 1024 * 1024

    static func makeSocket(
        _ role: BrokerSocketRole, context: Context, configuration: BrokerConfiguration, serverKey: CurveKey?
    ) throws -> Socket {
        let socket = try Socket(context, type: type(of: role))
        try applyOptions(to: socket, role: role, configuration: configuration, serverKey: serverKey)
        return socket
    }

    /// Sets the options that depend on the configuration. libzmq applies them to connections made
    /// after the call, so calling this again on reload changes new connections only.
    static func applyOptions(
        to socket: Socket, role: BrokerSocketRole, configuration: BrokerConfiguration, serverKey: CurveKey?
    ) throws {
        // Every connection goes through the ZAP handler (domain = role), and none gets in
        // without its answer. This also shuts out legacy ZMTP/1.0 peers, whose raw bytes
        // libzmq would otherwise deliver as messages (../shared/NOTES.md).
        try socket.setOption(.zapDomain, string: role.rawValue)
        try socket.setOption(.zapEnforceDomain, 1)
        if configuration.security(for: role).curve, let serverKey {
            try socket.makeCurveServer(secretKey: serverKey)
        } else {
            try socket.setOption(.curveServer, 0)
        }
        // IPv6 only where an endpoint asks for it: with it on, IPv4 addresses show up as
        // IPv4-mapped IPv6 ([::ffff:127.0.0.1]) in logs and replies.
        let wantsIPv6 = configuration.endpoints(for: role).contains { $0.contains("[") }
        try socket.setOption(.ipv6, wantsIPv6 ? 1 : 0)
        try socket.setOption(.linger, Int32(configuration.lingerMilliseconds))
        try socket.setOption(.handshakeInterval, Int32(configuration.handshakeMilliseconds))
        // Only pgm/epgm endpoints use it, and only those bound after it is set (at start).
        try socket.setOption(.multicastRate, Int32(configuration.multicastRateKbps))
        if role == .xpub && configuration.pair.isEnabled {
            // One of a pair: the subscribers connected here are the clients whose presence lets
            // a backup take over. Cut off from them (a partition), it must see them gone before
            // the peer counts as silent (at least three quarters of the failover interval after
            // the partition, heartbeats being a quarter apart), so their connections are checked
            // ten times per failover interval and dropped after half of it without an answer:
            // gone within 0.6 of it. (A quarter was tried: on a loaded machine it dropped
            // healthy subscribers.)
            let failover = configuration.pair.failoverMilliseconds
            let interval =
                configuration.heartbeatIntervalMilliseconds > 0
                ? min(configuration.heartbeatIntervalMilliseconds, failover / 10) : failover / 10
            try socket.setOption(.heartbeatInterval, Int32(interval))
            try socket.setOption(.heartbeatTimeout, Int32(failover / 2))
        } else if configuration.heartbeatIntervalMilliseconds > 0 {
            try socket.setOption(.heartbeatInterval, Int32(configuration.heartbeatIntervalMilliseconds))
            try socket.setOption(.heartbeatTimeout, Int32(configuration.heartbeatTimeoutMilliseconds))
        }
        // On TCP connections only (libzmq ignores it elsewhere). Explicitly off with 0, rather
        // than whatever the system's default is.
        if configuration.tcpKeepaliveIdleSeconds > 0 {
            try socket.setOption(.tcpKeepalive, 1)
            try socket.setOption(.tcpKeepaliveIdle, Int32(configuration.tcpKeepaliveIdleSeconds))
            try socket.setOption(.tcpKeepaliveInterval, Int32(configuration.tcpKeepaliveIntervalSeconds))
            try socket.setOption(.tcpKeepaliveCount, Int32(configuration.tcpKeepaliveCount))
        } else {
            try socket.setOption(.tcpKeepalive, 0)
        }
        switch role {
        case .pull:
            try socket.setOption(.receiveHighWaterMark, Int32(configuration.receiveHighWaterMark))
            try socket.setOption(.maxMessageSize, int64: Int64(configuration.maxMessageSize))
        case .xsub:
            try socket.setOption(.receiveHighWaterMark, Int32(configuration.receiveHighWaterMark))
            try socket.setOption(.maxMessageSize, int64: Int64(configuration.maxMessageSize))
            // Unlimited: the XSUB replays every subscription to a (re)connecting publisher, and a
            // finite send HWM silently drops all but the first thousand (../shared/NOTES.md).
            try socket.setOption(.sendHighWaterMark, 0)
        case .xpub:
            try socket.setOption(.sendHighWaterMark, Int32(configuration.sendHighWaterMark))
            // Unbounded: a subscriber's input must never be stopped by a full receive queue.
            // libzmq 4.3.4 aborts (`!_io_error`, stream_engine_base.cpp:331) when a ZMTP
            // heartbeat falls due on a connection whose peer hung up while its input was
            // stopped, which a subscription flood from peers that then vanish brings about
            // (docs/reliability.md, "A subscription flood"; scripts/flood-vanish.sh). Subscribers
            // send only subscriptions; what a flood queues here is of the same order as what
            // libzmq's subscription tries already hold for it.
            try socket.setOption(.receiveHighWaterMark, 0)
            // Subscribers only send subscription frames (one byte + prefix). A frame longer than
            // this disconnects that subscriber before libzmq stores it anywhere: very long
            // prefixes crash libzmq 4.3.4's subscription tries on removal (recursion). The floor
            // is there because the limit also applies to the handshake's READY command
            // (about 40 bytes, more with metadata); prefixes between the configured maximum
            // and the floor are refused and counted by the broker itself.
            try socket.setOption(.maxMessageSize, int64: Int64(max(configuration.maxSubscriptionLength + 1, 1_024)))
            // The broker applies each subscription itself (see ForwardingLoop.handleSubscriptions),
            // which lets it count them, bound them, and refuse what is over the limits.
            try socket.setOption(.xpubManual, 1)
        case .control:
            try socket.setOption(.maxMessageSize, int64: controlHardLimit)
        }
    }
}

/// The endpoints one socket is bound to, remembering what each configured endpoint resolved to
/// (`tcp://127.0.0.1:*` binds an ephemeral port, and unbinding needs the real one).
struct BoundEndpoints {
    let role: BrokerSocketRole
    private(set) var resolved: [String: String] = [:]
    private(set) var order: [String] = []
    /// Sockets passed by systemd: not the configuration's to change on reload.
    private(set) var adopted: [String] = []

    init(role: BrokerSocketRole) { self.role = role }

    /// Binds a listening socket passed by systemd: libzmq takes over the descriptor when
    /// ZMQ_USE_FD is set before a bind to the socket's own address.
    mutating func adopt(_ listening: ListeningSocket, on socket: Socket) throws(BrokerError) {
        guard let endpoint = listening.endpoint else {
            throw BrokerError(
                code: .bindFailed,
                message:
                    "the socket systemd passed as \"\(listening.name)\" (fd \(listening.fileDescriptor)) is neither tcp nor a unix socket; ZeroMQ cannot use it"
            )
        }
        do {
            try socket.setOption(.useFileDescriptor, listening.fileDescriptor)
            defer { try? socket.setOption(.useFileDescriptor, -1) }
            try socket.bind(endpoint)
        } catch {
            throw BrokerError(
                code: .bindFailed,
                message:
                    "cannot adopt the \(role.rawValue) socket systemd passed (fd \(listening.fileDescriptor), \(endpoint)): \(error)"
            )
        }
        resolved[endpoint] = endpoint
        order.append(endpoint)
        adopted.append(endpoint)
    }

    /// The endpoints as actually bound, in configuration order.
    var actual: [String] { order.compactMap { resolved[$0] } }

    mutating func bind(_ endpoint: String, on socket: Socket) throws(BrokerError) {
        do {
            try socket.bind(endpoint)
        } catch let error as ZMQError {
            throw BrokerError.bindFailed(role: role, endpoint: endpoint, error: error)
        } catch {
            throw BrokerError(code: .bindFailed, message: "cannot bind \(role.rawValue) to \(endpoint): \(error)")
        }
        resolved[endpoint] = socket.lastEndpoint.isEmpty ? endpoint : socket.lastEndpoint
        order.append(endpoint)
    }

    mutating func unbind(_ endpoint: String, on socket: Socket) throws {
        guard let actual = resolved[endpoint] else { return }
        resolved[endpoint] = nil
        order.removeAll { $0 == endpoint }
        try socket.unbind(actual)
    }

    /// Binds the configured endpoints that are new and unbinds those no longer configured.
    /// Returns what failed; the rest is applied.
    mutating func reconcile(with wanted: [String], on socket: Socket, logger: Logger) -> [BrokerError] {
        if !adopted.isEmpty {
            logger.info("\(role.rawValue) uses sockets passed by systemd; its endpoints in the file are not used")
            return []
        }
        var failures: [BrokerError] = []
        for endpoint in order where !wanted.contains(endpoint) {
            do {
                try unbind(endpoint, on: socket)
                logger.info("unbound \(role.rawValue) \(endpoint)", metadata: ["endpoint": "\(endpoint)"])
            } catch {
                logger.warning(
                    "cannot unbind \(role.rawValue) \(endpoint): \(error)",
                    metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            }
        }
        for endpoint in wanted where resolved[endpoint] == nil {
            do {
                try bind(endpoint, on: socket)
                logger.info(
                    "bound \(role.rawValue) \(resolved[endpoint] ?? endpoint)", metadata: ["endpoint": "\(endpoint)"])
            } catch {
                logger.error("\(error.message)", metadata: ["endpoint": "\(endpoint)"])
                failures.append(error)
            }
        }
        return failures
    }
}

/// Permissions of ipc control sockets: libzmq creates the socket file with the process umask;
/// the control socket is the keys to the house, so its mode is set explicitly.
enum IPCPermissions {
    static func apply(_ mode: Int, to endpoints: [String], logger: Logger) {
        for endpoint in endpoints where endpoint.hasPrefix("ipc://") && !endpoint.hasPrefix("ipc://@") {
            let path = String(endpoint.dropFirst("ipc://".count))
            if chmod(path, mode_t(mode)) != 0 {
                logger.warning(
                    "cannot set mode \(String(mode, radix: 8)) on the control socket \(path): errno \(errno)",
                    metadata: ["endpoint": "\(endpoint)"])
            }
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
