import ZPubCore
import ZeroMQ

/// The control API's one implementation (`BrokerControl`): the control socket's thread and
/// the HTTP gateway both call it with typed requests and get typed replies. Requests that need
/// the broker's state ask the forwarding loop through its mailbox, with a deadline, so a
/// stalled loop makes the reply "unavailable" instead of hanging the caller.
final class ControlResponder: BrokerControl {
    /// How long to wait for the forwarding loop before replying "unavailable".
    static let loopReplyTimeoutMilliseconds = 2_000
    /// How long SNAPSHOT waits for the client's marker subscription to arrive.
    static let snapshotTimeoutMilliseconds = 5_000

    private let loop: ForwardingLoopHandle
    private let registry: EndpointRegistry
    private let zap: ZAPShared
    /// Nil when history is off.
    private let history: HistoryHandle?
    private let startNanoseconds: UInt64
    /// Whether zpubd reads a configuration file that a reload can change (started with
    /// --config): advice to "reload" is given only then.
    private let hasConfigurationFile: Bool
    private let current: Locked<BrokerConfiguration>
    /// The control socket's own traffic (`ControlServer` counts it), shown by STATS.
    private let controlCounters = Locked(TrafficCounters())
    /// Replies dropped for clients with no room left for them (`ControlServer.send`).
    private let controlRepliesDropped = Locked<UInt64>(0)

    init(
        configuration: BrokerConfiguration, loop: ForwardingLoopHandle, registry: EndpointRegistry, zap: ZAPShared,
        history: HistoryHandle?, startNanoseconds: UInt64, hasConfigurationFile: Bool = true
    ) {
        self.hasConfigurationFile = hasConfigurationFile
        self.current = Locked(configuration)
        self.history = history
        self.loop = loop
        self.registry = registry
        self.zap = zap
        self.startNanoseconds = startNanoseconds
    }

    /// The configuration in force.
    var configuration: BrokerConfiguration { current.withLock { $0 } }

    func reconfigure(_ configuration: BrokerConfiguration) {
        current.withLock { $0 = configuration }
    }

    /// A request read from the control socket (counted before it is answered, so STATS
    /// includes itself).
    func countRequest(bytes: Int) {
        controlCounters.withLock {
            $0.messagesIn &+= 1
            $0.bytesIn &+= UInt64(bytes)
        }
    }

    func countDroppedReply() {
        controlRepliesDropped.withLock { $0 &+= 1 }
    }

    func countReply(bytes: Int) {
        controlCounters.withLock {
            $0.messagesOut &+= 1
            $0.bytesOut &+= UInt64(bytes)
        }
    }

    func respond(to request: ControlRequest) -> ControlReply {
        switch request.command {
        case .ping:
            return .pong
        case .version:
            let version = Context.libraryVersion
            return .version(
                VersionReply(
                    version: ZPubVersion.current, libzmq: "\(version.major).\(version.minor).\(version.patch)"))
        case .help:
            return .help(ControlHelp.lines)
        case .config:
            return .configuration(ConfigurationReply(configuration: configuration, bound: registry.all()))
        case .health:
            return .health(health())
        case .stats:
            guard let stats = stats() else { return unavailable() }
            return .stats(stats)
        case .subscriptions:
            guard let state = brokerState() else { return unavailable() }
            return .subscriptions(state.subscriptionList(prefix: request.argument))
        case .topics:
            guard let state = brokerState() else { return unavailable() }
            return .topics(state.topicList(prefix: request.argument))
        case .snapshot:
            guard let (token, prefix) = request.snapshotArguments else {
                return .error(ControlError(.badArgument, "SNAPSHOT <token> [prefix]"))
            }
            if let refusal = markerRefusal(token: token) { return refusal }
            return snapshot(token: token, prefix: prefix)
        case .history:
            guard let query = HistoryQuery.parse(request.argument) else {
                return .error(
                    ControlError(.badArgument, "HISTORY since <sequence> [prefix] | HISTORY last <count> [prefix]"))
            }
            guard let history, !configuration.historyPrefixes.isEmpty else { return historyOff() }
            switch history.query(query, milliseconds: Self.snapshotTimeoutMilliseconds) {
            case .success(let reply): return .history(reply)
            case .failure(let error): return .error(error)
            }
        case .replay:
            guard let (token, since, prefix) = request.replayArguments else {
                return .error(ControlError(.badArgument, "REPLAY <token> <since> [prefix]"))
            }
            guard history != nil, !configuration.historyPrefixes.isEmpty else { return historyOff() }
            if let refusal = markerRefusal(token: token) { return refusal }
            return replay(token: token, since: since, prefix: prefix)
        case .pause, .resume:
            guard !loopStopped else { return unavailable() }
            let slot = ReplySlot<ForwardingState>()
            loop.post(.setPaused(request.command == .pause, slot))
            guard let forwarding = slot.wait(milliseconds: Self.loopReplyTimeoutMilliseconds) else {
                if loopStopped { return unavailable() }
                // The command waits in the loop's mailbox: say that it may still apply.
                return .error(
                    ControlError(
                        .unavailable,
                        "the forwarding loop did not answer within \(Self.loopReplyTimeoutMilliseconds) ms; the \(request.command == .pause ? "PAUSE" : "RESUME") takes effect when it does; send HEALTH to see the loop's state"
                    ))
            }
            return .forwarding(forwarding)
        case .reload:
            // The control socket's server answers RELOAD itself (`ControlServer`): a reload
            // waits for the threads that apply it, the caller's among them.
            return .error(
                ControlError(
                    .unavailable,
                    "RELOAD is served on the control socket only; send it there (`zpub reload`), or send zpubd SIGHUP"))
        }
    }

