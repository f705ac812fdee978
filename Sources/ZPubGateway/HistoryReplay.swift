import ZPubCore

/// A client's catch-up from history, read one control request at a time: a REPLAY (which puts
/// the round's marker in the live stream and fixes `through`), then HISTORY pages up to
/// `through`, one prefix after the other, only under the prefixes the client wants
/// (`ResumeScope.overlap`). REPLAY and HISTORY take one prefix each and the broker
/// filters by it, so a client of a quiet prefix reads its few messages, not every page of a busy
/// neighbour's.
///
/// The client gets the newest `limit` messages (its queue's catch-up bound); older ones become
/// part of the `gap` it is told about. A prefix with more than one page after the client's
/// position is read backwards from `through` (`HISTORY last <n> until <seq>`) until it has
/// `limit`: a client that comes back after a day reads some `limit` messages, not a day's
/// pages, and holds its turn that long. No sockets: `BrokerLink` sends what `next` asks for.
struct HistoryReplay {
    /// A REPLAY "since" this reads nothing (no sequence is larger): it brings only the marker,
    /// `through` and the history prefixes, for a client history keeps nothing for, as far as
    /// the gateway knows.
    static let markerOnly = UInt64.max

    /// What to ask the broker next.
    enum Step: Equatable {
        case history(since: UInt64, until: UInt64, prefix: [UInt8])
        /// The newest `count` at or before `until` (a page read backwards).
        case newest(count: Int, until: UInt64, prefix: [UInt8])
        case done

        /// The HISTORY request that takes this step; nil when done.
        var historyArgument: [UInt8]? {
            switch self {
            case .history(let since, let until, let prefix): Array("since \(since) until \(until) ".utf8) + prefix
            case .newest(let count, let until, let prefix): Array("last \(count) until \(until) ".utf8) + prefix
            case .done: nil
            }
        }
    }

    /// A prefix read backwards: from `through` down, until `limit` of the client's messages
    /// newer than `floor` (the last one its forward page read) are in.
    private struct Backwards {
        var floor: UInt64
        var until: UInt64
        var found = 0
        var asked = 0
    }

    /// The client has every kept message up to this sequence: its position, or lower, where
    /// the REPLAY reply says it resumed (`resumedAfter`: the position was a number the pair's
    /// other broker gave while both were active, and this broker's messages since lie below).
    private(set) var after: UInt64
    let wanted: [[UInt8]]
    let limit: Int
    /// The last sequence assigned when the marker went out (from the REPLAY reply).
    private(set) var through: UInt64?
    /// The history prefixes, as the REPLAY reply named them.
    private(set) var keptPrefixes: [String] = []
    /// The client's position when it was above every number the broker had given (its
    /// numbering started again: zpubd restarted without its state directory): read from the
    /// start instead, every kept message being news to the client.
    private(set) var numberingStartedAfter: UInt64?
    private let numberingRestarts: Bool
    /// The newest `limit` messages read so far, in sequence order.
    private(set) var entries: [MessageJSON] = []
    private(set) var gap: HistoryReply.Gap?
    /// The prefixes still to read, the one being read first.
    private var toRead: [[UInt8]]
    /// Where the next page of `toRead.first` starts.
    private var nextSince: UInt64
    /// Set while `toRead.first` is read backwards.
    private var backwards: Backwards?

    /// `kept`: the history prefixes as the gateway knows them (a reload may have changed them;
    /// the REPLAY reply's list is used from then on).
    /// `numberingRestarts`: history is in memory on a broker alone, so a client's position
    /// above every number given is from before a restart (a pair's passive broker lags its
    /// peer's numbers; a store on disk numbers on).
    init(after: UInt64, wanted: [[UInt8]], kept: [[UInt8]], limit: Int, numberingRestarts: Bool = false) {
        self.numberingRestarts = numberingRestarts
        self.after = after
        self.wanted = wanted
        self.limit = limit
        toRead = Self.toRead(wanted, kept: kept)
        nextSince = after
    }

