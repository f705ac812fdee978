/// Where a pair's numbering split in two, as the primary records it (table `split_numbering`):
/// a primary that was stopped (SIGSTOP, a paused VM, a partition) while its backup took over
/// numbers, when it runs again, its messages below the backup's takeover numbers until it
/// hears the backup, then far above everything the backup numbered. A client that followed the
/// backup holds a position among the backup's numbers (`since`, a Last-Event-ID), and the
/// primary's messages numbered since the backup last mirrored lie below it: a replay after that
/// position would skip them, with no word. A row says "a reader whose position is in
/// `first...last` (numbers this broker did not give) has everything up to `resumeAfter` only":
/// `resumeAfter` is the last number the backup had mirrored before it took over.
///
/// Read by REPLAY only (`HistoryStore.resumePoint`): HISTORY reads numbers as asked, and a
/// passive peer's mirroring through it must not jump back. Bounded: the newest
/// `maximumRows`; a row goes when its numbers are evicted. The table is created with its first
/// row, not with the file: a zpubd from before it refuses a file holding a table it does not
/// know, and only a history that saw a split needs it.
struct SplitNumbering {
    static let maximumRows = 64

    /// Whether the file has the table (checked at open, created with the first row).
    private(set) var exists = false

    mutating func load(_ database: SQLiteDatabase) throws {
        let select = try database.prepare(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'split_numbering'")
        exists = try select.step() && select.int64(0) > 0
    }

    /// Records (or widens) the numbers `first...last` as another broker's, read from after
    /// `resumeAfter` by a reader positioned there.
    mutating func record(_ database: SQLiteDatabase, first: UInt64, last: UInt64, resumeAfter: UInt64) throws {
        // SQLite's integers are signed: a larger bound would bind as a negative one.
        guard first <= last, resumeAfter < first, last <= UInt64(Int64.max) else { return }
        if !exists {
            try database.execute(
                """
                CREATE TABLE IF NOT EXISTS split_numbering (
                    first_seq INTEGER PRIMARY KEY,
                    last_seq INTEGER NOT NULL,
                    resume_after INTEGER NOT NULL
                )
                """)
            exists = true
        }
        let insert = try database.prepare(
            """
            INSERT INTO split_numbering (first_seq, last_seq, resume_after) VALUES (?1, ?2, ?3)
            ON CONFLICT(first_seq) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq),
                resume_after = min(resume_after, excluded.resume_after)
            """)
        insert.bind(1, first)
        insert.bind(2, last)
        insert.bind(3, resumeAfter)
        try insert.run()
        try database.execute(
            "DELETE FROM split_numbering WHERE first_seq NOT IN (SELECT first_seq FROM split_numbering ORDER BY first_seq DESC LIMIT \(Self.maximumRows))"
        )
    }

    /// Where a reader positioned at `since` resumes: the row's `resumeAfter` when `since` lies
    /// in a recorded range, nil otherwise.
    func resumePoint(_ database: SQLiteDatabase, since: UInt64) throws -> UInt64? {
        guard exists, since <= UInt64(Int64.max) else { return nil }
        let select = try database.prepare(
            "SELECT last_seq, resume_after FROM split_numbering WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1")
        select.bind(1, since)
        guard try select.step(), select.uint64(0) >= since else { return nil }
        let resumeAfter = select.uint64(1)
        return resumeAfter < since ? resumeAfter : nil
    }

    /// Rows whose numbers are all evicted go (inside the caller's transaction).
    func deleteEvicted(_ database: SQLiteDatabase, through sequence: UInt64) throws {
        guard exists else { return }
        let delete = try database.prepare("DELETE FROM split_numbering WHERE last_seq <= ?1")
        delete.bind(1, min(sequence, UInt64(Int64.max)))
        try delete.run()
    }
}