    func afterSubscriptionsApplied(_ done: @escaping @Sendable () -> Void) {
        loop.post(.afterSubscriptionsApplied(done))
    }

    var isPassiveInPair: Bool { loop.pairStatus.withLock { $0.map { !$0.active } ?? false } }

    /// Acquiring: the end is stored after the catch-up's last message was sent, so a reader
    /// that then finds its queue empty has read all of it.
    var catchUp: BacklogCatchUpState {
        BacklogCatchUpState(
            isRunning: loop.catchingUp.load(ordering: .acquiring),
            lastEndNanoseconds: loop.catchUpEndedNanoseconds.load(ordering: .acquiring))
    }

    /// STATS: the loop's counters, with what only this side knows (uptime, the control
    /// socket's traffic, the ZAP handler's counts).
    private func stats() -> StatsSnapshot? {
        guard var stats = loopStats() else { return nil }
        let configuration = configuration
        stats.uptimeSeconds = uptime()
        stats.sockets[.control] = controlCounters.withLock { $0 }
        stats.controlRepliesDropped = controlRepliesDropped.withLock { $0 }
        let zapCounters = zap.snapshot
        stats.security = StatsSnapshot.SecurityStats(
            curve: BrokerSocketRole.allCases.filter { configuration.security(for: $0).curve }.map(\.rawValue),
            allowed: zapCounters.allowed.values.reduce(0, +), denied: zapCounters.denied.values.reduce(0, +),
            deniedBySocket: zapCounters.denied)
        stats.history = history?.stats.withLock { $0 }
        // Asked of the kernel (mincore) when STATS asks, not at each of the writer's turns.
        stats.history?.queueResidentBytes = history?.queue.residentBytes
        // The loop's own counts, as they are now: the writer's copy of them is as old as its
        // last turn, which a write stuck on a full or slow disk makes seconds old (STATS said
        // `dropped` 0 while the loop dropped every message).
        if let depth = history?.queue.depth {
            stats.history?.queuedBytes = depth.queuedBytes
            stats.history?.dropped = depth.dropped
        }
        stats.pair = loop.pairStatus.withLock { $0 }
        return stats
    }

