import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization
import ZPubCore
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// zpubd's HTTP listener: WebSocket (/ws) and Server-Sent Events (/events) for browsers;
/// /healthz, /stats, /metrics and a status page (/) for operators. See docs/http.md.
///
/// Threads and what they own:
/// - the gateway's ZeroMQ thread (`BrokerLink`): its SUB and PUSH sockets, joined to the
///   broker over inproc, and the table of which client wants which prefix;
/// - the control thread (`ControlDispatcher`): calls the broker's typed control API, which may
///   wait for the forwarding loop;
/// - NIO's event loop(s): the HTTP connections. They never call ZeroMQ: they post to the
///   ZeroMQ thread's mailbox, and it hands them messages through each client's bounded queue.
public final class HTTPGateway: Sendable {
    /// The address actually listened on (the port resolved when 0 was asked for).
    public let localAddress: String
    /// WebSocket and SSE clients connected now.
    public var clientCount: Int {
        shared.counters.webSocketClients.load(ordering: .relaxed) + shared.counters.sseClients.load(ordering: .relaxed)
    }
    private let group: MultiThreadedEventLoopGroup
    private let serverChannel: Channel
    private let shared: GatewayShared
    private let linkThread: JoinableThread
    /// The history prefixes whose sequence markers the link follows, from start.
    private let historyPrefixes: [String]

