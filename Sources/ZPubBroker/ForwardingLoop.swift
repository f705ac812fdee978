import Logging
import Synchronization
import Systemd
import ZPubCore
import ZeroMQ

/// What the forwarding loop can be asked to do, from other threads, through its mailbox.
enum LoopCommand: Sendable {
    /// Send back a copy of the broker's state (cheap: the tables are copy-on-write).
    case snapshot(ReplySlot<BrokerState>)
    /// Stop or restart reading producers' sockets; messages wait in libzmq's queues meanwhile.
    case setPaused(Bool, ReplySlot<Bool>)
    /// Apply a reloaded configuration: limits, socket options, endpoints. Replies with what
    /// could not be bound.
    case reconfigure(BrokerConfiguration, ReplySlot<[BrokerError]>)
    /// Forward what producers already sent (for up to `shutdown_drain_ms`), then return.
    case stop
    /// Test hook: block the loop for this long, as a hung loop would (see `ZPUBD_TEST_HOOKS`).
    case stall(milliseconds: Int)
}

/// The heart of the broker. Runs on its own thread and owns the PULL, XSUB and XPUB sockets
/// and the `BrokerState`; nothing else touches them.
///
/// Each iteration polls the three sockets and the mailbox, then moves bounded bursts:
/// data messages PULL/XSUB -> XPUB (every frame, whole and unchanged) and subscription frames
/// XPUB -> XSUB. Every socket call is non-blocking: XPUB drops for a subscriber whose queue is
/// full instead of waiting, so a slow or vanished subscriber costs the others nothing. In the
/// steady state an iteration allocates nothing: one reusable `Message`, counters updated in place.
final class ForwardingLoop: @unchecked Sendable {
    /// At most this many messages from one socket per iteration, so that one busy producer
    /// socket cannot starve the others or the mailbox.
    static let burst = 512

    private let pull: Socket
    private let xsub: Socket
    private let xpub: Socket
    private var pullEndpoints: BoundEndpoints
    private var xsubEndpoints: BoundEndpoints
    private var xpubEndpoints: BoundEndpoints
    private var configuration: BrokerConfiguration
    private var state: BrokerState
    private let logger: Logger
    private let notifier: Notifier
    private let registry: EndpointRegistry
    /// PAIR sockets receiving connection events of PULL, XSUB and XPUB (`zmq_socket_monitor`).
    private let monitors: [(role: BrokerSocketRole, socket: Socket)]
    let mailbox = Mailbox<LoopCommand>()
    /// Set once the loop is running: the daemon tells systemd READY=1 only after that.
    let started = ConditionFlag()
    private let message = Message()

    /// Monotonic time of the last completed iteration, read by HEALTH on another thread.
    let lastIterationNanoseconds = Atomic<UInt64>(0)

    private var nowMilliseconds: UInt64 = 0
    private var stopRequested = false

    init(
        pull: Socket, xsub: Socket, xpub: Socket,
        endpoints: (pull: BoundEndpoints, xsub: BoundEndpoints, xpub: BoundEndpoints),
        monitors: [(role: BrokerSocketRole, socket: Socket)],
        configuration: BrokerConfiguration, registry: EndpointRegistry, logger: Logger, notifier: Notifier
    ) {
        self.monitors = monitors
        self.registry = registry
        self.pull = pull
        self.xsub = xsub
        self.xpub = xpub
        self.pullEndpoints = endpoints.pull
        self.xsubEndpoints = endpoints.xsub
        self.xpubEndpoints = endpoints.xpub
        self.configuration = configuration
        self.state = BrokerState(configuration: configuration)
        self.logger = logger
        self.notifier = notifier
        lastIterationNanoseconds.store(Clock.monotonicNanoseconds(), ordering: .relaxed)
    }

