import Logging
import Systemd
import ZPubCore
import ZPubStore
import ZeroMQ

/// zpubd's broker: binds the four sockets, runs the forwarding loop, the control server and
/// the ZAP handler on threads of their own, reloads, and shuts down gracefully.
///
/// Threads and what they own (each owner moves to its thread as a `sending` value; this object
/// keeps only the `Sendable` handles other threads may use):
/// - the forwarding loop thread: PULL, XSUB, XPUB, all counters and tables;
/// - the connection event thread: the monitor PAIRs of PULL, XSUB and XPUB
///   (`ConnectionEventReader`; it passes their events to the loop and the descriptor guard);
/// - the control thread: the control socket;
/// - the ZAP thread: the ZAP handler's REP socket;
/// - the history thread (when history is on): the SQLite store (`HistoryWriter`);
/// - the descriptor guard's thread: no socket; it probes the descriptor table (`DescriptorGuard`);
/// - the caller (zpubd's main thread): nothing but this object; it waits for signals.
public final class Broker: Sendable {
    /// The broker's libzmq context: components in the same process (the HTTP gateway) join the
    /// broker through it, over the always-bound `InternalEndpoints` (inproc).
    public let context: Context
    /// Clients served through other doors than the XPUB (the HTTP gateway's), which count for
    /// a pair's takeover (`PairLink`).
    public let clientsElsewhere = ClientsElsewhere()
    private let loop: ForwardingLoopHandle
    private let responder: ControlResponder
    private let controlMailbox = Mailbox<ControlServerCommand>()
    private let registry = EndpointRegistry()
    /// Who carries out the control socket's RELOAD (zpubd: the thread that reloads on SIGHUP);
    /// nil: RELOAD is answered with an error.
    private let reloadHandler: ReloadHandler?
    private let zap: ZAPShared
    private let history: HistoryHandle?
    private let threads:
        (
            zap: JoinableThread, loop: JoinableThread, control: JoinableThread, guard: JoinableThread,
            events: JoinableThread
        )
    /// Stops the connection event reader.
    private let eventReaderStop: Mailbox<Bool>
    private let historyThread: JoinableThread?
    /// One of a primary/backup pair: the link to the peer and its thread.
    private let pair: (link: Mailbox<PairLink.Command>, thread: JoinableThread)?
    private let stopped = Locked(false)
    private let logger: Logger
    /// What the loop and the pair link tell systemd, sent from a thread of its own.
    private let relay: NotifyRelay

