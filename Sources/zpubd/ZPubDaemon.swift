import ArgumentParser
import CHangupDeferral
import Logging
import Systemd
import ZPubBroker
import ZPubCore
import ZPubGateway
import ZPubStore
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// zpubd: parse the command line, load the configuration, run the broker until SIGTERM.
@main
struct ZPubDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zpubd",
        abstract: "A ZeroMQ pub/sub broker: producers PUSH or PUB in, subscribers SUB out.",
        discussion: """
            Without --config, zpubd runs with its embedded defaults (loopback only):
              control tcp://127.0.0.1:5555   xpub tcp://127.0.0.1:5556
              pull    tcp://127.0.0.1:5557   xsub tcp://127.0.0.1:5558

            Endpoint flags replace that socket's endpoints from the file. SIGHUP reloads \
            the file; SIGTERM or SIGINT shuts down gracefully. Exit status: 0 after a \
            clean stop, 1 when a socket cannot be bound, 78 for a bad configuration, 64 \
            for a bad command line, 73 when the state directory cannot be created or written, 74 when the history \
            in it is in use or damaged, 75 when one of a pair must give up being active.
            """,
        version: ZPubVersion.current
    )

    @Option(name: .long, help: ArgumentHelp("Read the configuration from this file.", valueName: "file"))
    var config: String?

    @Flag(
        name: .long,
        help: "Check the configuration, print every problem with its line, and exit (0 if valid, 1 if not).")
    var checkConfig = false

    @Option(
        name: .long,
        help: ArgumentHelp("Bind the PULL socket (producers PUSH here); repeatable.", valueName: "endpoint"))
    var pull: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("Bind the XSUB socket (publishers PUB here); repeatable.", valueName: "endpoint"))
    var xsub: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("Bind the XPUB socket (subscribers SUB here); repeatable.", valueName: "endpoint"))
    var xpub: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Bind the control socket (REQ clients; it answers as a REP); repeatable.", valueName: "endpoint"))
    var control: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Connect the XSUB socket to an upstream broker's XPUB (or any PUB); repeatable; replaces the file's list.",
            valueName: "endpoint"))
    var upstream: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Keep the last message of topics under this prefix for late joiners; repeatable; replaces the file's list.",
            valueName: "prefix"))
    var lastValue: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Keep every message under this prefix, with a sequence number, for replay; repeatable; replaces the file's list.",
            valueName: "prefix"))
    var history: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Keep history and last values in this directory, across restarts (default: in memory only).",
            valueName: "dir"))
    var stateDir: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Run as one of a primary/backup pair: primary or backup (with --ha-bind and --ha-peer).",
            valueName: "role"))
    var haRole: String?

    @Option(
        name: .long, help: ArgumentHelp("This broker's pair endpoint (heartbeats, replication).", valueName: "endpoint")
    )
    var haBind: String?

    @Option(name: .long, help: ArgumentHelp("The other broker's pair endpoint.", valueName: "endpoint"))
    var haPeer: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Log level: \(BrokerConfiguration.logLevels.joined(separator: ", ")).", valueName: "level"))
    var logLevel: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Serve HTTP (WebSocket, SSE, /healthz, /stats, /metrics, a status page) on host:port; turns [http] on.",
            valueName: "host:port"))
    var http: String?

    /// The daemon's whole life, in order: configuration, signals, broker and gateway, then
    /// signals until SIGTERM or SIGINT; shutdown in reverse order.
    func run() throws {
        let loader = ConfigurationLoader(
            path: config,
            overrides: .init(
                pull: pull, xsub: xsub, xpub: xpub, control: control, upstream: upstream, lastValue: lastValue,
                history: history, stateDirectory: stateDir, logLevel: logLevel, http: http, haRole: haRole,
                haBind: haBind, haPeer: haPeer))
        let (configuration, security, gatewayKeys, flagNotes) = try loadOrExit(loader)
        if checkConfig {
            // What a start would refuse of the state directory, without creating it.
            if let problem = stateDirectoryProblem(configuration) {
                printError("zpubd: \(problem)")
                throw ExitCode(1)
            }
            // What a start would warn of the key files (a secret key others can read, an
            // allowed_keys file with no key in it), which the check passed in silence.
            for warning in security.warnings { printError("zpubd: warning: \(warning)") }
            // A warning, not a refusal: systemd's RuntimeDirectory= makes /run/zpub at start and
            // removes it at stop, so a check run while zpubd is stopped would refuse a good file.
            for endpoint in ipcEndpointsWithoutDirectory(configuration) {
                printError(
                    "zpubd: warning: the directory of \(endpoint) does not exist now: a start binds it only once it does (create it, or let the unit's RuntimeDirectory= make it)"
                )
            }
            // What was checked: the file or the embedded defaults, and the options given.
            let source =
                (config ?? "embedded defaults") + (loader.overrides.anyGiven ? " with the command-line options" : "")
            print("\(source): configuration is valid")
            return
        }

        LogLevelSwitch.level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        let logger = DaemonLogging.bootstrap()

        // Signals are taken synchronously by this thread with sigwait; block them before any
        // other thread exists so that every thread inherits the mask. This also makes zpubd
        // independent of the mask its parent left (Foundation's Process blocks them all).
        let signals = SignalSet([SIGTERM, SIGINT, SIGHUP, SIGUSR2])
        signals.block()
        signal(SIGPIPE, SIG_IGN)

        raiseFileDescriptorLimit(logger: logger)
        // Before the ZeroMQ context creates libzmq's epoll sets (Sources/CHangupDeferral).
        if hangup_deferral_enable() == 0 {
            logger.warning(
                "hang-ups are not held back (ZPUBD_HANGUP_DEFERRAL=off, or no memory for its table): a producer or publisher that exits while zpubd's queue for it is full can lose its last messages over ipc, and out of file descriptors libzmq's listeners spin (and an ipc one aborts zpubd) (docs/reliability.md)"
            )
        }
        if let directory = configuration.stateDirectory, !configuration.opensHistoryStore {
            logger.warning(
                "the state directory \(directory) keeps nothing: name [history] prefixes (--history) to keep messages, or [last_value] prefixes (--last-value) to keep their last values across restarts"
            )
        }
        // Ended by the broker's stop, last (`Broker.stop`).
        let notifier = NotifyRelay(Notifier())
        // RELOAD on the control socket is a SIGHUP that waits for its outcome; served from the
        // control socket's first request on.
        let reloadRequests = ReloadRequests()
        let services = try Services.start(
            configuration, security: security, gatewayKeys: gatewayKeys, notifier: notifier,
            reloadHandler: { done in reloadRequests.add(done) },
            reloadTimeoutMilliseconds: Self.testReloadTimeoutSeconds.map { $0 * 1_000 }
                ?? Broker.reloadTimeoutMilliseconds,
            hasConfigurationFile: config != nil, logger: logger)
        let version = Context.libraryVersion
        logger.notice(
            "zpubd \(ZPubVersion.current) (libzmq \(version.major).\(version.minor).\(version.patch)) started",
            metadata: DaemonLogging.endpointMetadata(services.broker.boundEndpoints))
        notifier.announce(.ready(status: "forwarding"))

        let inForce = serveSignals(
            signals, services: services, loader: loader, configuration: configuration, flagNotes: flagNotes,
            notifier: notifier, reloadRequests: reloadRequests, logger: logger)
        // A RELOAD from now on, or one whose SIGHUP was not taken, is answered: no reload comes.
        reloadRequests.close()
        // A second SIGTERM or SIGINT ends the drain at once: under producers that keep sending,
        // a long shutdown_drain_ms was otherwise waited out in full, and only SIGKILL helped.
        let broker = services.broker
        let demotedAlready = Services.demoted.load(ordering: .relaxed)
        _ = JoinableThread(name: "zpubd-signals") {
            while true {
                let received = signals.wait()
                guard received == SIGTERM || received == SIGINT else { continue }
                // Raised by the pair link itself when it demotes this broker: nobody sent it.
                let who =
                    received == SIGTERM && !demotedAlready && Services.demoted.load(ordering: .relaxed)
                    ? "the pair demoted this broker while it stopped"
                    : "received \(received == SIGINT ? "SIGINT" : "SIGTERM") while stopping"
                logger.notice("\(who): the drain ends now, and what producers still have queued is dropped")
                broker.endDrain()
            }
        }
        // The drain and the linger, a pair's hand-over (5 s at most), the gateway's goodbyes
        // (3 s at most) and the history's last commit: more than TimeoutStopSec= when the
        // settings ask for it.
        notifier.announce(
            .stopping(mayTakeMilliseconds: inForce.shutdownDrainMilliseconds + inForce.lingerMilliseconds + 15_000))
        services.stop()
        logger.notice("zpubd stopped")
        if Services.demoted.load(ordering: .relaxed) {
            setAsideDivergedHistory(configuration, logger: logger)
            throw ExitCode(Services.demotedExitStatus)
        }
    }

    /// The configuration and the key material it names (CURVE keys, and the gateway's TLS
    /// certificate and JWT keys), or the reasons on stderr and exit status 78 (EX_CONFIG; 1 with
    /// --check-config).
    private func loadOrExit(_ loader: ConfigurationLoader) throws -> (
        BrokerConfiguration, SecurityMaterial, GatewayKeys, flagNotes: [String]
    ) {
        let configuration: BrokerConfiguration
        var overridden: [String] = []
        switch loader.load(noting: &overridden) {
        case .success(let loaded):
            configuration = loaded
        case .failure(let report):
            printError(report.text)
            throw ExitCode(checkConfig ? 1 : 78)
        }
        let security: SecurityMaterial
        do {
            security = try SecurityMaterial.load(for: configuration)
        } catch {
            printError(error.messages.map { "zpubd: \($0)" }.joined(separator: "\n"))
            throw ExitCode(checkConfig ? 1 : 78)
        }
        do {
            return (configuration, security, try Services.loadGatewayKeys(configuration), overridden)
        } catch {
            printError("zpubd: [http]: \(error)")
            throw ExitCode(checkConfig ? 1 : 78)
        }
    }

    /// With test hooks on (`ZPUBD_TEST_HOOKS`), `ZPUBD_TEST_RELOAD_TIMEOUT_S` shortens how long
    /// RELOAD waits for the reload's outcome, so that a test can see it give up without waiting
    /// a minute.
    private static var testReloadTimeoutSeconds: UInt64? {
        guard getenv("ZPUBD_TEST_HOOKS") != nil, let value = getenv("ZPUBD_TEST_RELOAD_TIMEOUT_S") else { return nil }
        return UInt64(String(cString: value))
    }

    /// Waits for signals: SIGHUP reloads, SIGUSR2 stalls the loop, or ends its stall early (or, with
    /// `ZPUBD_TEST_STALL=history`, the history writer; with `gateway`, it stops or starts
    /// the gateway's reading from the broker) when test hooks are on
    /// (`ZPUBD_TEST_HOOKS`), SIGTERM and SIGINT return (to shut down) the configuration then in
    /// force.
    private func serveSignals(
        _ signals: SignalSet, services: Services, loader: ConfigurationLoader, configuration: BrokerConfiguration,
        flagNotes: [String], notifier: NotifyRelay, reloadRequests: ReloadRequests, logger: Logger
    ) -> BrokerConfiguration {
        let testHooks = getenv("ZPUBD_TEST_HOOKS") != nil
        var current = configuration
        // The start-only keys a reload's answer has told of (`reload`).
        // What the start's flags override, with the file's values then: by design (the packaged
        // unit's --control beside the sample's control key), told only once the file changes
        // (a review: every first `systemctl reload` failed).
        var toldNotApplied = Set(flagNotes)
        while true {
            let received = signals.wait()
            switch received {
            case SIGHUP:
                // Taken first: a RELOAD that comes during this reload waits for the next one,
                // which its own SIGHUP brings, and reads the file as it is then.
                let waiting = reloadRequests.take()
                notifier.announce(.reloading)
                let reply: ControlReply
                (current, reply) = reload(
                    services, loader: loader, current: current, toldNotApplied: &toldNotApplied, logger: logger)
                notifier.announce(.ready(status: "forwarding"))
                for done in waiting { done(reply) }
            case SIGUSR2 where testHooks:
                let milliseconds =
                    Int(getenv("ZPUBD_TEST_STALL_MS").map { String(cString: $0) } ?? "") ?? 3_000
                switch getenv("ZPUBD_TEST_STALL").map({ String(cString: $0) }) {
                // The history writer, as on a stalled disk.
                case "history": services.broker.stallHistoryWriter(milliseconds: milliseconds)
                // The gateway's link, as one fallen far behind: until the next SIGUSR2.
                case "gateway": services.gateway?.toggleReadingFromBroker()
                default: services.broker.stallForwardingLoop(milliseconds: milliseconds)
                }
            case SIGUSR2:
                logger.info("SIGUSR2 ignored (test hooks are off)")
            default:
                if received == SIGTERM && Services.demoted.load(ordering: .relaxed) {
                    // Raised by the pair link itself: nobody sent it.
                    logger.notice(
                        "shutting down: the pair demoted this broker (exit status \(Services.demotedExitStatus): systemd's Restart=on-failure starts it again, and it rejoins as passive)"
                    )
                } else {
                    logger.notice(
                        "received \(received == SIGINT ? "SIGINT" : "SIGTERM"), shutting down: forwarding what producers send until they are quiet, for up to \(current.shutdownDrainMilliseconds) ms (shutdown_drain_ms); a second SIGTERM or SIGINT ends that at once"
                    )
                }
                return current
            }
        }
    }

    /// Reads the file again and applies it: the configuration then in force, and what RELOAD
    /// answers (the reason of a refusal is the one the log gets).
    private func reload(
        _ services: Services, loader: ConfigurationLoader, current: BrokerConfiguration,
        toldNotApplied: inout Set<String>, logger: Logger
    ) -> (BrokerConfiguration, ControlReply) {
        func refused(_ reason: String, metadata: Logger.Metadata = [:]) -> (BrokerConfiguration, ControlReply) {
            logger.error("reload refused, the configuration in force is unchanged: \(reason)", metadata: metadata)
            return (current, .error(ControlError(.reloadRefused, "the configuration in force is unchanged: \(reason)")))
        }
        guard let file = config else {
            logger.notice("reload: no configuration file (started without --config); nothing to read again")
            return (
                current,
                .error(
                    ControlError(
                        .reloadRefused,
                        "zpubd was started without --config: there is no configuration file to read again"))
            )
        }
        var flagNotes: [String] = []
        switch loader.load(noting: &flagNotes) {
        case .failure(let report):
            return refused(report.problems.joined(separator: "; "))
        case .success(var next):
            // A file that turns [http] off (or drops the section) leaves the running gateway as
            // it is until a restart, its TLS, tokens and keys included: with the file's other
            // [http] values it went on without TLS and accepted no JWT.
            let gatewayRuns = services.gateway != nil
            if gatewayRuns && !next.http.enabled {
                next.http = current.http
                next.http.enabled = false
            }
            var keysFor = next
            if gatewayRuns { keysFor.http.enabled = true }
            let security: SecurityMaterial
            let gatewayKeys: GatewayKeys
            do {
                security = try SecurityMaterial.load(for: next)
                gatewayKeys = try Services.loadGatewayKeys(keysFor)
            } catch let problems as SecurityProblems {
                // One line, as the configuration's problems are.
                return refused(problems.messages.joined(separator: "; "))
            } catch {
                return refused("\(error)")
            }
            for warning in security.warnings { logger.warning("\(warning)") }
            // Accepted, it would make the next start (a watchdog restart, an upgrade) exit 78.
            if services.socketActivated && services.gateway == nil && next.http.enabled {
                return refused(
                    "[http] enabled = true, but zpubd runs socket-activated, and under zpubd-activated.service it has no network of its own, so the gateway could never listen (its next start would fail); run zpubd.service for the gateway, or keep [http] off"
                )
            }
            let failures: [BrokerError]
            let (outcome, startOnlyNotes) = services.reload(
                next, security: security, gatewayKeys: gatewayKeys, logger: logger)
            // The file's keys a flag overrides are not the file's either (told once, as the
            // others): an edit of log_level under --log-level changed nothing, in silence.
            var notApplied = startOnlyNotes + flagNotes
            switch outcome {
            case .refused(let reason):
                return refused(reason.message, metadata: reason.endpoint.map { ["endpoint": "\($0)"] } ?? [:])
            case .applied(let problems):
                // Only a change: the packaged unit's own --control warned at every reload.
                for note in flagNotes where !toldNotApplied.contains(note) { logger.warning("\(note)") }
                // Options only new endpoints get are not in force everywhere, as keys read at
                // start are not: told with them (already logged, as a warning).
                failures = problems.filter { !$0.code.isNotApplied }
                notApplied += problems.filter(\.code.isNotApplied).map(\.message)
            }
            LogLevelSwitch.level = Logger.Level(rawValue: next.logLevel) ?? .info
            if failures.isEmpty {
                logger.notice(
                    "configuration reloaded from \(file)",
                    metadata: DaemonLogging.endpointMetadata(
                        services.broker.boundEndpoints, held: services.broker.heldEndpoints))
            } else {
                logger.error(
                    "configuration reloaded with \(failures.count) problem(s) (control endpoints unchanged, an endpoint moved between sockets not bound, or a thread that had not applied it yet): \(failures.map(\.message).joined(separator: "; "))"
                )
            }
            // Keys read at start that the file changes (logged as warnings at every reload): it
            // is in force but for them, which `zpub reload` says with its exit status 2, once
            // for each change. Told at every reload, each `systemctl reload` for an unrelated
            // edit failed until a restart.
            let untold = notApplied.filter { !toldNotApplied.contains($0) }
            toldNotApplied = Set(notApplied)
            return (next, .reloaded(ReloadReply(file: file, problems: failures.map(\.message) + untold)))
        }
    }
}