    /// Joins the broker over inproc with its `context`, asks it through `control`, and starts
    /// listening. Throws `GatewayError` when the address cannot be bound.
    public init(
        settings: HTTPSettings, keys: GatewayKeys = .none, maxPrefixLength: Int,
        maxMessageSize: Int = BrokerConfiguration.Defaults.maxMessageSize,
        maxSubscriptions: Int = BrokerConfiguration.Defaults.maxSubscriptions, historyPrefixes: [String] = [],
        lastValuePrefixes: [String] = [], historyNumberingRestarts: Bool = false, context: Context,
        control: any BrokerControl, logger: Logger
    ) throws {
        guard let (host, port) = settings.hostAndPort else {
            throw GatewayError("listen \"\(settings.listen)\" is not host:port")
        }
        let claims = UpstreamClaims(
            limit: settings.upstreamPrefixLimit(maxSubscriptions: maxSubscriptions), userLimit: settings.maxUserPrefixes
        )
        let counters = GatewayCounters(userPrefixes: { claims.count(of: $0) })
        let dispatcher = ControlDispatcher(control: control, counters: counters)
        counters.upstreamPrefixLimit.store(claims.limit, ordering: .relaxed)
        let link: BrokerLink
        do {
            link = try BrokerLink(
                context: context, control: dispatcher, historyPrefixes: historyPrefixes,
                lastValuePrefixes: lastValuePrefixes, historyNumberingRestarts: historyNumberingRestarts,
                upstreamSubscriptionsPerSecond: settings.upstreamSubscriptionsPerSecond, claims: claims,
                counters: counters, logger: logger)
        } catch {
            dispatcher.shutdown()
            throw error
        }
        let linkMailbox = link.mailbox
        // One event loop: the work per connection is small, and the broker needs the other core.
        let turns = LoopTurns()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1, metricsDelegate: turns)
        self.group = group
        let shared = GatewayShared(
            settings: settings, keys: keys, counters: counters, linkMailbox: linkMailbox, turns: turns,
            control: dispatcher, claims: claims,
            statusFeed: StatusFeed(eventLoop: group.next(), control: dispatcher, counters: counters),
            maxPrefixLength: maxPrefixLength, maxMessageSize: maxMessageSize, logger: logger)
        self.shared = shared
        self.historyPrefixes = historyPrefixes
        // The link and its sockets live on this thread from now on.
        let linkThread = JoinableThread(name: "zpubd-http-link") { link.run() }
        self.linkThread = linkThread

        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // What NIO buffers per connection before the channel reports itself unwritable; past
            // that, messages wait in the client's bounded queue (client_queue).
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 64 * 1024))
            // One read of at most 16 KiB per connection per turn of the loop (NIO's default is
            // four of up to 64 KiB): what one read brings is decoded whole, into objects some 20
            // times its size when it holds small WebSocket frames, before a turn's budget can
            // hold any of it (`TurnBudget`), and a connection's share of a turn is that read.
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 16384)
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try HTTPGateway.configure(channel, shared: shared)
                }
            }
        do {
            serverChannel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            linkMailbox.post(.stop)
            linkThread.join()
            dispatcher.shutdown()
            try? group.syncShutdownGracefully()
            // NIO's IOError prints the syscall's Swift signature; the reason is what a person needs,
            // and the advice follows it: "pick a free port" was given for an address this
            // machine does not have, too.
            let code = (error as? IOError)?.errnoCode
            let reason = code.map { String(cString: strerror($0)) } ?? "\(error)"
            let advice =
                switch code {
                case EADDRINUSE?: "pick a free port"
                case EADDRNOTAVAIL?:
                    "the host is not an address of this machine; give one of its own, 127.0.0.1 or 0.0.0.0"
                case EACCES?: "a port below 1024 needs CAP_NET_BIND_SERVICE; pick one above"
                case nil: "is the host one of this machine's names or addresses?"
                default: "check the address"
                }
            throw GatewayError(
                "cannot listen for HTTP on \(settings.listen): \(reason); \(advice) (listen in [http], or --http)")
        }
        let address = serverChannel.localAddress
        localAddress = "\(address?.ipAddress ?? host):\(address?.port ?? port)"
    }

    private static func configure(_ channel: Channel, shared: GatewayShared) throws {
        // First of all: no more reading from a client while what it was sent waits past the
        // write buffer's high mark. Without it a client that pipelines requests (or WebSocket
        // pings) and never reads made the one event loop buffer replies without limit.
        try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
        // The context in force when the client connects: a reload swaps it for the next ones.
        let tls = shared.keys.tls
        guard let slot = shared.plainConnections.admit() else {
            shared.counters.rejectedFull.add(1, ordering: .relaxed)
            if shared.plainConnections.shouldWarn() {
                shared.logger.warning(
                    "HTTP: refusing new connections: \(PlainConnections.limit) are open that are not clients (no request yet, or idle between requests), the most the gateway keeps; each is closed \(RequestDeadline.seconds) s after connecting or after its last response. If this lasts, one host may be opening many: ss -tn sport = :\(channel.localAddress?.port ?? 0)"
                )
            }
            try channel.pipeline.syncOperations.addHandler(TooManyConnectionsHandler(answers: tls == nil))
            return
        }
        do {
            try configureHTTP(channel, tls: tls, slot: slot, shared: shared)
        } catch {
            slot.release()
            throw error
        }
    }

    private static func configureHTTP(
        _ channel: Channel, tls: NIOSSLContext?, slot: PlainConnections.Slot, shared: GatewayShared
    ) throws {
        if let tls {
            try channel.pipeline.syncOperations.addHandler(PlainHTTPOnTLSPort(counters: shared.counters))
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
        }
        // The place an accepted upgrade holds among max_clients until its session counts it as a
        // client, or the connection ends first.
        let place = UpgradePlace(counters: shared.counters)
        channel.closeFuture.whenComplete { _ in place.release() }
        // Unknown, it is taken as loopback: the stricter rule.
        let viaLoopback = channel.localAddress.map(GatewayShared.isLoopback) ?? true
        let upgrader = NIOWebSocketServerUpgrader(
            // The decoder's refusals are answered by the session, with a reason.
            maxFrameSize: shared.settings.maxFrame, automaticErrorHandling: false,
            shouldUpgrade: { channel, head in
                // Checked and taken in one go, on the one event loop: counting the client only
                // when its session started (after the 101 was sent) let upgrades that arrived
                // together all pass the check, 200 of them against max_clients = 50.
                guard shared.handshakeProblem(head) == nil,
                    shared.webSocketRefusal(head, viaLoopback: viaLoopback) == nil
                else {
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                place.take()
                return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(WebSocketFrameCheck())
                    try operations.addHandler(
                        NIOWebSocketFrameAggregator(
                            minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: WebSocketSession.maxFragments,
                            maxAccumulatedFrameSize: shared.settings.maxFrame))
                    try operations.addHandler(WebSocketSession(shared: shared, head: head, place: place))
                }
            })
        let operations = channel.pipeline.syncOperations
        // Below the HTTP handlers: event streams write their pre-framed chunks from here.
        try operations.addHandler(RawWriter(), name: RawWriter.name)
        try operations.configureHTTPServerPipeline(
            withServerUpgrade: (
                upgraders: [upgrader],
                completionHandler: { context in
                    context.pipeline.syncOperations.removeHandler(name: HTTPHandler.name, promise: nil)
                }
            ),
            // HTTPHandler answers what the decoder cannot read, and closes (`errorCaught`).
            withErrorHandling: false)
        try operations.addHandler(
            HTTPHandler(shared: shared, slot: slot, viaLoopback: viaLoopback), name: HTTPHandler.name)
    }

    /// Applies a reloaded `[http]` (already validated, its files read into `keys`) without
    /// touching connected clients: tokens, JWT keys, operator_token, allowed origins and publish
    /// prefixes apply to the next request; the TLS certificate, client_queue, max_frame,
    /// max_client_prefixes, ping_interval and write_delay_ms to new connections; max_clients,
    /// max_upstream_prefixes and upstream_subscriptions_per_s at once. `listen`
    /// and `enabled` need a restart: the notes say so.
    public func reload(
        _ settings: HTTPSettings, keys: GatewayKeys, maxPrefixLength: Int? = nil, maxMessageSize: Int? = nil,
        maxSubscriptions: Int? = nil, historyPrefixes: [String]? = nil, lastValuePrefixes: [String]? = nil
    ) -> [String] {
        let previous = shared.settings
        var notes: [String] = []
        // The broker refuses a subscription longer than its limit: the gateway must refuse it
        // too, or its client is told "subscribed" and gets nothing.
        if let maxPrefixLength { shared.maxPrefixLength = maxPrefixLength }
        if let maxMessageSize { shared.maxMessageSize = maxMessageSize }
        // A new client of a cached prefix gets its values first: which prefixes those are
        // changes with the broker's reload, which comes first.
        if let lastValuePrefixes { shared.linkMailbox.post(.cachePrefixes(lastValuePrefixes.map { Array($0.utf8) })) }
        if let historyPrefixes, historyPrefixes != self.historyPrefixes {
            notes.append(
                "[history] prefixes changed: the HTTP gateway numbers events (h<seq> ids, seq) for the prefixes it started with (\(self.historyPrefixes.joined(separator: ", "))) until a restart"
            )
        }
        var applied = settings
        if settings.listen != previous.listen {
            notes.append(
                "[http] listen changed from \(previous.listen) to \(settings.listen): the gateway keeps listening on \(localAddress) until a restart"
            )
            applied.listen = previous.listen
        }
        if !settings.enabled {
            notes.append("[http] enabled = false: the gateway keeps running until a restart")
            applied.enabled = true
        }
        // Lowered, they refuse new prefixes until clients let go of enough: none is taken away.
        shared.claims.userLimit = applied.maxUserPrefixes
        if let maxSubscriptions {
            shared.claims.limit = applied.upstreamPrefixLimit(maxSubscriptions: maxSubscriptions)
            shared.counters.upstreamPrefixLimit.store(shared.claims.limit, ordering: .relaxed)
        }
        if applied.upstreamSubscriptionsPerSecond != previous.upstreamSubscriptionsPerSecond {
            shared.linkMailbox.post(.upstreamRate(applied.upstreamSubscriptionsPerSecond))
        }
        shared.update(applied, keys: keys)
        return notes
    }

    /// Test hook: the link stops reading from the broker, or starts again
    /// (`LinkCommand.toggleReadingFromBroker`).
    public func toggleReadingFromBroker() {
        shared.linkMailbox.post(.toggleReadingFromBroker)
    }

    /// Closes the listener; the link gives every client what the broker forwarded and a
    /// goodbye (`BrokerLink.finishClients`), and closes the gateway's sockets; then every
    /// connection closes. Call once the broker's loop has closed its sockets (what the gateway
    /// still reads from it is then all there is), and before the broker terminates its context
    /// (which waits for every socket).
    public func stop() {
        try? serverChannel.close().wait()
        shared.linkMailbox.post(.stop)
        linkThread.join()
        try? group.syncShutdownGracefully()
        shared.control.shutdown()
    }
}