    /// The prefixes to read, in the order to read them: what a client of `wanted` wants of what
    /// history keeps under `kept` (`ResumeScope.overlap`), each as the control protocol carries
    /// it (`ResumeScope.carried`: "\u{301}a" is read under the empty prefix, and `add` keeps
    /// only what `wanted` wants); one under another is read once.
    private static func toRead(_ wanted: [[UInt8]], kept: [[UInt8]]) -> [[UInt8]] {
        ResumeScope.outermost(ResumeScope.overlap(of: wanted, with: kept).map(ResumeScope.carried))
    }

    /// The REPLAY request's `since` and prefix: the first prefix to read, or nothing at all.
    var replayArguments: (since: UInt64, prefix: [UInt8]) {
        toRead.first.map { (after, $0) } ?? (Self.markerOnly, [])
    }

    /// The history prefixes whose live messages before the marker are in the replay (the
    /// round's catch-up skips those).
    var covering: [String] {
        ResumeScope.overlap(of: wanted, with: keptPrefixes.map { Array($0.utf8) })
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// Takes the broker's reply: the REPLAY first, then each HISTORY page. Returns what to ask
    /// next, or nil when `reply` is not the one expected (an error: the round fails).
    mutating func take(_ reply: ControlReply) -> Step? {
        switch reply {
        case .replay(let first) where through == nil:
            through = first.through
            keptPrefixes = first.prefixes
            // Every prefix is read from there, not only the REPLAY's.
            if let resumed = first.resumedAfter, resumed < after { after = resumed }
            // Above every number given, and no pair's split to explain it: the numbering started
            // again, and the REPLAY (from the client's position) read nothing. Every prefix is
            // read from the start (a walkthrough: an SSE client got none of the messages kept
            // since the restart, and no word).
            let planned = Self.toRead(wanted, kept: first.prefixes.map { Array($0.utf8) })
            if numberingRestarts, first.resumedAfter == nil, !planned.isEmpty, first.through < after {
                numberingStartedAfter = after
                after = 0
                toRead = planned
                nextSince = 0
                guard let prefix = toRead.first, first.through > 0 else { return .done }
                return .history(since: 0, until: first.through, prefix: prefix)
            }
            let read = toRead.first
            add(first.messages, gap: first.gap, notKept: first.notKept, readUnder: read)
            // Planned again with the broker's own list; what the REPLAY read is done unless
            // more of it follows.
            toRead = Self.toRead(wanted, kept: first.prefixes.map { Array($0.utf8) })
            nextSince = after
            if let read, toRead.contains(read) {
                toRead.removeAll { $0 == read }
                if first.more, let last = first.messages.last?.sequence {
                    toRead.insert(read, at: 0)
                    backwards = Backwards(floor: last, until: first.through)
                }
            }
        case .history(let page) where through != nil && !toRead.isEmpty && backwards != nil:
            // A page read backwards that found fewer than asked tells of every number evicted up
            // to `until`; the client is owed only those after what the forward page read.
            let floor = backwards!.floor
            let above = { (range: HistoryReply.Gap) in
                range.to > floor ? HistoryReply.Gap(from: max(range.from, floor + 1), to: range.to) : nil
            }
            let added = add(
                page.messages, gap: page.gap.flatMap(above),
                notKept: page.notKept?.compactMap { range in
                    above(HistoryReply.Gap(from: range.from, to: range.to)).map {
                        HistoryReply.NotKept(from: $0.from, to: $0.to, reason: range.reason)
                    }
                }, readUnder: toRead.first)
            readBackwards(page, added: added)
        case .history(let page) where through != nil && !toRead.isEmpty:
            add(page.messages, gap: page.gap, notKept: page.notKept, readUnder: toRead.first)
            if page.more, let last = page.messages.last?.sequence, let through {
                backwards = Backwards(floor: last, until: through)
            } else {
                toRead.removeFirst()
                nextSince = after
            }
        default:
            return nil
        }
        guard let prefix = toRead.first, let through else { return .done }
        if var reading = backwards {
            reading.asked = min(limit - reading.found, HistoryReply.pageSize)
            backwards = reading
            return .newest(count: reading.asked, until: reading.until, prefix: prefix)
        }
        // Nothing lies after `through` for any prefix (a client whose id is ahead of the
        // broker's numbers): no page to ask, and the broker refuses `until` below `since`.
        guard nextSince < through else { return .done }
        return .history(since: nextSince, until: through, prefix: prefix)
    }

    /// A page read backwards: the next one further back, or the prefix is done, when the page
    /// reaches what the forward page read, or the oldest kept, or `limit` are in. What lies
    /// between the forward page and the oldest read back is older than `limit` of the client's
    /// messages: part of the gap, unread.
    private mutating func readBackwards(_ page: HistoryReply, added: [MessageJSON]) {
        guard var reading = backwards else { return }
        reading.found += added.filter { $0.sequence > reading.floor }.count
        let oldest = page.messages.first?.sequence
        let reachedTheStart = page.messages.count < reading.asked && !page.more
        if let oldest, oldest > reading.floor + 1, !reachedTheStart, reading.found < limit {
            reading.until = oldest - 1
            backwards = reading
            return
        }
        if let oldest, oldest > reading.floor + 1, !reachedTheStart {
            gap = Self.union(gap, HistoryReply.Gap(from: reading.floor + 1, to: oldest - 1))
        }
        backwards = nil
        toRead.removeFirst()
        nextSince = after
    }

    /// Merges a page read under `prefix` into the entries (sequence order; a message read under
    /// two prefixes once), keeping the newest `limit` of those under `wanted`. A prefix read wider
    /// than wanted (`ResumeScope.carried`) brings others too, which must not push the client's
    /// own into the gap; only then is each topic looked at. Returns the page's messages the
    /// client wants.
    @discardableResult
    private mutating func add(
        _ page: [MessageJSON], gap later: HistoryReply.Gap?, notKept: [HistoryReply.NotKept]?,
        readUnder prefix: [UInt8]?
    ) -> [MessageJSON] {
        // Evicted between two pages: told too. One gap per resume, so two become one that may
        // also cover messages delivered between them (told, never hidden). Numbers history
        // did not keep join it the same way: for a browser, both are messages it will not get.
        if let later { gap = Self.union(gap, later) }
        for range in notKept ?? [] { gap = Self.union(gap, HistoryReply.Gap(from: range.from, to: range.to)) }
        let readWider = prefix.map { read in !wanted.contains { read.starts(with: $0) } } ?? true
        let messages =
            readWider
            ? page.filter { message in
                let topic = message.topicBase64.flatMap(Base64.decode) ?? Array(message.topic.utf8)
                return wanted.contains { topic.starts(with: $0) }
            } : page
        guard !messages.isEmpty else { return [] }
        let inOrder = entries.last.map { $0.sequence < messages[0].sequence } ?? true
        entries += messages
        if !inOrder {
            entries.sort { $0.sequence < $1.sequence }
            var seen = Set<UInt64>()
            entries.removeAll { !seen.insert($0.sequence).inserted }
        }
        if entries.count > limit {
            let dropped = entries.prefix(entries.count - limit)
            gap = Self.union(gap, HistoryReply.Gap(from: dropped.first!.sequence, to: dropped.last!.sequence))
            entries.removeFirst(dropped.count)
        }
        return messages
    }

    /// One gap covering both (a resume tells of one): from the lower start to the higher end.
    static func union(_ gap: HistoryReply.Gap?, _ other: HistoryReply.Gap) -> HistoryReply.Gap {
        guard let gap else { return other }
        return HistoryReply.Gap(from: min(gap.from, other.from), to: max(gap.to, other.to))
    }
}