    /// Runs until a `.stop` command has been handled; then closes the sockets (lingering as
    /// configured). Call on the loop's own thread.
    func run() {
        var poller = Poller()
        let pullIndex = poller.add(pull)
        let xsubIndex = poller.add(xsub)
        let xpubIndex = poller.add(xpub)
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        let monitorIndexes = monitors.map { poller.add($0.socket) }

        // The watchdog is pinged from here, and only here: if this loop hangs, the pings stop and
        // systemd restarts the daemon.
        let watchdogNanoseconds = notifier.watchdogIntervalMicroseconds().map { $0 * 1_000 }
        var lastWatchdogPing: UInt64 = 0
        let pollTimeout = watchdogNanoseconds.map { max(1, min(500, Int($0 / 4_000_000))) } ?? 500

        // STATUS= for `systemctl status`, refreshed every second while systemd listens.
        let reportsStatus = notifier.isActive
        var lastStatus = Clock.monotonicNanoseconds()
        var lastStatusCounts: (in: UInt64, out: UInt64) = (0, 0)

        var drainDeadline: UInt64 = 0
        started.signal()
        while true {
            let ready: Int
            do {
                ready = try poller.poll(timeoutMilliseconds: stopRequested ? 100 : pollTimeout)
            } catch {
                logger.critical("forwarding loop cannot poll: \(error)")
                break
            }
            nowMilliseconds = Clock.wallMilliseconds()
            let now = Clock.monotonicNanoseconds()
            lastIterationNanoseconds.store(now, ordering: .relaxed)
            if let interval = watchdogNanoseconds, now &- lastWatchdogPing >= interval / 2 {
                notifier.watchdogPing()
                lastWatchdogPing = now
            }

            if reportsStatus && now &- lastStatus >= 1_000_000_000 {
                notifier.status(
                    state.statusLine(
                        previousIn: lastStatusCounts.in, previousOut: lastStatusCounts.out,
                        seconds: Double(now &- lastStatus) / 1e9))
                lastStatus = now
                lastStatusCounts = (state.pull.messagesIn &+ state.xsub.messagesIn, state.xpub.messagesOut)
            }

            for (position, index) in monitorIndexes.enumerated() where poller.isReadable(index) {
                handleMonitorEvents(monitors[position])
            }
            if poller.isReadable(xpubIndex) { handleSubscriptions() }
            if !state.paused {
                if poller.isReadable(pullIndex) { forwardBurst(from: pull, role: .pull) }
                if poller.isReadable(xsubIndex) { forwardBurst(from: xsub, role: .xsub) }
            }
            if poller.isReadable(mailboxIndex) {
                let wasStopping = stopRequested
                handleCommands()
                if stopRequested && !wasStopping {
                    drainDeadline = now + UInt64(configuration.shutdownDrainMilliseconds) * 1_000_000
                    state.paused = false
                    poller.setWatching(pullIndex, true)
                    poller.setWatching(xsubIndex, true)
                    continue
                }
                poller.setWatching(pullIndex, !state.paused)
                poller.setWatching(xsubIndex, !state.paused)
            }
            // Draining: done once producers' sockets have been quiet for a poll, or at the deadline.
            if stopRequested && (ready == 0 || now >= drainDeadline) { break }
        }
        closeSockets()
    }

    // MARK: Data: PULL / XSUB -> XPUB

    @inline(__always)
    private func forwardBurst(from source: Socket, role: BrokerSocketRole) {
        do {
            for _ in 0..<Self.burst {
                guard try source.receive(into: message, dontWait: true) else { return }
                try forwardMessage(from: source, role: role)
            }
        } catch {
            logger.error("forwarding from \(role.rawValue) failed: \(error)")
        }
    }

    /// Moves one whole message, whose first frame is already in `message`, to XPUB.
    @inline(__always)
    private func forwardMessage(from source: Socket, role: BrokerSocketRole) throws {
        var bytes = message.count
        var more = message.hasMore
        let accounting = state.topicAccounting
        let topicIndex =
            accounting ? message.withUnsafeBytes { state.recordTopic($0, nowMilliseconds: nowMilliseconds) } : nil
        // XPUB does not block and, without XPUB_NODROP, does not refuse; if it ever does, the
        // rest of the message must still be read so the next message starts at a first frame.
        var sending = try xpub.send(message, more: more, dontWait: true)
        while more {
            _ = try source.receive(into: message)
            bytes += message.count
            more = message.hasMore
            if sending { sending = try xpub.send(message, more: more, dontWait: true) }
        }
        let size = UInt64(bytes)
        if role == .pull {
            state.pull.messagesIn &+= 1
            state.pull.bytesIn &+= size
        } else {
            state.xsub.messagesIn &+= 1
            state.xsub.bytesIn &+= size
        }
        if accounting { state.topics.addBytes(size, at: topicIndex) }
        if sending {
            state.xpub.messagesOut &+= 1
            state.xpub.bytesOut &+= size
        } else {
            state.sendFailures &+= 1
        }
    }

    // MARK: Subscriptions: XPUB -> XSUB

    private func handleSubscriptions() {
        do {
            for _ in 0..<Self.burst {
                guard try xpub.receive(into: message, dontWait: true) else { return }
                state.xpub.messagesIn &+= 1
                state.xpub.bytesIn &+= UInt64(message.count)
                if message.hasMore {
                    // Not a subscription: subscribers have nothing else to say. Discard it whole.
                    while message.hasMore { _ = try xpub.receive(into: message) }
                    continue
                }
                switch message.firstByte {
                case 1: try subscribe()
                case 0: try unsubscribe()
                default: continue  // an empty or unknown frame from an XSUB-style peer: ignored
                }
            }
        } catch {
            logger.error("handling subscriptions failed: \(error)")
        }
    }