    private func health() -> HealthReport {
        // The loop's time first, then the clock: read the other way round, an iteration that
        // ends in between made the difference wrap to some 584 years.
        let lastIteration = loop.lastIterationNanoseconds.load(ordering: .relaxed)
        let now = SystemClock.monotonicNanoseconds()
        let lag = Double(now > lastIteration ? now - lastIteration : 0) / 1e9
        let pair = loop.pairStatus.withLock { $0 }
        guard var stats = loopStats() else {
            // The loop's end (or its request abandoned as it ended) is a stop, not a hang: the
            // gateway still serves its /healthz while it says goodbye to its clients, and a
            // load balancer must read "stopping" there.
            if loopStopped || loop.stopAsked.load(ordering: .acquiring) {
                return HealthReport(
                    status: .stopping, forwarding: .stopping, uptimeSeconds: uptime(), loopLagSeconds: 0,
                    subscriptions: 0, version: ZPubVersion.current, pair: pair)
            }
            return HealthReport(
                status: .unhealthy, forwarding: .notResponding, uptimeSeconds: uptime(), loopLagSeconds: lag,
                subscriptions: 0, version: ZPubVersion.current, pair: pair)
        }
        if loop.stopAsked.load(ordering: .acquiring) { stats.forwarding = .stopping }
        let status: HealthReport.Status =
            switch stats.forwarding {
            case .paused: .paused
            case .stopping: .stopping
            default: if let pair, !pair.active { .passive } else { .ok }
            }
        var problems = history?.stats.withLock { $0.problems } ?? []
        for upstream in stats.upstreams where upstream.state != .connected && upstream.state != .passive {
            problems.append(
                HealthProblem(
                    .upstreamNotConnected,
                    "upstream \(upstream.summary): its messages do not reach this broker until it connects; the log says why"
                ))
        }
        // Subscribers that get nothing under some prefixes, while forwarding goes on: only
        // STATS showed it (a walkthrough). With room, what waits gets in at its connection's
        // next frame: a plain SUB sends none, and waits on until it reconnects (a review).
        let table = stats.subscriptions
        if table.waitingForRoom > 0 {
            let why =
                table.prefixes >= table.limit
                ? "the subscription table is full (\(table.prefixes) prefixes of max_subscriptions \(table.limit)): \(table.waitingForRoom) refused subscriptions wait for room, and their subscribers get nothing under those prefixes until others leave; raise max_subscriptions in [limits] \(hasConfigurationFile ? "(a reload applies it, up to about half the subscriptions XSUB's queue was sized for at start; `zpub reload` says when a restart is needed)" : "(zpubd was started without --config: give it one, and restart)")"
                : "\(table.waitingForRoom) subscriptions refused while the table was full wait for their connection's next frame to get in (zpub sub and a downstream zpubd send one every 1-2 s; a plain SUB sends none, and gets nothing under those prefixes until it reconnects); a connection that closed is forgotten within seconds"
            problems.append(HealthProblem(.subscriptionsWaiting, why))
        }
        return HealthReport(
            status: status, forwarding: stats.forwarding, uptimeSeconds: uptime(), loopLagSeconds: max(0, lag),
            subscriptions: stats.subscriptions.total, version: ZPubVersion.current, pair: pair,
            problems: problems.isEmpty ? nil : problems)
    }

    /// Waits for the loop to take the snapshot at the client's marker; the values are encoded
    /// here (base64), off the forwarding thread.
    private func snapshot(token: String, prefix: [UInt8]) -> ControlReply {
        // Once the loop has stopped, `post` abandons the slot, and the reply says so at once.
        let slot = ReplySlot<CapturedSnapshot>()
        loop.post(.snapshotValues(token: token, prefix: prefix, slot))
        return snapshotReply(slot.wait(milliseconds: Self.snapshotTimeoutMilliseconds), token: token)
    }

    /// SNAPSHOT's reply: the values captured at the marker, or nil when the marker's
    /// subscription did not come in time.
    private func snapshotReply(_ captured: CapturedSnapshot?, token: String) -> ControlReply {
        guard let captured else {
            // Abandoned by the loop as it stopped, or not taken by it: not a marker's fault.
            if loopStopped { return unavailable() }
            return markerTimeout(token: token, request: "SNAPSHOT", wants: "snapshot")
        }
        return .snapshot(
            SnapshotReply(
                token: token, sequence: captured.sequence, prefixes: captured.prefixes.map(TopicText.display),
                entries: captured.sortedEntries().map(MessageJSON.init)))
    }

    /// Waits for the loop to publish the client's marker and the writer to read what was kept
    /// up to it.
    private func replay(token: String, since: UInt64, prefix: [UInt8]) -> ControlReply {
        let slot = ReplySlot<Result<HistoryReply, ControlError>>()
        loop.post(.replay(token: token, since: since, prefix: prefix, slot))
        return replayReply(slot.wait(milliseconds: Self.snapshotTimeoutMilliseconds), token: token, prefix: prefix)
    }

    private func replayReply(_ outcome: Result<HistoryReply, ControlError>?, token: String, prefix: [UInt8])
        -> ControlReply
    {
        switch outcome {
        case nil:
            if loopStopped { return unavailable() }
            return markerTimeout(token: token, request: "REPLAY", wants: "replay")
        case .failure(let error):
            return .error(error)
        case .success(let history):
            return .replay(
                ReplayReply(
                    token: token, through: history.through ?? history.lastSequence,
                    prefixes: configuration.historyPrefixes, asked: prefix, history: history))
        }
    }

    /// A token whose marker subscription the broker would refuse as too long: told at once,
    /// rather than after waiting for a subscription that cannot be taken.
    private func markerRefusal(token: String) -> ControlReply? {
        let length = SnapshotReply.markerPrefix.utf8.count + token.utf8.count
        let limit = configuration.maxSubscriptionLength
        guard length > limit else { return nil }
        return .error(
            ControlError(
                .badArgument,
                "the marker subscription \(SnapshotReply.markerPrefix)\(token) is \(length) bytes, longer than max_subscription_length (\(limit)), so the broker refuses it: use a shorter token, or raise max_subscription_length in [limits]"
            ))
    }

    private func markerTimeout(token: String, request: String, wants: String) -> ControlReply {
        .error(
            ControlError(
                .snapshotTimeout,
                "the subscription to \(SnapshotReply.markerPrefix)\(token) did not reach the broker within \(Self.snapshotTimeoutMilliseconds) ms; subscribe to it (on the SUB socket that wants the \(wants)) before sending \(request). If you did: the broker may have refused it (max_subscriptions reached: STATS subscriptions.refused_table_full), or more than \(SnapshotRendezvous<Void>.capacity) SNAPSHOT and REPLAY requests were waiting at once"
            ))
    }

    /// SNAPSHOT and REPLAY wait up to `snapshotTimeoutMilliseconds` for the client's marker
    /// subscription. For the control socket they are started here and answered later
    /// (`DeferredReply`), so that one client that never subscribes does not hold up every
    /// other admin for that long; `ready` is called (on the loop's thread) once the reply can
    /// be built. Nil for every other request, and for a SNAPSHOT or REPLAY that is answered at
    /// once (a bad argument, history off): `respond(to:)` answers those.
    func respondLater(to request: ControlRequest, ready: @escaping @Sendable () -> Void) -> DeferredReply? {
        let deadline = SystemClock.monotonicNanoseconds() + UInt64(Self.snapshotTimeoutMilliseconds) * 1_000_000
        switch request.command {
        case .snapshot:
            guard let (token, prefix) = request.snapshotArguments, markerRefusal(token: token) == nil else {
                return nil
            }
            let slot = ReplySlot<CapturedSnapshot>(onFulfil: ready)
            loop.post(.snapshotValues(token: token, prefix: prefix, slot))
            return DeferredReply(deadline: deadline) { timedOut in
                if let captured = slot.value { return self.snapshotReply(captured, token: token) }
                return timedOut || self.loopStopped ? self.snapshotReply(nil, token: token) : nil
            }
        case .replay:
            guard let (token, since, prefix) = request.replayArguments, history != nil,
                !configuration.historyPrefixes.isEmpty, markerRefusal(token: token) == nil
            else { return nil }
            let slot = ReplySlot<Result<HistoryReply, ControlError>>(onFulfil: ready)
            loop.post(.replay(token: token, since: since, prefix: prefix, slot))
            return DeferredReply(deadline: deadline) { timedOut in
                if let outcome = slot.value { return self.replayReply(outcome, token: token, prefix: prefix) }
                return timedOut || self.loopStopped ? self.replayReply(nil, token: token, prefix: prefix) : nil
            }
        default:
            return nil
        }
    }

    /// The loop's counters, without its tables (see `LoopCommand.stats`).
    private func loopStats() -> StatsSnapshot? {
        guard !loopStopped else { return nil }
        let slot = ReplySlot<StatsSnapshot>()
        loop.post(.stats(slot))
        return slot.wait(milliseconds: Self.loopReplyTimeoutMilliseconds)
    }

    /// The loop's whole state, tables included: for the requests that list a table.
    private func brokerState() -> BrokerState? {
        guard !loopStopped else { return nil }
        let slot = ReplySlot<BrokerState>()
        loop.post(.snapshot(slot))
        return slot.wait(milliseconds: Self.loopReplyTimeoutMilliseconds)
    }

    private func uptime() -> Double {
        Double(SystemClock.monotonicNanoseconds() &- startNanoseconds) / 1e9
    }

    /// HISTORY or REPLAY without history: what to do depends on whether a store is open (a
    /// reload's prefixes then apply at once) or not (history starts only with zpubd).
    private func historyOff() -> ControlReply {
        .error(
            ControlError(
                .historyOff,
                history == nil
                    ? "history is off: name the prefixes to keep with [history] prefixes or --history and restart zpubd (a reload cannot start history; docs/history.md)"
                    : hasConfigurationFile
                        ? "history is off: name the prefixes to keep with [history] prefixes and reload (docs/history.md)"
                        : "history is off: zpubd was started without --config, so a reload cannot name prefixes to keep: give --history PREFIX, or --config with [history] prefixes, and restart zpubd (docs/history.md)"
            ))
    }

    /// The loop has stopped (zpubd is on its way out): nothing waits for it.
    private var loopStopped: Bool { loop.stopped.load(ordering: .acquiring) }

    private func unavailable() -> ControlReply {
        .error(
            ControlError(
                .unavailable,
                loopStopped
                    ? "zpubd is stopping: its forwarding loop has stopped; ask again once it is back (or the pair's other broker)"
                    : "the forwarding loop did not answer within \(Self.loopReplyTimeoutMilliseconds) ms; it may be stalled or shutting down"
            ))
    }
}

/// A reply that comes later (`ControlResponder.respondLater`): `reply(false)` is nil until it
/// is ready; `reply(true)`, once `deadline` (monotonic nanoseconds) has passed, is the reply
/// that says it did not come in time.
struct DeferredReply {
    let deadline: UInt64
    let reply: (_ timedOut: Bool) -> ControlReply?
}
