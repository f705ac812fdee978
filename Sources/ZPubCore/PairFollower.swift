/// The decisions of a subscriber that follows a primary/backup pair from a history sequence
/// (`zpub sub --since` with `-c` twice; docs/topologies.md, "A pair"), with no sockets and no
/// clock, so that every race of a failover can be played in a test in the order it happens.
///
/// The subscriber takes the live stream of each broker on a SUB socket of its own (a *source*),
/// subscribed to the data prefix and to its sequence markers (`$zpub/seq/<topic>`, which the
/// active broker sends right after each kept message, numbering it, on the same connection).
/// It resumes from the active broker after the last sequence printed (a replay, `replayed`) at
/// start and whenever another broker becomes active. The caller feeds what happens; each call
/// returns what to do now, in order.
///
/// The rules:
/// - a message under a history prefix (as the last replay said) waits for its marker and is
///   printed with that sequence; a sequence not above the last one printed is not printed again;
/// - a message under no history prefix is printed without a sequence, as soon as the next
///   message shows that no marker follows it;
/// - a kept message whose marker never comes (its broker died between the two, the socket's
///   queue dropped the marker, a reload took its prefix out of history) becomes an *orphan*,
///   and a resume follows. If the replay holds it, the replay prints it numbered; if not, it is
///   printed without a sequence, before the replay (what history kept after `last` came after
///   it, as a rule). Printing it at once would print it twice when the replay has it too.
/// - a message waits for its marker on its own source: another source's messages in between
///   change nothing, but once a message is numbered, a kept message that came before it on
///   another source and still has no marker is an orphan (as the next message on one socket
///   made it), and one waiting a second while other sources stream is one too;
/// - a marker numbering a message at or below `last` that is not among the messages printed
///   lately (a dead broker's, not mirrored by its successor, whose numbers `last` follows) makes
///   it an orphan;
/// - while an orphan waits for its resume, the kept messages after it wait too, their markers
///   noted: printing one would move `last` past the orphan, so that the replay (after `last`)
///   could no longer hold it. Each is then left to the replay when it holds that sequence, and
///   printed unnumbered when it does not (the broker that numbered it died with it). While
///   resumes keep failing, what waits is bounded (`maximumOrphans`): the oldest is then printed
///   as it is, so that the output lags, and does not stop;
/// - each replayed message accounts for one orphan at most, and only one its own broker could
///   have numbered: a takeover's new sequences start far above `last`
///   (`PairSettings.minimumTakeoverGap`), and a message there with the same bytes is another;
/// - an orphan with the same bytes as one of the last `recentMessages` numbered messages
///   printed is taken for that message: after a takeover the resume on the new broker can
///   print a message while the dead broker's copy, its marker lost, still waits in the socket;
/// - a marker whose sequence jumps by more than half the takeover gap, seen before the caller
///   learnt of the takeover, asks for a resume after `last` instead (the new broker's mirrored
///   messages after `last` would be skipped otherwise); the message it numbers comes in the
///   replay.
///
/// - the numbers a sequence jumps over by more than half the takeover gap (a takeover's gap,
///   as a rule) are remembered (`skipped`, the newest `maximumSkippedRanges`), with the source
///   of the broker whose numbers jumped: the caller reads them (`HISTORY since .. until`) from
///   the next other broker it resumes at (`rangesToRead`), once, and what they hold that was
///   not printed is printed then, numbered, below `last` (which stays). That broker numbered
///   them where its peer's numbering left a gap: a primary stopped (SIGSTOP, a paused VM) while
///   its backup took over numbers what its producers queued meanwhile when it runs again, below
///   the backup's numbers, before it hears the backup; they are in its history, and a resume
///   after `last` never reads them. Live, they may never come (a burst beyond the socket's
///   high-water mark; a probe lost 650 of 12,000 so, silently). The broker whose numbers
///   jumped has nothing there (a jump of a quiet prefix's follower, other prefixes' messages
///   between, is such a range too): it is not asked;
/// - a message printed without a sequence since the last replay is not printed again by the
///   next one, which holds it numbered (its prefix was made kept by a reload the follower did
///   not know of yet; or the broker active then lacked it, and the next one has it): the
///   follower's view of what is kept is the last replay's. A message with the same bytes as
///   one printed so is taken for it.
///
/// (A case ended with a socket per
/// broker: a new broker's message waiting for its marker while the dead broker's last
/// messages, still queued, came in between was taken for an orphan, and printed once
/// unnumbered and once from the replay, numbered above the takeover's gap.)
public struct PairFollower {
    public enum Action: Equatable {
        /// Print the message, with its history sequence when it has one.
        case deliver([[UInt8]], sequence: UInt64?)
        /// Resume after `last` from the active broker at the next turn of the loop.
        case resume
        /// More than `maximumOrphans` messages wait for a resume: the oldest was dropped.
        case droppedOrphan
    }

