import Logging
import Systemd
import ZPubCore
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// Creates the broker's sockets with the options each role needs, and binds their endpoints.
enum SocketSetup {
    /// libzmq's ZMQ_TYPE for each role.
    static func type(of role: BrokerSocketRole) -> SocketType {
        switch role {
        case .pull: .pull
        case .xsub: .xsub
        case .xpub: .xpub
        case .control: .router
        }
    }

    /// Replies a control client may leave unread before the next ones to it are dropped.
    static let controlRepliesQueued = 16
    /// Requests one control client may have waiting in libzmq, unread by the control thread
    /// (a RELOAD holds it up to 60 s): past them libzmq stops reading that connection, and
    /// the client's sends wait. A REQ has one out at a time; libzmq's default of 1,000, of
    /// `controlHardLimit` each, let one DEALER queue 4 GB.
    static let controlRequestsQueued = 16

    /// Subscription frames XSUB may hold for one publisher or upstream that does not read them:
    /// twice what the table and zpubd's own prefixes may hold as zpubd started, and some (a
    /// high-water mark is set at start only; a reload that raises `max_subscriptions` past it
    /// is told). Unlimited, they grew without end
    /// behind a publisher that sends rarely (libzmq reads a PUB's incoming subscriptions only
    /// when the application calls into the socket) while subscribers churn. The bound must
    /// hold a whole replay (XSUB sends every subscription to a peer as it connects; libzmq's
    /// default 1,000 dropped the rest, ../shared/NOTES.md) with the changes that follow it.
    /// Past it, libzmq drops the frames for that peer alone, which then filters (a PUB) by an
    /// older set until it reconnects.
    static func xsubSubscriptionFramesQueued(_ configuration: BrokerConfiguration) -> Int {
        xsubReplayRoom(configuration) + xsubSpareSubscriptionFrames
    }
    /// Twice what the table and zpubd's own prefixes may hold: what a reload compares with
    /// the queue sized at start (`xsubSubscriptionFramesQueued` without its spare frames).
    static func xsubReplayRoom(_ configuration: BrokerConfiguration) -> Int {
        2
            * (configuration.maxSubscriptions + configuration.historyPrefixes.count
                + configuration.lastValuePrefixes.count)
    }
    /// `xsubSubscriptionFramesQueued`'s "some": room a reload's few more prefixes may take.
    static let xsubSpareSubscriptionFrames = 1_024
    /// The bytes a subscriber's subscription frame holds beyond its prefix, at most (ZMTP
    /// 3.1's SUBSCRIBE command name and its length: 10), with room to spare.
    static let subscriptionFrameOverhead = 16

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

    /// Sets the options that depend on the configuration. libzmq copies a socket's options into
    /// each endpoint when it is bound or connected, so on reload they reach only endpoints bound
    /// or connected after the call (`ForwardingLoop.reconfigure` says so, and binds a socket's
    /// endpoints again when its CURVE setting changes).
    ///
    /// `inForce`: a reload's, the configuration the socket has its options from. Only the
    /// integer options whose value changes are set then, never a high-water mark (read at start:
    /// `StartOnlySettings`): libzmq 4.3.4 hands a high-water mark to each of the socket's
    /// connections, one closing at that moment included, and died in its I/O thread (SIGSEGV)
    /// when reloads came while subscribers came and went.
    static func applyOptions(
        to socket: Socket, role: BrokerSocketRole, configuration: BrokerConfiguration, serverKey: CurveKey?,
        inForce: BrokerConfiguration? = nil
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
        let unchanged = inForce.map { listenerOptions(role, $0) } ?? []
        for option in listenerOptions(role, configuration) where !unchanged.contains(option) {
            if inForce != nil && (option.option == .sendHighWaterMark || option.option == .receiveHighWaterMark) {
                continue
            }
            // ZMQ_MAXMSGSIZE is libzmq's one 64-bit integer option here; the others are ints.
            if option.option == .maxMessageSize {
                try socket.setOption(option.option, int64: option.value)
            } else {
                try socket.setOption(option.option, Int32(clamping: option.value))
            }
        }
    }

