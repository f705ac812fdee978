import ZPubCore

/// The sequences history numbered but does not hold, as ranges in the `not_kept` table: a
/// reader is told of them (`HistoryReply.notKept`) instead of finding, with no word, that a
/// replay skipped from 4 to 6. Every sequence goes to one kept message (one counter for all
/// history prefixes), so a number the store never got is a message lost: its queue was full,
/// its batch failed, or the run that numbered it stopped uncleanly.
///
/// Found where the numbers are known to be settled: between two stored messages, and up to the
/// highest number a batch that took everything waiting was told of (`HistoryQueue.withTaken`).
/// Changes are made inside the store's transaction and take effect in memory only once it
/// commits (`committed`, `rolledBack`).
///
/// Bounded: at most `maximumRows` rows (10,000; the oldest two are joined into one beyond that) and
/// `maximumPerBatch` new ones per batch (the rest joined into the last). A joined range
/// covers kept messages too, which is why a range means "every number in it that is not among
/// the messages read": the promise holds for the ranges as recorded, joined or not.
struct NotKeptLedger {
    typealias Reason = HistoryReply.NotKept.Reason

    struct Range: Equatable {
        var first: UInt64
        var last: UInt64
        var reason: Reason
    }

    static let maximumPerBatch = 16
    /// Rows kept at most (a smaller one in tests).
    var maximumRows = 10_000

    /// Every sequence up to here is stored, evicted, or in a range (as committed).
    private(set) var accountedThrough: UInt64 = 0
    /// The reserve of a run that stopped uncleanly (0: none): the numbers above
    /// `accountedThrough` up to here that it may have handed out. The first number stored or
    /// settled after the start decides: one above it is this run's own, and the reserve is
    /// then recorded (`uncleanStop`); one within it is a pair peer's, mirrored from where this
    /// store stopped (the peer numbered on from there, and its stream shows what it kept).
    private var uncleanThrough: UInt64 = 0
    private var newest: Range?
    private var rowCount = 0

    /// This transaction's: the same, moved on as it finds ranges.
    private struct Working {
        var through: UInt64 = 0
        var uncleanThrough: UInt64 = 0
        var found: [Range] = []
    }

    private var working = Working()
    /// The newest row and the row count once this transaction's ranges are written.
    private var pendingState: (newest: Range?, rows: Int)?
    /// The first number of a takeover (`HistoryStore.expectTakeover`): a range that ends just
    /// below it is the numbers the peer may have used, not messages this broker dropped.
    var takeoverStart: UInt64 = 0
    /// With `takeoverStart`: the peer handed over every number it gave through this one, so
    /// the numbers above it and below `takeoverStart` were never used: no range is recorded
    /// for them.
    var takeoverUnusedAbove: UInt64?
    /// Ranges a pair peer told with their reasons (`HistoryStore.takeReasons`): a range found
    /// wholly inside one takes its reason. The newest 64.
    private var peerReasons: [Range] = []
    static let maximumPeerReasons = 64
    /// Numbers a pair peer's HISTORY reply left out without a `not_kept` range: numbers it never
    /// used (a takeover's skip after a complete hand-over, `takeoverUnusedAbove`). A hole found
    /// inside one records no row, as on the peer. The newest 64.
    private var peerUnused: [ClosedRange<UInt64>] = []

    static func createTable(_ database: SQLiteDatabase) throws {
        try database.execute(
            """
            CREATE TABLE IF NOT EXISTS not_kept (
                first_seq INTEGER PRIMARY KEY,
                last_seq INTEGER NOT NULL,
                reason INTEGER NOT NULL
            )
            """)
    }

    /// Reads the table's state; `storedThrough`: the highest sequence stored or evicted.
    mutating func load(_ database: SQLiteDatabase, storedThrough: UInt64) throws {
        let select = try database.prepare(
            "SELECT first_seq, last_seq, reason, (SELECT count(*) FROM not_kept) FROM not_kept ORDER BY first_seq DESC LIMIT 1"
        )
        newest = nil
        rowCount = 0
        if try select.step() {
            newest = Range(first: select.uint64(0), last: select.uint64(1), reason: Self.reason(select.int64(2)))
            rowCount = Int(select.int64(3))
        }
        accountedThrough = max(storedThrough, newest?.last ?? 0)
        uncleanThrough = 0
        working = Working(through: accountedThrough)
    }