    /// Orphans held at most: only a resume that keeps failing while messages keep coming piles
    /// them up.
    public static let maximumOrphans = 1_000
    /// How many numbered messages are remembered (as hashes) as printed: more than a socket's
    /// queue holds (its receive high-water mark, 1,000 by default).
    public static let recentMessages = 65_536
    /// How long a kept message waits for its marker while nothing else arrives (the broker
    /// sends the marker right after the message, so only a lost one takes this long).
    public static let markerWaitNanoseconds: UInt64 = 1_000_000_000

    /// The last sequence printed: a resume asks for what comes after it.
    public private(set) var last: UInt64
    private let since: UInt64
    private let markerPrefix: [UInt8]
    /// The history prefixes, from the last replay.
    private var keptPrefixes: [[UInt8]] = []
    /// The message each source (a SUB socket per broker) last brought, waiting for its marker,
    /// and since when. Per source: a marker follows its message on its broker's connection,
    /// whatever another broker's connection brings in between.
    private var waiting: [Int: (frames: [[UInt8]], since: UInt64)] = [:]
    /// Kept messages waiting for a resume, oldest first, each with the sequence its marker
    /// brought (nil: its marker never came).
    /// `numberedBelow`: the sequence of a marker that numbered it at or below `last`.
    private var waitingForResume: [(frames: [[UInt8]], sequence: UInt64?, source: Int, numberedBelow: UInt64?)] = []
    /// The kept messages waiting for a resume.
    public var orphans: [[[UInt8]]] { waitingForResume.map(\.frames) }
    private var recentlyPrinted = RecentMessages(capacity: Self.recentMessages)
    /// Messages printed without a sequence since the last replay (the last `recentMessages` of
    /// them, as hashes): the next replay does not print one of them again. The
    /// follower's view of the history prefixes is the last replay's, which a reload since may
    /// have changed: a message of a prefix made kept was printed at a resume as one history
    /// does not keep, and then by the replay with its sequence (a probe: 5 runs of 5); so was
    /// one printed unnumbered because the broker active then lacked it, replayed later by one
    /// that has it.
    private var printedUnnumbered = RecentMessages(capacity: Self.recentMessages)
    /// Messages printed without a sequence whose marker numbered them at or below `last` (with
    /// that sequence), the last `recentMessages`: printed as orphans, since no replay after
    /// `last` holds them, and read again from a `skipped` range at a later resume (one or more
    /// replays later: `printedUnnumbered` no longer knows them).
    private var printedBelowLast = RecentMessages(capacity: Self.recentMessages)
    /// The highest sequence printed from each source (a broker's numbering).
    private var highestPrinted: [Int: UInt64] = [:]
    /// Kept messages printed without a sequence because their marker never came: a `skipped`
    /// range read later may hold one of them, numbered.
    private var printedWithoutMarker = RecentMessages(capacity: Self.recentMessages)
    /// Below the starting position (`since`), the numbers after this one are not read yet: a
    /// replay that starts lower (`replayed(resumedAfter:)`) prints what it holds there, once.
    /// (Above `since`, what a broker numbered below `last` is read from the skipped ranges.)
    private var unreadBelowStart: UInt64
    /// Jumps by more than half `PairSettings.unheardTakeoverGap` printed live, with the last
    /// number before each, the first printed after it, and the source whose numbers jumped: a
    /// primary numbering above a
    /// backup that was active beside it. Its messages below the jump may lie below this
    /// follower's position too (a follower started among the backup's numbers): the first
    /// resume at that broker replays from before the jump (`replayPosition`), where the broker
    /// can tell that the numberings split. The newest four.
    private var splitJumps: [(before: UInt64, target: UInt64, source: Int)] = []
    /// Set by `holdForResume` until the next replay.
    private var holdingForResume = false
    /// The source whose jump in numbers asked for the resume under way (see the rules), until
    /// the next replay: the resume is to go there when that broker says it is active. The message that jumped comes in that
    /// broker's replay; the other broker, still active for a moment (a backup that has not yet
    /// heard the primary that jumped above it), does not hold it, and while its replay's
    /// catch-up ran, the next of the jumping broker's messages came live, were printed, and
    /// moved `last` past it (a probe: the first 1 to 4 of a primary's numbers after its jump
    /// lost, in 3 of 17 runs).
    public private(set) var jumpedSource: Int?
    /// The numbers the printed sequence jumped over (see the rules), oldest first, each with
    /// the source whose numbers jumped (nil: not known).
    private var skippedRanges: [(range: ClosedRange<UInt64>, source: Int?)] = []
    /// The numbers the printed sequence jumped over, not read yet, oldest first.
    public var skipped: [ClosedRange<UInt64>] { skippedRanges.map(\.range) }

