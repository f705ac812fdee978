import ArgumentParser
import Foundation
import ZPubCore

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print stored messages under a prefix, oldest first, each with its sequence number.",
        discussion: """
            Text lines are the sequence, the topic and the frames, tab-separated (as zpub \
            sub prints them, sequence first). --json prints zpub sub --json's objects (the \
            shape browsers get) with "seq". Without --last or --since, everything kept is \
            printed. Messages no longer kept (evicted by the bounds) are reported on stderr \
            as a gap, and numbers history handed out but could not keep (its queue was full, \
            a write failed, zpubd stopped uncleanly) as not kept. See docs/history.md.
            """
    )

    @Argument(help: "The topic prefix; none: every kept topic.")
    var prefix: String = ""

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Only the newest N messages (at most 1,000).", valueName: "N"))
    var last: Int?

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Only messages after this sequence number.", valueName: "seq"))
    var since: UInt64?

    @OptionGroup var options: ControlOptions

    func validate() throws {
        if last != nil && since != nil { throw ValidationError("give --last or --since, not both") }
        if let last, last < 1 { throw ValidationError("--last must be at least 1") }
        if let last, last > HistoryReply.pageSize {
            throw ValidationError(
                "--last is at most \(HistoryReply.pageSize) (one reply); use --since to read more")
        }
    }

    func run() throws {
        try reportingErrors(json: options.json) {
            let client = options.client
            if let last {
                let (reply, _) = try client.request(
                    "HISTORY last \(last) \(Self.unbounded(prefix))", as: HistoryReply.self)
                if let gap = reply.gap {
                    Output.error(
                        "\(reply.messages.count) of the \(last) asked for are kept; numbers \(gap.from) to \(gap.to) were evicted (history's bounds), and may have held more\(prefix.isEmpty ? "" : " under \(prefix)")"
                    )
                }
                reply.messages.forEach(print)
                if reply.messages.isEmpty { sayWhetherKept(client) }
                for range in reply.notKept ?? [] { Output.error(range.describe(readUnder: prefix)) }
                if reply.more, let oldest = reply.messages.first?.sequence {
                    Output.error(
                        "only the newest \(reply.messages.count) fit in one reply (\(HistoryReply.pageBytes >> 20) MiB of frames); read the older ones with --since and a sequence before \(oldest)"
                    )
                }
                return
            }
            var after = since ?? 0
            var first = true
            var notKept = NotKeptReport()
            var unreadable = 0
            // A damaged block met: the pages before it are read first (the page that met it
            // held them too, and failed whole), then it is said and skipped.
            var damagedAhead: HistoryReply.Gap?
            func skipDamaged() {
                guard let range = damagedAhead else { return }
                // zpubd's own words name SQLite's error and repeat the advice: its log has them.
                Output.error(
                    "messages \(range.from) to \(range.to) could not be read from zpubd's history store (damaged there, or its disk is failing: zpubd's log says which); reading on after them"
                )
                unreadable += 1
                after = range.to
                damagedAhead = nil
            }
            pages: while true {
                let text =
                    damagedAhead.map { "HISTORY since \(after) until \($0.from - 1) \(prefix)" }
                    ?? "HISTORY since \(after) \(Self.unbounded(prefix))"
                let raw = try client.request(text)
                if damagedAhead == nil,
                    let failure = try? JSONDecoder().decode(ControlErrorReply.self, from: Data(raw)).error,
                    failure.code == .historyReadFailed, let damaged = failure.damaged, damaged.to > after
                {
                    damagedAhead = damaged
                    if damaged.from <= after + 1 { skipDamaged() }
                    continue
                }
                let reply = try client.decodeUnlessError(raw, of: text, as: HistoryReply.self)
                // Nothing at all: a prefix history does not keep is said first, and alone (the
                // gap below was about other topics' numbers, a walkthrough); past the newest
                // message, where history stands.
                if first && reply.messages.isEmpty && !reply.more {
                    guard sayWhetherKept(client) else { break pages }
                    if let since, since >= reply.lastSequence, reply.lastSequence > 0 {
                        Output.error(
                            "nothing after \(since): the newest message history keeps is \(reply.lastSequence)")
                    }
                }
                // Any page may report one: messages evicted while earlier pages were read.
                if let gap = reply.gap {
                    Output.error(
                        first
                            ? "\(Self.numbered(gap, now: true)) no longer kept (history's bounds); "
                                // first_seq 0: nothing is kept (it said "printing from 0").
                                + (reply.firstSequence > 0
                                    ? "printing from \(reply.firstSequence)" : "none is kept now")
                            : "\(Self.numbered(gap, now: false)) evicted while the history was read (history's bounds)"
                    )
                }
                first = false
                reply.messages.forEach(print)
                for range in notKept.untold(reply.notKept) { Output.error(range.describe(readUnder: prefix)) }
                guard reply.more, let newest = reply.messages.last?.sequence else {
                    guard damagedAhead != nil else { break pages }
                    skipDamaged()
                    continue
                }
                after = newest
            }
            if unreadable > 0 {
                throw CLIError(
                    "\(unreadable == 1 ? "one block" : "\(unreadable) blocks") of zpubd's history could not be read (above); see docs/history.md for a damaged store"
                )
            }
        }
    }

    /// Nothing came back: when history keeps nothing under the prefix at all, says so, rather
    /// than leave an empty answer to be read as "nothing was published". False when it did.
    @discardableResult
    private func sayWhetherKept(_ client: ControlClient) -> Bool {
        // Advisory: a STATS that fails leaves the empty answer as it is.
        guard let kept = (try? client.request("STATS", as: StatsSnapshot.self))?.0.history?.prefixes,
            !kept.contains(where: { PrefixMatcher.overlap($0.utf8, prefix.utf8) })
        else { return true }
        Output.error(
            kept.isEmpty
                ? "history keeps no prefixes (only last values persist): name them in [history] prefixes, or zpubd --history PREFIX"
                : "history keeps nothing under \(prefix) (it keeps \(kept.joined(separator: ", "))): add it to [history] prefixes to keep it from now on"
        )
        return false
    }

    private func print(_ entry: MessageJSON) {
        guard let frames = entry.messageFrames else {
            return Output.error("message \(entry.sequence) has a frame that is not base64; skipped")
        }
        if options.json {
            Output.line(Subscribe.jsonLine(frames, sequence: entry.sequence))
        } else {
            Output.line("\(entry.sequence)\t" + Subscribe.textLine(frames))
        }
    }
}

extension History {
    /// "message 7 is", "messages 7 to 9 were": the subject of a sentence about a gap.
    static func numbered(_ gap: HistoryReply.Gap, now: Bool) -> String {
        gap.from == gap.to
            ? "message \(gap.from) \(now ? "is" : "was")" : "messages \(gap.from) to \(gap.to) \(now ? "are" : "were")"
    }

    /// `prefix` as a HISTORY request's last argument when no `until` precedes it: a prefix whose
    /// first word is "until" would be read as one (and refused), so a bound that changes nothing
    /// (the largest sequence history keeps) goes before it.
    static func unbounded(_ prefix: String) -> String {
        let firstWord = prefix.drop { $0 == " " }.prefix { $0 != " " }
        return firstWord.lowercased() == "until" ? "until \(Int64.max) \(prefix)" : prefix
    }
}