    /// At the start after an unclean stop: numbers up to `sequence` may have been handed out
    /// by the run that died (see `uncleanThrough`). `numbersOnItsOwn`: this store is no pair
    /// member, so this run numbers above them whatever comes: they are recorded at once, and a
    /// reader who resumes before the first new message is told of them.
    mutating func expectUncleanStop(through sequence: UInt64, numbersOnItsOwn: Bool) {
        guard sequence > working.through else { return }
        working.uncleanThrough = sequence
        if numbersOnItsOwn { resolveUncleanStop(by: sequence &+ 1) }
    }

    // MARK: Inside a transaction

    /// A message with this sequence is stored: the numbers between the last accounted for and
    /// it are not kept.
    @inline(__always)
    mutating func stored(_ sequence: UInt64) {
        if sequence > working.through &+ 1 || working.uncleanThrough != 0 { storedAfterAHole(sequence) }
        if sequence > working.through { working.through = sequence }
    }

    /// The sequence whose storing would only move `through` on by one (no hole before it, no
    /// unclean stop to resolve); 0 when there is none. The history writer counts such runs in
    /// a register and reports each once (`storedInOrder(before:)`) instead of calling `stored`
    /// for every message, whose fields live in memory.
    var nextInOrder: UInt64 { working.uncleanThrough == 0 ? working.through &+ 1 : 0 }

    /// Every sequence from `nextInOrder` (as it was) up to `next` excluded is stored: what
    /// `stored` would have done for each, in one step.
    mutating func storedInOrder(before next: UInt64) {
        if next > working.through &+ 1 { working.through = next &- 1 }
    }

    @inline(never)
    private mutating func storedAfterAHole(_ sequence: UInt64) {
        resolveUncleanStop(by: sequence)
        if sequence > working.through &+ 1 { found(working.through + 1, sequence - 1, .dropped) }
    }

    /// Every number up to `sequence` is settled: any not stored by now is not kept.
    mutating func settled(through sequence: UInt64) {
        guard sequence > working.through else { return }
        resolveUncleanStop(by: sequence)
        guard sequence > working.through else { return }
        found(working.through + 1, sequence, .dropped)
        working.through = sequence
    }

    /// The first number after an unclean stop came (see `uncleanThrough`).
    private mutating func resolveUncleanStop(by sequence: UInt64) {
        guard working.uncleanThrough != 0 else { return }
        if sequence > working.uncleanThrough {
            found(working.through + 1, working.uncleanThrough, .uncleanStop)
            working.through = working.uncleanThrough
        }
        working.uncleanThrough = 0
    }

    /// A range not kept, less the numbers the pair peer never used (`peerUnused`).
    private mutating func found(_ first: UInt64, _ last: UInt64, _ reason: Reason) {
        guard reason == .dropped, !peerUnused.isEmpty else { return foundUsed(first, last, reason) }
        for part in SequenceRanges.parts(of: first...last, outside: peerUnused) {
            foundUsed(part.lowerBound, part.upperBound, reason)
        }
    }

    /// A range not kept: each part the pair peer told of takes the peer's reason (a hole may
    /// span several of its ranges: an unclean stop's reserve, then a takeover's skip, measured
    /// as one `dropped` row of a billion numbers); of the rest, the part up to a takeover's first
    /// number is the peer's (`takeover`), even when this broker then dropped its own first
    /// messages too.
    private mutating func foundUsed(_ first: UInt64, _ last: UInt64, _ reason: Reason) {
        guard reason == .dropped, peerReasons.contains(where: { $0.first <= last && first <= $0.last }) else {
            return foundHere(first, last, reason)
        }
        var next = first
        for told in peerReasons.sorted(by: { $0.first < $1.first }) where told.first <= last && next <= told.last {
            if told.first > next { foundHere(next, told.first - 1, .dropped) }
            add(max(next, told.first), min(last, told.last), told.reason)
            guard told.last < last else { return }
            next = told.last + 1
        }
        foundHere(next, last, .dropped)
    }

    /// A range not kept that no range the peer told of covers.
    private mutating func foundHere(_ first: UInt64, _ last: UInt64, _ reason: Reason) {
        if reason == .dropped, takeoverStart > first, last >= takeoverStart - 1 {
            let used = min(takeoverStart - 1, takeoverUnusedAbove ?? .max)
            if first <= used { add(first, used, .takeover) }
            if last >= takeoverStart { add(takeoverStart, last, .dropped) }
        } else {
            add(first, last, reason)
        }
    }