    /// Creates the sockets, binds every configured endpoint and starts the threads; returns once
    /// the forwarding loop is running. Throws, with the endpoint and the reason, if any bind
    /// fails; nothing stays bound then.
    ///
    /// `adopted` are listening sockets passed by systemd (socket activation), matched to roles by
    /// name ("pull", "xsub", "xpub", "control"): a role with adopted sockets uses them instead of
    /// its configured endpoints.
    /// `onDemoted` is called (on the pair's thread) when this broker, one of a pair, must give
    /// up being active: zpubd then stops, and rejoins as passive when restarted.
    public init(
        configuration: BrokerConfiguration, security: SecurityMaterial = .none, logger: Logger,
        notifier: NotifyRelay = NotifyRelay(Notifier()), adopted: [ListeningSocket] = [],
        reloadHandler: ReloadHandler? = nil,
        reloadTimeoutMilliseconds: UInt64 = Broker.reloadTimeoutMilliseconds, hasConfigurationFile: Bool = true,
        onDemoted: @escaping @Sendable () -> Void = {}
    ) throws {
        self.logger = logger
        self.reloadHandler = reloadHandler
        // The store first: a state directory that cannot be used stops zpubd before anything
        // is bound.
        let historyWriter: HistoryWriter?
        do {
            historyWriter =
                configuration.opensHistoryStore ? try HistoryWriter(configuration: configuration, logger: logger) : nil
        } catch {
            throw BrokerError(code: .stateUnusable, message: error.description, exitStatus: error.exitStatus)
        }
        let history = historyWriter?.handle
        self.history = history
        let restoredLastValues = historyWriter?.takeRestoredLastValues() ?? []
        let context = try Context(ioThreads: Int32(configuration.ioThreads))
        self.context = context
        let serverKey = security.serverKeyPair?.secretKey
        // The ZAP handler must be bound before any socket with a ZAP domain takes a connection.
        let zapHandler: ZAPHandler
        do {
            zapHandler = try ZAPHandler(context: context, policies: security.policies, logger: logger)
        } catch {
            context.terminate()
            throw error
        }
        BrokerSockets.checkAdopted(adopted, configuration: configuration, logger: logger)
        // Two groups made apart, so that each can move to its own thread.
        let control: BrokerSockets.Bound
        let sockets: BrokerSockets
        do {
            control = try BrokerSockets.makeControl(
                context: context, configuration: configuration, serverKey: serverKey, adopted: adopted,
                registry: registry, logger: logger)
            do {
                sockets = try BrokerSockets.make(
                    context: context, configuration: configuration, serverKey: serverKey, adopted: adopted,
                    registry: registry, logger: logger)
            } catch {
                control.close()
                throw error
            }
        } catch {
            zapHandler.close()
            context.terminate()
            throw error
        }
        let lastValueOnSubscribe = Self.probeManualLastValue(sockets.xpub.socket)
        // The gateway's publishes with receipts; nothing polls for them unless it is configured.
        var receipts: Socket?
        if configuration.http.enabled {
            do {
                let socket = try Socket(context, type: .pair)
                try socket.setOption(.linger, 0)
                // Receipts are bounded by what the gateway may have outstanding.
                try socket.setOption(.sendHighWaterMark, 0)
                try socket.bind(InternalEndpoints.receipts)
                receipts = socket
            } catch {
                for bound in [sockets.pull, sockets.xsub, sockets.xpub] { bound.close() }
                control.close()
                zapHandler.close()
                context.terminate()
                throw error
            }
        }
        if !configuration.lastValuePrefixes.isEmpty && !lastValueOnSubscribe {
            logger.warning(
                "this libzmq refuses ZMQ_XPUB_MANUAL_LAST_VALUE: new subscribers will not get cached last values when they subscribe; SNAPSHOT still serves them"
            )
        }
        // Ended in `stop`, after the loop and the pair link, its only users.
        let relay = notifier
        self.relay = relay
        let forwardingLoop = ForwardingLoop(
            pull: sockets.pull.socket, xsub: sockets.xsub.socket, xpub: sockets.xpub.socket,
            endpoints: (sockets.pull.endpoints, sockets.xsub.endpoints, sockets.xpub.endpoints),
            receipts: receipts, lastValueOnSubscribe: lastValueOnSubscribe, serverKey: serverKey,
            configuration: configuration, history: history, restoredLastValues: restoredLastValues,
            registry: registry, logger: logger, notifier: relay,
            zapDecided: { [shared = zapHandler.shared] in
                shared.counters.withLock { $0.allowed.merging($0.denied, uniquingKeysWith: &+) }
            })
        let loop = forwardingLoop.handle
        self.loop = loop
        let eventReader = ConnectionEventReader(monitors: sockets.monitors, loop: loop, logger: logger)
        eventReaderStop = eventReader.stopMailbox
        zap = zapHandler.shared
        let responder = ControlResponder(
            configuration: configuration, loop: loop, registry: registry, zap: zap, history: history,
            startNanoseconds: SystemClock.monotonicNanoseconds(), hasConfigurationFile: hasConfigurationFile)
        self.responder = responder
        let controlServer = ControlServer(
            socket: control.socket, endpoints: control.endpoints, responder: responder, serverKey: serverKey,
            mailbox: controlMailbox, registry: registry, reloadHandler: reloadHandler,
            reloadTimeoutMilliseconds: reloadTimeoutMilliseconds, logger: logger)

        var pairLink: PairLink?
        if configuration.pair.isEnabled {
            do {
                pairLink = try PairLink(
                    settings: configuration.pair, context: context, loop: loop, history: history,
                    historyOn: history != nil && !configuration.historyPrefixes.isEmpty,
                    valuesOn: !configuration.lastValuePrefixes.isEmpty,
                    curve: security.serverKeyPair.flatMap { own in security.pairPeerKey.map { (own, $0) } },
                    logger: logger,
                    notifier: relay, clientsElsewhere: clientsElsewhere, onDemoted: onDemoted)
            } catch {
                relay.finish()
                control.close()
                for bound in [sockets.pull, sockets.xsub, sockets.xpub] { bound.close() }
                zapHandler.close()
                context.terminate()
                throw error
            }
        }

        // From here on each owner lives on its thread; the compiler refuses any use of them here.
        let descriptorGuard = loop.descriptorGuard
        if let historyWriter {
            historyThread = JoinableThread(name: "zpubd-history") { historyWriter.run() }
        } else {
            historyThread = nil
        }
        threads = (
            zap: JoinableThread(name: "zpubd-zap") { zapHandler.run() },
            loop: JoinableThread(name: "zpubd-forward") { forwardingLoop.run() },
            control: JoinableThread(name: "zpubd-control") { controlServer.run() },
            guard: JoinableThread(name: "zpubd-fdguard", stackSize: 256 << 10) { descriptorGuard.run() },
            events: JoinableThread(name: "zpubd-events", stackSize: 256 << 10) { eventReader.run() }
        )
        _ = loop.started.wait(milliseconds: 10_000)
        if let pairLink {
            let mailbox = pairLink.mailbox
            // The peer's replies are JSON, which Foundation decodes recursively, up to 512
            // levels deep: more than the default 1 MiB stack is sure to hold (a review).
            pair = (mailbox, JoinableThread(name: "zpubd-pair", stackSize: 8 << 20) { pairLink.run() })
        } else {
            pair = nil
        }
    }

