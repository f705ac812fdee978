import Logging
import Systemd
import ZPubCore
import ZeroMQ

/// zpubd's broker: binds the four sockets, runs the forwarding loop and the control server on
/// threads of their own, reloads, and shuts down gracefully.
///
/// Threads and what they own:
/// - the forwarding loop thread: PULL, XSUB, XPUB and all counters and tables;
/// - the control thread: the REP control socket;
/// - the descriptor guard's thread: no socket; it probes the descriptor table (`DescriptorGuard`);
/// - the caller (zpubd's main thread): nothing but this object; it waits for signals.
public final class Broker: @unchecked Sendable {
    /// The broker's libzmq context: components in the same process (the HTTP gateway) join the
    /// broker through it, over the always-bound `InternalEndpoints` (inproc).
    public let context: Context
    private let loop: ForwardingLoop
    private let control: ControlServer
    private let registry = EndpointRegistry()
    private let zap: ZAPHandler
    private var zapThread: JoinableThread?
    private let logger: Logger
    private var loopThread: JoinableThread?
    private var controlThread: JoinableThread?
    private var descriptorGuardThread: JoinableThread?
    private var stopped = false

    /// Creates the sockets and binds every configured endpoint. Throws, with the endpoint and
    /// the reason, if any bind fails; nothing stays bound then.
    ///
    /// `adopted` are listening sockets passed by systemd (socket activation), matched to roles by
    /// name ("pull", "xsub", "xpub", "control"): a role with adopted sockets uses them instead of
    /// its configured endpoints.
    public init(
        configuration: BrokerConfiguration, security: SecurityMaterial = .none, logger: Logger,
        notifier: Notifier = Notifier(), adopted: [ListeningSocket] = []
    ) throws {
        self.logger = logger
        let context = try Context()
        self.context = context
        // The ZAP handler must be bound before any socket with a ZAP domain takes a connection.
        do {
            zap = try ZAPHandler(context: context, policies: security.policies, logger: logger)
        } catch {
            context.terminate()
            throw error
        }
        let sockets: BrokerSockets
        do {
            sockets = try BrokerSockets.make(
                context: context, configuration: configuration, serverKey: security.serverKeyPair?.secretKey,
                adopted: adopted, registry: registry, logger: logger)
        } catch {
            zap.close()
            context.terminate()
            throw error
        }
        let lastValueOnSubscribe = Self.probeManualLastValue(sockets.xpub.socket)
        if !configuration.lastValuePrefixes.isEmpty && !lastValueOnSubscribe {
            logger.warning(
                "this libzmq refuses ZMQ_XPUB_MANUAL_LAST_VALUE: new subscribers will not get cached last values when they subscribe; SNAPSHOT still serves them"
            )
        }
        let loop = ForwardingLoop(
            pull: sockets.pull.socket, xsub: sockets.xsub.socket, xpub: sockets.xpub.socket,
            endpoints: (sockets.pull.endpoints, sockets.xsub.endpoints, sockets.xpub.endpoints),
            monitors: sockets.monitors, lastValueOnSubscribe: lastValueOnSubscribe,
            configuration: configuration, registry: registry, logger: logger, notifier: notifier)
        self.loop = loop
        self.control = ControlServer(
            socket: sockets.control.socket, endpoints: sockets.control.endpoints, configuration: configuration,
            loop: loop, registry: registry, zap: zap, logger: logger, startNanoseconds: Clock.monotonicNanoseconds())
    }

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

    /// Starts the forwarding loop and the control server; returns once the loop is running.
    public func start() {
        let loop = self.loop
        let control = self.control
        let zap = self.zap
        zapThread = JoinableThread(name: "zpubd-zap") { zap.run() }
        loopThread = JoinableThread(name: "zpubd-forward") { loop.run() }
        controlThread = JoinableThread(name: "zpubd-control") { control.run() }
        let descriptorGuard = loop.descriptorGuard
        descriptorGuardThread = JoinableThread(name: "zpubd-fdguard", stackSize: 256 << 10) { descriptorGuard.run() }
        _ = loop.started.wait(milliseconds: 10_000)
    }

    /// Applies a new configuration to the running broker: limits, socket options for new
    /// connections, endpoints added and removed. Returns the binds that failed (the rest of the
    /// configuration is in force).
    public func reload(_ configuration: BrokerConfiguration, security: SecurityMaterial = .none) -> [BrokerError] {
        zap.update(security.policies)
        let serverKey = security.serverKeyPair?.secretKey
        let loopSlot = ReplySlot<[BrokerError]>()
        loop.mailbox.post(.reconfigure(configuration, serverKey: serverKey, loopSlot))
        let controlSlot = ReplySlot<[BrokerError]>()
        control.mailbox.post(.reconfigure(configuration, serverKey: serverKey, controlSlot))
        var failures: [BrokerError] = []
        if let loopFailures = loopSlot.wait(milliseconds: 10_000) {
            failures += loopFailures
        } else {
            failures.append(
                BrokerError(
                    code: .threadFailed, message: "the forwarding loop did not apply the new configuration within 10 s")
            )
        }
        failures += controlSlot.wait(milliseconds: 10_000) ?? []
        return failures
    }

    /// Graceful shutdown: the loop forwards what producers already sent (up to
    /// `shutdown_drain_ms`), closes its sockets with the configured linger; then the control
    /// server stops and the context is terminated. Returns when all is closed.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        loop.descriptorGuard.stop()
        descriptorGuardThread?.join()
        loop.mailbox.post(.stop)
        loopThread?.join()
        control.mailbox.post(.stop)
        controlThread?.join()
        zap.mailbox.post(true)
        zapThread?.join()
        context.terminate()
    }

    /// Test hook: makes the forwarding loop block for a while, as a hung loop would.
    public func stallForwardingLoop(milliseconds: Int) {
        loop.mailbox.post(.stall(milliseconds: milliseconds))
    }
}
