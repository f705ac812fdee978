import ArgumentParser
import Logging
import Synchronization
import Systemd
import ZPubBroker
import ZPubCore
import ZPubGateway

#if canImport(Glibc)
    import Glibc
#endif

/// zpubd's services, and their order in one place: started broker first, then the HTTP
/// gateway (which joins the broker over inproc); reloaded in that order; the gateway stopped
/// inside the broker's stop, once the broker has drained.
struct Services {
    let broker: Broker
    /// When [http] is on (docs/http.md).
    let gateway: HTTPGateway?
    /// Started on sockets systemd passed: under zpubd-activated.service, with no network.
    let socketActivated: Bool
    /// What a reload cannot change: kept at every reload, and a warning for each change.
    let startOnly: StartOnlySettings

    /// Set when the pair demoted this broker: zpubd then exits with `demotedExitStatus`.
    static let demoted = Atomic<Bool>(false)
    /// EX_TEMPFAIL: a failure for systemd, which restarts the broker.
    static let demotedExitStatus: Int32 = 75

    /// Starts the broker (on the sockets systemd passed, if any), then the gateway. On failure,
    /// what started is stopped, the reason is logged, and zpubd exits with status 1.
    static func start(
        _ configuration: BrokerConfiguration, security: SecurityMaterial, gatewayKeys: GatewayKeys,
        notifier: NotifyRelay, reloadHandler: @escaping ReloadHandler,
        reloadTimeoutMilliseconds: UInt64, hasConfigurationFile: Bool, logger: Logger
    ) throws -> Services {
        let adopted = SocketActivation.listeningSockets()
        for socket in adopted {
            logger.info(
                "adopting a listening socket passed by systemd",
                metadata: ["socket": "\(socket.name)", "endpoint": "\(socket.endpoint ?? "?")"])
        }
        if configuration.pair.isEnabled, let socket = adopted.first(where: { $0.name == "pull" || $0.name == "xsub" }) {
            logger.critical(
                "[ha] cannot use the \(socket.name) socket systemd passed: a passive broker must not listen for producers; run the pair with zpubd.service, not zpubd-activated.service (docs/topologies.md)"
            )
            throw ExitCode(78)
        }
        let broker: Broker
        do {
            for warning in security.warnings { logger.warning("\(warning)") }
            broker = try Broker(
                configuration: configuration, security: security, logger: logger, notifier: notifier, adopted: adopted,
                reloadHandler: reloadHandler, reloadTimeoutMilliseconds: reloadTimeoutMilliseconds,
                hasConfigurationFile: hasConfigurationFile,
                onDemoted: {
                    // One of a pair that must give up being active: stop as on SIGTERM, with a
                    // status that makes systemd (Restart=on-failure) start it again as passive.
                    Services.demoted.store(true, ordering: .relaxed)
                    kill(getpid(), SIGTERM)
                })
        } catch let error as BrokerError {
            logger.critical("\(error)", metadata: error.endpoint.map { ["endpoint": "\($0)"] } ?? [:])
            throw ExitCode(error.exitStatus ?? 1)
        } catch {
            logger.critical("cannot start: \(error)", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        do {
            return Services(
                broker: broker,
                gateway: try startGateway(configuration, keys: gatewayKeys, broker: broker, logger: logger),
                socketActivated: !adopted.isEmpty, startOnly: StartOnlySettings(configuration))
        } catch {
            broker.stop()
            // Socket-activated (zpubd-activated.service: no network of its own, Unix sockets
            // only), the gateway can never listen: said, and not restarted every second.
            guard adopted.isEmpty else {
                logger.critical(
                    "\(error); zpubd was started by socket activation, and under zpubd-activated.service it has no network of its own, so the HTTP gateway cannot listen there: run zpubd.service for the gateway, or set [http] enabled = false"
                )
                throw ExitCode(78)
            }
            logger.critical("\(error)")
            throw ExitCode(1)
        }
    }

    /// The HTTP gateway, when [http] is on: it joins the broker over inproc with the broker's
    /// context and asks its typed control API.
    private static func startGateway(
        _ configuration: BrokerConfiguration, keys: GatewayKeys, broker: Broker, logger: Logger
    ) throws -> HTTPGateway? {
        guard configuration.http.enabled else { return nil }
        let gateway = try HTTPGateway(
            settings: configuration.http, keys: keys, maxPrefixLength: configuration.maxSubscriptionLength,
            maxMessageSize: configuration.maxMessageSize, maxSubscriptions: configuration.maxSubscriptions,
            historyPrefixes: configuration.historyPrefixes,
            lastValuePrefixes: configuration.lastValuePrefixes,
            // In memory and alone, history numbers from 1 again at each start; a pair's
            // passive broker lags its peer's numbers, which is no restart (a review).
            historyNumberingRestarts: configuration.stateDirectory == nil && !configuration.pair.isEnabled,
            context: broker.context, control: broker.control, logger: logger)
        let scheme = keys.servesTLS ? "https" : "http"
        let summary = keys.summary.isEmpty ? "" : " (\(keys.summary))"
        logger.notice(
            "http gateway listening on \(scheme)://\(gateway.localAddress)/\(summary)",
            metadata: ["endpoint": "\(scheme)://\(gateway.localAddress)"])
        warnIfOperatorPagesAreOpen(configuration.http, listening: gateway.localAddress, logger: logger)
        // Its browsers vote for a pair's takeover, as subscribers do (docs/topologies.md).
        broker.clientsElsewhere.count { gateway.clientCount }
        return gateway
    }

    /// `listening`: the address in force (a reload's new `listen` waits for a restart).
    private static func warnIfOperatorPagesAreOpen(_ settings: HTTPSettings, listening: String, logger: Logger) {
        if (!settings.tokens.isEmpty || settings.usesJWT) && settings.operatorToken == nil {
            logger.warning(
                "[http] has tokens or JWT keys but no operator_token: /, /watch, /status/events, /stats and /metrics show every topic and subscription name to anyone who can reach the port; set operator_token (docs/http.md, \"Access\")"
            )
        }
        let open = settings.openPublishPrefixes
        if !open.isEmpty, !Endpoint.isLoopbackOnly("tcp://" + listening) {
            // As the ZeroMQ sockets' warnings for an endpoint beyond loopback (a walkthrough,
            // 2026-12-07: a gateway on 0.0.0.0 with publish_prefixes [""] said nothing).
            logger.warning(
                "[http] listens on \(listening), beyond this machine, and anyone who reaches it may publish under \(open.map { "\"\($0)\"" }.joined(separator: ", ")) without a token: give those prefixes a token in tokens, or use JWT keys (allow_anonymous = false), or listen on 127.0.0.1 behind a proxy that checks (docs/http.md, \"Access\")"
            )
        }
    }

    /// Applies a validated configuration: the broker's, then [http] (without dropping its
    /// clients; what needs a restart is logged). Keys read at start keep their values, so that
    /// CONFIG shows what is in force. Returns the broker's outcome, and the keys whose change
    /// waits for a restart (`notApplied`: the file is not wholly in force, which RELOAD says).
    func reload(
        _ reloaded: BrokerConfiguration, security: SecurityMaterial, gatewayKeys: GatewayKeys, logger: Logger
    ) -> (outcome: ReloadOutcome, notApplied: [String]) {
        let (configuration, startOnlyWarnings) = startOnly.keep(in: reloaded)
        let outcome = broker.reload(configuration, security: security)
        if case .refused = outcome { return (outcome, []) }
        // Only for a reload that is applied: a refused one changes nothing to warn about.
        for warning in startOnlyWarnings { logger.warning("\(warning)") }
        var gatewayNotes: [String] = []
        if let gateway {
            // What the gateway keeps until a restart (its history prefixes' numbering) is not in
            // force either: RELOAD says so, as for the broker's keys read at start.
            gatewayNotes = gateway.reload(
                configuration.http, keys: gatewayKeys, maxPrefixLength: configuration.maxSubscriptionLength,
                maxMessageSize: configuration.maxMessageSize, maxSubscriptions: configuration.maxSubscriptions,
                historyPrefixes: configuration.historyPrefixes,
                lastValuePrefixes: configuration.lastValuePrefixes)
            for note in gatewayNotes { logger.warning("\(note)") }
            Self.warnIfOperatorPagesAreOpen(configuration.http, listening: gateway.localAddress, logger: logger)
        }
        return (outcome, startOnlyWarnings + gatewayNotes)
    }

    /// The files [http] names, read at start (with --check-config too) and before a reload
    /// applies anything, whenever [http] is on: also while the gateway waits for a restart to
    /// start, so that a file it could not use refuses the reload instead of that restart.
    /// Throws `GatewayError`, which refuses the start (status 78) or the reload.
    static func loadGatewayKeys(_ configuration: BrokerConfiguration) throws -> GatewayKeys {
        guard configuration.http.enabled else { return .none }
        return try GatewayKeys.load(configuration.http)
    }

    /// Graceful shutdown: the broker drains what producers already sent while the gateway
    /// still serves (its clients get the drain's messages, and its /healthz says "stopping");
    /// then the gateway's connections close, and the rest of the broker stops.
    func stop() {
        broker.stop(whenForwardingHasStopped: { gateway?.stop() })
    }
}
