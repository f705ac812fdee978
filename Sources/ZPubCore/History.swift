#if canImport(Glibc)
    import Glibc
#endif

/// Comparing bytes where they lie, for topics and prefixes on hot paths.
public enum RawBytes {
    /// Whether `count` bytes at `a` and `b` are equal. Short runs (topics and prefixes, the
    /// usual case) in two overlapping loads from each end, which read only those bytes: a call
    /// to memcmp costs more, and a byte loop some 5 instructions per byte.
    @inlinable @inline(__always)
    public static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Bool {
        if count >= 8 {
            // Longer runs: memcmp. A word loop here (tried) saved a long topic's lookup 10
            // instructions and cost every kept message of history 30, inlined into its prefix
            // match.
            guard count <= 16 else { return memcmp(a, b, count) == 0 }
            return a.loadUnaligned(as: UInt64.self) == b.loadUnaligned(as: UInt64.self)
                && a.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
                    == b.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
        }
        if count >= 4 {
            return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self)
                && a.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
                    == b.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
        }
        // 1 to 3 bytes: a byte loop is as short as any trick.
        for offset in 0..<count
        where a.load(fromByteOffset: offset, as: UInt8.self) != b.load(fromByteOffset: offset, as: UInt8.self) {
            return false
        }
        return true
    }

    /// Copies `bytes` to `target` (the two do not overlap). Up to 32 bytes (topics, small
    /// payloads: the usual case) in overlapping 8-byte moves from each end, which touch only
    /// those bytes; more through memcpy, whose call and size dispatch cost more than the copy
    /// below that (callgrind: some 14 instructions a call).
    @inlinable @inline(__always)
    public static func copy(_ target: UnsafeMutableRawPointer, from bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress else { return }
        let count = bytes.count
        if count > 16 {
            guard count <= 32 else { return target.copyMemory(from: source, byteCount: count) }
            let a = source.loadUnaligned(as: UInt64.self)
            let b = source.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            let c = source.loadUnaligned(fromByteOffset: count &- 16, as: UInt64.self)
            let d = source.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
            target.storeBytes(of: a, as: UInt64.self)
            target.storeBytes(of: b, toByteOffset: 8, as: UInt64.self)
            target.storeBytes(of: c, toByteOffset: count &- 16, as: UInt64.self)
            target.storeBytes(of: d, toByteOffset: count &- 8, as: UInt64.self)
        } else if count >= 8 {
            let a = source.loadUnaligned(as: UInt64.self)
            let b = source.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
            target.storeBytes(of: a, as: UInt64.self)
            target.storeBytes(of: b, toByteOffset: count &- 8, as: UInt64.self)
        } else if count >= 4 {
            let a = source.loadUnaligned(as: UInt32.self)
            let b = source.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
            target.storeBytes(of: a, as: UInt32.self)
            target.storeBytes(of: b, toByteOffset: count &- 4, as: UInt32.self)
        } else {
            for offset in 0..<count {
                let byte = source.load(fromByteOffset: offset, as: UInt8.self)
                target.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
            }
        }
    }
}

/// Which topics history keeps: the configured prefixes, matched on the forwarding thread for
/// every message (a message is kept under the first prefix its topic starts with).
public struct HistoryPrefixes: Sendable, Equatable {
    public let names: [String]
    @usableFromInline var matcher: PrefixMatcher

    public init(_ prefixes: [String]) {
        names = prefixes
        matcher = PrefixMatcher(prefixes.map { Array($0.utf8) })
        isEnabled = !prefixes.isEmpty
    }

    public let isEnabled: Bool

    /// The length of the first prefix that keeps a message on `topic` (the prefix is then the
    /// topic's first bytes), or nil. Mutating for `PrefixMatcher.matchLength`'s reason.
    @inlinable @inline(__always)
    public mutating func matchLength(_ topic: UnsafeRawBufferPointer) -> Int? {
        matcher.matchLength(topic)
    }
}

/// What the history holds and does, for STATS, `zpub stats` and /metrics (docs/history.md).
public struct HistoryStats: Codable, Equatable, Sendable {
    public struct PrefixStats: Codable, Equatable, Sendable {
        public var messages: Int
        public var bytes: Int