    /// Where a resume at the broker of `source` replays from: `last`, or from before a jump of
    /// that broker's numbers by more than half `PairSettings.unheardTakeoverGap` not yet
    /// replayed there (`splitJumps`): what it printed above that comes again and is not
    /// printed twice; what the broker numbered below its jump (and below this follower's
    /// position) comes with `resumed_after`.
    public func replayPosition(at source: Int?) -> UInt64 {
        guard let source, let jump = splitJumps.first(where: { $0.source == source }) else { return last }
        return min(jump.before, last)
    }

    /// The skipped ranges to read from the broker of `source` before its replay is passed to
    /// `replayed` (`filling`): those another broker's numbers jumped over.
    public func rangesToRead(at source: Int?) -> [ClosedRange<UInt64>] {
        skippedRanges.filter { $0.source == nil || source == nil || $0.source != source }.map(\.range)
    }

    /// What a broker holds within skipped ranges (`rangesToRead`): the ranges read whole, and
    /// their messages, oldest first.
    public struct GapReading {
        public var ranges: [ClosedRange<UInt64>]
        public var messages: [(frames: [[UInt8]], sequence: UInt64)]

        public init(ranges: [ClosedRange<UInt64>], messages: [(frames: [[UInt8]], sequence: UInt64)]) {
            self.ranges = ranges
            self.messages = messages
        }
    }
    /// Skipped ranges remembered at most: each is one takeover's gap, asked for at each resume.
    public static let maximumSkippedRanges = 4

    public init(since: UInt64, markerPrefix: [UInt8] = BrokerState.sequenceMarkerPrefix) {
        self.since = since
        self.last = since
        unreadBelowStart = since
        self.markerPrefix = markerPrefix
    }

    /// The caller resumes because its connection came back (the broker restarted, the network
    /// returned): what the broker kept meanwhile comes only from the replay, so until it comes,
    /// numbered messages wait (as behind an orphan) instead of moving `last` past them.
    public mutating func holdForResume() {
        holdingForResume = true
    }

    /// A message waits for its marker: the caller polls again soon, to learn whether it came.
    public var isHolding: Bool { !waiting.isEmpty }