/// What every connection's handlers share: settings, access policy, counters, the link.
final class GatewayShared: Sendable {
    /// The settings and the policy made from them, swapped together by a reload (SIGHUP). Each
    /// read takes the lock; a request that reads twice across a reload may combine the old and
    /// the new configuration, both of them validated.
    private let current: Locked<(settings: HTTPSettings, policy: AccessPolicy, keys: GatewayKeys)>
    var settings: HTTPSettings { current.withLock { $0.settings } }
    var policy: AccessPolicy { current.withLock { $0.policy } }
    var keys: GatewayKeys { current.withLock { $0.keys } }
    let counters: GatewayCounters
    /// The ZeroMQ link's mailbox: clients attach, subscribe, publish and leave through it.
    let linkMailbox: Mailbox<LinkCommand>
    let control: ControlDispatcher
    /// The distinct prefixes clients hold, within `max_upstream_prefixes`.
    let claims: UpstreamClaims
    /// The one poll behind every `/status/events` client.
    let statusFeed: StatusFeed
    /// The broker's `max_subscription_length`, which a reload may change.
    private let maxPrefixLengthNow: Atomic<Int>
    var maxPrefixLength: Int {
        get { maxPrefixLengthNow.load(ordering: .relaxed) }
        set { maxPrefixLengthNow.store(newValue, ordering: .relaxed) }
    }
    /// The broker's `max_message_size`, which a reload may change: a frame a producer may not
    /// PUSH is not published from here either. The gateway's inproc link is not held to it by
    /// libzmq (which checks frames as it decodes them from TCP or ipc), and a POST of 5,000
    /// bytes went through a broker of max_message_size 1,000 (a walkthrough, 2026-12-07).
    private let maxMessageSizeNow: Atomic<Int>
    var maxMessageSize: Int {
        get { maxMessageSizeNow.load(ordering: .relaxed) }
        set { maxMessageSizeNow.store(newValue, ordering: .relaxed) }
    }

