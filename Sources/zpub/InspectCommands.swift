import ArgumentParser
import Foundation
import ZPubCore

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show message and byte counters, per socket.")
    @OptionGroup var options: ControlOptions

    func run() throws {
        try reportingErrors(json: options.json) {
            let client = options.client
            let (stats, raw) = try client.request("STATS", as: StatsSnapshot.self)
            if options.json { return Output.raw(raw) }
            Output.line("zpubd up \(Format.duration(stats.uptimeSeconds)), forwarding \(stats.forwarding.rawValue)")
            Output.line("")
            var table = Table(["socket", "msgs in", "msgs out", "bytes in", "bytes out"])
            for role in BrokerSocketRole.allCases {
                let counters = stats.sockets[role] ?? TrafficCounters()
                table.add([
                    role.rawValue, "\(counters.messagesIn)", "\(counters.messagesOut)", Format.bytes(counters.bytesIn),
                    Format.bytes(counters.bytesOut),
                ])
            }
            table.add([
                "total", "\(stats.messagesIn)", "\(stats.messagesOut)", Format.bytes(stats.bytesIn),
                Format.bytes(stats.bytesOut),
            ])
            table.print()
            Output.line("")
            let subscriptions = stats.subscriptions
            Output.line(
                "subscriptions  \(subscriptions.total) on \(subscriptions.prefixes) prefixes (limit \(subscriptions.limit)), refused \(subscriptions.refusedTooLong + subscriptions.refusedTableFull)\(subscriptions.waitingForRoom > 0 ? ", \(subscriptions.waitingForRoom) waiting for room" : "")\(subscriptions.waitingGivenUp > 0 ? " (\(subscriptions.waitingGivenUp) gave their place to another subscriber's)" : "")"
            )
            // Only when it happened: a peer sent data upstream (`docs/control-protocol.md`).
            if subscriptions.notSubscriptions > 0 {
                Output.line(
                    "               \(subscriptions.notSubscriptions) messages on the XPUB were no subscription; \(subscriptions.droppedForMisdirection) connections dropped for them"
                )
            }
            for upstream in stats.upstreams {
                Output.line("upstream       \(upstream.summary)")
            }
            let topics = stats.topics
            Output.line(
                topics.accounting
                    ? "topics         \(topics.tracked) tracked (limit \(topics.limit)), \(topics.untrackedMessages) messages untracked, \(stats.unwantedMessages) unwanted"
                    : "topics         accounting off")
            // Only when it happened: the log's reader (journald, a pipe) fell behind the loop.
            if let dropped = stats.droppedLogRecords, dropped > 0 {
                Output.line(
                    "log            \(dropped) records of the forwarding loop dropped: its log's reader fell behind (the log says how many, and when it caught up)"
                )
            }
            if let dropped = stats.controlRepliesDropped, dropped > 0 {
                Output.line(
                    "control        \(dropped) replies dropped: their clients had 16 replies unread already (a DEALER that does not read its replies)"
                )
            }
            if let summarized = stats.connectionEventsSummarized, summarized > 0 {
                Output.line(
                    "connections    \(summarized) events taken as counts: the forwarding loop fell behind them (peer counts stay right; see docs/reliability.md)"
                )
            }
            if let left = stats.startHoldLeftMilliseconds {
                Output.line(
                    "starting       producers are read in \(left) ms (start_hold_ms), once subscribers coming back after a restart have subscribed"
                )
            }
            if let catchUp = stats.catchUp {
                let waiting =
                    stats.forwarding == .paused
                    ? "; suspended by PAUSE"
                    : catchUp.waitingMilliseconds.map { "; one message has waited \($0) ms for a subscriber's room" }
                        ?? ""
                let stalls =
                    catchUp.stalls.map { $0 == 0 ? "" : "; subscribers let go at \($0) stall\($0 == 1 ? "" : "s")" }
                    ?? ""
                Output.line(
                    "catching up    \(catchUp.forwarded) message\(catchUp.forwarded == 1 ? "" : "s") of the backlog \(catchUp.cause == "stop" ? "the stop's drain forwards" : "held by \(catchUp.cause)") forwarded in \(catchUp.elapsedMilliseconds) ms, at the slowest subscriber's pace\(waiting)\(stalls)"
                )
            }
            // Without history prefixes the store may still hold persisted last values: no line.
            if let history = stats.history, !history.prefixes.isEmpty {
                Output.line(
                    "history        \(history.messages) messages kept (\(Format.bytes(UInt64(history.bytes)))), \(history.firstSequence > 0 ? "sequences \(history.firstSequence)-\(history.lastSequence)" : "the last numbered \(history.lastSequence)"), \(history.persistent ? "on disk in \(history.directory ?? "?")" : "in memory only"); \(history.dropped + history.writeFailures) not kept, \(history.evictions) evicted\(TopScreen.notKeptRangesNote(history))"
                )
            }
            if let pair = stats.pair {
                Output.line("pair           " + TopScreen.pairLine(pair).dropFirst("pair     ".count))
            }
        }
    }
}

struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the broker's health; exit status 0 only when it is ok.",
        discussion: """
            Exit status: 0 ok; 1 not ok (paused, stopping, the passive member of a pair, an active one \
            that could not bind its producers' endpoints, or no answer). A load balancer wants \
            that: only the active broker passes. A monitor of the pair itself gives \
            --passive-ok: a standby passes too, and either fails while the pair has a problem \
            (heartbeats one way only, a silent peer, a misconfiguration), each printed. \
            Problems that do not stop forwarding (history not keeping messages, an upstream not \
            connected, a full subscription table with subscriptions waiting for room) are \
            printed too; --strict fails on them. With --json, no answer prints \
            {"error":"...","status":"no_answer"} (an error reply, "status":"error"), so that a \
            monitor reading standard output always has a status.
            """)
    @OptionGroup var options: ControlOptions

    @Flag(
        name: .long,
        help:
            "Count the passive member of a pair as ok, and any problem of the pair as not (a monitor of the pair, not a load balancer)."
    )
    var passiveOk = false

    @Flag(
        name: .long,
        help:
            "Fail also on problems that do not stop forwarding: history not keeping messages, an upstream not connected, subscriptions waiting for room in a full table (a monitor, not a load balancer)."
    )
    var strict = false

    func run() throws {
        var healthy = false
        try reportingErrors {
            let client = options.client
            let health: HealthReport
            let raw: [UInt8]
            do {
                (health, raw) = try client.request("HEALTH", as: HealthReport.self)
            } catch  where options.json {
                // A monitor that parses standard output read nothing at all, where "not ok" was
                // the answer it needed; the error still goes to standard error, exit 1. An
                // error zpubd answered with is "error", not "no_answer".
                let answered = (error as? CLIError)?.code != nil
                Output.line(Self.failureJSON(answered ? "error" : "no_answer", String(describing: error)))
                throw error
            }
            let problems = health.pair?.problems ?? []
            healthy = health.isHealthy(passiveOK: passiveOk) && !(strict && health.problems != nil)
            if options.json { return Output.raw(raw) }
            var line =
                "\(health.status.rawValue): forwarding \(health.forwarding.rawValue), up \(Format.duration(health.uptimeSeconds)), loop lag \(String(format: "%.3f", health.loopLagSeconds)) s, \(health.subscriptions) subscriptions, zpubd \(health.version)"
            if let pair = health.pair {
                line += "; \(pair.role.rawValue) of a pair, \(pair.state.rawValue), peer \(pair.peer) "
                if let peerState = pair.peerState {
                    // The state it said last: of a peer that died, what it was ("active (heard 4407
                    // ms ago)" read as a live peer beside the peer_silent problem).
                    line += "last heard \(peerState.rawValue) \(pair.peerHeardMillisecondsAgo ?? 0) ms ago"
                } else {
                    line += "not heard"
                }
                // What a passive broker's takeover waits for, besides the peer's silence.
                if !pair.active, let clients = pair.clients {
                    line += ", \(clients) client\(clients == 1 ? "" : "s") counted for a takeover"
                }
            }
            if health.status == .stopping {
                line +=
                    "; zpubd is shutting down (SIGTERM or SIGINT), forwarding what producers send until they are quiet (at most shutdown_drain_ms)"
            }
            if health.status == .paused {
                line += "; zpub resume\(options.givenControl.map { " -c \($0)" } ?? "") starts forwarding again"
            }
            Output.line(line)
            for problem in problems { Output.line("pair problem (\(problem.kind)): \(problem.message)") }
            for problem in health.problems ?? [] {
                Output.line("problem (\(problem.kind.rawValue)): \(problem.message)")
            }
        }
        if !healthy { throw ExitCode.failure }
    }

    /// `--json`'s line when zpubd gave no HEALTH report: a status no zpubd reports, and why.
    static func failureJSON(_ status: String, _ error: String) -> String {
        let object: [String: Any] = ["status": status, "error": error]
        let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "{\"status\":\"\(status)\"}"
    }
}