    /// The options libzmq copies into each endpoint as it binds whose value `new` changes from
    /// `old`, named as the configuration names them ("max_message_size 1000 -> 100000"): what
    /// the endpoints of `role` already bound keep until a restart. Not the linger (set on every
    /// socket as it closes, which its listeners then follow), nor IPv6 (each endpoint decides
    /// it), nor the multicast rate without a pgm or epgm endpoint: a reload that changed only
    /// those was told as not in force, and `systemctl reload` failed (a review).
    static func keptOptionChanges(_ role: BrokerSocketRole, from old: BrokerConfiguration, to new: BrokerConfiguration)
        -> [String]
    {
        // Which libzmq options changed, told as the configuration's keys and values (libzmq's
        // are derived: the XPUB's frame limit is max_subscription_length + 16; a review).
        var keys: [(option: SocketOption, key: String, value: (BrokerConfiguration) -> Int)] = [
            (.handshakeInterval, "handshake_timeout_ms", { $0.handshakeMilliseconds }),
            (.heartbeatInterval, "heartbeat_interval_ms", { $0.heartbeatIntervalMilliseconds }),
            (.heartbeatTimeout, "heartbeat_timeout_ms", { $0.heartbeatTimeoutMilliseconds }),
            (.tcpKeepalive, "tcp_keepalive_idle_s", { $0.tcpKeepaliveIdleSeconds }),
            (.tcpKeepaliveIdle, "tcp_keepalive_idle_s", { $0.tcpKeepaliveIdleSeconds }),
            (.tcpKeepaliveInterval, "tcp_keepalive_interval_s", { $0.tcpKeepaliveIntervalSeconds }),
            (.tcpKeepaliveCount, "tcp_keepalive_count", { $0.tcpKeepaliveCount }),
            role == .xpub
                ? (.maxMessageSize, "max_subscription_length", { $0.maxSubscriptionLength })
                : (.maxMessageSize, "max_message_size", { $0.maxMessageSize }),
        ]
        if old.endpoints(for: role).contains(where: Endpoint.isMulticast) {
            keys.append((.multicastRate, "multicast_rate_kbps", { $0.multicastRateKbps }))
        }
        func values(_ configuration: BrokerConfiguration) -> [SocketOption: Int64] {
            Dictionary(listenerOptions(role, configuration).map { ($0.option, $0.value) }, uniquingKeysWith: { $1 })
        }
        let (before, after) = (values(old), values(new))
        var told: [String] = []
        for (option, key, value) in keys where before[option] != after[option] {
            let change = "\(key) \(value(old)) -> \(value(new))"
            if !told.contains(change) { told.append(change) }
        }
        return told
    }

    /// One integer option and its value.
    struct IntegerOption: Equatable {
        let option: SocketOption
        let value: Int64

        init(_ option: SocketOption, _ value: Int) {
            self.option = option
            self.value = Int64(value)
        }
    }

