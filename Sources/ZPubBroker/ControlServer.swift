import CKernel
import Logging
import ZPubCore
import ZeroMQ

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What the control server can be asked to do by the broker.
enum ControlServerCommand: Sendable {
    case reconfigure(BrokerConfiguration, serverKey: CurveKey?, ReplySlot<[BrokerError]>)
    case stop
}

/// Answers an admin's REQ on the REP control socket, on a thread of its own, so that a slow
/// admin (or a big TOPICS reply to encode) never holds up forwarding.
///
/// Every request gets exactly one reply frame of JSON, errors included: a REQ client must never
/// be left waiting. Requests that need the broker's state take a copy from the forwarding loop
/// through its mailbox, with a deadline; if the loop does not answer, the reply says so.
final class ControlServer: @unchecked Sendable {
    /// How long to wait for the forwarding loop before replying "unavailable".
    static let loopReplyTimeoutMilliseconds = 2_000
    /// How long SNAPSHOT waits for the client's marker subscription to arrive.
    static let snapshotTimeoutMilliseconds = 5_000
    /// Replies larger than this are followed by malloc_trim (see `serveOneRequest`).
    static let largeReplyBytes = 256 * 1024

    private let socket: Socket
    private var endpoints: BoundEndpoints
    private var configuration: BrokerConfiguration
    private let loop: ForwardingLoop
    private let registry: EndpointRegistry
    private let zap: ZAPHandler
    private let logger: Logger
    private let startNanoseconds: UInt64
    let mailbox = Mailbox<ControlServerCommand>()
    private var counters = TrafficCounters()
    private let message = Message()
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    init(
        socket: Socket, endpoints: BoundEndpoints, configuration: BrokerConfiguration, loop: ForwardingLoop,
        registry: EndpointRegistry, zap: ZAPHandler, logger: Logger, startNanoseconds: UInt64
    ) {
        self.zap = zap
        self.socket = socket
        self.endpoints = endpoints
        self.configuration = configuration
        self.loop = loop
        self.registry = registry
        self.logger = logger
        self.startNanoseconds = startNanoseconds
    }

    func run() {
        var poller = Poller()
        let socketIndex = poller.add(socket)
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        while true {
            do {
                _ = try poller.poll(timeoutMilliseconds: -1)
            } catch {
                logger.critical("control server cannot poll: \(error)")
                break
            }
            if poller.isReadable(mailboxIndex) {
                var stop = false
                for command in mailbox.take() {
                    switch command {
                    case .stop:
                        stop = true
                    case .reconfigure(let newConfiguration, let serverKey, let slot):
                        configuration = newConfiguration
                        try? SocketSetup.applyOptions(
                            to: socket, role: .control, configuration: newConfiguration, serverKey: serverKey)
                        let failures = endpoints.reconcile(
                            with: newConfiguration.controlEndpoints, on: socket, logger: logger)
                        IPCPermissions.apply(newConfiguration.controlIPCMode, to: endpoints.actual, logger: logger)
                        registry.set(.control, endpoints.actual)
                        slot.fulfill(failures)
                    }
                }
                if stop { break }
            }
            if poller.isReadable(socketIndex) { serveOneRequest() }
        }
        try? socket.setOption(.linger, 0)
        socket.close()
    }

    // MARK: Requests

    private func serveOneRequest() {
        var largeReply = false
        defer {
            // A reply listing 100,000 subscriptions builds ~10 MiB of small allocations on this
            // thread; glibc keeps the freed memory in the thread's arena for good unless told.
            if largeReply { ckernel_malloc_trim() }
        }
        do {
            guard try socket.receive(into: message, dontWait: true) else { return }
            // Read every frame (REP must, before replying) but keep at most the limit's worth.
            var frames: [[UInt8]] = []
            var total = 0
            var frameCount = 0
            while true {
                frameCount += 1
                total += message.count
                if total <= configuration.maxControlRequest { frames.append(message.bytes) }
                guard message.hasMore else { break }
                _ = try socket.receive(into: message)
            }
            counters.messagesIn &+= 1
            counters.bytesIn &+= UInt64(total)

            let reply: [UInt8]
            if total > configuration.maxControlRequest {
                reply = encodeError(
                    ControlError(
                        .requestTooLarge,
                        "the request is \(total) bytes; the limit is \(configuration.maxControlRequest) (max_control_request)"
                    ))
            } else {
                switch ControlRequest.parse(frames: frames, maxSize: configuration.maxControlRequest) {
                case .success(let request): reply = respond(to: request)
                case .failure(let error): reply = encodeError(error)
                }
            }
            counters.messagesOut &+= 1
            counters.bytesOut &+= UInt64(reply.count)
            largeReply = reply.count > Self.largeReplyBytes
            message.replace(with: reply)
            if try !socket.send(message, dontWait: true) {
                logger.warning("control reply dropped: the client's queue is full")
            }
        } catch {
            logger.error("control request failed: \(error)")
        }
    }