struct Subscriptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List subscribed prefixes and how many subscriptions want each.")
    @OptionGroup var options: ControlOptions
    @Argument(help: "Only prefixes starting with this.") var prefix: String?

    /// A prefix's or topic's own bytes: the reply's hex when they are not UTF-8 (its text then
    /// holds U+FFFD in their place, and two such names printed alike).
    static func bytes(_ text: String, hex: String?) -> [UInt8] {
        hex.flatMap(Hex.decode) ?? Array(text.utf8)
    }

    func run() throws {
        try reportingErrors(json: options.json) {
            let client = options.client
            let command = prefix.map { "SUBSCRIPTIONS \($0)" } ?? "SUBSCRIPTIONS"
            let (list, raw) = try client.request(command, as: SubscriptionList.self)
            if options.json { return Output.raw(raw) }
            var table = Table(["prefix", "subscriptions"])
            for item in list.subscriptions {
                table.add([
                    item.prefix.isEmpty
                        ? "(everything)" : Subscribe.escape(Self.bytes(item.prefix, hex: item.prefixHex)),
                    "\(item.count)",
                ])
            }
            table.print()
            // The broker's totals, whatever the filter: say so when the table shows a part.
            let whole =
                prefix.map { " (the whole broker; \(list.subscriptions.count) prefixes above start with \($0))" } ?? ""
            Output.line("\(list.total) subscriptions on \(list.prefixes) prefixes\(whole)")
            if let held = list.heldUpstream, !held.isEmpty {
                Output.line(
                    "zpubd itself holds \(held.joined(separator: ", ")) upstream for its history and last values: publishers send those to it with no subscriber there"
                )
            }
            if let waiting = list.waitingForRoom, let limit = list.limit, waiting > 0, list.prefixes >= limit {
                Output.line(
                    "the table is full (max_subscriptions \(limit)): \(waiting) refused subscriptions wait for room, and their subscribers get nothing under those prefixes until others leave"
                )
            }
        }
    }
}

struct Topics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List topics seen, with messages, bytes and when last seen.")
    @OptionGroup var options: ControlOptions
    @Argument(help: "Only topics starting with this.") var prefix: String?

    func run() throws {
        try reportingErrors(json: options.json) {
            let client = options.client
            let command = prefix.map { "TOPICS \($0)" } ?? "TOPICS"
            let (list, raw) = try client.request(command, as: TopicList.self)
            if options.json { return Output.raw(raw) }
            guard list.accounting else {
                return Output.line("topic accounting is off (topic_accounting = false in [daemon])")
            }
            let now = Date().timeIntervalSince1970
            var table = Table(["topic", "messages", "bytes", "unwanted", "last seen"])
            for item in list.topics {
                let age = now - Double(item.lastSeenMilliseconds) / 1000
                table.add([
                    item.printable, "\(item.messages)",
                    Format.bytes(item.bytes),
                    "\(item.unwanted)",
                    Format.duration(max(0, age)) + " ago",
                ])
            }
            table.print()
            let whole =
                prefix.map {
                    " (the whole broker; \(list.topics.count) topic\(list.topics.count == 1 ? "" : "s") above start\(list.topics.count == 1 ? "s" : "") with \($0))"
                } ?? ""
            Output.line(
                "\(list.tracked) topics tracked (limit \(list.limit)), \(list.untrackedMessages) messages on untracked topics\(whole)"
            )
        }
    }
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the broker answers, and how fast.")
    @OptionGroup var options: ControlOptions

    func run() throws {
        try reportingErrors(json: options.json) {
            let client = options.client
            let start = Date()
            let (reply, _) = try client.request("PING", as: PingReply.self)
            // Any other REP socket answers too: only zpubd's {"pong": true} is a PONG.
            guard reply.pong else {
                throw CLIError(
                    "the reply from \(options.control) is not zpubd's PONG; is that zpubd's control endpoint?")
            }
            let milliseconds = String(format: "%.2f", Date().timeIntervalSince(start) * 1000)
            // The round trip is what a ping is for: --json kept zpubd's reply alone, without it.
            if options.json { return Output.line("{\"pong\":true,\"round_trip_ms\":\(milliseconds)}") }
            Output.line("PONG from \(options.control) in \(milliseconds) ms")
        }
    }
}