    /// A live message or marker from `source` (which of the caller's sockets, one per broker,
    /// it came on), at `now` (monotonic nanoseconds), that the catch-up let through;
    /// `catchingUp` while a resume's catch-up is not complete.
    public mutating func received(_ frames: [[UInt8]], from source: Int = 0, now: UInt64, catchingUp: Bool)
        -> [Action]
    {
        guard let topic = frames.first else { return [] }
        // What waits on the other sources: a message history does not keep is printed now (as
        // a message on its own source would print it), a kept one once its wait is over.
        var actions = settleOthers(than: source, now: now)
        if topic.starts(with: markerPrefix) {
            guard let waited = waiting[source], topic.dropFirst(markerPrefix.count).elementsEqual(waited.frames[0])
            else { return actions }
            waiting[source] = nil
            let held = waited.frames
            let sequence = frames.count > 1 ? UInt64(String(decoding: frames[1], as: UTF8.self)) : nil
            // A kept message that came before this one on another source, still without its
            // marker, is an orphan now (as one socket's next message made it): printing this
            // one would move `last` past it, out of the resume's replay.
            if let sequence, sequence > last { actions += orphanKept(arrivedBefore: waited.since) }
            if let sequence, sequence <= last, !recentlyPrinted.contains(held) {
                // Numbered at or below what was printed, and not printed: a dead broker's
                // message that its successor, whose numbers `last` now follows, did not mirror
                // (it came on that broker's socket). An orphan: the resume's replay or the
                // messages printed lately account for it, or it is printed without a sequence.
                return actions + orphan(held, from: source, numberedBelow: sequence) + [.resume]
            }
            if let sequence, !catchingUp, last > since, sequence > last &+ PairSettings.minimumTakeoverGap / 2 {
                jumpedSource = source
                return actions + [.resume]
            }
            if let sequence, !waitingForResume.isEmpty || holdingForResume {
                // Not printed before the orphans ahead of it are settled (see the rules), or the
                // resume asked for comes.
                return actions + (sequence > last ? orphan(held, sequence: sequence, from: source) : [])
            }
            return actions + deliver(held, sequence, from: source)
        }
        if let held = waiting[source]?.frames {
            // Not its marker: the marker is lost.
            if isKept(held[0]) {
                actions += orphan(held, from: source) + [.resume]
            } else {
                actions += deliver(held, nil)
            }
        }
        waiting[source] = (frames, now)
        return actions
    }

    /// Nothing arrived for a moment, at `now`.
    public mutating func idle(now: UInt64) -> [Action] {
        settleOthers(than: nil, now: now)
    }

    /// The caller is about to resume (another broker is active, or the last resume failed): a
    /// live-only message is printed, a kept one waits for the replay (oldest first).
    public mutating func resuming() -> [Action] {
        var actions: [Action] = []
        for (source, held) in waitingOldestFirst {
            waiting[source] = nil
            actions += isKept(held.frames[0]) ? orphan(held.frames, from: source) : deliver(held.frames, nil)
        }
        return actions
    }

    /// What waits, source by source, the oldest first (at most one per source: none to sort
    /// for the usual single active broker).
    private var waitingOldestFirst: [(key: Int, value: (frames: [[UInt8]], since: UInt64))] {
        waiting.count < 2 ? Array(waiting) : waiting.sorted { $0.value.since < $1.value.since }
    }

    /// Every kept message waiting on any source since before `time` becomes an orphan (oldest
    /// first), and a resume follows.
    private mutating func orphanKept(arrivedBefore time: UInt64) -> [Action] {
        var actions: [Action] = []
        var orphaned = false
        for (source, held) in waitingOldestFirst
        where held.since < time && isKept(held.frames[0]) {
            waiting[source] = nil
            actions += orphan(held.frames, from: source)
            orphaned = true
        }
        return orphaned ? actions + [.resume] : actions
    }