        public init(messages: Int, bytes: Int) {
            self.messages = messages
            self.bytes = bytes
        }
    }

    public var prefixes: [String]
    /// On disk (in `directory`), or in memory only.
    public var persistent: Bool
    public var directory: String?
    public var messages: Int
    public var bytes: Int
    /// The oldest and newest stored sequence numbers (0 when empty).
    public var firstSequence: UInt64
    public var lastSequence: UInt64
    public var perPrefix: [String: PrefixStats]
    /// Messages written to the store since start.
    public var written: UInt64
    /// Transactions the writer committed since start: `written / commits` is how many messages
    /// each carried (docs/history.md, "Where it is kept"). Optional: a zpubd from before
    /// 2026-12-01 does not send it, and `zpub stats` must still read its STATS.
    public var commits: UInt64?
    /// Bytes of messages waiting for the writer now.
    public var queuedBytes: Int
    /// Bytes of the writer's queue resident in memory: as far as its fullest moment took it,
    /// given back a slice at a time once traffic is light again (`RecordRing.trim`). Optional:
    /// absent from a zpubd before 2026-12-02.
    public var queueResidentBytes: Int?
    /// Messages history could not keep because the writer's queue was full (forwarding went on).
    public var dropped: UInt64
    /// Messages lost because the store failed to write them (a full disk, say).
    public var writeFailures: UInt64
    /// The oldest messages removed to stay within the bounds.
    public var evictions: UInt64
    /// Ranges of numbers handed out that the store does not hold (`HistoryReply.NotKept`),
    /// as recorded. Optional: absent from a zpubd before 2026-12-02.
    public var notKeptRanges: Int?
    public var diskBytes: Int
    /// Wall time (ms since the epoch) of the last sync to disk; 0 in memory or before the first.
    public var lastSyncMilliseconds: UInt64
    /// What keeps history from keeping messages now (HEALTH lists them too). Optional: absent
    /// from a zpubd before 2026-12-06, and when there is none.
    public var problems: [HealthProblem]?

    public init(prefixes: [String], persistent: Bool, directory: String?) {
        self.prefixes = prefixes
        self.persistent = persistent
        self.directory = directory
        messages = 0
        bytes = 0
        firstSequence = 0
        lastSequence = 0
        perPrefix = [:]
        written = 0
        commits = 0
        queuedBytes = 0
        dropped = 0
        writeFailures = 0
        evictions = 0
        diskBytes = 0
        lastSyncMilliseconds = 0
    }

    enum CodingKeys: String, CodingKey {
        case prefixes, persistent, directory, messages, bytes, written, commits, dropped, evictions
        case queuedBytes = "queued_bytes"
        case queueResidentBytes = "queue_resident_bytes"
        case notKeptRanges = "not_kept_ranges"
        case firstSequence = "first_seq"
        case lastSequence = "last_seq"
        case perPrefix = "per_prefix"
        case writeFailures = "write_failures"
        case diskBytes = "disk_bytes"
        case lastSyncMilliseconds = "last_sync_ms"
        case problems
    }
}

/// The reply to `HISTORY since <seq> [prefix]` and `HISTORY last <n> [prefix]`: stored messages
/// oldest first, each with its sequence; at most `HistoryReply.pageSize` per reply.
public struct HistoryReply: Codable, Equatable, Sendable {
    public static let pageSize = 1_000
    /// And at most this many bytes of frames (one message at least): a page of 1,000 large
    /// messages would otherwise be built in memory several times over (frames, base64, JSON).
    public static let pageBytes = 4 << 20

    /// Sequences that were asked for but are no longer kept (evicted): `from` through `to`.
    public struct Gap: Codable, Equatable, Sendable {
        public var from: UInt64
        public var to: UInt64

        public init(from: UInt64, to: UInt64) {
            self.from = from
            self.to = to
        }
    }