    private func subscribe() throws {
        let outcome = message.withUnsafeBytes { frame in
            let prefix = UnsafeRawBufferPointer(rebasing: frame[1...])
            let outcome = state.subscriptions.subscribe(prefix)
            if case .accepted = outcome {
                // XPUB_MANUAL: the subscription takes effect for the subscriber it came from only
                // when the broker applies it here.
                try? xpub.setOption(.subscribe, bytes: prefix)
            }
            return outcome
        }
        switch outcome {
        case .accepted(isNewPrefix: true):
            try forwardUpstream()
        case .accepted(isNewPrefix: false):
            break
        case .refusedTooLong:
            logger.warning(
                "refused a subscription of \(message.count - 1) bytes: longer than max_subscription_length (\(state.subscriptions.maxPrefixLength))"
            )
        case .refusedTableFull:
            logger.warning(
                "refused a subscription: the table holds max_subscriptions (\(state.subscriptions.maxPrefixes)) prefixes; raise the limit in [limits]"
            )
        }
    }

    private func unsubscribe() throws {
        let outcome = message.withUnsafeBytes { frame in
            let prefix = UnsafeRawBufferPointer(rebasing: frame[1...])
            // Harmless when the subscriber is gone (libzmq then has no "last pipe").
            try? xpub.setOption(.unsubscribe, bytes: prefix)
            return state.subscriptions.unsubscribe(prefix)
        }
        if outcome == .removed(wasLast: true) { try forwardUpstream() }
    }

    /// Sends the subscription frame in `message` to the publishers on XSUB. Only the first
    /// subscribe and the last unsubscribe of a prefix go upstream: publishers see one subscriber,
    /// the broker.
    private func forwardUpstream() throws {
        let size = UInt64(message.count)
        if try xsub.send(message, dontWait: true) {
            state.xsub.messagesOut &+= 1
            state.xsub.bytesOut &+= size
        }
    }

    // MARK: Connection events

    private func handleMonitorEvents(_ monitor: (role: BrokerSocketRole, socket: Socket)) {
        while let event = try? monitor.socket.readMonitorEvent() {
            let metadata: Logger.Metadata = ["socket": "\(monitor.role.rawValue)", "endpoint": "\(event.endpoint)"]
            if event.event.contains(.accepted) || event.event.contains(.connected) {
                state.peerChanged(monitor.role, by: 1)
                logger.debug("peer connected", metadata: metadata)
            } else if event.event.contains(.disconnected) {
                state.peerChanged(monitor.role, by: -1)
                logger.debug("peer disconnected", metadata: metadata)
            } else if !event.event.intersection(.handshakeFailed).isEmpty {
                state.handshakeFailures &+= 1
                logger.info("a peer failed the ZeroMQ handshake and was dropped", metadata: metadata)
            }
        }
    }

    // MARK: Commands

    private func handleCommands() {
        for command in mailbox.take() {
            switch command {
            case .snapshot(let slot):
                slot.fulfill(state)
            case .setPaused(let paused, let slot):
                if paused != state.paused {
                    logger.notice(paused ? "forwarding paused" : "forwarding resumed")
                }
                state.paused = paused
                slot.fulfill(paused)
            case .reconfigure(let newConfiguration, let slot):
                slot.fulfill(reconfigure(newConfiguration))
            case .stop:
                stopRequested = true
            case .stall(let milliseconds):
                logger.warning("test hook: stalling the forwarding loop for \(milliseconds) ms")
                usleep(UInt32(milliseconds) * 1_000)
            }
        }
    }

    private func reconfigure(_ newConfiguration: BrokerConfiguration) -> [BrokerError] {
        configuration = newConfiguration
        state.apply(newConfiguration)
        var failures: [BrokerError] = []
        for (role, socket) in [(BrokerSocketRole.pull, pull), (.xsub, xsub), (.xpub, xpub)] {
            do {
                try SocketSetup.applyOptions(to: socket, role: role, configuration: newConfiguration)
            } catch {
                logger.error("cannot apply socket options to \(role.rawValue): \(error)")
            }
        }
        failures += pullEndpoints.reconcile(with: newConfiguration.pullEndpoints, on: pull, logger: logger)
        failures += xsubEndpoints.reconcile(with: newConfiguration.xsubEndpoints, on: xsub, logger: logger)
        failures += xpubEndpoints.reconcile(with: newConfiguration.xpubEndpoints, on: xpub, logger: logger)
        registry.set(.pull, pullEndpoints.actual)
        registry.set(.xsub, xsubEndpoints.actual)
        registry.set(.xpub, xpubEndpoints.actual)
        return failures
    }

    private func closeSockets() {
        let linger = Int32(configuration.lingerMilliseconds)
        for socket in [pull, xsub, xpub] {
            try? socket.setOption(.linger, linger)
            socket.close()
        }
        for monitor in monitors { monitor.socket.close() }
        logger.info(
            "forwarding stopped",
            metadata: [
                "messages_in": "\(state.pull.messagesIn &+ state.xsub.messagesIn)",
                "messages_out": "\(state.xpub.messagesOut)",
            ])
    }
}

#if canImport(Glibc)
    import Glibc
#endif