    /// Settles what waits on every source but `source` (nil: on all), when another message
    /// arrived or nothing did for a moment: a message history does not keep is printed without
    /// a sequence; a kept one becomes an orphan, and a resume follows, once it waited
    /// `markerWaitNanoseconds` for its marker.
    private mutating func settleOthers(than source: Int?, now: UInt64) -> [Action] {
        guard waiting.count > (source.map { waiting[$0] == nil ? 0 : 1 } ?? 0) else { return [] }
        var actions: [Action] = []
        for (other, held) in waitingOldestFirst where other != source {
            if !isKept(held.frames[0]) {
                // A message whose marker did not follow is not kept: it has no sequence.
                waiting[other] = nil
                actions += deliver(held.frames, nil)
            } else if now &- held.since > Self.markerWaitNanoseconds {
                waiting[other] = nil
                actions += orphan(held.frames, from: other) + [.resume]
            }
        }
        return actions
    }

    /// A resume's replay said the broker numbered nothing after `through`. Below `last`, its
    /// numbering started again (a restart with history in memory, a history file moved aside):
    /// numbered messages from it would all be taken for ones printed already, so `last` goes
    /// back to `through`. True when it did (the caller says so).
    ///
    /// Not when `replaying` (its source) is the broker behind: one whose numbers printed here
    /// it has all (`through` at or above the highest of them) is behind the other broker's
    /// numbering, not started again (while both are active for a moment, after a primary that
    /// was stopped came back above the backup: the follower said "numbering started again"
    /// over and over, and went back).
    public mutating func numberingEnds(at through: UInt64, from replaying: Int? = nil) -> Bool {
        guard through < last else { return false }
        if let replaying, let highest = highestPrinted[replaying], through >= highest { return false }
        highestPrinted = [:]
        last = through
        // Gaps of a numbering that is no more: their numbers name other messages now.
        skippedRanges.removeAll()
        splitJumps.removeAll()
        return true
    }

    /// A resume's replay: the messages after `last` (each with its sequence), the history
    /// prefixes it covers (nil: unchanged), the source (socket) of the broker it came from,
    /// when known, and what the same broker holds within skipped ranges (`rangesToRead`),
    /// read just before. `resumedAfter`: the broker replayed from there, below the starting
    /// position (the reply's `resumed_after`); its messages from there up to that position are
    /// printed once, with their numbers. The whole replay at once: `beginReplay`,
    /// `replayedPage` and `endReplay` take it page by page when no orphan waits.
    public mutating func replayed(
        _ messages: [(frames: [[UInt8]], sequence: UInt64?)], keptPrefixes: [[UInt8]]?, from replaying: Int? = nil,
        filling: GapReading? = nil, resumedAfter: UInt64? = nil
    ) -> [Action] {
        var (pass, actions) = beginReplay(
            keptPrefixes: keptPrefixes, from: replaying, filling: filling, resumedAfter: resumedAfter,
            orphansMatchedIn: messages)
        actions += replayedPage(messages, in: &pass)
        endReplay(pass)
        return actions
    }

    /// What a replay passed page by page keeps between its parts.
    public struct ReplayPass {
        fileprivate var alreadyPrinted: RecentMessages
        fileprivate let jumpedOver: (before: UInt64, target: UInt64, source: Int)?
        fileprivate let replaying: Int?
        fileprivate let resumedAfter: UInt64?
        fileprivate let startBelow: UInt64
        fileprivate let filled: Set<UInt64>
        fileprivate let wasHolding: Bool
        /// Printed from below the starting position (`resumedAfter`), with their numbers: a
        /// replay given up and asked again replays them again.
        fileprivate var printedBelowStart: [[[UInt8]]] = []
    }

    /// Whether a replay may be passed page by page (`beginReplay`): no orphan waits for it.
    /// An orphan is matched against the whole replay, and printed before it when not there.
    /// (A replay of a million messages held whole took `zpub sub --since` to 700 MB before it
    /// printed the first: a probe.)
    public var mayTakeReplayInPages: Bool { waitingForResume.isEmpty }