    /// Sequences history handed out but does not hold: within `from`...`to`, every number
    /// that is not among the messages read was given to a message history could not keep (or,
    /// for `uncleanStop`, may have been: a zpubd that stopped uncleanly had reserved them, and
    /// may have used some before it could write them). Any prefix's: a reader of one prefix
    /// learns that some of its messages may be among them, never which.
    public struct NotKept: Codable, Equatable, Sendable {
        public enum Reason: String, Codable, Sendable {
            /// The writer's queue was full, or the batch that held them could not be written.
            case dropped
            /// Numbered by a run that stopped uncleanly (SIGKILL, power loss) before writing them.
            case uncleanStop = "unclean_stop"
            /// Numbered by the pair's other broker, which this one took over from, and never
            /// mirrored here (a takeover numbers far above the peer: some were never used).
            case takeover
        }

        public var from: UInt64
        public var to: UInt64
        public var reason: Reason

        public init(from: UInt64, to: UInt64, reason: Reason) {
            self.from = from
            self.to = to
            self.reason = reason
        }

        /// What a person reads about it; `prefix` is the one read, if any.
        public func describe(readUnder prefix: String) -> String {
            let range = from == to ? "message \(from) was" : "messages \(from) to \(to) were"
            let whose = prefix.isEmpty ? "" : " (those under \(prefix) among them are lost)"
            let numbers = from == to ? "this number" : "these numbers"
            switch reason {
            case .dropped:
                // A pair member mirroring a peer whose prefixes are wider leaves out the rest
                // the same way: said, or the operator looks at the disk (the log says which).
                return
                    "\(range) not kept: history's queue was full or a write failed, or, mirrored from the pair's other broker, its topic is under none of this broker's [history] prefixes\(whose)"
            case .uncleanStop:
                // Most of such a range is the dead run's reserve, never handed out: said so, or
                // every reader after a SIGKILL reads of a billion lost messages.
                let span = from == to ? "number \(from) was" : "numbers \(from) to \(to) were"
                let lost = prefix.isEmpty ? "" : " (any under \(prefix))"
                let unused = from == to ? "" : "; most of \(numbers) were never used"
                return
                    "\(span) reserved by a zpubd that stopped uncleanly (SIGKILL, a crash, a power loss): the messages it numbered there in its last moments and had not yet written are lost\(lost)\(unused)"
            case .takeover:
                // A takeover skips far above the peer's last known number (2^30): said, or a
                // fresh pair's reader reads of a billion lost messages (a walkthrough).
                let lost = prefix.isEmpty ? "" : " (any of them under \(prefix) are lost)"
                // Said of a range as wide as a takeover's skip only: a small one may be all used.
                let unused =
                    to &- from < 1 << 20
                    ? "" : "; a takeover numbers far above the peer's last known number, so most were never used"
                return
                    "\(range) not kept here: the pair's other broker may have used some of \(numbers) before this one took over, and those never reached it\(lost)\(unused)"
            }
        }
    }

    /// At most this many `notKept` ranges in a reply; the rest are joined into the last.
    public static let notKeptRanges = 100

    public var firstSequence: UInt64
    public var lastSequence: UInt64
    /// The upper bound asked for (`until`, or a replay's marker), if any.
    public var through: UInt64?
    /// The same shape as SNAPSHOT's entries: topic, frames in base64, `sequence`, `stored_ms`.
    public var messages: [MessageJSON]
    /// More messages follow: ask again with `since` the last one's sequence.
    public var more: Bool
    public var gap: Gap?
    /// Holes among the messages read (between `since` and the last message, or `through` when
    /// this is the last page), oldest first; nil when there are none.
    public var notKept: [NotKept]?
    /// A replay read from here instead of its `since` (`HistoryQuery.resumesAcrossSplit`):
    /// `since` was a number the pair's other broker gave while both were active, and this
    /// broker's messages after the point the two numberings split lie below it.
    public var resumedAfter: UInt64?
    /// Where the pair's numbering split (`HistoryQuery.tellsSplits`), among the numbers this
    /// reply covers: the pair's other broker, mirroring, records them too, so that a resume
    /// at it after a later failover starts after the split as it would here.
    public var splits: [Split]?

    /// "A reader positioned in `first...last` (numbers the other broker gave while both
    /// were active) has this broker's messages up to `resumeAfter` only."
    public struct Split: Codable, Equatable, Sendable {
        public var first: UInt64
        public var last: UInt64
        public var resumeAfter: UInt64