    /// The history database's name in the state directory.
    public static let historyFileName = HistoryStore.fileName
    /// The longest a RELOAD on the control socket waits for the reload's outcome before it is
    /// answered "did not finish" (the reload itself waits at most 10 s for each thread).
    public static let reloadTimeoutMilliseconds: UInt64 = 60_000

    /// The control API (STATS, HEALTH, SNAPSHOT, ...) for callers in this process, such as the
    /// HTTP gateway: the same typed requests and replies the control socket serves.
    public var control: any BrokerControl { responder }

    /// Whether libzmq accepts ZMQ_XPUB_MANUAL_LAST_VALUE (draft-marked in 4.3.4's headers, but
    /// accepted by Debian's build). Leaves the socket in plain manual mode either way.
    private static func probeManualLastValue(_ xpub: Socket) -> Bool {
        let supported = (try? xpub.setOption(.xpubManualLastValue, 1)) != nil
        try? xpub.setOption(.xpubManualLastValue, 0)
        try? xpub.setOption(.xpubManual, 1)
        return supported
    }

    /// The endpoints actually bound, per role, with wildcard ports resolved.
    public var boundEndpoints: [String: [String]] { registry.all() }

    /// The endpoints a socket will be bound to once a change held back is made, per role: the
    /// control socket's, while a reload that changes them waits for its RELOAD's reply to be
    /// sent (unbinding ends the connection that reply goes to).
    public var heldEndpoints: [String: [String]] { registry.allHeld() }

    /// Applies a new configuration to the running broker: limits, socket options, endpoints
    /// added and removed. Refused, with nothing changed, when the forwarding loop cannot bind an
    /// endpoint or connect an upstream the file names; the control socket's endpoints are
    /// changed after that, all or none, and a failure there is a problem of a reload otherwise
    /// in force.
    public func reload(_ configuration: BrokerConfiguration, security: SecurityMaterial = .none) -> ReloadOutcome {
        let previousPolicies = zap.policies.withLock { $0 }
        var policies = security.policies
        // [ha] is read at start, its link's keys too: the peer keeps the policy it started with.
        policies["pair"] = previousPolicies["pair"]
        // Before any new endpoint is bound: none of them ever meets the old rules.
        zap.update(policies)
        // ZAP checks a connection at its handshake only: where the lists no longer let in every
        // client they did, the socket's endpoints are bound again and its clients checked anew.
        let revoked = Set(
            BrokerSocketRole.allCases.filter { role in
                !(policies[role.rawValue] ?? .open).admitsEveryClientOf(
                    previousPolicies[role.rawValue] ?? .open, curve: configuration.security(for: role).curve)
            })
        let serverKey = security.serverKeyPair?.secretKey
        let loopSlot = ReplySlot<ReloadOutcome>()
        loop.post(.reconfigure(configuration, serverKey: serverKey, revoked: revoked, loopSlot))
        var problems: [BrokerError] = []
        switch loopSlot.wait(milliseconds: 10_000) {
        case .refused(let reason):
            zap.update(previousPolicies)
            return .refused(reason)
        case .applied(let loopProblems):
            problems += loopProblems
        case nil where loop.stopped.load(ordering: .acquiring):
            zap.update(previousPolicies)
            return .refused(
                BrokerError(
                    code: .threadFailed,
                    message: "zpubd is stopping: its forwarding loop has stopped, and applies nothing more"))
        case nil:
            problems.append(
                BrokerError(
                    code: .threadFailed,
                    message:
                        "the forwarding loop did not apply the new configuration within 10 s; it applies it when it gets to it (or refuses it, and logs why)"
                ))
        }
        let controlSlot = ReplySlot<[BrokerError]>()
        controlMailbox.post(
            .reconfigure(configuration, serverKey: serverKey, revoked: revoked.contains(.control), controlSlot))
        if let controlFailures = controlSlot.wait(milliseconds: 10_000) {
            problems += controlFailures
        } else {
            // Its endpoint changes (if any) apply when it gets to them; their failures are lost.
            problems.append(
                BrokerError(
                    code: .threadFailed,
                    message:
                        "the control socket's thread did not apply the new configuration within 10 s (a slow request?); it applies it when it is free, and CONFIG then shows it"
                ))
        }
        return .applied(problems: problems)
    }

