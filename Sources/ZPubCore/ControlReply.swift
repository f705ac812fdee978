#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The broker's control API, typed: what the control socket serves as JSON text and what
/// the HTTP gateway calls in process, one implementation for both (`ZPubBroker.ControlResponder`).
public protocol BrokerControl: Sendable {
    /// Answers one request. May block while the forwarding loop is asked (bounded by the
    /// loop's reply timeout): call it from a thread that may wait, never from an event loop.
    func respond(to request: ControlRequest) -> ControlReply

    /// Calls `done` once the forwarding loop has read and applied every subscription that had
    /// reached its XPUB when this was called (an in-process SUB's subscription is there when
    /// `setsockopt` returns). Never waits; `done` runs on the forwarding loop's thread, so it
    /// may only hand over (post to a mailbox). Not called if the loop stops first.
    func afterSubscriptionsApplied(_ done: @escaping @Sendable () -> Void)

    /// Whether this broker is a pair's passive one now: it forwards nothing publishers send
    /// until it takes over, which may be never. Never waits.
    var isPassiveInPair: Bool { get }

    /// The forwarding loop's catch-up of a held backlog (after RESUME, or in a stop's drain):
    /// sent at the pace of its slowest subscriber, which an in-process subscriber that fans out
    /// further (the gateway) does not pass on to its own clients. Never waits.
    var catchUp: BacklogCatchUpState { get }
}

/// Whether the forwarding loop sends a held backlog, and when it last finished one: what it
/// sent may still wait in an in-process subscriber's queue then, for as long as that
/// subscriber takes to read it (`ZPubGateway.BacklogWatch`).
public struct BacklogCatchUpState: Sendable, Equatable {
    /// A catch-up runs now.
    public var isRunning: Bool
    /// When the last one ended (monotonic ns, distinct for each); 0: none yet.
    public var lastEndNanoseconds: UInt64

    public init(isRunning: Bool, lastEndNanoseconds: UInt64) {
        self.isRunning = isRunning
        self.lastEndNanoseconds = lastEndNanoseconds
    }
}

/// A reply of the control API. Its JSON (`json`) is the control socket's wire format,
/// documented in docs/control-protocol.md: each case encodes as its payload alone.
public enum ControlReply: Sendable, Equatable {
    case pong
    case version(VersionReply)
    case help([String])
    case configuration(ConfigurationReply)
    case health(HealthReport)
    case stats(StatsSnapshot)
    case subscriptions(SubscriptionList)
    case topics(TopicList)
    case snapshot(SnapshotReply)
    case history(HistoryReply)
    case replay(ReplayReply)
    /// PAUSE and RESUME: the forwarding state now.
    case forwarding(ForwardingState)
    /// RELOAD: the file's configuration is in force.
    case reloaded(ReloadReply)
    case error(ControlError)

    /// The error, if the request failed.
    public var failure: ControlError? {
        if case .error(let error) = self { return error }
        return nil
    }