    private func respond(to request: ControlRequest) -> [UInt8] {
        switch request.command {
        case .ping:
            return encode(["pong": true])
        case .version:
            let version = Context.libraryVersion
            return encode([
                "version": ZPubVersion.current, "libzmq": "\(version.major).\(version.minor).\(version.patch)",
            ])
        case .help:
            return encode(["commands": ControlHelp.lines])
        case .config:
            return encode(ConfigurationReply(configuration: configuration, bound: registry.all()))
        case .health:
            return encode(health())
        case .stats:
            guard var stats = loopStats() else { return unavailable() }
            stats.uptimeSeconds = uptime()
            stats.sockets["control"] = counters
            let zapCounters = zap.snapshot
            stats.security = StatsSnapshot.SecurityStats(
                curve: BrokerSocketRole.allCases.filter { configuration.security(for: $0).curve }.map(\.rawValue),
                allowed: zapCounters.allowed.values.reduce(0, +), denied: zapCounters.denied.values.reduce(0, +),
                deniedBySocket: zapCounters.denied)
            return encode(stats)
        case .subscriptions:
            guard let state = snapshot() else { return unavailable() }
            return encode(state.subscriptionList(prefix: request.argument))
        case .topics:
            guard let state = snapshot() else { return unavailable() }
            return encode(state.topicList(prefix: request.argument))
        case .snapshot:
            guard let (token, prefix) = request.snapshotArguments else {
                return encodeError(ControlError(.badArgument, "SNAPSHOT <token> [prefix]"))
            }
            let slot = ReplySlot<CapturedSnapshot>()
            loop.mailbox.post(.snapshotValues(token: token, prefix: prefix, slot))
            guard let captured = slot.wait(milliseconds: Self.snapshotTimeoutMilliseconds) else {
                return encodeError(
                    ControlError(
                        .snapshotTimeout,
                        "the subscription to \(SnapshotReply.markerPrefix)\(token) did not reach the broker within \(Self.snapshotTimeoutMilliseconds) ms; subscribe to it (on the SUB socket that wants the snapshot) before sending SNAPSHOT"
                    ))
            }
            return encode(
                SnapshotReply(
                    token: token, sequence: captured.sequence, prefixes: captured.prefixes.map(TopicText.display),
                    entries: captured.entries.map(SnapshotReply.Entry.init)))
        case .pause, .resume:
            let slot = ReplySlot<Bool>()
            loop.mailbox.post(.setPaused(request.command == .pause, slot))
            guard let paused = slot.wait(milliseconds: Self.loopReplyTimeoutMilliseconds) else { return unavailable() }
            return encode(["forwarding": paused ? "paused" : "running"])
        }
    }

    private func health() -> HealthReport {
        let lag = Double(Clock.monotonicNanoseconds() &- loop.lastIterationNanoseconds.load(ordering: .relaxed)) / 1e9
        guard let stats = loopStats() else {
            return HealthReport(
                status: "unhealthy", forwarding: "not responding", uptimeSeconds: uptime(), loopLagSeconds: lag,
                subscriptions: 0, version: ZPubVersion.current)
        }
        return HealthReport(
            status: stats.forwarding == "paused" ? "paused" : "ok", forwarding: stats.forwarding,
            uptimeSeconds: uptime(), loopLagSeconds: max(0, lag), subscriptions: stats.subscriptions.total,
            version: ZPubVersion.current)
    }

    /// The loop's counters, without its tables (see `LoopCommand.stats`).
    private func loopStats() -> StatsSnapshot? {
        let slot = ReplySlot<StatsSnapshot>()
        loop.mailbox.post(.stats(slot))
        return slot.wait(milliseconds: Self.loopReplyTimeoutMilliseconds)
    }

    /// The loop's whole state, tables included: for the requests that list a table.
    private func snapshot() -> BrokerState? {
        let slot = ReplySlot<BrokerState>()
        loop.mailbox.post(.snapshot(slot))
        return slot.wait(milliseconds: Self.loopReplyTimeoutMilliseconds)
    }

    private func uptime() -> Double {
        Double(Clock.monotonicNanoseconds() &- startNanoseconds) / 1e9
    }

    private func unavailable() -> [UInt8] {
        encodeError(
            ControlError(
                .unavailable,
                "the forwarding loop did not answer within \(Self.loopReplyTimeoutMilliseconds) ms; it may be stalled or shutting down"
            ))
    }

    private func encode(_ value: some Encodable) -> [UInt8] {
        do {
            return Array(try encoder.encode(value))
        } catch {
            return encodeError(ControlError(.internalError, "cannot encode the reply: \(error)"))
        }
    }

    private func encodeError(_ error: ControlError) -> [UInt8] {
        (try? Array(encoder.encode(ControlErrorReply(error: error))))
            ?? Array(#"{"error":{"code":"internal_error","message":"cannot encode an error"}}"#.utf8)
    }
}

/// The reply to `CONFIG`: the configuration in force and the endpoints actually bound (with
/// wildcard ports resolved).
struct ConfigurationReply: Encodable {
    let configuration: BrokerConfiguration
    let bound: [String: [String]]
}

enum ControlHelp {
    static let lines = [
        "PING: is the daemon answering",
        "HEALTH: ok, paused or unhealthy, with the forwarding loop's lag",
        "STATS: message and byte counters, per socket, subscriptions, topics",
        "SUBSCRIPTIONS [prefix]: subscribed prefixes with their counts",
        "TOPICS [prefix]: traffic per topic",
        "CONFIG: the configuration in force and the bound endpoints",
        "VERSION: zpub and libzmq versions",
        "SNAPSHOT <token> [prefix]: cached last values under the prefix, ended by a marker message (docs/last-value.md)",
        "PAUSE: stop forwarding (messages queue up)",
        "RESUME: restart forwarding",
        "HELP: this list",
    ]
}

/// The endpoints each socket is bound to right now, readable from any thread.
final class EndpointRegistry: Sendable {
    private let table = Locked<[String: [String]]>([:])

    func set(_ role: BrokerSocketRole, _ endpoints: [String]) {
        table.withLock { $0[role.rawValue] = endpoints }
    }

    func all() -> [String: [String]] {
        table.withLock { $0 }
    }
}
