/// Where a pair's numbering split in two, as the primary records it: a primary that was stopped
/// (SIGSTOP, a paused VM, a partition) while its backup took over numbers, when it runs again,
/// its messages below the backup's takeover numbers until it hears the backup, then far above
/// everything the backup numbered. A client that followed the backup holds a position among the
/// backup's numbers (`since`, a Last-Event-ID), and the primary's messages numbered since the
/// backup last mirrored lie below it: a replay after that position would skip them, with no
/// word. A record says "a reader whose position is in `first...last` (numbers this broker did
/// not give) has everything up to `resumeAfter` only": `resumeAfter` is the last number the
/// backup had mirrored before it took over.
///
/// Read by REPLAY only (`HistoryStore.resumePoint`): HISTORY reads numbers as asked, and a
/// passive peer's mirroring through it must not jump back. Kept as rows of the `meta` table
/// (`split <first> <last>` = `resumeAfter`), which a zpubd from before them ignores (a table
/// of their own made it refuse the file), and in memory. Bounded: the newest `maximumRows`; a
/// record goes when its numbers are evicted.
struct SplitNumbering {
    struct Record: Equatable {
        var first: UInt64
        var last: UInt64
        var resumeAfter: UInt64
    }

    static let maximumRows = 64
    private static let keyPrefix = "split "

    /// Oldest first.
    private(set) var records: [Record] = []

    mutating func load(_ database: SQLiteDatabase) throws {
        let select = try database.prepare("SELECT key, value FROM meta WHERE key LIKE 'split %'")
        records = []
        while try select.step() {
            let numbers = select.text(0).dropFirst(Self.keyPrefix.count).split(separator: " ").compactMap { UInt64($0) }
            guard numbers.count == 2 else { continue }
            records.append(Record(first: numbers[0], last: numbers[1], resumeAfter: select.uint64(1)))
        }
        records.sort { $0.first < $1.first }
    }

    /// Records the numbers `first...last` as another broker's, read from after `resumeAfter`
    /// by a reader positioned there.
    mutating func record(_ database: SQLiteDatabase, first: UInt64, last: UInt64, resumeAfter: UInt64) throws {
        // SQLite's integers are signed: a larger value would read back as a negative one.
        guard first <= last, resumeAfter < first, last <= UInt64(Int64.max) else { return }
        let record = Record(first: first, last: last, resumeAfter: resumeAfter)
        var kept = records.filter { $0.first != first } + [record]
        kept.sort { $0.first < $1.first }
        let dropped = kept.count > Self.maximumRows ? Array(kept.prefix(kept.count - Self.maximumRows)) : []
        kept.removeFirst(dropped.count)
        try database.execute("BEGIN")
        do {
            try Self.delete(database, records.filter { $0.first == first } + dropped)
            let insert = try database.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
            var key = Self.key(record)
            try key.withUTF8 { key in
                insert.bind(1, borrowingText: key)
                insert.bind(2, resumeAfter)
                try insert.run()
            }
            try database.execute("COMMIT")
        } catch {
            try? database.execute("ROLLBACK")
            throw error
        }
        records = kept
    }

    /// Where a reader positioned at `since` resumes: the `resumeAfter` of the newest record
    /// whose range holds `since`, nil when none does.
    func resumePoint(since: UInt64) -> UInt64? {
        guard let record = records.last(where: { $0.first <= since && since <= $0.last }) else { return nil }
        return record.resumeAfter < since ? record.resumeAfter : nil
    }

    /// The records with numbers in `numbers`, oldest first: what a mirror of this history
    /// needs to resume readers as this one does.
    func records(overlapping numbers: ClosedRange<UInt64>) -> [Record] {
        records.filter { $0.first <= numbers.upperBound && numbers.lowerBound <= $0.last }
    }

    /// Records whose numbers are all evicted go (inside the caller's transaction);
    /// `forgetEvicted` once it commits.
    func deleteEvicted(_ database: SQLiteDatabase, through sequence: UInt64) throws {
        try Self.delete(database, records.filter { $0.last <= sequence })
    }

    mutating func forgetEvicted(through sequence: UInt64) {
        records.removeAll { $0.last <= sequence }
    }

    private static func key(_ record: Record) -> String { "\(keyPrefix)\(record.first) \(record.last)" }

    private static func delete(_ database: SQLiteDatabase, _ records: [Record]) throws {
        for record in records {
            let delete = try database.prepare("DELETE FROM meta WHERE key = ?1")
            var key = key(record)
            try key.withUTF8 { key in
                delete.bind(1, borrowingText: key)
                try delete.run()
            }
        }
    }
}