    /// The reply as the control socket sends it: one frame of JSON, keys sorted.
    public var json: [UInt8] {
        do {
            return Array(try Self.encoder.encode(Wire(reply: self)))
        } catch {
            let failure = ControlErrorReply(error: ControlError(.internalError, "cannot encode the reply: \(error)"))
            return (try? Array(Self.encoder.encode(failure)))
                ?? Array(#"{"error":{"code":"internal_error","message":"cannot encode an error"}}"#.utf8)
        }
    }

    /// Any reply value encoded as the control socket does (sorted keys, slashes unescaped).
    public static func json(_ value: some Encodable) -> [UInt8]? {
        try? Array(encoder.encode(value))
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    private struct Wire: Encodable {
        let reply: ControlReply

        func encode(to encoder: Encoder) throws {
            switch reply {
            case .pong: try ["pong": true].encode(to: encoder)
            case .version(let value): try value.encode(to: encoder)
            case .help(let lines): try ["commands": lines].encode(to: encoder)
            case .configuration(let value): try value.encode(to: encoder)
            case .health(let value): try value.encode(to: encoder)
            case .stats(let value): try value.encode(to: encoder)
            case .subscriptions(let value): try value.encode(to: encoder)
            case .topics(let value): try value.encode(to: encoder)
            case .snapshot(let value): try value.encode(to: encoder)
            case .history(let value): try value.encode(to: encoder)
            case .replay(let value): try value.encode(to: encoder)
            case .forwarding(let state): try ["forwarding": state].encode(to: encoder)
            case .reloaded(let value): try value.encode(to: encoder)
            case .error(let error): try ControlErrorReply(error: error).encode(to: encoder)
            }
        }
    }
}

/// The reply to `RELOAD` when the file's configuration is in force: `problems` lists what it
/// could not change (the control endpoints, an endpoint moved between sockets, a thread that
/// had not applied it yet), as the log does.
public struct ReloadReply: Codable, Equatable, Sendable {
    public var reloaded: Bool
    /// The configuration file read.
    public var file: String
    public var problems: [String]

    public init(file: String, problems: [String] = []) {
        self.reloaded = true
        self.file = file
        self.problems = problems
    }
}

/// Whether the forwarding loop moves messages (STATS, HEALTH, PAUSE and RESUME say which).
/// Any string decodes: a state a newer zpubd adds must not make an older `zpub` fail on the
/// whole reply (as an enum, "stopping" did).
public struct ForwardingState: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let running = ForwardingState(rawValue: "running")
    /// PAUSE: producers' messages wait in libzmq's queues until RESUME.
    public static let paused = ForwardingState(rawValue: "paused")
    /// SIGTERM or SIGINT: what producers already sent goes out (`shutdown_drain_ms`), then
    /// zpubd exits; PAUSE and RESUME are ignored.
    public static let stopping = ForwardingState(rawValue: "stopping")
    /// HEALTH only: the loop did not answer in time.
    public static let notResponding = ForwardingState(rawValue: "not responding")
}

/// The reply to `VERSION`.
public struct VersionReply: Codable, Equatable, Sendable {
    public var version: String
    public var libzmq: String

    public init(version: String, libzmq: String) {
        self.version = version
        self.libzmq = libzmq
    }
}

/// The reply to `CONFIG`: the configuration in force and the endpoints actually bound (with
/// wildcard ports resolved).
public struct ConfigurationReply: Encodable, Equatable, Sendable {
    public let configuration: BrokerConfiguration
    public let bound: [String: [String]]

    public init(configuration: BrokerConfiguration, bound: [String: [String]]) {
        self.configuration = configuration
        self.bound = bound
    }
}

/// One line per control command, for `HELP`.
public enum ControlHelp {
    public static let lines = [
        "PING: is the daemon answering",
        "HEALTH: ok, paused, passive, stopping or unhealthy, with the forwarding loop's lag",
        "STATS: message and byte counters, per socket, subscriptions, topics",
        "SUBSCRIPTIONS [prefix]: subscribed prefixes with their counts",
        "TOPICS [prefix]: traffic per topic",
        "CONFIG: the configuration in force and the bound endpoints",
        "VERSION: zpub and libzmq versions",
        "SNAPSHOT <token> [prefix]: cached last values under the prefix, ended by a marker message (docs/last-value.md)",
        "HISTORY since <seq> [until <seq>] [prefix] | HISTORY last <n> [until <seq>] [prefix]: stored messages, oldest first, with their sequence numbers (docs/history.md)",
        "REPLAY <token> <since> [prefix]: stored messages after <since>, ended by a marker message, to join the live stream with no gap (docs/history.md)",
        "PAUSE: stop forwarding (messages queue up)",
        "RESUME: restart forwarding",
        "RELOAD: read the configuration file again (as SIGHUP does) and answer whether it is in force",
        "HELP: this list",
    ]
}