struct ShowConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Print the configuration in force and the bound endpoints (JSON).")
    @OptionGroup var options: ControlOptions

    func run() throws {
        try reportingErrors(json: options.json) {
            let client = options.client
            Output.raw(try client.request("CONFIG", as: ConfigReply.self).1)
        }
    }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop forwarding; messages wait in the queues.")
    @OptionGroup var options: ControlOptions

    func run() throws {
        var forwarding = ForwardingState.running
        try reportingErrors(json: options.json) {
            let client = options.client
            let (state, raw) = try client.request("PAUSE", as: ForwardingReply.self)
            forwarding = state.forwarding
            options.json ? Output.raw(raw) : Output.line("forwarding \(state.forwarding.rawValue)")
        }
        try failIfStopping(forwarding, "PAUSE")
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Have zpubd read its configuration file again, as SIGHUP does, and say whether it is in force.",
        discussion: """
            Exit status 0: the file's configuration is in force. 1: refused (the reason, with the \
            line, is printed; the configuration in force is unchanged) or no answer. 2: in force, \
            with problems printed (the control endpoints could not be changed, a thread had \
            not applied it yet, the file changes a key read only at start, such as [ha], or a \
            socket option that endpoints already bound keep, such as max_message_size; each \
            change is told by the first reload that finds it, and later ones warn in the log \
            only). The packaged units run it for `systemctl reload`, so that a \
            refused reload fails there too (and so does one in force with problems: see them in \
            the journal). It waits up to 65 s by default: zpubd gives up on a reload after 60 s \
            and says so.
            """)
    @OptionGroup var options: ControlOptions

    func run() throws {
        var problems: [String] = []
        try reportingErrors(json: options.json) {
            var client = options.client(defaultTimeout: 65_000)
            // A wrong endpoint is told as soon as by any other command; only the reload itself
            // is waited for longer.
            client.connectTimeoutMilliseconds = options.timeout ?? 3_000
            let (reply, raw) = try client.request("RELOAD", as: ReloadReply.self)
            problems = reply.problems
            if options.json {
                Output.raw(raw)
            } else {
                Output.line(
                    problems.isEmpty
                        ? "reloaded \(reply.file)" : "reloaded \(reply.file), with \(problems.count) problem(s):")
                for problem in problems { Output.line("  \(problem)") }
            }
        }
        if !problems.isEmpty { throw ExitCode(2) }
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restart forwarding.")
    @OptionGroup var options: ControlOptions

    func run() throws {
        var forwarding = ForwardingState.running
        try reportingErrors(json: options.json) {
            let client = options.client
            let (state, raw) = try client.request("RESUME", as: ForwardingReply.self)
            forwarding = state.forwarding
            options.json ? Output.raw(raw) : Output.line("forwarding \(state.forwarding.rawValue)")
        }
        try failIfStopping(forwarding, "RESUME")
    }
}

/// PAUSE and RESUME change nothing while zpubd stops: not a success.
private func failIfStopping(_ forwarding: ForwardingState, _ command: String) throws {
    guard forwarding == .stopping else { return }
    Output.error(
        "zpubd is shutting down (SIGTERM or SIGINT): \(command) changes nothing")
    throw ExitCode.failure
}

/// The replies the commands above check before printing (any other REP socket answers too).
struct PingReply: Decodable {
    let pong: Bool
}

struct ConfigReply: Decodable {
    let configuration: AnyJSONObject
    let bound: [String: [String]]
}

/// A JSON object, whatever its members: CONFIG's configuration is printed as it came.
struct AnyJSONObject: Decodable {
    private struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: Decoder) throws {
        _ = try decoder.container(keyedBy: Key.self)
    }
}

struct ForwardingReply: Decodable {
    let forwarding: ForwardingState
}

extension TopicList.Item {
    /// The topic as zpub prints it on a terminal (`zpub topics`, `zpub top`): its own bytes,
    /// escaped, so that a producer's topic cannot move the cursor or recolour the screen.
    var printable: String { Subscribe.escape(Subscriptions.bytes(topic, hex: topicHex)) }
}
