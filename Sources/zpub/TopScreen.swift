import Foundation
import ZPubCore

/// The text of one `zpub top` refresh: a summary of the broker, then its busiest topics.
/// The same lines serve the live view and the plain one; only the live view adds colours.
struct TopScreen {
    let endpoint: String
    let sort: TopSortKey
    /// The most topic rows to show.
    let topicLimit: Int
    /// Shown under the summary when the last reading failed (the view then shows the one before).
    var problem: String?

    /// The summary lines and the topic table's heading and rows, none longer than `width`.
    func lines(_ view: TopView, width: Int, now: Date = Date()) -> (summary: [String], heading: String, rows: [String])
    {
        let stats = view.sample.stats
        var summary: [String] = []
        let clock = Self.clock.string(from: now)
        summary.append(
            "zpub top - \(endpoint) - up \(Format.duration(stats.uptimeSeconds)), forwarding \(stats.forwarding.rawValue) - \(clock)"
        )
        summary.append(
            "in   \(Self.rate(view.messagesInPerSecond, "msg/s"))  \(Self.byteRate(view.bytesInPerSecond))"
                + "   total \(stats.messagesIn) msgs, \(Format.bytes(stats.bytesIn))")
        summary.append(
            "out  \(Self.rate(view.messagesOutPerSecond, "msg/s"))  \(Self.byteRate(view.bytesOutPerSecond))"
                + "   total \(stats.messagesOut) msgs, \(Format.bytes(stats.bytesOut))")
        let peers = [BrokerSocketRole.pull, .xsub, .xpub].map { "\($0.rawValue) \(stats.peers[$0] ?? 0)" }.joined(
            separator: ", ")
        var connected = "subscriptions \(stats.subscriptions.total) on \(stats.subscriptions.prefixes) prefixes"
        connected += "   peers: \(peers)"
        if !stats.upstreams.isEmpty {
            let up = stats.upstreams.filter { $0.state == .connected }.count
            connected += "   upstreams \(up)/\(stats.upstreams.count) connected"
        }
        summary.append(connected)
        let refused = stats.subscriptions.refusedTooLong + stats.subscriptions.refusedTableFull
        let unwantedRate = view.unwantedPerSecond.map { " (\(Self.number($0))/s)" } ?? ""
        // "drops" alone read as every loss: a walkthrough's slow subscriber lost 216,348 while
        // it said 0. libzmq drops for a full subscriber queue without telling the broker.
        summary.append(
            "not forwarded: unwanted \(stats.unwantedMessages)\(unwantedRate), send failures \(stats.sendFailures)"
                + " (not a slow subscriber's overflow)")
        summary.append(
            "refused: subscriptions \(refused), handshakes \(stats.handshakeFailures),"
                + " connections denied \(stats.security.denied)")
        if let history = stats.history, !history.prefixes.isEmpty {
            summary.append(Self.historyLine(history, writes: view.historyWritesPerSecond, now: now))
        }
        if let pair = stats.pair { summary.append(Self.pairLine(pair)) }
        if let problem { summary.append("! \(problem)") }

        guard view.sample.topics.accounting else {
            return (summary.map { Self.fit($0, width) }, "topic accounting is off (topic_accounting in [daemon])", [])
        }
        let columns = TopSortKey.allCases.filter { $0 != .topic }
        let numberWidth = 11
        // As wide as the longest topic shown, so that the numbers stay next to their names.
        let longest = view.topics.map(\.shown.count).max() ?? 0
        let topicWidth = max(12, min(longest + 2, width - columns.count * (numberWidth + 1)))
        func row(_ topic: String, _ cells: [String]) -> String {
            Self.fit(
                Self.pad(topic, topicWidth) + cells.map { " " + Self.padLeft($0, numberWidth) }.joined(), width)
        }
        let heading = row(
            sort == .topic ? "TOPIC*" : "TOPIC", columns.map { $0 == sort ? $0.column + "*" : $0.column })
        let rows = view.sortedTopics(by: sort).prefix(topicLimit).map { topic in
            row(
                topic.shown,
                [
                    topic.messagesPerSecond.map(Self.number) ?? "-",
                    topic.bytesPerSecond.map { Format.bytes(UInt64($0.rounded())) } ?? "-",
                    "\(topic.messages)", "\(topic.unwanted)",
                ])
        }
        var tail: [String] = []
        let hidden = view.topics.count - rows.count
        if hidden > 0 { tail.append("... and \(hidden) more topics") }
        if view.sample.topics.untrackedMessages > 0 {
            // Not only max_topics: a topic longer than max_subscription_length is never tracked.
            tail.append(
                "\(view.sample.topics.untrackedMessages) messages on untracked topics (max_topics reached, or topics longer than max_subscription_length)"
            )
        }
        return (summary.map { Self.fit($0, width) }, heading, rows + tail.map { Self.fit($0, width) })
    }