    /// The integer options `applyOptions` sets for `role`, in order: what a reload compares to
    /// tell whether the endpoints already bound keep different ones.
    static func listenerOptions(_ role: BrokerSocketRole, _ configuration: BrokerConfiguration) -> [IntegerOption] {
        var options: [IntegerOption] = []
        // IPv6 only where an endpoint asks for it: with it on, IPv4 addresses show up as
        // IPv4-mapped IPv6 ([::ffff:127.0.0.1]) in logs and replies. The XSUB's upstreams too:
        // without it libzmq resolves an upstream's address as IPv4 only, and an IPv6 one is
        // retried for ever.
        let endpoints = configuration.endpoints(for: role) + (role == .xsub ? configuration.upstreamEndpoints : [])
        options.append(IntegerOption(.ipv6, endpoints.contains { $0.contains("[") } ? 1 : 0))
        options.append(IntegerOption(.linger, configuration.lingerMilliseconds))
        options.append(IntegerOption(.handshakeInterval, configuration.handshakeMilliseconds))
        // Only pgm/epgm endpoints use it, and only those bound after it is set (at start).
        options.append(IntegerOption(.multicastRate, configuration.multicastRateKbps))
        if role == .xpub && configuration.pair.isEnabled {
            // One of a pair: the subscribers connected here are the clients whose presence lets
            // a backup take over. Cut off from them (a partition), it must see them gone before
            // the peer counts as silent (at least three quarters of the failover interval after
            // the partition, heartbeats being a quarter apart). Pings ten times per failover
            // interval make every subscriber answer (a PONG), and the broker that is not active
            // asks the kernel when data last came from each (`SubscriberReachability`). The
            // timeout stays
            // the configured one: a ping waits behind what the socket buffers hold for a
            // subscriber, and half the failover interval (the timeout until 2026-12-03) dropped
            // healthy TCP subscribers that far behind in their reading, with what XPUB held
            // for them (docs/topologies.md).
            let failover = configuration.pair.failoverMilliseconds
            let interval =
                configuration.heartbeatIntervalMilliseconds > 0
                ? min(configuration.heartbeatIntervalMilliseconds, failover / 10) : failover / 10
            options.append(IntegerOption(.heartbeatInterval, interval))
            let timeout =
                configuration.heartbeatTimeoutMilliseconds > 0
                ? configuration.heartbeatTimeoutMilliseconds : BrokerConfiguration.Defaults.heartbeatTimeoutMilliseconds
            options.append(IntegerOption(.heartbeatTimeout, timeout))
        } else if role == .pull || role == .xsub {
            // Never on PULL or XSUB, the sockets PAUSE stops reading. libzmq stops reading a
            // connection whose receive queue is full, and then (4.3.4):
            // - its heartbeat timeout, counted from the last frame read, dropped a producer held
            //   back for longer than the timeout, and the messages in flight to zpubd (socket
            //   buffers: 109,192 of 200,000 in a 4 s PAUSE with 200/1,000 ms heartbeats) were
            //   lost; with the defaults, any PAUSE over ~30 s;
            // - a peer that hangs up while held back, then a heartbeat falling due, aborted
            //   zpubd (`!_io_error`, docs/reliability.md): a PUSH producer or a publisher
            //   flooding, then exiting, during a PAUSE did it within one heartbeat interval.
            // TCP keepalive (on by default) finds a peer whose host is gone, including an
            // upstream broker the XSUB connects to, and a peer that exits closes its connection.
            options.append(IntegerOption(.heartbeatInterval, 0))
        } else if configuration.heartbeatIntervalMilliseconds > 0 {
            options.append(IntegerOption(.heartbeatInterval, configuration.heartbeatIntervalMilliseconds))
            options.append(IntegerOption(.heartbeatTimeout, configuration.heartbeatTimeoutMilliseconds))
        } else {
            // Off, also when a reload turns them off.
            options.append(IntegerOption(.heartbeatInterval, 0))
        }
        // On TCP connections only (libzmq ignores it elsewhere). Explicitly off with 0, rather
        // than whatever the system's default is.
        if configuration.tcpKeepaliveIdleSeconds > 0 {
            options.append(IntegerOption(.tcpKeepalive, 1))
            options.append(IntegerOption(.tcpKeepaliveIdle, configuration.tcpKeepaliveIdleSeconds))
            options.append(IntegerOption(.tcpKeepaliveInterval, configuration.tcpKeepaliveIntervalSeconds))
            options.append(IntegerOption(.tcpKeepaliveCount, configuration.tcpKeepaliveCount))
        } else {
            options.append(IntegerOption(.tcpKeepalive, 0))
        }
        switch role {
        case .pull:
            options.append(IntegerOption(.receiveHighWaterMark, configuration.receiveHighWaterMark))
            options.append(IntegerOption(.maxMessageSize, configuration.maxMessageSize))
        case .xsub:
            options.append(IntegerOption(.receiveHighWaterMark, configuration.receiveHighWaterMark))
            options.append(IntegerOption(.maxMessageSize, configuration.maxMessageSize))
            options.append(IntegerOption(.sendHighWaterMark, xsubSubscriptionFramesQueued(configuration)))
        case .xpub:
            options.append(IntegerOption(.sendHighWaterMark, configuration.sendHighWaterMark))
            // Unbounded: a subscriber's input must never be stopped by a full receive queue.
            // libzmq 4.3.4 aborts (`!_io_error`, stream_engine_base.cpp:331) when a ZMTP
            // heartbeat falls due on a connection whose peer hung up while its input was
            // stopped, which a subscription flood from peers that then vanish brings about
            // (docs/reliability.md, "A subscription flood"; scripts/flood-vanish.sh). Subscribers
            // send only subscriptions; what a flood queues here is of the same order as what
            // libzmq's subscription tries already hold for it.
            options.append(IntegerOption(.receiveHighWaterMark, 0))
            // Subscribers only send subscription frames (one byte + prefix). A frame longer than
            // this disconnects that subscriber before libzmq stores it anywhere: very long
            // prefixes crash libzmq 4.3.4's subscription tries on removal (recursion). The floor
            // is there because the limit also applies to the handshake's READY command
            // (about 40 bytes, more with metadata); prefixes between the configured maximum
            // and the floor are refused and counted by the broker itself. The headroom: a
            // libzmq 4.3 SUB sends a subscription as ZMTP 3.1's SUBSCRIBE command, 10 bytes
            // before the prefix (0x01 alone in ZMTP 3.0); with 1 byte, prefixes of the last 9
            // allowed lengths were dropped with their connection, which then came back and
            // sent them again, 8 times a second (a probe).
            options.append(
                IntegerOption(
                    .maxMessageSize,
                    max(
                        configuration.maxSubscriptionLength + Self.subscriptionFrameOverhead, 1_024)))
            // The broker applies each subscription itself (see ForwardingLoop.handleSubscriptions),
            // which lets it count them, bound them, and refuse what is over the limits.
            options.append(IntegerOption(.xpubManual, 1))
        case .control:
            options.append(IntegerOption(.maxMessageSize, Int(controlHardLimit)))
            // Replies waiting for one client, at most: a REQ has one request out at a time, and
            // a DEALER that sends many and reads none no longer makes zpubd hold them all
            // (libzmq's default of 1,000: a probe's two such clients, asking for 5 MB pages of
            // history, held 3.2 GB). Replies beyond it are dropped, for that client alone.
            options.append(IntegerOption(.sendHighWaterMark, controlRepliesQueued))
            options.append(IntegerOption(.receiveHighWaterMark, controlRequestsQueued))
            // A reply for a client with no room left then fails (EAGAIN, counted), and one for a
            // client that left (EHOSTUNREACH) too, where libzmq would drop either without a word.
            options.append(IntegerOption(.routerMandatory, 1))
        }
        return options
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
    /// The socket files this broker's binds made (ipc endpoints), removed when the endpoint is
    /// unbound or the broker stops (`IPCSocketFile.remove`). Not those systemd passed: its
    /// socket unit owns them.
    private var socketFiles: [String: IPCSocketFile.Identity] = [:]

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

    /// The endpoints of `wanted` not bound here (none for sockets systemd passed, which are
    /// not the configuration's).
    func missing(from wanted: [String]) -> [String] {
        adopted.isEmpty ? wanted.filter { resolved[$0] == nil } : []
    }

    mutating func bind(_ endpoint: String, on socket: Socket) throws(BrokerError) {
        if IPCSocketFile.isServed(endpoint) { throw BrokerError.ipcFileServed(role: role, endpoint: endpoint) }
        do {
            try socket.bind(endpoint)
        } catch let error as ZMQError {
            throw BrokerError.bindFailed(role: role, endpoint: endpoint, error: error)
        } catch {
            throw BrokerError(code: .bindFailed, message: "cannot bind \(role.rawValue) to \(endpoint): \(error)")
        }
        resolved[endpoint] = socket.lastEndpoint.isEmpty ? endpoint : socket.lastEndpoint
        order.append(endpoint)
        // Not a wildcard's (`ipc://*`): libzmq removes its file and its temporary directory
        // itself, the directory only if the file is still there to remove.
        if endpoint != "ipc://*" { socketFiles[endpoint] = IPCSocketFile.identity(of: resolved[endpoint] ?? endpoint) }
    }

    mutating func unbind(_ endpoint: String, on socket: Socket) throws {
        guard let actual = resolved[endpoint] else { return }
        resolved[endpoint] = nil
        order.removeAll { $0 == endpoint }
        try socket.unbind(actual)
        // Before a bind again of the same path, which makes a file of its own.
        if let file = socketFiles.removeValue(forKey: endpoint) { IPCSocketFile.remove(file) }
    }

    /// Removes the socket files of the ipc endpoints bound here: the socket is closed, or
    /// about to be, at a stop or a start that failed.
    func removeSocketFiles() {
        for file in socketFiles.values { IPCSocketFile.remove(file) }
    }

    /// Binds the endpoints of `wanted` that are not bound here yet, except those in `later`
    /// (another of the broker's sockets holds them until `unbindRemoved`). All or nothing: a
    /// bind that fails undoes the ones before it and throws, and nothing is unbound, so that a
    /// reload naming an endpoint that cannot be bound leaves the endpoints, and the connections
    /// made through them, as they were. Returns what it bound, for `undo`.
    mutating func bindAdded(
        _ wanted: [String], except later: Set<String> = [], on socket: Socket, logger: Logger
    ) throws(BrokerError) -> [String] {
        guard adopted.isEmpty else { return [] }
        var added: [String] = []
        for endpoint in wanted where resolved[endpoint] == nil && !later.contains(endpoint) {
            do {
                try bindLogged(endpoint, on: socket, logger: logger)
            } catch {
                undo(added, on: socket)
                throw error
            }
            added.append(endpoint)
        }
        return added
    }

    /// Unbinds what `bindAdded` bound: the reload it was for is refused.
    mutating func undo(_ added: [String], on socket: Socket) {
        for endpoint in added { try? unbind(endpoint, on: socket) }
    }

    /// Unbinds the endpoints no longer in `wanted` (all of them with `everything`: they are
    /// bound again by `bindMissing`, with the socket's options as they are now).
    /// Returns the endpoints unbound.
    @discardableResult
    mutating func unbindRemoved(_ wanted: [String], everything: Bool = false, on socket: Socket, logger: Logger)
        -> [String]
    {
        guard adopted.isEmpty else { return [] }
        var unbound: [String] = []
        for endpoint in order where everything || !wanted.contains(endpoint) {
            do {
                try unbind(endpoint, on: socket)
                unbound.append(endpoint)
                logger.info("unbound \(role.rawValue) \(endpoint)", metadata: ["endpoint": "\(endpoint)"])
            } catch {
                logger.warning(
                    "cannot unbind \(role.rawValue) \(endpoint): \(error)",
                    metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            }
        }
        return unbound
    }

    /// How long binds of endpoints the broker has just unbound are tried again while their
    /// ports are still taken (`bindMissing`), for one reload in all.
    static let releasedBindWaitNanoseconds: UInt64 = 100_000_000

    /// Binds what `wanted` has and this socket does not: after `unbindRemoved`, the endpoints
    /// another socket gave up, and those unbound to be bound again. Returns what failed.
    ///
    /// `released`: the endpoints the broker's sockets unbound in this reload. libzmq closes a
    /// listener in its I/O thread after zmq_unbind has returned, so for a moment its port is
    /// still taken: a reload that moved a tcp endpoint from one socket to another failed every
    /// time, blaming "another process". Such a bind is tried again every millisecond until
    /// `deadline` (monotonic nanoseconds: one for the whole reload, `releasedBindWaitNanoseconds`
    /// on; a reload is rare, and a port is usually free within a millisecond); any other bind
    /// fails at once.
    mutating func bindMissing(
        _ wanted: [String], released: Set<String> = [], until deadline: UInt64 = 0, on socket: Socket,
        logger: Logger
    ) -> [BrokerError] {
        guard adopted.isEmpty else { return [] }
        var failures: [BrokerError] = []
        for endpoint in wanted where resolved[endpoint] == nil {
            while true {
                do {
                    try bindLogged(endpoint, on: socket, logger: logger)
                } catch
                    where error.systemError == EADDRINUSE && released.contains(endpoint)
                    && SystemClock.monotonicNanoseconds() < deadline
                {
                    usleep(1_000)
                    continue
                } catch {
                    logger.error("\(error.message)", metadata: ["endpoint": "\(endpoint)"])
                    failures.append(error)
                }
                break
            }
        }
        return failures
    }

    private mutating func bindLogged(_ endpoint: String, on socket: Socket, logger: Logger) throws(BrokerError) {
        try bind(endpoint, on: socket)
        logger.info("bound \(role.rawValue) \(resolved[endpoint] ?? endpoint)", metadata: ["endpoint": "\(endpoint)"])
    }

    /// What every reload does for one socket on its own: `bindAdded`, then `unbindRemoved`
    /// (or, with `rebind`, every endpoint unbound and bound again). Nil when applied; the
    /// failed bind when refused, nothing changed.
    mutating func reconcile(
        with wanted: [String], rebind: Bool = false, on socket: Socket, logger: Logger
    ) -> BrokerError? {
        if let refusal = reconcileAdded(wanted, on: socket, logger: logger) { return refusal }
        return reconcileRemoved(wanted, rebind: rebind, on: socket, logger: logger)
    }

    /// `reconcile`'s first half: binds what `wanted` adds. The failed bind when refused
    /// (nothing changed).
    mutating func reconcileAdded(_ wanted: [String], on socket: Socket, logger: Logger) -> BrokerError? {
        if !adopted.isEmpty {
            logger.info("\(role.rawValue) uses sockets passed by systemd; its endpoints in the file are not used")
            return nil
        }
        do {
            _ = try bindAdded(wanted, on: socket, logger: logger)
            return nil
        } catch {
            logger.error("\(error.message)", metadata: ["endpoint": "\(error.endpoint ?? "")"])
            return error
        }
    }

    /// `reconcile`'s second half: unbinds what `wanted` no longer has (everything, with
    /// `rebind`) and binds what is missing. The first bind that failed (each is logged).
    mutating func reconcileRemoved(_ wanted: [String], rebind: Bool, on socket: Socket, logger: Logger)
        -> BrokerError?
    {
        let released = Set(unbindRemoved(wanted, everything: rebind, on: socket, logger: logger))
        return bindMissing(
            wanted, released: released,
            until: SystemClock.monotonicNanoseconds() + Self.releasedBindWaitNanoseconds, on: socket,
            logger: logger
        ).first
    }

    /// Whether `reconcileRemoved` would unbind anything, and so close the connections accepted
    /// there (libzmq ends them with their endpoint).
    func wouldUnbind(_ wanted: [String], rebind: Bool) -> Bool {
        adopted.isEmpty && order.contains { rebind || !wanted.contains($0) }
    }

    /// Whether systemd passed this socket's listeners (the file's endpoints are not used).
    var isAdopted: Bool { !adopted.isEmpty }

    /// The endpoints zpubd bound itself: none when systemd passed the listeners, whose files
    /// and modes are the socket unit's (`SocketMode=`; a DynamicUser= could not change them
    /// anyway, the files being root's).
    var boundHere: [String] { isAdopted ? [] : actual }

    /// The configured endpoints bound here, in order.
    var configured: [String] { order }
}

/// Permissions of ipc control sockets: libzmq creates the socket file with the process umask;
/// the control socket is the keys to the house, so its mode is set explicitly.
enum IPCPermissions {
    static func apply(_ mode: FileMode, to endpoints: [String], logger: Logger) {
        for endpoint in endpoints where endpoint.hasPrefix("ipc://") && !endpoint.hasPrefix("ipc://@") {
            let path = String(endpoint.dropFirst("ipc://".count))
            if chmod(path, mode_t(mode.bits)) != 0 {
                logger.warning(
                    "cannot set mode \(mode.octal) on the control socket \(path): errno \(errno)",
                    metadata: ["endpoint": "\(endpoint)"])
            }
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