    /// Why the broker's producers could not send `frames`: a frame over max_message_size.
    func oversized(_ frames: [[UInt8]]) -> String? {
        let limit = maxMessageSize
        guard let frame = frames.first(where: { $0.count > limit }) else { return nil }
        return
            "a frame of \(frame.count) bytes is over the broker's max_message_size (\(limit) bytes), which its producers are held to: this message was not published"
    }

    let logger: Logger
    /// Connections that are not clients yet, and their cap.
    let plainConnections = PlainConnections()
    /// The event loop's turns, which each connection's `TurnBudget` counts by.
    let turns: LoopTurns
    private let nextID = Atomic<UInt64>(0)

    init(
        settings: HTTPSettings, keys: GatewayKeys, counters: GatewayCounters, linkMailbox: Mailbox<LinkCommand>,
        turns: LoopTurns, control: ControlDispatcher, claims: UpstreamClaims, statusFeed: StatusFeed,
        maxPrefixLength: Int, maxMessageSize: Int = BrokerConfiguration.Defaults.maxMessageSize, logger: Logger
    ) {
        current = Locked((settings, AccessPolicy(settings), keys))
        self.counters = counters
        self.turns = turns
        self.linkMailbox = linkMailbox
        self.control = control
        self.claims = claims
        self.statusFeed = statusFeed
        maxPrefixLengthNow = Atomic(maxPrefixLength)
        maxMessageSizeNow = Atomic(maxMessageSize)
        self.logger = logger
    }

    func update(_ settings: HTTPSettings, keys: GatewayKeys) {
        current.withLock { $0 = (settings, AccessPolicy(settings), keys) }
    }

    func makeClientID() -> ClientID {
        nextID.add(1, ordering: .relaxed).newValue
    }

    /// The clients that count against max_clients: those connected, and the WebSocket upgrades
    /// accepted whose session has not started yet.
    var clientCount: Int {
        counters.webSocketClients.load(ordering: .relaxed) + counters.sseClients.load(ordering: .relaxed)
            + counters.statusClients.load(ordering: .relaxed) + counters.upgradingWebSockets.load(ordering: .relaxed)
    }

    /// Asks the broker's control API (HEALTH, STATS, ...); the reply comes on `eventLoop`.
    func control(_ command: ControlCommand, on eventLoop: EventLoop) -> EventLoopFuture<ControlReply> {
        control.request(ControlRequest(command: command), on: eventLoop)
    }

    /// HEALTH or STATS for an HTTP request, shared with the others asking at the same time
    /// (`ControlDispatcher.requestShared`).
    func controlShared(_ command: ControlCommand, on eventLoop: EventLoop) -> EventLoopFuture<ControlReply> {
        control.requestShared(command, on: eventLoop)
    }

    /// The tokens a request presents: `Authorization: Bearer ...` and `?access_token=`.
    func presentedTokens(_ head: HTTPRequestHead, _ target: RequestTarget) -> Set<String> {
        var tokens = Set(target.values("access_token"))
        for value in head.headers["Authorization"] where value.lowercased().hasPrefix("bearer ") {
            var token = value.dropFirst(7)
            while token.first == " " || token.first == "\t" { token.removeFirst() }
            while token.last == " " || token.last == "\t" { token.removeLast() }
            tokens.insert(String(token))
        }
        return tokens
    }