    /// `replayed` in parts, for a replay read page by page (`mayTakeReplayInPages`): this with
    /// what comes before its first page (the arguments of `replayed` but its messages, known
    /// with the first reply), then `replayedPage` for each page, then `endReplay`, or
    /// `abandonReplay` when a page cannot be read.
    public mutating func beginReplay(
        keptPrefixes: [[UInt8]]?, from replaying: Int? = nil, filling: GapReading? = nil, resumedAfter: UInt64? = nil
    ) -> (ReplayPass, [Action]) {
        beginReplay(
            keptPrefixes: keptPrefixes, from: replaying, filling: filling, resumedAfter: resumedAfter,
            orphansMatchedIn: [])
    }

    private mutating func beginReplay(
        keptPrefixes: [[UInt8]]?, from replaying: Int?, filling: GapReading?, resumedAfter: UInt64?,
        orphansMatchedIn messages: [(frames: [[UInt8]], sequence: UInt64?)]
    ) -> (ReplayPass, [Action]) {
        // Ranges dropped since they were read (a numbering that started again) fill nothing.
        let readRanges = (filling?.ranges ?? []).filter { read in skippedRanges.contains { $0.range == read } }
        let filling = (filling?.messages ?? []).filter { message in
            readRanges.contains { $0.contains(message.sequence) }
        }
        if let keptPrefixes { self.keptPrefixes = keptPrefixes }
        let wasHolding = holdingForResume
        holdingForResume = false
        // Replayed from before them (`replayPosition`), or the broker holds no split there:
        // its jumps are read (one this replay brought included; `endReplay`).
        // Only what lies between the number before the jump and the first printed after it can
        // have been missed; what was printed above that is not printed again, however long ago.
        let jumpedOver = replaying.flatMap { source in splitJumps.first { $0.source == source } }
        // Asked for once: a broker that then did not say it was active (dead, or not yet
        // active) is not asked first at every later check.
        jumpedSource = nil
        var alreadyPrinted = printedUnnumbered
        printedUnnumbered = RecentMessages(capacity: Self.recentMessages)
        var actions: [Action] = []
        if !waitingForResume.isEmpty {
            // Replayed messages an orphan without a marker may be: numbered by the broker it
            // came from, below the gap.
            var replayed: [[[UInt8]]: Int] = [:]
            var replayedSequences: [UInt64: [[UInt8]]] = [:]
            // Above the gap too: for an orphan that came on the replaying broker's own socket
            // (its marker not yet read when the resume began), which that broker numbered after
            // its takeover. Taken for another message, it was printed twice: unnumbered, then
            // from the replay (a probe: 6 quick restarts of 10).
            var replayedAbove: [[[UInt8]]: Int] = [:]
            // The skipped ranges' messages are numbered below `last`: the ones an orphan
            // without a marker may be, from a broker that numbered in a gap.
            let numbered = messages.compactMap { message in message.sequence.map { (message.frames, $0) } }
            for (frames, sequence) in filling.map({ ($0.frames, $0.sequence) }) + numbered {
                replayedSequences[sequence] = frames
                if sequence <= last &+ PairSettings.minimumTakeoverGap / 2 {
                    replayed[frames, default: 0] += 1
                } else {
                    replayedAbove[frames, default: 0] += 1
                }
            }
            // Orphans whose marker came are in the replay under that sequence, or nowhere; one
            // that is there accounts for its replayed message before any orphan without one.
            for (frames, sequence, _, _) in waitingForResume {
                guard let sequence, replayedSequences[sequence] == frames, let count = replayed[frames], count > 0
                else { continue }
                replayed[frames] = count - 1
            }
            for (frames, sequence, source, numberedBelow) in waitingForResume {
                if let sequence {
                    if replayedSequences[sequence] != frames {
                        actions += deliver(frames, nil)
                        // A jump may yet pass over its number, and another broker hold it there.
                        printedBelowLast.insert(Self.numbered(frames, sequence))
                    }
                } else if let count = replayed[frames], count > 0 {
                    replayed[frames] = count - 1
                } else if source == replaying, let count = replayedAbove[frames], count > 0 {
                    replayedAbove[frames] = count - 1
                } else if !recentlyPrinted.contains(frames) {
                    if let numberedBelow {
                        // With the number its broker gave it (below `last`, which stays): it
                        // is in that broker's history under it.
                        actions.append(.deliver(frames, sequence: numberedBelow))
                        recentlyPrinted.insert(frames)
                        printedBelowLast.insert(Self.numbered(frames, numberedBelow))
                    } else {
                        actions += deliver(frames, nil)
                        // A skipped range read at a later resume may hold it, numbered.
                        printedWithoutMarker.insert(frames)
                    }
                }
            }
            waitingForResume = []
        }
        // Read whole: nothing more comes there (the broker that numbered in the gap heard its
        // peer, and numbers above it, before it could be resumed at).
        skippedRanges.removeAll { skipped in readRanges.contains(skipped.range) }
        for message in filling {
            // Printed without its sequence: it came live, with its marker below `last` (or
            // none) and no replay held it then. Not again.
            if printedBelowLast.remove(Self.numbered(message.frames, message.sequence))
                || alreadyPrinted.remove(message.frames) || printedWithoutMarker.remove(message.frames)
            {
                continue
            }
            recentlyPrinted.insert(message.frames)
            actions.append(.deliver(message.frames, sequence: message.sequence))
        }
        let pass = ReplayPass(
            alreadyPrinted: alreadyPrinted, jumpedOver: jumpedOver, replaying: replaying, resumedAfter: resumedAfter,
            startBelow: unreadBelowStart, filled: Set(filling.map(\.sequence)), wasHolding: wasHolding)
        return (pass, actions)
    }