/// The control socket's RELOAD requests waiting for a reload: each one raises SIGHUP, so that
/// the thread that reloads on signals (the only one that does) carries it out and answers it.
final class ReloadRequests: Sendable {
    private struct State: Sendable {
        var waiting: [@Sendable (ControlReply) -> Void] = []
        var closed = false
    }
    private let state = Locked(State())
    private static let stopping = ControlReply.error(
        ControlError(.unavailable, "zpubd is stopping: there is no reload to wait for"))

    func add(_ done: @escaping @Sendable (ControlReply) -> Void) {
        let closed = state.withLock { state in
            if !state.closed { state.waiting.append(done) }
            return state.closed
        }
        if closed { done(Self.stopping) } else { kill(getpid(), SIGHUP) }
    }

    func take() -> [@Sendable (ControlReply) -> Void] {
        state.withLock { state in
            defer { state.waiting.removeAll() }
            return state.waiting
        }
    }

    /// Once signals are no longer served: answers those waiting, and every later one at once.
    func close() {
        let waiting = state.withLock { state in
            state.closed = true
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for done in waiting { done(Self.stopping) }
    }
}

/// A broker demoted after both were active kept messages, under sequences, that the other
/// broker never had: its history has diverged. It is moved aside (kept for the operator), so
/// that the restarted broker mirrors the active one's history from the start instead of
/// trusting its own (docs/topologies.md, "A pair"). The newest few set-aside histories are
/// kept (`DivergedHistories`); older ones are removed, so that a flapping pair does not fill
/// the disk with copies.
private func setAsideDivergedHistory(_ configuration: BrokerConfiguration, logger: Logger) {
    guard let directory = configuration.stateDirectory else { return }
    let stamp = SystemClock.wallMilliseconds() / 1_000
    for suffix in ["", "-wal", "-shm"] {
        let path = "\(directory)/\(Broker.historyFileName)\(suffix)"
        guard access(path, F_OK) == 0 else { continue }
        let aside = "\(directory)/\(DivergedHistories.name(of: Broker.historyFileName + suffix, setAsideAt: stamp))"
        if rename(path, aside) == 0 {
            logger.warning("pair: the history kept while both brokers were active is set aside as \(aside)")
        } else {
            logger.error("pair: cannot set aside \(path): \(String(cString: strerror(errno)))")
        }
    }
    let names = (try? TextFile.entries(directory)) ?? []
    for name in DivergedHistories.surplus(among: names, historyFileName: Broker.historyFileName, sparing: stamp) {
        let path = "\(directory)/\(name)"
        if unlink(path) == 0 {
            logger.notice(
                "pair: removed \(path), a history set aside earlier: the \(DivergedHistories.kept) newest are kept")
        } else {
            logger.error(
                "pair: cannot remove \(path), a history set aside earlier: \(String(cString: strerror(errno)))")
        }
    }
}

/// For --check-config: a state directory the history store could not use at start.
private func stateDirectoryProblem(_ configuration: BrokerConfiguration) -> String? {
    guard configuration.opensHistoryStore, let directory = configuration.stateDirectory else { return nil }
    return HistoryStore.stateDirectoryProblem(directory)
}

/// The ipc endpoints to bind whose directory is missing (abstract names have none).
private func ipcEndpointsWithoutDirectory(_ configuration: BrokerConfiguration) -> [String] {
    let bound =
        BrokerSocketRole.allCases.flatMap { configuration.endpoints(for: $0) }
        + [configuration.pair.bind].compactMap { $0 }
    return bound.filter { endpoint in Endpoint.ipcDirectory(endpoint).map { access($0, F_OK) != 0 } ?? false }
}

private func printError(_ text: String) {
    var bytes = Array((text.hasSuffix("\n") ? text : text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

/// Every peer costs a file descriptor, and the usual soft limit (1024) is far below what a
/// broker needs; the hard limit (LimitNOFILE= under systemd) is what the admin granted. A
/// reserve below it is kept for running out (`DescriptorGuard`).
private func raiseFileDescriptorLimit(logger: Logger) {
    var limit = rlimit()
    guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0, limit.rlim_max != rlim_t.max else { return }
    let previous = limit.rlim_cur
    let wanted = rlim_t(DescriptorBudget.startLimit(hard: Int(limit.rlim_max)))
    guard wanted != previous else { return }
    limit.rlim_cur = wanted
    if setrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 {
        logger.info(
            "open file limit \(wanted) (one per peer; it was \(previous)): the hard limit \(limit.rlim_max) less \(limit.rlim_max - wanted) kept in reserve for running out"
        )
    }
}

#if canImport(Glibc)
    private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#endif