    private mutating func add(_ first: UInt64, _ last: UInt64, _ reason: Reason) {
        if working.found.count == Self.maximumPerBatch {
            // Joined into the last: it then covers the stored messages in between too.
            working.found[working.found.count - 1].last = last
            if reason == .dropped { working.found[working.found.count - 1].reason = .dropped }
            return
        }
        working.found.append(Range(first: first, last: last, reason: reason))
    }

    /// Writes what this transaction found (inside it): a range that continues the newest row
    /// with the same reason extends it.
    mutating func write(_ database: SQLiteDatabase) throws {
        guard !working.found.isEmpty else { return }
        var newest = self.newest
        var rows = rowCount
        for range in working.found {
            if var last = newest, last.last &+ 1 == range.first, last.reason == range.reason {
                last.last = range.last
                try Self.setLast(database, of: last.first, to: last.last)
                newest = last
                continue
            }
            let insert = try database.prepare(
                "INSERT INTO not_kept (first_seq, last_seq, reason) VALUES (?, ?, ?) ON CONFLICT(first_seq) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)"
            )
            insert.bind(1, range.first)
            insert.bind(2, range.last)
            insert.bind(3, Self.code(range.reason))
            try insert.run()
            newest = range
            rows += 1
        }
        while rows > maximumRows, let joined = try joinOldestTwo(database) {
            if let last = newest, joined.last >= last.last { newest = joined }
            rows -= 1
        }
        pendingState = (newest, rows)
    }

    /// The oldest two rows become one, from the first's start to the second's end (dropped
    /// unless both say otherwise); returns it (nil with fewer than two rows).
    private func joinOldestTwo(_ database: SQLiteDatabase) throws -> Range? {
        let select = try database.prepare("SELECT first_seq, last_seq, reason FROM not_kept ORDER BY first_seq LIMIT 2")
        var rows: [Range] = []
        while try select.step() {
            rows.append(Range(first: select.uint64(0), last: select.uint64(1), reason: Self.reason(select.int64(2))))
        }
        guard rows.count == 2 else { return nil }
        let delete = try database.prepare("DELETE FROM not_kept WHERE first_seq = ?")
        delete.bind(1, rows[1].first)
        try delete.run()
        let update = try database.prepare("UPDATE not_kept SET last_seq = ?, reason = ? WHERE first_seq = ?")
        let joined = Range(
            first: rows[0].first, last: rows[1].last,
            reason: rows[0].reason == rows[1].reason ? rows[0].reason : .dropped)
        update.bind(1, joined.last)
        update.bind(2, Self.code(joined.reason))
        update.bind(3, joined.first)
        try update.run()
        return joined
    }

    private static func setLast(_ database: SQLiteDatabase, of first: UInt64, to last: UInt64) throws {
        let update = try database.prepare("UPDATE not_kept SET last_seq = ? WHERE first_seq = ?")
        update.bind(1, last)
        update.bind(2, first)
        try update.run()
    }

    /// The transaction committed: what it found is recorded.
    mutating func committed() {
        accountedThrough = working.through
        uncleanThrough = working.uncleanThrough
        if let (newest, rows) = pendingState {
            self.newest = newest
            rowCount = rows
        }
        pendingState = nil
        working.found = []
    }

    /// The transaction was rolled back: as before it.
    mutating func rolledBack() {
        working = Working(through: accountedThrough, uncleanThrough: uncleanThrough)
        pendingState = nil
    }

    /// A range the pair peer told, with its reason, for ranges found later.
    mutating func expect(_ told: HistoryReply.NotKept) {
        peerReasons.removeAll { $0.last <= accountedThrough }
        if peerReasons.count == Self.maximumPeerReasons { peerReasons.removeFirst() }
        peerReasons.append(Range(first: told.from, last: told.to, reason: told.reason))
        // The newest row, if relabelled (`relabel`), must keep extending under its new reason.
        if var last = newest, last.reason == .dropped, told.from <= last.first, last.last <= told.to {
            last.reason = told.reason
            newest = last
        }
    }