    /// One page of a replay begun with `beginReplay` (pages in order, sequences ascending).
    public mutating func replayedPage(
        _ messages: [(frames: [[UInt8]], sequence: UInt64?)], in pass: inout ReplayPass
    ) -> [Action] {
        var actions: [Action] = []
        if let resumedAfter = pass.resumedAfter, resumedAfter < pass.startBelow {
            // The broker read from below the starting position: it was a number the broker's
            // peer gave while both were active, and what this broker numbered after the split
            // lies below it. Printed with their numbers (`last` stays), once. (Below the
            // starting position, so in the pages before any the loop below prints from.)
            for message in messages {
                guard let sequence = message.sequence, sequence > resumedAfter, sequence <= pass.startBelow,
                    !pass.filled.contains(sequence)
                else { continue }
                // Printed, now or before: a replay given up and asked again skips it either way.
                pass.printedBelowStart.append(Self.numbered(message.frames, sequence))
                if printedBelowLast.remove(Self.numbered(message.frames, sequence))
                    || pass.alreadyPrinted.remove(message.frames) || printedWithoutMarker.remove(message.frames)
                {
                    continue
                }
                recentlyPrinted.insert(message.frames)
                actions.append(.deliver(message.frames, sequence: sequence))
            }
        }
        for message in messages {
            if let sequence = message.sequence, let jumpedOver = pass.jumpedOver, sequence > jumpedOver.before,
                sequence < jumpedOver.target, !recentlyPrinted.contains(message.frames)
            {
                // Replayed from before its jump (`replayPosition`): what the broker numbered
                // above it and this follower did not print (the resume that its jump asked for
                // went to the other broker, still active, which lacked it, and the jumping
                // broker's next messages came live meanwhile), with its number (`last` stays).
                // Printed, now or before: not again (here, or by a replay asked again after this
                // one is given up).
                recentlyPrinted.insert(message.frames)
                if !pass.alreadyPrinted.remove(message.frames) && !printedWithoutMarker.remove(message.frames) {
                    // A skipped range holds its number too: read at another broker later, it
                    // is not printed again.
                    printedBelowLast.insert(Self.numbered(message.frames, sequence))
                    actions.append(.deliver(message.frames, sequence: sequence))
                }
                continue
            }
            if let sequence = message.sequence, sequence > last, pass.alreadyPrinted.remove(message.frames) {
                // Printed without its sequence since the last replay: now only numbered.
                last = sequence
                recentlyPrinted.insert(message.frames)
                continue
            }
            actions += deliver(message.frames, message.sequence, from: pass.replaying)
        }
        return actions
    }