    /// One of a pair: this broker's role and state, the peer's, and the replication lag.
    static func pairLine(_ pair: PairStatus) -> String {
        var line = "pair     \(pair.role.rawValue) \(pair.state.rawValue), peer \(pair.peer)"
        if let peerState = pair.peerState, let ago = pair.peerHeardMillisecondsAgo {
            line += " last heard \(peerState.rawValue) \(ago) ms ago"
        } else {
            line += " not heard"
        }
        if !pair.active {
            line +=
                ", mirrored through seq \(pair.replicatedThrough), lag \(pair.lagMessages) msgs / \(pair.lagMilliseconds) ms"
            if let clients = pair.clients { line += ", \(clients) client\(clients == 1 ? "" : "s") for a takeover" }
        }
        if let problems = pair.problems, !problems.isEmpty {
            line +=
                "; \(problems.count) problem\(problems.count == 1 ? "" : "s") (\(kinds(problems).joined(separator: ", ")): zpub health says what to do)"
        }
        return line
    }

    /// The problems' kinds, each once, in order.
    private static func kinds(_ problems: [PairProblem]) -> [String] {
        var kinds: [String] = []
        for problem in problems where !kinds.contains(problem.kind) { kinds.append(problem.kind) }
        return kinds
    }

    /// The ranges of numbers not kept besides this run's drops (a takeover's skip, an unclean
    /// stop's reserve): "0 not kept" alone read as if nothing was missing.
    static func notKeptRangesNote(_ history: HistoryStats) -> String {
        guard let ranges = history.notKeptRanges, ranges > 0 else { return "" }
        return " (and \(ranges) range\(ranges == 1 ? "" : "s") of numbers not kept: zpub history --since 0 says which)"
    }

    /// Kept messages, the writer's rate and queue, what was not kept, and (on disk) the store's
    /// size and how long ago it was last synced.
    static func historyLine(_ history: HistoryStats, writes: Double?, now: Date) -> String {
        var line = "history  \(rate(writes, "msg/s")) written   kept \(history.messages) msgs"
        line += " (\(Format.bytes(UInt64(history.bytes)))), seq \(history.firstSequence)-\(history.lastSequence)"
        line += ", queue \(Format.bytes(UInt64(history.queuedBytes)))"
        line +=
            ", not kept \(history.dropped + history.writeFailures)\(notKeptRangesNote(history)), evicted \(history.evictions)"
        if history.persistent {
            line += ", disk \(Format.bytes(UInt64(history.diskBytes)))"
            if history.lastSyncMilliseconds > 0 {
                let age = max(0, now.timeIntervalSince1970 - Double(history.lastSyncMilliseconds) / 1_000)
                line += ", synced \(String(format: "%.1f", age)) s ago"
            }
        } else {
            line += ", in memory"
        }
        return line
    }

    private static let clock: DateFormatter = {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return formatter
    }()

    static func number(_ value: Double) -> String { String(format: "%.1f", value) }

    static func rate(_ value: Double?, _ unit: String) -> String {
        padLeft(value.map(number) ?? "-", 10) + " " + unit
    }

    static func byteRate(_ value: Double?) -> String {
        padLeft(value.map { Format.bytes(UInt64($0.rounded())) } ?? "-", 10) + "/s"
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width
            ? String(text.prefix(width - 1)) + " " : text + String(repeating: " ", count: width - text.count)
    }

    static func padLeft(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }

    /// Cut to the screen's width: a line that wraps would scroll the live view.
    static func fit(_ text: String, _ width: Int) -> String {
        text.count > width ? String(text.prefix(width)) : text
    }
}