    /// What a request presents: its static tokens as they are, its JWT once verified (a bad or
    /// expired one refuses the request, as it would be refused on its own).
    func credentials(_ head: HTTPRequestHead, _ target: RequestTarget) -> Result<Credentials, TokenRejection> {
        var credentials = Credentials()
        for token in presentedTokens(head, target) {
            if let rejection = present(token, to: &credentials) { return .failure(rejection) }
        }
        return .success(credentials)
    }

    /// Adds `token` to `credentials`: a static token as it is, a JWT once verified. A string
    /// that is neither grants nothing and is not kept (a WebSocket client may present a new one
    /// with every request; a token the next reload adds must then be presented again).
    func present(_ token: String, to credentials: inout Credentials) -> TokenRejection? {
        let (policy, verifier) = current.withLock { ($0.policy, $0.keys.verifier) }
        guard let verifier, !policy.staticTokens.contains(token) else {
            if policy.staticTokens.contains(token) {
                credentials.tokens.insert(token)
            } else {
                credentials.presentedUnknown = true
            }
            return nil
        }
        switch verifier.verify(token) {
        case .success(let user):
            credentials.user = user
            return nil
        case .failure(var rejection):
            // A mistyped static token read as a JWT problem alone (a walkthrough).
            if rejection.message == TokenVerifier.unreadable && !policy.staticTokens.isEmpty {
                rejection.message =
                    "the token is none of this gateway's static tokens, nor a JWT zpubd can read (header.claims.signature, base64url JSON)"
            }
            return rejection
        }
    }

    /// Why a subscription request (WebSocket upgrade or SSE) is refused, or nil.
    func subscriptionRefusal(_ head: HTTPRequestHead, _ target: RequestTarget, prefixes: [String])
        -> (HTTPResponseStatus, String, String)?
    {
        if let denial = policy.checkOrigin(head.headers.first(name: "Origin"), host: head.headers.first(name: "Host")) {
            return (.forbidden, "origin_not_allowed", denial.message)
        }
        if clientCount >= settings.maxClients {
            return (
                .serviceUnavailable, "too_many_clients",
                "the gateway has max_clients (\(settings.maxClients)) clients; try again later"
            )
        }
        if prefixes.count > settings.maxClientPrefixes {
            return (
                .badRequest, "too_many_prefixes",
                "\(prefixes.count) prefixes; at most max_client_prefixes (\(settings.maxClientPrefixes))"
            )
        }
        let credentials: Credentials
        switch self.credentials(head, target) {
        case .success(let presented): credentials = presented
        case .failure(let rejection): return (.unauthorized, rejection.reason.rawValue, rejection.message)
        }
        for prefix in prefixes {
            if let problem = prefixProblem(prefix) { return (.badRequest, "bad_prefix", problem) }
            if let denial = policy.checkSubscribe(Array(prefix.utf8), credentials) {
                return (denial.isUnauthorized ? .unauthorized : .forbidden, denial.code, denial.message)
            }
        }
        let held = Set(prefixes.map { Array($0.utf8) })
        let user = credentials.user?.subject
        return claimRefusal(claims.wouldAdmit(held, user: user), held, user: user)
    }

    /// What an event stream or a WebSocket upgrade whose prefixes were not claimed is answered
    /// (nil: they were): 503 when the gateway's pool is full, 429 when the user's share is.
    func claimRefusal(_ outcome: UpstreamClaims.Outcome, _ prefixes: Set<[UInt8]>, user: String?)
        -> (HTTPResponseStatus, String, String)?
    {
        guard outcome != .claimed else { return nil }
        let (code, message) = claims.refusal(outcome, prefixes, user: user)
        return (outcome == .userFull ? .tooManyRequests : .serviceUnavailable, code, message)
    }

    func prefixProblem(_ prefix: String) -> String? {
        if prefix.utf8.count > maxPrefixLength {
            return "a prefix of \(prefix.utf8.count) bytes is longer than max_subscription_length (\(maxPrefixLength))"
        }
        if prefix.utf8.starts(with: BrokerState.internalPrefix) { return "prefixes under $zpub/ are zpubd's own" }
        return nil
    }