    /// The replay begun with `beginReplay` is through.
    public mutating func endReplay(_ pass: ReplayPass) {
        if let resumedAfter = pass.resumedAfter, resumedAfter < pass.startBelow { unreadBelowStart = resumedAfter }
        if let replaying = pass.replaying { splitJumps.removeAll { $0.source == replaying } }
    }

    /// A page of the replay begun with `beginReplay` could not be read: the next resume asks
    /// again from `last` (what was printed stays printed). What waits for a replay waits on,
    /// and what was printed without a number before it is still known to the next.
    public mutating func abandonReplay(_ pass: ReplayPass) {
        holdingForResume = pass.wasHolding
        printedUnnumbered = pass.alreadyPrinted
        for printed in pass.printedBelowStart { printedBelowLast.insert(printed) }
    }

    private func isKept(_ topic: [UInt8]) -> Bool { keptPrefixes.contains { topic.starts(with: $0) } }

    /// A message and its sequence, as one key of `printedBelowLast`.
    private static func numbered(_ frames: [[UInt8]], _ sequence: UInt64) -> [[UInt8]] {
        frames + [withUnsafeBytes(of: sequence.littleEndian) { Array($0) }]
    }

    private mutating func orphan(
        _ frames: [[UInt8]], sequence: UInt64? = nil, from source: Int, numberedBelow: UInt64? = nil
    ) -> [Action] {
        var actions: [Action] = []
        if waitingForResume.count == Self.maximumOrphans {
            // The oldest gives way: printed if its marker came (nothing waits before it now),
            // dropped if not.
            let oldest = waitingForResume.removeFirst()
            actions += oldest.sequence.map { deliver(oldest.frames, $0, from: oldest.source) } ?? [.droppedOrphan]
        }
        waitingForResume.append((frames, sequence, source, numberedBelow))
        return actions
    }

    /// Prints a message; `source`: the broker that numbered it, if known (a jump is noted as
    /// that broker's).
    private mutating func deliver(_ frames: [[UInt8]], _ sequence: UInt64?, from source: Int? = nil) -> [Action] {
        if let sequence {
            guard sequence > last else { return [] }
            if sequence - last > PairSettings.minimumTakeoverGap / 2 {
                if skippedRanges.count == Self.maximumSkippedRanges { skippedRanges.removeFirst() }
                skippedRanges.append(((last + 1)...(sequence - 1), source))
            }
            if sequence - last > PairSettings.unheardTakeoverGap / 2, let source {
                if splitJumps.count == Self.maximumSkippedRanges { splitJumps.removeFirst() }
                splitJumps.append((last, sequence, source))
            }
            last = sequence
            if let source { highestPrinted[source] = max(highestPrinted[source] ?? 0, sequence) }
            recentlyPrinted.insert(frames)
        } else {
            printedUnnumbered.insert(frames)
        }
        return [.deliver(frames, sequence: sequence)]
    }
}

/// The last `capacity` messages added, as hashes of their frames, oldest forgotten first.
struct RecentMessages {
    private var order: [Int] = []
    private var next = 0
    private var counts: [Int: Int] = [:]
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    mutating func insert(_ frames: [[UInt8]]) {
        let hash = frames.hashValue
        if order.count < capacity {
            order.append(hash)
        } else {
            let oldest = order[next]
            if let count = counts[oldest], count > 1 { counts[oldest] = count - 1 } else { counts[oldest] = nil }
            order[next] = hash
            next = (next + 1) % capacity
        }
        counts[hash, default: 0] += 1
    }

    func contains(_ frames: [[UInt8]]) -> Bool { counts[frames.hashValue] != nil }

    /// Forgets one of `frames`, if one is remembered: true when one was.
    mutating func remove(_ frames: [[UInt8]]) -> Bool {
        let hash = frames.hashValue
        guard let count = counts[hash] else { return false }
        counts[hash] = count > 1 ? count - 1 : nil
        return true
    }
}