        public init(first: UInt64, last: UInt64, resumeAfter: UInt64) {
            self.first = first
            self.last = last
            self.resumeAfter = resumeAfter
        }

        enum CodingKeys: String, CodingKey {
            case first, last
            case resumeAfter = "resume_after"
        }
    }

    public init(
        firstSequence: UInt64, lastSequence: UInt64, through: UInt64? = nil, messages: [MessageJSON],
        more: Bool, gap: Gap?, notKept: [NotKept] = []
    ) {
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.through = through
        self.messages = messages
        self.more = more
        self.gap = gap
        self.notKept = notKept.isEmpty ? nil : notKept
    }

    enum CodingKeys: String, CodingKey {
        case messages, more, gap, through
        case firstSequence = "first_seq"
        case lastSequence = "last_seq"
        case notKept = "not_kept"
        case resumedAfter = "resumed_after"
        case splits
    }

    /// The evicted range a reader that wants everything after `since` (up to `through`, when
    /// a replay's marker bounds it: what comes later comes live) missed, if any. Only up to
    /// `evictedThrough` (the store's `gapCeiling`): numbers between it and the oldest kept
    /// message that were never kept (a dead run's reserve before anything was stored) are told
    /// by `not_kept`, with their reason, instead of "no longer kept".
    public static func gap(
        since: UInt64, through: UInt64?, firstSequence: UInt64, lastSequence: UInt64, evictedThrough: UInt64
    ) -> Gap? {
        guard let gap = gap(since: since, firstSequence: firstSequence, lastSequence: lastSequence) else { return nil }
        let to = min(gap.to, through ?? .max, evictedThrough)
        return gap.from > to ? nil : Gap(from: gap.from, to: to)
    }

    /// The evicted range a reader that wants everything after `since` missed, if any.
    public static func gap(since: UInt64, firstSequence: UInt64, lastSequence: UInt64) -> Gap? {
        // `since < firstSequence - 1`, not `since + 1 < firstSequence`: a client may ask for
        // anything after UInt64.max, and the sum would wrap and pass.
        guard firstSequence > 0, since < firstSequence - 1 else {
            // Nothing stored: everything up to the last assigned sequence is gone.
            if firstSequence == 0 && since < lastSequence { return Gap(from: since + 1, to: lastSequence) }
            return nil
        }
        return Gap(from: since + 1, to: firstSequence - 1)
    }
}

/// A HISTORY request's arguments.
public struct HistoryQuery: Equatable, Sendable {
    public enum Position: Equatable, Sendable {
        /// Everything after this sequence (0: from the oldest kept).
        case since(UInt64)
        /// The newest `n`.
        case last(Int)
    }

    public var position: Position
    /// No message after this sequence (a replay's marker, or `until`); with `last`, the newest
    /// at or before it (a catch-up reads its newest messages backwards, page by page).
    public var through: UInt64?
    public var prefix: [UInt8]
    /// With `since`: at most this many bytes of frames in the reply (one message at least), and
    /// never more than `HistoryReply.pageBytes`. A pair's passive broker asks for what its
    /// history queue has room for. Not part of the text form.
    public var maxBytes = HistoryReply.pageBytes
    /// With `since`: a resume (REPLAY), which starts where the pair's numbering split when
    /// `since` is a number the other broker gave while both were active
    /// (`HistoryReply.resumedAfter`). Not part of the text form: HISTORY reads as asked.
    public var resumesAcrossSplit = false
    /// With `since`: the reply names the split records among the numbers it covers
    /// (`HistoryReply.splits`). The pair link's mirroring only; not part of the text form.
    public var tellsSplits = false

    public init(position: Position, through: UInt64? = nil, prefix: [UInt8]) {
        self.position = position
        self.through = through
        self.prefix = prefix
    }