    /// What is wrong with an upgrade request as a WebSocket handshake (RFC 6455 4.1, 4.2.1), or
    /// nil: the error to answer with, and its headers. NIO's upgrader checks only that the key
    /// and version are there, and passes on what it refuses as a plain request, whose 426 told
    /// the client to send the Upgrade headers it had sent.
    func handshakeProblem(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, String, HTTPHeaders)? {
        guard head.method == .GET else {
            return (.badRequest, "bad_upgrade", "a WebSocket handshake is a GET (RFC 6455 4.1)", [:])
        }
        guard head.version.major > 1 || head.version.minor >= 1 else {
            return (
                .badRequest, "bad_upgrade",
                "a WebSocket handshake needs HTTP/1.1 (RFC 6455 4.1); behind nginx: proxy_http_version 1.1;", [:]
            )
        }
        let versions = head.headers["Sec-WebSocket-Version"]
        guard versions == ["13"] else {
            // RFC 6455 4.4: the reply names the version the server speaks.
            let sent = versions.isEmpty ? "none" : versions.joined(separator: ", ")
            return (
                .upgradeRequired, "unsupported_websocket_version",
                "Sec-WebSocket-Version \(sent) is not supported; the gateway speaks 13 (RFC 6455)",
                ["Sec-WebSocket-Version": "13", "Upgrade": "websocket", "Connection": "Upgrade"]
            )
        }
        let keys = head.headers["Sec-WebSocket-Key"]
        guard keys.count == 1, Self.isWebSocketKey(keys[0]) else {
            let problem = keys.isEmpty ? "is missing" : "is not 16 bytes in base64"
            return (
                .badRequest, "bad_websocket_key",
                "Sec-WebSocket-Key \(problem): send 16 random bytes in base64 (RFC 6455 4.1)", [:]
            )
        }
        return nil
    }

    /// Whether `key` is 16 bytes in base64: 22 characters of the alphabet and "==".
    static func isWebSocketKey(_ key: String) -> Bool {
        let characters = Array(key.utf8)
        guard characters.count == 24, characters[22...] == [UInt8(ascii: "="), UInt8(ascii: "=")] else { return false }
        return characters[..<22].allSatisfy { character in
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                true
            default: false
            }
        }
    }

    /// A request whose Host is missing or malformed (400, `AccessPolicy.hostFieldProblem`), or
    /// names this gateway as another site may have (403, `AccessPolicy.checkHost`), or nil.
    func hostRefusal(_ head: HTTPRequestHead, viaLoopback: Bool, fromBrowser: Bool = false) -> (
        status: HTTPResponseStatus, code: String, message: String
    )? {
        let hosts = head.headers["Host"]
        if let problem = AccessPolicy.hostFieldProblem(
            hosts, http11: head.version.major > 1 || head.version.minor >= 1)
        {
            return (.badRequest, "bad_host", problem)
        }
        let fromBrowser =
            fromBrowser || head.headers.contains(name: "Sec-Fetch-Site") || head.headers.contains(name: "Origin")
        if let denial = policy.checkHost(
            hosts.first, origin: head.headers.first(name: "Origin"), fromBrowser: fromBrowser, viaLoopback: viaLoopback)
        {
            return (.forbidden, denial.code, denial.message)
        }
        return nil
    }

    /// Whether a connection came in on a loopback address (IPv4 127/8, ::1, or IPv4-mapped
    /// 127/8 on a dual-stack listener).
    static func isLoopback(_ address: SocketAddress) -> Bool {
        guard let ip = address.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.lowercased().hasPrefix("::ffff:127.")
    }

    /// Nil when a request may become a WebSocket; otherwise the HTTP error to answer with.
    func webSocketRefusal(_ head: HTTPRequestHead, viaLoopback: Bool) -> (HTTPResponseStatus, String, String)? {
        guard let target = RequestTarget(uri: head.uri), target.path == "/ws" else {
            return (.notFound, "not_found", "WebSocket connections go to /ws")
        }
        if let since = target.value("since"), UInt64(since) == nil {
            return (.badRequest, "bad_since", "since must be a history sequence: a whole number, 0 or more")
        }
        // As for every other request (`HTTPHandler.refusalBeforeBody`), and since a browser's
        // upgrade may carry no Sec-Fetch-Site, it is taken for a browser's.
        if let refusal = hostRefusal(head, viaLoopback: viaLoopback, fromBrowser: true) {
            return (refusal.status, refusal.code, refusal.message)
        }
        return subscriptionRefusal(head, target, prefixes: target.values("prefix"))
    }
}

/// The gateway could not start; the message says why and what to do.
public struct GatewayError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