    /// Numbers the pair peer never used (`peerUnused`), for holes found later; rows already
    /// recorded wholly inside them as `dropped` go (`deleteUnused`, `forgetDeleted`).
    mutating func expectUnused(_ unused: ClosedRange<UInt64>) {
        peerUnused.removeAll { $0.upperBound <= accountedThrough }
        if peerUnused.count == Self.maximumPeerReasons { peerUnused.removeFirst() }
        peerUnused.append(unused)
    }

    /// Deletes the rows recorded wholly inside `unused` as `dropped` (outside a transaction: one
    /// statement); returns how many.
    static func deleteUnused(_ database: SQLiteDatabase, _ unused: ClosedRange<UInt64>) throws -> Int {
        let delete = try database.prepare(
            "DELETE FROM not_kept WHERE first_seq >= ?1 AND last_seq <= ?2 AND reason = ?3")
        delete.bind(1, min(unused.lowerBound, UInt64(Int64.max)))
        delete.bind(2, min(unused.upperBound, UInt64(Int64.max)))
        delete.bind(3, code(.dropped))
        try delete.run()
        return database.changes
    }

    /// `rows` rows inside `unused` were deleted.
    mutating func forgetDeleted(rows: Int, inside unused: ClosedRange<UInt64>) {
        guard rows > 0 else { return }
        rowCount -= rows
        if let newest, unused.contains(newest.first) && unused.contains(newest.last) { self.newest = nil }
    }

    /// Rows recorded wholly inside `from...to` as `dropped` take `reason` (outside a transaction:
    /// one statement).
    static func relabel(_ database: SQLiteDatabase, from: UInt64, to: UInt64, as reason: Reason) throws {
        let update = try database.prepare(
            "UPDATE not_kept SET reason = ?1 WHERE first_seq >= ?2 AND last_seq <= ?3 AND reason = ?4")
        update.bind(1, code(reason))
        update.bind(2, min(from, UInt64(Int64.max)))
        update.bind(3, min(to, UInt64(Int64.max)))
        update.bind(4, code(.dropped))
        try update.run()
    }

    // MARK: Eviction and reading

    /// Ranges wholly at or below `sequence` go with the messages evicted (inside the caller's
    /// transaction; `forgetEvicted` once it commits).
    static func deleteEvicted(_ database: SQLiteDatabase, through sequence: UInt64) throws -> Int {
        let delete = try database.prepare("DELETE FROM not_kept WHERE first_seq <= ?1 AND last_seq <= ?1")
        delete.bind(1, sequence)
        try delete.run()
        return database.changes
    }

    mutating func forgetEvicted(rows: Int, through sequence: UInt64) {
        rowCount -= rows
        if let newest, newest.last <= sequence { self.newest = nil }
    }

    var rows: Int { rowCount }

    /// The ranges that meet `after + 1 ... through`, cut to it, oldest first; more than
    /// `limit` are joined into the last.
    static func ranges(_ database: SQLiteDatabase, after: UInt64, through: UInt64, limit: Int) throws -> [Range] {
        // SQLite's integers are signed: a larger bound would bind as a negative one.
        let through = min(through, UInt64(Int64.max))
        guard after < through, limit > 0 else { return [] }
        let select = try database.prepare(
            """
            SELECT first_seq, last_seq, reason FROM not_kept
            WHERE first_seq >= coalesce((SELECT max(first_seq) FROM not_kept WHERE first_seq <= ?1), 0)
              AND first_seq <= ?2 AND last_seq > ?1
            ORDER BY first_seq
            """)
        select.bind(1, after)
        select.bind(2, through)
        var result: [Range] = []
        while try select.step() {
            let range = Range(
                first: max(select.uint64(0), after + 1), last: min(select.uint64(1), through),
                reason: reason(select.int64(2)))
            if result.count == limit {
                result[limit - 1].last = range.last
                if range.reason == .dropped { result[limit - 1].reason = .dropped }
            } else {
                result.append(range)
            }
        }
        return result
    }

    private static func code(_ reason: Reason) -> Int64 {
        switch reason {
        case .dropped: 1
        case .uncleanStop: 2
        case .takeover: 3
        }
    }

    private static func reason(_ code: Int64) -> Reason {
        switch code {
        case 2: .uncleanStop
        case 3: .takeover
        default: .dropped
        }
    }
}