    /// A number as the protocol writes them: decimal digits only. `UInt64("+5")` is 5, and
    /// "since +5" was taken.
    public static func decimal(_ text: Substring) -> UInt64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(text)
    }

    /// Parses `since <seq> [until <seq>] [prefix]` or `last <n> [until <seq>] [prefix]`.
    public static func parse(_ argument: [UInt8]) -> HistoryQuery? {
        var rest = Substring(String(decoding: argument, as: UTF8.self))
        func word() -> Substring? {
            rest = rest.drop { $0 == " " }
            guard !rest.isEmpty else { return nil }
            let end = rest.firstIndex(of: " ") ?? rest.endIndex
            defer { rest = rest[end...] }
            return rest[..<end]
        }
        guard let keyword = word()?.lowercased(), let number = word() else { return nil }
        var query: HistoryQuery
        switch keyword {
        case "since":
            guard let sequence = decimal(number) else { return nil }
            query = HistoryQuery(position: .since(sequence), prefix: [])
        case "last":
            guard let count = decimal(number).flatMap({ Int(exactly: $0) }), count > 0 else { return nil }
            query = HistoryQuery(position: .last(count), prefix: [])
        default:
            return nil
        }
        let saved = rest
        if word()?.lowercased() == "until" {
            // `until` names a sequence: "until -1" or "until x" was read as the prefix, and
            // answered with no message instead of an error.
            guard let bound = word().flatMap(decimal) else { return nil }
            query.through = bound
        } else {
            rest = saved
        }
        // After one space, byte for byte (`ControlRequest.afterOneSpace`).
        query.prefix = Array(ControlRequest.afterOneSpace(rest).utf8)
        return query
    }
}

/// The reply to `REPLAY <token> <since> [prefix]`: the kept messages after `since` through the
/// marker's sequence (`through`), with the marker that ends them in the live stream. A client
/// prints `messages` (then, while `more`, `HISTORY since <last> until <through> <prefix>`), then
/// the live stream: before the marker it skips topics under `prefixes` (the replay has them),
/// after it everything is new. See docs/history.md.
public struct ReplayReply: Codable, Equatable, Sendable {
    public var token: String
    public var marker: String
    /// The last sequence assigned when the marker was published.
    public var through: UInt64
    /// The history prefixes: live messages before the marker on topics under them are replayed.
    public var prefixes: [String]
    public var firstSequence: UInt64
    public var messages: [MessageJSON]
    public var more: Bool
    public var gap: HistoryReply.Gap?
    public var notKept: [HistoryReply.NotKept]?
    /// The replay starts after this number, below the `since` asked for: that was a number
    /// the pair's other broker gave while both brokers were active (a stopped primary ran
    /// again), and this broker's messages numbered after the split lie below it. Some of them
    /// the client may have had already (live); each comes with its sequence.
    public var resumedAfter: UInt64?
    /// Set when history keeps nothing under the prefix asked for: a typo ("oders.") was
    /// answered as an empty replay, and the client believed it could resume.
    public var warning: String?

    /// `asked`: the prefix the REPLAY named ("" for everything).
    public init(token: String, through: UInt64, prefixes: [String], asked: [UInt8], history: HistoryReply) {
        self.token = token
        self.marker = SnapshotReply.markerPrefix + token
        self.through = through
        self.prefixes = prefixes
        self.firstSequence = history.firstSequence
        self.messages = history.messages
        self.more = history.more
        self.gap = history.gap
        self.notKept = history.notKept
        self.resumedAfter = history.resumedAfter
        if !prefixes.contains(where: { PrefixMatcher.overlap(Array($0.utf8), asked) }) {
            warning =
                "history keeps nothing under \"\(TopicText.display(asked))\" (it keeps \(prefixes.joined(separator: ", "))): nothing under it is replayed; check the prefix, or add it to [history] prefixes"
        }
    }

    enum CodingKeys: String, CodingKey {
        case token, marker, through, prefixes, messages, more, gap, warning
        case firstSequence = "first_seq"
        case notKept = "not_kept"
        case resumedAfter = "resumed_after"
    }
}

/// Tells each number history did not keep once over a read of several pages: a range may reach
/// across two of them.
public struct NotKeptReport: Sendable {
    private var toldThrough: UInt64 = 0

    public init() {}

    /// The part of `ranges` not told yet.
    public mutating func untold(_ ranges: [HistoryReply.NotKept]?) -> [HistoryReply.NotKept] {
        var result: [HistoryReply.NotKept] = []
        for var range in ranges ?? [] where range.to > toldThrough {
            range.from = max(range.from, toldThrough + 1)
            toldThrough = range.to
            result.append(range)
        }
        return result
    }
}