    /// Graceful shutdown: the loop forwards what producers already sent (up to
    /// `shutdown_drain_ms`), closes its sockets with the configured linger; then the control
    /// server stops and the context is terminated. Returns when all is closed.
    ///
    /// `whenForwardingHasStopped` runs once the loop has closed its sockets, while the control
    /// server still answers and before the context's end, which waits for every socket on it:
    /// there the HTTP gateway, a subscriber over inproc, stops. Stopped before, its clients lost
    /// every message of the drain, and its /healthz never said "stopping".
    public func stop(whenForwardingHasStopped: () -> Void = {}) {
        let alreadyStopped = stopped.withLock { stopped in
            defer { stopped = true }
            return stopped
        }
        guard !alreadyStopped else { return }
        loop.stopAsked.store(true, ordering: .releasing)
        // The pair link keeps its heartbeats up while the loop drains (it forwards and numbers
        // until then): stopped first, the peer took over meanwhile, and both were active. It
        // takes over nothing from now on.
        pair?.link.post(.drain)
        loop.descriptorGuard.stop()
        threads.guard.join()
        loop.post(.stop)
        threads.loop.join()
        if let pair {
            // An active broker first waits (briefly) for its passive peer to have mirrored the
            // last messages it numbered (`PairLink.handOverMilliseconds`): they are in its
            // history only until then, and a takeover would skip them.
            pair.link.post(.stop(lastSequence: loop.lastSequenceGiven.load(ordering: .relaxed)))
            pair.thread.join()
            // From here the peer may take over (at once on the goodbye the pair link said as it
            // closed, or after `failover_ms` of silence): this broker forwards nothing more. Said, because the rest of the shutdown (the history's last
            // writes, on a slow disk) can outlast that, and the takeover then comes while the
            // process still runs.
            logger.notice("forwarding has stopped; no longer reporting to the pair's peer, which may take over")
        }
        // After the pair's hand-over, which its peer's takeover waits for: the gateway's
        // goodbyes can take seconds.
        whenForwardingHasStopped()
        // After the loop has closed the sockets they watch: their last events are read.
        eventReaderStop.post(true)
        threads.events.join()
        // After the loop's drain: everything it handed over is written before the store closes.
        history?.mailbox.post(.stop)
        historyThread?.join()
        controlMailbox.post(.stop)
        threads.control.join()
        zap.mailbox.post(true)
        threads.zap.join()
        let terminating = SystemClock.monotonicNanoseconds()
        context.terminate()
        warnIfTheLingerRanOut(terminating: terminating)
        // Last: its users (the loop, the pair link) have stopped, and a PID 1 that reads
        // nothing holds only this.
        relay.finish()
    }

    /// libzmq drops, without a word, what a socket still holds for its peers when the linger
    /// ends. The context's end waits for that: when it waited until the linger was over, a
    /// peer had not taken everything, most often a subscriber too slow for its backlog (a
    /// walkthrough's consumer lost 1,680 messages at a restart, and the log said nothing).
    private func warnIfTheLingerRanOut(terminating: UInt64) {
        let now = SystemClock.monotonicNanoseconds()
        let closed = loop.socketsClosedNanoseconds.load(ordering: .acquiring)
        let linger = loop.lingerAtCloseMilliseconds.load(ordering: .relaxed)
        // The linger runs from the close: when the steps since (a pair's hand-over, the
        // gateway's goodbyes) took longer, the context's end cannot tell, and says nothing.
        let lingerNanoseconds = UInt64(linger) * 1_000_000
        guard linger > 0, closed > 0, terminating &- closed < lingerNanoseconds, now &- terminating >= 5_000_000,
            now &- closed + 2_000_000 >= lingerNanoseconds
        else { return }
        logger.warning(
            "linger_ms (\(linger) ms) ran out while zpubd still held messages for subscribers (most likely one too slow to take its backlog): those were dropped at exit. A subscriber that replays from history when its connection comes back (zpub sub --since, docs/history.md) gets the kept ones again; a longer linger_ms waits longer for the others"
        )
    }

    /// A second SIGTERM or SIGINT while `stop` runs: the loop's drain ends now, and what
    /// producers still have queued is dropped with its sockets (closed with the linger as
    /// always).
    public func endDrain() {
        loop.post(.endDrain)
    }

    /// Test hook: makes the forwarding loop block for a while, as a hung loop would.
    /// Asked while a stall holds the loop, it ends that stall instead.
    public func stallForwardingLoop(milliseconds: Int) {
        let (released, _) = loop.stall.compareExchange(
            expected: ForwardingLoopHandle.stallHeld, desired: ForwardingLoopHandle.stallReleased,
            ordering: .sequentiallyConsistent)
        if released { return }
        loop.post(.stall(milliseconds: milliseconds))
    }

    /// Test hook: makes the history writer block for a while, as one on a stalled disk would.
    public func stallHistoryWriter(milliseconds: Int) {
        history?.mailbox.post(.stall(milliseconds: milliseconds))
    }
}
