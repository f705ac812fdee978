import ArgumentParser
import Foundation
import ZPubCore
import ZeroMQ

struct Subscribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sub",
        abstract: "Subscribe to topic prefixes and print each message: topic, then frames, tab-separated.",
        discussion: """
            No PREFIX subscribes to everything, zpubd's own $zpub/ topics (sequence and snapshot \
            markers) excepted: they are printed only under a PREFIX that starts with $zpub/. \
            Bytes that are not printable are shown as \\xNN. A prefix the broker refused \
            because its max_subscriptions was reached gets in once it has room: zpub sub sends \
            $zpub/retry (which subscribes to nothing) every 2 s, at which the broker admits it.

            --json prints one JSON object per message, the shape WebSocket and SSE clients \
            get: {"type": "message", "topic": ..., "encoding": ..., "payload": ...}, where \
            encoding is json (one JSON payload frame, embedded), text, frames (an array) or \
            base64 (when a frame is not UTF-8). See docs/http.md, "Messages".
            """
    )

    @Argument(help: "Topic prefixes; none: everything.")
    var prefixes: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also subscribe to the prefixes in this file, one per line (- for standard input; empty lines skipped): for thousands, which as arguments take seconds to parse.",
            valueName: "file"))
    var prefixesFrom: String?

    @Option(
        name: [.customShort("e"), .long],
        help: ArgumentHelp(
            "The broker's XPUB endpoint (default: $ZPUB_XPUB, one or more separated by spaces, else the XPUB default); repeat it for both brokers of a pair (only the active one publishes).",
            valueName: "endpoint"))
    var endpoint: [String] = []

    @Flag(name: .long, help: "Print each message as a line of JSON.")
    var json = false

    @Option(
        name: [.customShort("n"), .long], parsing: .unconditional,
        help: ArgumentHelp("Exit after this many messages.", valueName: "N"))
    var count: Int?

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Exit with status 1 if no message arrives for this many milliseconds.", valueName: "ms"))
    var timeout: Int?

    @Flag(
        name: .long,
        help:
            "First print the broker's cached last values under PREFIX, then the live stream, with no gap and no duplicate."
    )
    var snapshot = false

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "First print every kept message after this history sequence under PREFIX, then the live stream, with no gap and no duplicate (docs/history.md). With one --endpoint (or a pair's two) and --json, each kept message has its \"seq\", to resume from next time, and a broker restarted or a connection lost is resumed after the last one printed.",
            valueName: "seq"))
    var since: UInt64?

    @Flag(
        name: .long,
        help:
            "Print \"zpub: ready\" on stderr once the broker forwards the subscriptions: whatever is published from then on is printed (a script starts its publisher then). Asks the control socket (-c), as --snapshot does."
    )
    var ready = false

    @Option(
        name: [.customShort("c"), .customLong("control")],
        help: ArgumentHelp(
            "With --snapshot, --since or --ready: the broker's control endpoint (default: $ZPUB_CONTROL, or tcp://127.0.0.1:5555 when the broker's endpoint is the default one; with --endpoint, give it). With --since, repeat it for both brokers of a pair, in the order of their --endpoint options: zpub follows the active one, and after a failover resumes from the last sequence it printed; what a broker numbered in the other's takeover gap (a primary stopped while its backup took over) is read at the next resume there, and printed with its lower sequence; so is, from the primary, what it numbered below a --since the backup gave.",
            valueName: "endpoint"))
    var controls: [String] = []

    /// The endpoints given, or $ZPUB_XPUB, or the default; and where they came from.
    private var target: (endpoints: [String], source: String) {
        dataEndpoints(given: endpoint, variable: "ZPUB_XPUB", fallback: BrokerConfiguration.Defaults.xpubEndpoints)
    }
    private var endpoints: [String] { target.endpoints }
    /// Every control endpoint given, else `$ZPUB_CONTROL` or the default (`ControlEndpoint.given`;
    /// `validate` refuses a question for a broker whose control endpoint is not known).
    private var controlEndpoints: [String] { controls.isEmpty ? [ControlEndpoint.given(nil).endpoint] : controls }
    /// The first of `controlEndpoints`: the one broker's, when no pair is followed.
    private var control: String { controlEndpoints[0] }
    /// A client of one of `controlEndpoints`, blaming what named them.
    private func controlClient(_ endpoint: String, timeoutMilliseconds: Int) -> ControlClient {
        var client = ControlClient(endpoint: endpoint, timeoutMilliseconds: timeoutMilliseconds, curve: curve)
        client.source = ControlEndpoint.given(controls.first).source
        return client
    }

    @OptionGroup var curve: CurveOptions

    mutating func validate() throws {
        if let prefixesFrom { prefixes += try Self.prefixes(from: prefixesFrom) }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        try EndpointArgument.check(endpoint, "--endpoint")
        try EndpointArgument.check(controls, "--control")
        // As every other command: 0 waited for no message, and failed at once (an audit).
        if let timeout { try Milliseconds.check(timeout, "--timeout", minimum: 1) }
        // -c is asked only for a catch-up or --ready: without one it was ignored in silence.
        if !controls.isEmpty && !snapshot && since == nil && !ready {
            throw ValidationError(
                "--control is asked only for --snapshot, --since or --ready; give one of them, or leave --control out")
        }
        if snapshot && prefixes.count > 1 {
            throw ValidationError("--snapshot takes one prefix (or none, for everything)")
        }
        if since != nil && prefixes.count > 1 {
            throw ValidationError("--since takes one prefix (or none, for everything)")
        }
        if since != nil && snapshot { throw ValidationError("give --snapshot or --since, not both") }
        if ready && (snapshot || since != nil) {
            throw ValidationError(
                "--ready is for a plain subscription: with --snapshot or --since, everything from the snapshot or the sequence on is printed already"
            )
        }
        // As `zpub pub` asks no guessed control socket: with the broker's XPUB named, the
        // default control endpoint may be another broker's (a walkthrough's --ready waited
        // 10 s for tcp://127.0.0.1:5555 and blamed it; with a broker there, --snapshot or
        // --since would have read the wrong one's cache or history).
        let asking = [(ready, "--ready"), (snapshot, "--snapshot"), (since != nil, "--since")].first { $0.0 }?.1
        // A malformed $ZPUB_CONTROL is said as such now: the questions below retry a broker
        // that does not answer, and would blame it after --timeout.
        if asking != nil, controls.isEmpty, endpoint.isEmpty, let variable = environmentEndpoint("ZPUB_CONTROL"),
            let problem = Endpoint.problem(with: variable)
        {
            throw ValidationError("$ZPUB_CONTROL \"\(variable)\": \(problem)")
        }
        if let asking,
            ControlEndpoint.ofBroker(
                given: controls.first, endpointsGiven: !endpoint.isEmpty, dataEndpoints: target.endpoints,
                defaults: BrokerConfiguration.Defaults.xpubEndpoints) == nil
        {
            throw ValidationError(
                endpoint.isEmpty
                    ? "\(asking) asks the broker's control socket, and $\(target.source) names a broker that may not be the one on the default control endpoint (\(BrokerConfiguration.Defaults.controlEndpoints[0])): give its control endpoint with -c (or $ZPUB_CONTROL)"
                    : "\(asking) asks the broker's control socket, and --endpoint names a broker whose control endpoint may be neither the default one nor $ZPUB_CONTROL: give its control endpoint with -c"
            )
        }
    }

    func run() throws {
        try reportingErrors {
            let context = try Context()
            defer { context.terminate() }
            // Following a pair, a socket per broker: a sequence marker follows its message on its
            // broker's connection, and only a socket of its own says which broker a message came
            // from (`PairFollower`).
            // One broker is followed as a pair is: its messages print with their `seq` (--json),
            // and a restart or a dropped connection resumes after the last one printed.
            let following = since != nil && (controls.count > 1 || endpoints.count == 1)
            if following && endpoints.count < controls.count {
                Output.error(
                    "following \(controls.count) brokers through \(endpoints.count) --endpoint: give each broker's XPUB endpoint, so that each is read on a socket of its own (on one, a failover can print a message twice)"
                )
            }
            let sockets = try (0..<(following ? endpoints.count : 1)).map { _ in try Socket(context, type: .sub) }
            defer { for socket in sockets { socket.close() } }
            for socket in sockets {
                try socket.setOption(.linger, 0)
                // Subscriptions are messages this socket sends: past libzmq's default send queue
                // (1,000, and as many on the broker's side) they were dropped in silence, and
                // `zpub sub` given 3,000 prefixes got 2,000 of them.
                try socket.setOption(.sendHighWaterMark, 0)
                if snapshot || since != nil {
                    // Live messages wait here while the snapshot or the replay is fetched; a
                    // bounded queue would drop some of them, the marker that ends the catch-up
                    // among them.
                    try socket.setOption(.receiveHighWaterMark, 0)
                }
                try curve.apply(to: socket)
            }
            let watch = try ConnectionWatch(
                sockets, context: context, endpoints: endpoints, usingCurve: curve.serverKey != nil,
                expected: ConnectionWatch.only("XPUB", for: "SUB"))
            defer { watch.close() }
            let source = target.source
            for (index, endpoint) in endpoints.enumerated() {
                try sockets[following ? index : 0].connect(endpoint, option: source)
            }
            for socket in sockets {
                for prefix in prefixes.isEmpty ? [""] : prefixes {
                    try socket.setOption(.subscribe, bytes: Array(prefix.utf8))
                }
            }
            if let since, following { return try follow(sockets, since: since, watch: watch) }
            let socket = sockets[0]
            if ready { try waitUntilForwarded(socket) }
            var received = 0
            func emit(_ frames: [[UInt8]]) -> Bool {
                guard !isBrokersOwn(frames) else { return false }
                received += 1
                Output.line(json ? Self.jsonLine(frames) : Self.textLine(frames))
                return count.map { received >= $0 } ?? false
            }
            var catchUp: SnapshotCatchUp<[[UInt8]]>?
            if snapshot || since != nil {
                var handshake = try startSnapshot(subscribers: [socket])
                /// Ends the command once --count messages are out.
                struct Done: Error {}
                func print(_ entries: [MessageJSON]) throws {
                    for entry in entries {
                        guard let frames = entry.messageFrames else {
                            let what = entry.seq.map { "message \($0)" } ?? "a cached value"
                            Output.error("\(what) has a frame that is not base64; skipped")
                            continue
                        }
                        if emit(frames) { throw Done() }
                    }
                }
                do {
                    if let since {
                        var notKept = NotKeptReport()
                        _ = try fetchReplay(
                            token: handshake.token, since: since, into: &handshake, told: &notKept, page: print)
                    } else {
                        try print(handshake.replied(try fetchSnapshot(token: handshake.token)).entries)
                    }
                } catch is Done {
                    return
                }
                catchUp = handshake
            }
            // Messages and the connection's news, whichever comes first.
            var poller = Poller()
            let data = poller.add(socket)
            for monitor in watch.monitors { poller.add(monitor) }
            var lastMessage = SystemClock.monotonicNanoseconds()
            // The catch-up's marker travels in the live stream, which the broker sends without
            // waiting: when its queue to this subscriber is full, the marker is lost, and the
            // catch-up would skip the topics it covers for ever. As the follow mode and the
            // gateway do, it is given up on 10 s after the reply.
            let catchUpReplied = lastMessage
            var retry = Self.retry()
            while count.map({ received < $0 }) ?? true {
                let untilTimeout = timeout.map { max(0, $0 - Self.millisecondsSince(lastMessage)) }
                let untilCatchUpExpires = catchUp.map { _ in max(0, 10_000 - Self.millisecondsSince(catchUpReplied)) }
                let untilRetry = retry.millisecondsUntilDue(nowNanoseconds: SystemClock.monotonicNanoseconds())
                let wait = [untilTimeout, watch.millisecondsUntilDue, untilCatchUpExpires, untilRetry]
                    .compactMap { $0 }.min()!
                _ = try poller.poll(timeoutMilliseconds: wait)
                Self.sendRetryIfDue(&retry, on: [socket])
                try tell(watch)
                if let abandoned = catchUp, Self.millisecondsSince(catchUpReplied) >= 10_000 {
                    try? socket.setOption(.unsubscribe, bytes: abandoned.markerTopic)
                    catchUp = nil
                    Output.error(
                        "the catch-up's marker did not arrive within 10 s of the \(since == nil ? "snapshot" : "replay") (the broker's queue to this subscriber was full?): printing every live message from now on (the first of them may repeat what the \(since == nil ? "snapshot" : "replay") printed)"
                    )
                }
                if poller.isReadable(data), let frames = try socket.receiveFrames(dontWait: true) {
                    lastMessage = SystemClock.monotonicNanoseconds()
                    guard try Self.passesCatchUp(frames, &catchUp, sockets: [socket]) else { continue }
                    if emit(frames) { return }
                } else if let timeout, Self.millisecondsSince(lastMessage) >= timeout {
                    throw noMessage(within: timeout, watch)
                }
            }
        }
    }

    /// A broker whose table was full when this subscriber subscribed admits what it refused at
    /// the subscriber's next subscription frame once it has room (it can apply a prefix only to
    /// the connection whose frame it read last): `$zpub/retry`, which subscribes to nothing,
    /// every 2 s gets them admitted without a reconnection.
    private static func retry() -> SubscriptionRetry {
        SubscriptionRetry(intervalNanoseconds: 2_000_000_000, nowNanoseconds: SystemClock.monotonicNanoseconds())
    }

    private static func sendRetryIfDue(_ retry: inout SubscriptionRetry, on sockets: [Socket]) {
        guard retry.isDue(nowNanoseconds: SystemClock.monotonicNanoseconds()) else { return }
        for socket in sockets { try? socket.setOption(.subscribe, bytes: BrokerState.retryPrefix) }
    }

    /// zpubd's own topics (`$zpub/`: sequence markers, other clients' snapshot markers), which a
    /// subscription to everything receives too: printed only when a prefix asks for them.
    private func isBrokersOwn(_ frames: [[UInt8]]) -> Bool {
        frames[0].starts(with: BrokerState.internalPrefix)
            && !prefixes.contains { $0.utf8.starts(with: BrokerState.internalPrefix) }
    }

    /// Prints what the person should know about the connection; ends the command when libzmq
    /// has given up every endpoint, since then nothing can arrive.
    private func tell(_ watch: ConnectionWatch) throws {
        for notice in try watch.update() { Output.error(notice) }
        if watch.isHopeless {
            throw CLIError("giving up: libzmq does not retry a connection whose handshake was refused")
        }
    }

    private func noMessage(within timeout: Int, _ watch: ConnectionWatch) -> CLIError {
        let why = watch.problem.map { "; \($0)" } ?? ""
        return CLIError("no message within \(timeout) ms from \(endpoints.joined(separator: ", "))\(why)")
    }

    private static func millisecondsSince(_ nanoseconds: UInt64) -> Int {
        Int((SystemClock.monotonicNanoseconds() &- nanoseconds) / 1_000_000)
    }

    /// The Clone pattern's first half: subscribe to a marker topic of our own; the broker takes
    /// the snapshot once that subscription (and so the data subscription sent before it) has
    /// arrived, and ends it with a marker message in the live stream (`SnapshotCatchUp`).
    private func startSnapshot(subscribers: [Socket]) throws -> SnapshotCatchUp<[[UInt8]]> {
        let token = (0..<16).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
        let handshake = SnapshotCatchUp<[[UInt8]]>(token: token)
        for subscriber in subscribers { try subscriber.setOption(.subscribe, bytes: handshake.markerTopic) }
        return handshake
    }

    /// REPLAY, then the rest of the replayed messages page by page (up to the marker's
    /// sequence: later ones come live), each page handed to `page` as it arrives (a replay of
    /// a million messages is not held in memory first). A range no longer kept is reported on
    /// stderr. Returns the handshake's release (the live messages held meanwhile), the
    /// replay's `through` (the last sequence the broker had assigned) and, when the broker
    /// replayed from below `since` (a pair's numbering split: `ReplayReply.resumedAfter`),
    /// where it started.
    private func fetchReplay(
        token: String, since: UInt64, into handshake: inout SnapshotCatchUp<[[UInt8]]>, from control: String? = nil,
        noteUnkept: Bool = true, told notKept: inout NotKeptReport,
        begin: (_ through: UInt64, _ resumedAfter: UInt64?, _ prefixes: [String]) throws -> Void = { _, _, _ in },
        page deliver: ([MessageJSON]) throws -> Void
    ) throws -> (release: SnapshotCatchUp<[[UInt8]]>.Release, through: UInt64, resumedAfter: UInt64?) {
        let client = catchUpClient(control ?? self.control)
        let prefix = prefixes.first ?? ""
        let reply = try catchUpRequest("REPLAY \(token) \(since) \(prefix)", as: ReplayReply.self, to: client)
        // Nothing under the prefix is kept: the numbers history lost or evicted were others'.
        let unkept = !Self.overlapsAny(prefix, reply.prefixes) && reply.messages.isEmpty
        if noteUnkept && unkept {
            Output.error(
                "history keeps nothing under \(prefix.isEmpty ? "\"\"" : prefix) (it keeps \(reply.prefixes.joined(separator: ", "))): nothing to replay; live messages follow"
            )
        }
        if let gap = reply.gap, !unkept {
            Output.error("messages \(gap.from) to \(gap.to) are no longer kept (history's bounds)")
        }
        if !unkept {
            for range in notKept.untold(reply.notKept) { Output.error(range.describe(readUnder: prefix)) }
        }
        try begin(reply.through, reply.resumedAfter, reply.prefixes)
        try deliver(reply.messages)
        var last = reply.messages.last?.sequence
        var more = reply.more
        while more, let after = last {
            let (page, _) = try client.request(
                "HISTORY since \(after) until \(reply.through) \(prefix)", as: HistoryReply.self)
            // Evicted while the pages were read: told, as the first page's gap is.
            if let gap = page.gap {
                Output.error("messages \(gap.from) to \(gap.to) are no longer kept (history's bounds)")
            }
            for range in notKept.untold(page.notKept) { Output.error(range.describe(readUnder: prefix)) }
            try deliver(page.messages)
            last = page.messages.last?.sequence ?? last
            more = page.more
        }
        return (handshake.replied(entries: [], covering: reply.prefixes), reply.through, reply.resumedAfter)
    }

    /// What `control` holds of `prefix` within `ranges` (numbers the follower's sequence jumped
    /// over: `PairFollower.rangesToRead`), oldest first, page by page. A range that cannot be
    /// read whole is said, and left out (the follower asks for it at the next resume).
    private func fetchSkipped(_ ranges: [ClosedRange<UInt64>], from control: String) -> PairFollower.GapReading {
        let client = catchUpClient(control)
        let prefix = prefixes.first ?? ""
        var reading = PairFollower.GapReading(ranges: [], messages: [])
        for range in ranges {
            var found: [(frames: [[UInt8]], sequence: UInt64)] = []
            var after = range.lowerBound - 1
            var more = true
            do {
                while more {
                    let page = try client.request(
                        "HISTORY since \(after) until \(range.upperBound) \(prefix)", as: HistoryReply.self
                    ).0
                    for entry in page.messages {
                        if let frames = entry.messageFrames, let sequence = entry.seq {
                            found.append((frames, sequence))
                        }
                    }
                    more = page.more && page.messages.last?.seq.map { $0 > after } == true
                    after = page.messages.last?.seq ?? after
                }
            } catch {
                Output.error(
                    "cannot read numbers \(range.lowerBound) to \(range.upperBound) from \(control) (\(error)): what it numbered there is asked for again at the next resume"
                )
                continue
            }
            reading.ranges.append(range)
            reading.messages += found
        }
        return reading
    }

    /// `--ready`: a marker round for nothing but the marker itself. The broker answers SNAPSHOT
    /// once the marker subscription has arrived, and so the data subscriptions sent before it on
    /// the same connection; the marker message that follows is zpubd's own, never printed.
    private func waitUntilForwarded(_ socket: Socket) throws {
        let handshake = try startSnapshot(subscribers: [socket])
        let client = catchUpClient(control)
        let marker = String(decoding: handshake.markerTopic, as: UTF8.self)
        _ = try catchUpRequest("SNAPSHOT \(handshake.token) \(marker)", as: SnapshotReply.self, to: client)
        try? socket.setOption(.unsubscribe, bytes: handshake.markerTopic)
        Output.error("ready")
    }

    private func fetchSnapshot(token: String) throws -> SnapshotReply {
        // A pair's passive broker holds a copy of the active one's values, taken once a second:
        // asked, it printed a value already replaced, with no word (a walkthrough, 2026-12-06).
        // With both control endpoints the active one is asked; with one, a passive is said.
        let endpoint = controls.count > 1 ? try activeControl(waitingMilliseconds: 3_000) : control
        if controls.count <= 1,
            let (health, _) = try? controlClient(endpoint, timeoutMilliseconds: 1_000)
                .request("HEALTH", as: HealthReport.self),
            let pair = health.pair, !pair.active
        {
            Output.error(
                "\(endpoint) is the passive broker of a pair: its values are a copy of the active one's, up to a second old; give the active broker's control endpoint, or both brokers' (-c A -c B)"
            )
        }
        let client = catchUpClient(endpoint)
        let prefix = prefixes.first ?? ""
        let reply = try catchUpRequest("SNAPSHOT \(token) \(prefix)", as: SnapshotReply.self, to: client)
        if reply.prefixes.isEmpty {
            Output.error(
                "that zpubd caches no last values ([last_value] prefixes, zpubd --last-value): nothing to print before the live messages"
            )
        } else if !Self.overlapsAny(prefix, reply.prefixes) {
            Output.error(
                "no last value is cached under \(prefix.isEmpty ? "\"\"" : prefix) (the cache keeps \(reply.prefixes.joined(separator: ", "))): live messages follow"
            )
        }
        return reply
    }

    /// The control client of a catch-up (SNAPSHOT, REPLAY, --ready): its reply may take the
    /// broker's 5 s for the marker, so it waits 6 s at least; a control endpoint that does not
    /// connect at all is told within --timeout (it took the 6 s, a walkthrough).
    private func catchUpClient(_ endpoint: String) -> ControlClient {
        var client = controlClient(endpoint, timeoutMilliseconds: max(timeout ?? 10_000, 6_000))
        // At least 1 s: for `sub`, --timeout is the wait for a message, and a small one would
        // fail a CURVE handshake or a slow link that a catch-up had 6 s for (a review).
        client.connectTimeoutMilliseconds = timeout.map { max($0, 1_000) }
        return client
    }

    /// A catch-up's request (SNAPSHOT, REPLAY), or `--ready`'s. zpubd's `snapshot_timeout` tells
    /// a client to subscribe to the marker before asking, which this one did: then the likely
    /// cause is that --endpoint and -c name different brokers (-c defaults to the local one).
    private func catchUpRequest<T: Decodable>(_ text: String, as type: T.Type, to client: ControlClient) throws -> T {
        let reply = try client.request(text)
        if let error = ControlClient.errorMessage(reply) {
            let option = ready ? "--ready" : since != nil ? "--since" : "--snapshot"
            // The broker's advice ("use a shorter token") is for clients that choose their own:
            // zpub's is fixed, so a short max_subscription_length is the one thing to change.
            if error.code == ControlError.Code.badArgument.rawValue, error.message.contains("max_subscription_length") {
                let marker = text.split(separator: " ").dropFirst().first.map {
                    SnapshotReply.markerPrefix.utf8.count + $0.utf8.count
                }
                throw CLIError(
                    "\(option): the zpubd at \(client.endpoint) refuses subscriptions longer than its max_subscription_length, and \(option) needs one of \(marker ?? 31) bytes (the marker that ends the catch-up): raise max_subscription_length in [limits] to \(marker ?? 31) or more (a reload applies it)",
                    code: error.code)
            }
            guard error.code == ControlError.Code.snapshotTimeout.rawValue else {
                throw CLIError(
                    "zpubd answered with an error\(error.code.map { " (\($0))" } ?? ""): \(error.message)",
                    code: error.code)
            }
            // A full table refuses the marker's subscription as any other: the broker is the
            // right one, and the endpoint is not to blame.
            // Distinct prefixes against the limit on them: live subscriptions (`total`), a prefix
            // held by many counted many times, said "full" of a table with room (before 2026-12-07).
            if let (stats, _) = try? client.request("STATS", as: StatsSnapshot.self),
                stats.subscriptions.prefixes >= stats.subscriptions.limit
            {
                throw CLIError(
                    "\(option): the subscription table of the zpubd at \(client.endpoint) is full (\(stats.subscriptions.prefixes) prefixes of max_subscriptions \(stats.subscriptions.limit), \(stats.subscriptions.waitingForRoom) waiting for room), so it refused the subscription \(option) waits for; it gets in once subscribers leave. Raise max_subscriptions, or subscribe with fewer prefixes"
                )
            }
            let named = environmentEndpoint("ZPUB_CONTROL") != nil ? "$ZPUB_CONTROL's" : "the default"
            let asked = controls.isEmpty ? "; none was given, so \(named) \(client.endpoint) was asked" : ""
            let writer = text.hasPrefix("REPLAY") ? " (or that broker's history writer did not answer in time)" : ""
            throw CLIError(
                "\(option): the subscription did not reach the zpubd at \(client.endpoint) within 5 s\(writer): is --endpoint (\(endpoints.joined(separator: ", "))) that broker's XPUB? (-c names the control socket of the broker to ask\(asked))"
            )
        }
        return try client.decode(reply, of: text, as: T.self)
    }

    /// The prefixes of `--prefixes-from`: a file of one per line, or standard input ("-").
    private static func prefixes(from path: String) throws -> [String] {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw ValidationError("--prefixes-from: cannot read \(path): no such file")
            }
            guard !isDirectory.boolValue else {
                throw ValidationError("--prefixes-from: \(path) is a directory; give a file of prefixes, one per line")
            }
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--prefixes-from: cannot read \(path) (permission?)")
            }
            data = contents
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("--prefixes-from: \(path) is not UTF-8 text")
        }
        // "\r\n" is one Character in Swift: a file with CRLF line ends was one long prefix.
        let prefixes = text.split(omittingEmptySubsequences: true) { $0 == "\n" || $0 == "\r\n" }.map(String.init)
        // An empty file would otherwise subscribe to everything.
        guard !prefixes.isEmpty else { throw ValidationError("--prefixes-from: \(path) holds no prefix") }
        return prefixes
    }

    /// Whether a subscription to `prefix` and one of `prefixes` can match a common topic.
    private static func overlapsAny(_ prefix: String, _ prefixes: [String]) -> Bool {
        prefixes.contains { PrefixMatcher.overlap($0.utf8, prefix.utf8) }
    }

    // MARK: Following a pair

    /// `--since` with both brokers of a pair (`-c` twice): resumes from the active one, learns
    /// each kept message's sequence from its marker (`$zpub/seq/<topic>`, which follows it), and
    /// when another broker becomes active resumes there after the last sequence printed, so
    /// that what history kept arrives once and in order across a failover. `PairFollower`
    /// makes the decisions; this loop does the talking and the waiting.
    private func follow(_ sockets: [Socket], since: UInt64, watch: ConnectionWatch) throws {
        let prefix = Array((prefixes.first ?? "").utf8)
        let markers = BrokerState.sequenceMarkerPrefix
        for socket in sockets { try socket.setOption(.subscribe, bytes: markers + prefix) }
        func unsubscribe(_ topic: [UInt8]) {
            for socket in sockets { try? socket.setOption(.unsubscribe, bytes: topic) }
        }
        var poller = Poller()
        for socket in sockets { poller.add(socket) }
        /// The socket read first at the next turn: they take turns, so that a busy broker's
        /// stream cannot keep another's waiting.
        var turn = 0
        /// A whole message from whichever socket has one, within `timeout`, with the index of
        /// its socket (the follower's source).
        func receive(timeoutMilliseconds timeout: Int) throws -> (frames: [[UInt8]], source: Int)? {
            for attempt in 0..<2 {
                for offset in sockets.indices {
                    let source = (turn + offset) % sockets.count
                    if let frames = try sockets[source].receiveFrames(dontWait: true) {
                        turn = (source + 1) % sockets.count
                        return (frames, source)
                    }
                }
                if attempt == 0 { _ = try poller.poll(timeoutMilliseconds: timeout) }
            }
            return nil
        }
        var follower = PairFollower(since: since, markerPrefix: markers)
        var reconnectionsSeen = watch.reconnections
        var received = 0
        var active = try activeControl(waitingMilliseconds: timeout ?? 10_000)
        var catchUp: SnapshotCatchUp<[[UInt8]]>?
        var lastCheck = SystemClock.monotonicNanoseconds()
        /// The last resume failed, or the follower asked for one: the next turn of the loop
        /// resumes, whichever broker is active.
        var retrying = false
        /// When the current catch-up began: one whose marker never comes (lost with a dropped
        /// connection) is started again.
        var resumed: UInt64 = 0
        var lastMessage = lastCheck
        /// The socket the last catch-up's marker came on: the active broker's.
        var activeSource: Int?
        /// During a catch-up on a broker that took over, the socket of the one active before:
        /// what comes on it is that broker's last messages, which the new broker's replay may
        /// not hold (not mirrored). They go to the follower as live messages, whose rules
        /// settle them; the catch-up would skip them as replayed.
        var previousSource: Int?

        /// Carries out the follower's actions in order; true once `--count` messages are out.
        func act(_ actions: [PairFollower.Action]) -> Bool {
            for action in actions {
                switch action {
                case .deliver(let frames, let sequence):
                    received += 1
                    Output.line(json ? Self.jsonLine(frames, sequence: sequence) : Self.textLine(frames))
                    if let count, received >= count { return true }
                case .resume:
                    retrying = true
                    lastCheck = 0
                case .droppedOrphan:
                    Output.error(
                        "more than \(PairFollower.maximumOrphans) messages wait for a resume; the oldest is not printed"
                    )
                }
            }
            return false
        }
        /// The first resume: for one broker, an error there ends the command (history off, a
        /// refused key, no zpubd there), as it did before one broker was followed as a pair is;
        /// a pair's may be in the middle of a takeover, and is asked again.
        var firstResume = true
        /// The not-kept ranges told so far, over every resume: one after `last` is told the
        /// ranges above it again (a restart's reserve, which the first live number jumps over).
        var toldNotKept = NotKeptReport()
        /// The broker last found to keep no history, told once (until a replay works again).
        var historyOffNoted: String?
        func resume() throws -> Bool {
            defer { firstResume = false }
            // A catch-up given up on: its marker must not arrive later as a message to print.
            if let abandoned = catchUp { unsubscribe(abandoned.markerTopic) }
            catchUp = nil
            var handshake = try startSnapshot(subscribers: sockets)
            /// The replay held whole: only when an orphan waits (matched against all of it).
            var entries: [MessageJSON] = []
            /// The replay passed page by page as it is read (`PairFollower.mayTakeReplayInPages`).
            let paged = follower.mayTakeReplayInPages
            var pass: PairFollower.ReplayPass?
            let through: UInt64
            let resumedAfter: UInt64?
            // The replaying broker's socket: the one its last catch-up's marker came on, or the
            // one of its --endpoint, given in the order of the --control options.
            let replaying =
                activeSource
                ?? (endpoints.count == controlEndpoints.count ? controlEndpoints.firstIndex(of: active) : nil)
            var numberingStartedAgain = false
            defer { if numberingStartedAgain { toldNotKept = NotKeptReport() } }
            /// Before the replay's messages: the numbering's news, and what the broker holds of
            /// the ranges the follower skipped.
            func beforeTheMessages(through: UInt64, resumedAfter: UInt64?) -> PairFollower.GapReading? {
                let gaps = follower.rangesToRead(at: replaying)
                let filling = gaps.isEmpty ? nil : fetchSkipped(gaps, from: active)
                let previous = follower.last
                // A broker that resumed from below `last` numbers above it: `last` was its peer's
                // number, given while both were active, not one of a numbering that started again.
                if resumedAfter == nil, follower.numberingEnds(at: through, from: replaying) {
                    // Numbers below the ranges told are given again: their ranges are news
                    // (forgotten once the replay is read: `fetchReplay` holds the report).
                    numberingStartedAgain = true
                    if previous == since {
                        Output.error(
                            "--since \(previous) is beyond the newest number \(active) has given (\(through)): nothing to replay. Printing from \(through + 1) on (a number from another broker, or from before it restarted without its state directory? what it keeps: zpub history -c \(active) --since 0)"
                        )
                    } else {
                        Output.error(
                            "\(active) has numbered no message after \(through), below the last sequence printed (\(previous)): its numbering started again (restarted without a state directory, or its history file moved aside). Printing from \(through + 1) on; what it kept before: zpub history -c \(active) --since 0"
                        )
                    }
                }
                return filling
            }
            func numbered(_ page: [MessageJSON]) -> [(frames: [[UInt8]], sequence: UInt64?)] {
                page.compactMap { entry in entry.messageFrames.map { (frames: $0, sequence: entry.seq) } }
            }
            /// `--count` reached in the middle of the replay.
            struct Done: Error {}
            do {
                // The note of a prefix history does not keep: once, not at every failover.
                (_, through, resumedAfter) = try fetchReplay(
                    token: handshake.token, since: follower.replayPosition(at: replaying), into: &handshake,
                    from: active, noteUnkept: firstResume, told: &toldNotKept,
                    begin: { through, resumedAfter, prefixes in
                        guard paged else { return }
                        let filling = beforeTheMessages(through: through, resumedAfter: resumedAfter)
                        let (begun, actions) = follower.beginReplay(
                            keptPrefixes: prefixes.map { Array($0.utf8) }, from: replaying, filling: filling,
                            resumedAfter: resumedAfter)
                        pass = begun
                        if act(actions) { throw Done() }
                    }
                ) { page in
                    guard paged, pass != nil else {
                        entries += page
                        return
                    }
                    if act(follower.replayedPage(numbered(page), in: &pass!)) { throw Done() }
                }
            } catch is Done {
                return true
            } catch let error as CLIError
                where error.code == ControlError.Code.historyOff.rawValue
                && !(firstResume && controlEndpoints.count == 1)
            {
                // The active broker keeps no history (a pair member without [history]): asking
                // again cannot help. Said once; what waited for a replay is printed unnumbered,
                // and every live message as it comes (nothing there is kept, so none waits for
                // a sequence marker).
                if let pass { follower.abandonReplay(pass) }
                unsubscribe(handshake.markerTopic)
                catchUp = nil
                retrying = false
                if historyOffNoted != active {
                    historyOffNoted = active
                    Output.error(
                        "\(active) keeps no history ([history] prefixes): what it forwarded after sequence \(follower.last) that was not printed here cannot be replayed; printing its live messages, without sequences"
                    )
                }
                return act(follower.replayed([], keptPrefixes: [], from: nil))
            } catch {
                // The broker may have just taken over, or dropped this connection for a moment:
                // give up this handshake and try again (a new token) at the next check, from
                // what was printed of it.
                if let pass { follower.abandonReplay(pass) }
                unsubscribe(handshake.markerTopic)
                if firstResume && controlEndpoints.count == 1 { throw error }
                Output.error("cannot resume from \(active) yet (\(error)); trying again")
                catchUp = nil
                retrying = true
                return false
            }
            retrying = false
            historyOffNoted = nil
            if let pass {
                follower.endReplay(pass)
            } else if act(
                follower.replayed(
                    numbered(entries), keptPrefixes: handshake.coveredPrefixes, from: replaying,
                    filling: beforeTheMessages(through: through, resumedAfter: resumedAfter),
                    resumedAfter: resumedAfter))
            {
                return true
            }
            // From when the replay is printed: printing a long one must not count as the
            // catch-up's marker being late.
            resumed = SystemClock.monotonicNanoseconds()
            catchUp = handshake
            return false
        }
        if try resume() { return }
        var retry = Self.retry()
        while true {
            let now = SystemClock.monotonicNanoseconds()
            Self.sendRetryIfDue(&retry, on: sockets)
            if now &- lastCheck > 500_000_000 {
                lastCheck = now
                if catchUp != nil && now &- resumed > 10_000_000_000 {
                    Output.error(
                        "the catch-up from \(active) did not complete within 10 s; resuming again after \(follower.last)"
                    )
                    retrying = true
                }
                // One broker is asked only to resume; of a pair, the one followed is kept while it
                // is still active (both are, for a moment, when a partition heals), unless the
                // other's numbers jumped above it: that one is asked first (`jumpedSource`).
                let asking = controlEndpoints.count > 1 || retrying
                let jumped = follower.jumpedSource.flatMap { source in
                    endpoints.count == controlEndpoints.count && source < controlEndpoints.count
                        ? controlEndpoints[source] : nil
                }
                if asking, let current = try? activeControl(waitingMilliseconds: 0, preferring: jumped ?? active),
                    current != active || retrying
                {
                    if current != active {
                        Output.error("\(current) is active now (was \(active)); resuming after \(follower.last)")
                        previousSource = activeSource
                        activeSource = nil
                    }
                    active = current
                    if act(follower.resuming()) { return }
                    if try resume() { return }
                }
            }
            try tell(watch)
            if watch.reconnections != reconnectionsSeen {
                // What the broker kept while this one was not connected comes only from a resume,
                // at once: a kept message printed first would move `last` past them. Until a
                // replay comes, kept messages wait for it (the resume may fail, and be retried).
                reconnectionsSeen = watch.reconnections
                Output.error("connected again; resuming after \(follower.last)")
                follower.holdForResume()
                if act(follower.resuming()) { return }
                if try resume() { return }
            }
            if let timeout, now &- lastMessage > UInt64(timeout) * 1_000_000 {
                throw noMessage(within: timeout, watch)
            }
            guard let arrival = try receive(timeoutMilliseconds: follower.isHolding ? 50 : 100) else {
                if act(follower.idle(now: now)) { return }
                continue
            }
            let (frames, source) = arrival
            lastMessage = SystemClock.monotonicNanoseconds()
            if let handshake = catchUp, handshake.isMarker(topic: frames[0]) {
                activeSource = source
            }
            // Sequence markers are not the catch-up's business: they number what it lets through.
            // A catch-up filters the active broker's socket only (once its marker said which):
            // before that, after a failover, every socket but the old broker's.
            if catchUp == nil || (activeSource.map { source == $0 } ?? (source != previousSource)) {
                guard try Self.passesCatchUp(frames, &catchUp, sockets: sockets, passing: markers) else { continue }
            }
            if isBrokersOwn(frames) && !frames[0].starts(with: markers) { continue }
            if act(follower.received(frames, from: source, now: lastMessage, catchingUp: catchUp != nil)) { return }
        }
    }

    /// One live message during a catch-up (`SnapshotCatchUp`): the marker ends it (and is
    /// unsubscribed), messages the snapshot or replay already holds are skipped. True when the
    /// message is to be delivered; topics under `passing` always are.
    private static func passesCatchUp(
        _ frames: [[UInt8]], _ catchUp: inout SnapshotCatchUp<[[UInt8]]>?, sockets: [Socket], passing: [UInt8]? = nil
    ) throws -> Bool {
        guard var handshake = catchUp else { return true }
        defer { catchUp = handshake.isComplete ? nil : handshake }
        if handshake.isMarker(topic: frames[0]) {
            handshake.markerReceived(frames: frames)
            for socket in sockets { try socket.setOption(.unsubscribe, bytes: handshake.markerTopic) }
            return false
        }
        if let passing, frames[0].starts(with: passing) { return true }
        return handshake.received(topic: frames[0], frames) != nil
    }

    /// The control endpoint of the broker that is active (HEALTH says so, or it is no pair),
    /// asking each in turn until one answers, for up to `waitingMilliseconds`; `current` first,
    /// so that it is kept while it says it is active.
    private func activeControl(waitingMilliseconds: Int, preferring current: String? = nil) throws -> String {
        let deadline = SystemClock.monotonicNanoseconds() + UInt64(waitingMilliseconds) * 1_000_000
        let order = current.map { current in [current] + controlEndpoints.filter { $0 != current } } ?? controlEndpoints
        // A broker that answers as the passive one of a pair is told as such, with its peer.
        var passive: (control: String, peer: String)?
        // The only broker given is the standby of a live active peer: no takeover is under way
        // to wait for.
        var standbyOfALivePeer = false
        // One of several that is shutting down is the last choice: its peer takes over.
        var stopping: String?
        // Those whose connection libzmq gave up (a refused handshake): asking again meets the
        // same refusal, which is what to tell. A subscriber without --server-key at a CURVE
        // control socket waited out --since's 10 s and heard "is it running?" of a broker that
        // runs (a walkthrough, 2026-12-07).
        var refusals: [String: CLIError] = [:]
        repeat {
            for endpoint in order where refusals[endpoint] == nil {
                let client = controlClient(endpoint, timeoutMilliseconds: 300)
                let health: HealthReport
                do {
                    (health, _) = try client.request("HEALTH", as: HealthReport.self)
                } catch let error as CLIError where error.isFinal {
                    refusals[endpoint] = error
                    continue
                } catch {
                    continue
                }
                if health.status == .stopping && controlEndpoints.count > 1 {
                    stopping = endpoint
                    continue
                }
                guard let pair = health.pair, !pair.active else { return endpoint }
                passive = (endpoint, pair.peer)
                standbyOfALivePeer =
                    controlEndpoints.count == 1 && pair.peerState == .active
                    && (pair.peerHeardMillisecondsAgo ?? .max) < 1_000
            }
            if standbyOfALivePeer || order.allSatisfy({ refusals[$0] != nil }) { break }
            usleep(100_000)
        } while SystemClock.monotonicNanoseconds() < deadline
        if let stopping { return stopping }
        if controlEndpoints.count == 1, let refusal = refusals[control] { throw refusal }
        if controlEndpoints.count == 1, let passive {
            throw CLIError(
                "\(passive.control) is the standby of a pair, not its active broker (its peer's pair endpoint is \(passive.peer)): follow the pair with both brokers' endpoints, -e XPUB_A -e XPUB_B -c CONTROL_A -c CONTROL_B (docs/topologies.md)"
            )
        }
        let given =
            !controls.isEmpty
            ? ""
            : ControlEndpoint.given(nil).source == .environment
                ? " ($ZPUB_CONTROL)" : " (the default control endpoint: give the broker's with -c)"
        let refused = controlEndpoints.compactMap { refusals[$0].map { "; \($0)" } }.joined()
        throw CLIError(
            controlEndpoints.count == 1
                ? "\(control) is not an active broker\(given); is it running? (zpub health -c \(control))"
                : "none of \(controlEndpoints.joined(separator: ", ")) is an active broker; are they running? (zpub health -c ENDPOINT)\(refused)"
        )
    }

    static func textLine(_ frames: [[UInt8]]) -> String {
        frames.map(escape).joined(separator: "\t")
    }

    /// Printable ASCII and valid UTF-8 as is; everything else as \xNN (and \t, \n, \\ escaped),
    /// so one message is always one line, and a producer's bytes cannot drive the terminal.
    /// Valid UTF-8 is escaped character by character: the C0 and C1 controls (U+009B is a CSI
    /// to terminals that decode UTF-8 first, U+0085 a newline), DEL, the line and paragraph
    /// separators, and the bidirectional overrides, embeddings and isolates, which reorder what
    /// follows on the line. C1 and the bidi controls went out raw (an audit).
    static func escape(_ bytes: [UInt8]) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else { return escapeBytes(bytes) }
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\\": out += "\\\\"
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            default: for byte in String(scalar).utf8 { out += "\\x" + Hex.encode([byte]) }
            }
        }
        return out
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x5C, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// Bytes that are not UTF-8: printable ASCII as is, the rest as \xNN.
    private static func escapeBytes(_ bytes: [UInt8]) -> String {
        var out = ""
        for byte in bytes {
            switch byte {
            case 0x5C: out += "\\\\"
            case 0x09: out += "\\t"
            case 0x0A: out += "\\n"
            case 0x20..<0x7F: out.unicodeScalars.append(UnicodeScalar(byte))
            default: out += "\\x" + Hex.encode([byte])
            }
        }
        return out
    }

    /// One line of `MessageJSON`, as browsers get it; `sequence` as `"seq"` (`zpub history`).
    static func jsonLine(_ frames: [[UInt8]], sequence: UInt64? = nil) -> String {
        String(decoding: MessageJSON.write(frames, seq: sequence), as: UTF8.self)
    }
}
