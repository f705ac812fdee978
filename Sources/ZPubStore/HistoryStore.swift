import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// One message as history keeps it: every frame unchanged (topic first), its sequence number
/// and when zpubd received it.
public struct StoredMessage: Sendable, Equatable {
    public var sequence: UInt64
    public var receivedMilliseconds: UInt64
    public var frames: [[UInt8]]
    /// The history prefix it is kept under (the first configured one its topic starts with).
    public var prefix: String

    public init(sequence: UInt64, receivedMilliseconds: UInt64, frames: [[UInt8]], prefix: String) {
        self.sequence = sequence
        self.receivedMilliseconds = receivedMilliseconds
        self.frames = frames
        self.prefix = prefix
    }

    /// The bytes of all frames, as the bounds count them.
    public var bytes: Int { frames.reduce(0) { $0 + $1.count } }
}

/// An update of the last-value cache, persisted so that the cache survives a restart: the
/// message (topic first) with the cache's sequence and time, or a deletion (payload absent or
/// one empty frame), as the cache itself treats it.
public struct LastValueRecord: Sendable, Equatable {
    public var frames: [[UInt8]]
    public var sequence: UInt64
    public var storedMilliseconds: UInt64

    public init(frames: [[UInt8]], sequence: UInt64, storedMilliseconds: UInt64) {
        self.frames = frames
        self.sequence = sequence
        self.storedMilliseconds = storedMilliseconds
    }

    public var isDeletion: Bool {
        frames.count < 2 || (frames.count == 2 && frames[1].isEmpty)
    }
}

/// Why the store cannot be used at start; zpubd exits with `exitStatus` (sysexits) and says
/// what to do.
public struct HistoryStoreError: Error, CustomStringConvertible {
    public let description: String
    /// 73 (EX_CANTCREAT): the file or directory cannot be created or written; 74 (EX_IOERR):
    /// the file is damaged, not a database, or in use by another process.
    public let exitStatus: Int32

    public init(description: String, exitStatus: Int32) {
        self.description = description
        self.exitStatus = exitStatus
    }
}

/// The message history on SQLite, bounded by count, bytes and age (the oldest go first). In
/// WAL mode with `synchronous=NORMAL`, every committed batch survives a SIGKILL;
/// `checkpoint()` syncs it to the disk (docs/history.md).
///
/// Messages are kept in blocks, as nats-server's stream store and Kafka's segments keep them:
/// one row holds up to `blockMessages` records, byte for byte as the history queue handed them
/// over (`HistoryRecord`), with the block's sequence range, times and per-prefix counts beside
/// them. One SQLite insert per block instead of one per message is what keeps the writer's cost
/// per message near the forwarding loop's (SQLite's insert alone was ~4,200 instructions).
/// Eviction is exact all the same: `evictedThrough` is the logical start of the history, and
/// the oldest block, when only part of it is evicted, stays until all of it is (its evicted
/// records are skipped on every read).
///
/// Without a directory the same schema lives in an in-memory database. Not thread safe: the
/// history writer's thread owns it.
public final class HistoryStore {
    public static let fileName = "history.sqlite3"
    /// 1: one row per message (`messages`); 2: blocks of records (`blocks`). A version-1 file
    /// is converted when it is opened.
    static let schemaVersion: Int64 = 2
    /// A block holds at most this many messages, and at most this many bytes of records unless
    /// a single record is larger: small enough that reading one for a page of history is cheap,
    /// large enough that SQLite's cost per row is spread thin.
    static let blockMessages = 4_096
    public static let blockBytes = 256 * 1_024

    public struct Bounds: Sendable, Equatable {
        public var maxMessages: Int
        public var maxBytes: Int
        /// 0: no age limit.
        public var maxAgeMilliseconds: UInt64

        public init(maxMessages: Int, maxBytes: Int, maxAgeMilliseconds: UInt64) {
            self.maxMessages = maxMessages
            self.maxBytes = maxBytes
            self.maxAgeMilliseconds = maxAgeMilliseconds
        }
    }

    /// Per history prefix: what is stored.
    public struct PrefixCounts: Sendable, Equatable {
        public var messages = 0
        public var bytes = 0

        mutating func add(_ other: PrefixCounts) {
            messages += other.messages
            bytes += other.bytes
        }
    }

    /// The database file; nil in memory.
    public let path: String?
    public var bounds: Bounds
    let database: SQLiteDatabase
    private let insertBlock: SQLiteStatement
    private let selectBlockRecords: SQLiteStatement
    private let selectBlockToCheck: SQLiteStatement
    /// The check of every block after the store opens (`checkNextBlock`): the last block it
    /// read, and whether it is over.
    private var checkedThrough: UInt64?
    public private(set) var checkIsOver = false
    public private(set) var blocksChecked = 0
    /// The blocks stored when the store opened are checked; those written since were read
    /// back from no disk.
    private var checkUpTo: UInt64 = 0
    private let setMeta: SQLiteStatement
    private let upsertLastValue: SQLiteStatement
    private let deleteLastValue: SQLiteStatement
    /// Last values kept at most (the cache's `max_entries` and `max_bytes`): the oldest
    /// updates go first, as in the cache (`LastValueSizes`).
    public private(set) var lastValueLimits = (entries: Int.max, bytes: Int.max)
    private var lastValueSizes = LastValueSizes()
    public var lastValueCount: Int { lastValueSizes.count }
    /// The persisted last values' size, counted as the cache counts its entries.
    public var lastValueBytes: Int { lastValueSizes.totalBytes }

    /// The highest sequence ever assigned (stored or not) that the store knows of.
    public private(set) var lastSequence: UInt64 = 0
    /// Sequences the forwarding loop may have handed out beyond what is committed: the loop
    /// numbers a message (its marker, SSE id and publish receipt go out at once) before the
    /// writer commits it, so a process that dies uncommitted had handed out numbers the store
    /// never saw. Reserved `sequenceReserve` ahead when the store opens (committed and synced
    /// before the loop numbers anything), renewed in the same transaction as the messages once
    /// half is used, and given back at a clean stop; a start continues above it, so a number
    /// is never given to two messages, also across a SIGKILL or a power loss.
    public private(set) var reservedThrough: UInt64 = 0
    /// `reservedThrough` as of the last checkpoint: what survives a power loss. The forwarding
    /// loop numbers nothing above it (`HistoryQueue.ceiling`): while commits fail the reserve
    /// is not renewed, and a loop that numbered on would reach numbers a restart gives again.
    /// A renewal is checkpointed at once, so with room left the loop never waits for it.
    public private(set) var durableReserve: UInt64 = 0
    /// Where this run's own numbering continues: above everything assigned before, and above
    /// the reserve of a run that stopped uncleanly. Fixed at open.
    public private(set) var startsAfter: UInt64 = 0
    /// How far ahead numbers are reserved (`[history] sequence_reserve`, 2^30 by default):
    /// renewed, and synced at once, when half is used, so the loop numbers on while the
    /// renewal is written; it waits only if half a reserve arrives before that is done.
    public let sequenceReserve: UInt64
    public static let defaultSequenceReserve: UInt64 = 1 << 30
    public private(set) var firstSequence: UInt64 = 0
    public private(set) var messageCount = 0
    public private(set) var byteCount = 0
    public private(set) var perPrefix: [String: PrefixCounts] = [:]
    public private(set) var evictions: UInt64 = 0
    /// Why the last append could not apply the bounds (its batch was stored all the same), or
    /// nil: the store may be growing past them.
    public private(set) var evictionError: (any Error)?
    /// Messages up to this sequence are evicted: gone for every reader and every count, even
    /// where the oldest block still holds their bytes.
    public private(set) var evictedThrough: UInt64 = 0
    /// The highest sequence stored (evicted or not): a record at or below it is not new. Not
    /// `lastSequence`, which also counts sequences assigned to messages still in the queue (a
    /// batch ends at the writer's limit, not at the last sequence assigned when it was taken).
    private var highestStored: UInt64 = 0
    /// `oldestBlock()`'s, nil until it is needed and after that block is deleted.
    private var oldest: OldestBlock?
    /// The numbers handed out that the store does not hold, told to readers.
    var notKeptLedger = NotKeptLedger()
    private var splitNumbering = SplitNumbering()
    /// Whether the run before this one stopped uncleanly, leaving a reserve not yet accounted
    /// for (set at open).
    public private(set) var earlierRunStoppedUncleanly = false
    private let numbersOnItsOwn: Bool

    /// Opens the store in `directory` (creating it), or in memory when nil. Throws
    /// `HistoryStoreError` naming the file and what to do; never wipes a file it cannot read.
    /// `numbersOnItsOwn`: no pair member (which may mirror a peer's numbers into an unclean
    /// stop's reserve): the reserve of a run that stopped uncleanly is recorded as not kept
    /// at open, not when the first new number shows whose it is.
    public init(
        directory: String?, bounds: Bounds, sequenceReserve: UInt64 = defaultSequenceReserve,
        numbersOnItsOwn: Bool = false
    ) throws(HistoryStoreError) {
        self.numbersOnItsOwn = numbersOnItsOwn
        self.bounds = bounds
        self.sequenceReserve = sequenceReserve
        let path = directory.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/" + Self.fileName }
        self.path = path
        if let directory { try Self.prepareDirectory(directory) }
        do {
            database = try SQLiteDatabase(path: path ?? ":memory:")
            try Self.refuseForeignFile(database, path: path)
            if path != nil {
                // Exclusive: a second zpubd on the same directory fails at start instead of
                // interleaving sequences. WAL: readers never block the writer, and a commit is
                // one append to the log.
                try database.execute("PRAGMA locking_mode = EXCLUSIVE")
                try database.execute("PRAGMA journal_mode = WAL")
            }
            try database.execute("PRAGMA synchronous = NORMAL")
            let version = try Self.prepareSchema(database, path: path)
            insertBlock = try database.prepare(
                "INSERT INTO blocks (first_seq, last_seq, count, bytes, min_ms, max_ms, prefixes, records) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            )
            selectBlockRecords = try database.prepare("SELECT records FROM blocks WHERE first_seq = ?")
            selectBlockToCheck = try database.prepare(
                "SELECT first_seq, last_seq, count FROM blocks WHERE first_seq > ? ORDER BY first_seq LIMIT 1")
            setMeta = try database.prepare(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            upsertLastValue = try database.prepare(
                "INSERT INTO last_values (topic, seq, stored_ms, frames) VALUES (?, ?, ?, ?) ON CONFLICT(topic) DO UPDATE SET seq = excluded.seq, stored_ms = excluded.stored_ms, frames = excluded.frames"
            )
            deleteLastValue = try database.prepare("DELETE FROM last_values WHERE topic = ?")
            if version == 1 { try migrateFromRows() }
            try loadCounts()
            checkUpTo = highestStored
            try reserveAtOpen()
        } catch let error as HistoryStoreError {
            throw error
        } catch {
            throw Self.startError(error, path: path)
        }
    }

    private static func cannotCreate(_ directory: String, because reason: String) -> String {
        "cannot create the state directory \(directory): \(reason); create it, writable by zpubd's user, or choose another with --state-dir"
    }

    private static func notADirectory(_ directory: String) -> String {
        "the state directory \(directory) is not a directory; choose another with --state-dir"
    }

    /// What `prepareDirectory` would refuse, found without creating anything (for
    /// `zpubd --check-config`): a path that is no directory, or a missing one under a parent
    /// that is none. Whether zpubd's user may write there is left to the start, since the check
    /// may run as another user, as is a path this user may not look into (DynamicUser='s
    /// private directories).
    public static func stateDirectoryProblem(_ directory: String) -> String? {
        var status = stat()
        if stat(directory, &status) == 0 {
            return status.st_mode & S_IFMT == S_IFDIR ? nil : notADirectory(directory)
        }
        guard errno == ENOENT || errno == ENOTDIR else { return nil }
        var path = Substring(directory)
        while path.count > 1 && path.hasSuffix("/") { path = path.dropLast() }
        let parent = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let found = stat(parent, &status) == 0
        if found && status.st_mode & S_IFMT == S_IFDIR { return nil }
        if !found && errno != ENOENT && errno != ENOTDIR { return nil }
        // zpubd creates the state directory, not its parents (as systemd's StateDirectory= does).
        return cannotCreate(directory, because: found ? "\(parent) is not a directory" : "\(parent) does not exist")
    }

    private static func prepareDirectory(_ directory: String) throws(HistoryStoreError) {
        var status = stat()
        if stat(directory, &status) != 0 {
            guard mkdir(directory, 0o750) == 0 || errno == EEXIST else {
                throw HistoryStoreError(
                    description: cannotCreate(directory, because: String(cString: strerror(errno))), exitStatus: 73)
            }
        } else if status.st_mode & S_IFMT != S_IFDIR {
            throw HistoryStoreError(description: notADirectory(directory), exitStatus: 73)
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw HistoryStoreError(
                description:
                    "the state directory \(directory) is not writable by this user; give zpubd's user write access (StateDirectory= does it under systemd)",
                exitStatus: 73)
        }
    }

    private static func startError(_ error: any Error, path: String?) -> HistoryStoreError {
        let file = path ?? "the in-memory history"
        guard let error = error as? SQLiteError else {
            return HistoryStoreError(description: "cannot open \(file): \(error)", exitStatus: 74)
        }
        if error.isLocked {
            return HistoryStoreError(
                description:
                    "\(file) is in use by another process (another zpubd with the same state directory?); stop it, or give this one its own --state-dir",
                exitStatus: 74)
        }
        if error.isCorrupt {
            return HistoryStoreError(
                description:
                    "\(file) is damaged or not a zpub history (\(error.message)); zpubd does not delete it: move it aside to start with an empty history, or restore a backup",
                exitStatus: 74)
        }
        if error.isUnwritable {
            return HistoryStoreError(
                description:
                    "cannot write \(file) (\(error.message)); check the permissions and free space of its directory",
                exitStatus: 73)
        }
        return HistoryStoreError(description: "cannot open \(file): \(error)", exitStatus: 74)
    }

    /// The tables of a zpub history, of either version (`messages` is version 1's).
    private static let ownTables: Set<String> = ["meta", "blocks", "last_values", "not_kept", "messages"]

    /// Refuses another program's SQLite file in zpubd's place, before anything is written to
    /// it: it was taken for a new history, and zpubd's tables written beside the program's own.
    private static func refuseForeignFile(_ database: SQLiteDatabase, path: String?) throws {
        let tables = try database.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        var foreign: [String] = []
        while try tables.step() {
            let name = tables.text(0)
            if !ownTables.contains(name) && !name.hasPrefix("sqlite_") { foreign.append(name) }
        }
        guard foreign.isEmpty else {
            throw HistoryStoreError(
                description:
                    "\(path ?? "history") is not a zpub history: it holds tables zpubd did not make (\(foreign.prefix(5).joined(separator: ", "))); zpubd does not change it: move it aside, or give zpubd another --state-dir",
                exitStatus: 74)
        }
    }

    /// Creates the tables of a new file, or checks the version of an existing one; returns the
    /// version the file had (1 is converted by the caller; a newer one is refused untouched).
    private static func prepareSchema(_ database: SQLiteDatabase, path: String?) throws -> Int64 {
        try database.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        let select = try database.prepare("SELECT value FROM meta WHERE key = 'schema_version'")
        let version = try select.step() ? select.int64(0) : schemaVersion
        guard version == 1 || version == schemaVersion else {
            throw HistoryStoreError(
                description:
                    "\(path ?? "history") has schema version \(version); this zpubd reads versions 1 and \(schemaVersion): use the zpubd that wrote it, or move the file aside",
                exitStatus: 74)
        }
        try database.execute(
            """
            CREATE TABLE IF NOT EXISTS blocks (
                first_seq INTEGER PRIMARY KEY,
                last_seq INTEGER NOT NULL,
                count INTEGER NOT NULL,
                bytes INTEGER NOT NULL,
                min_ms INTEGER NOT NULL,
                max_ms INTEGER NOT NULL,
                prefixes BLOB NOT NULL,
                records BLOB NOT NULL
            );
            CREATE INDEX IF NOT EXISTS blocks_by_age ON blocks (min_ms);
            CREATE TABLE IF NOT EXISTS last_values (
                topic BLOB PRIMARY KEY,
                seq INTEGER NOT NULL,
                stored_ms INTEGER NOT NULL,
                frames BLOB NOT NULL
            );
            """)
        // Added without a new schema version: a file without it has recorded no ranges, and
        // an earlier zpubd leaves the table alone.
        try NotKeptLedger.createTable(database)
        if version == schemaVersion {
            try database.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', \(schemaVersion)) ON CONFLICT(key) DO NOTHING")
        }
        return version
    }

    /// Converts a version-1 file (one row per message) into blocks, in one transaction: a crash
    /// during it leaves the file as it was, to be converted at the next start.
    private func migrateFromRows() throws {
        try database.execute("BEGIN")
        do {
            let select = try database.prepare(
                "SELECT seq, received_ms, prefix, frames FROM messages ORDER BY seq")
            var records: [UInt8] = []
            var pending = 0
            while try select.step() {
                let frames = select.blob(3)
                var record: [UInt8] = []
                let body = 1 + 8 + 8 + 2 + frames.count
                HistoryRecord.appendBigEndian(UInt32(body), to: &record)
                record.append(HistoryRecord.messageKind)
                HistoryRecord.appendBigEndian(select.uint64(0), to: &record)
                HistoryRecord.appendBigEndian(select.uint64(1), to: &record)
                HistoryRecord.appendBigEndian(UInt16(truncatingIfNeeded: select.text(2).utf8.count), to: &record)
                records += record
                records += frames
                pending += 1
                // Flushed in parts, so that a large history is never all in memory at once.
                if pending == 100_000 || records.count >= 64 * Self.blockBytes {
                    _ = try insertBlocks(from: records)
                    records.removeAll(keepingCapacity: true)
                    pending = 0
                }
            }
            _ = try insertBlocks(from: records)
            let (rows, converted) = try {
                // Its own scope: a statement still open on `messages` would lock the table
                // against the DROP below.
                let count = try database.prepare(
                    "SELECT (SELECT count(*) FROM messages), (SELECT coalesce(sum(count), 0) FROM blocks)")
                defer { count.reset() }
                return try count.step() ? (count.int64(0), count.int64(1)) : (0, 0)
            }()
            guard rows == converted else {
                throw SQLiteError(
                    operation: "convert the history to blocks", code: 11,
                    message: "some of its messages are damaged (\(rows - converted) of \(rows) could not be read)")
            }
            try database.execute(
                """
                DROP TABLE messages;
                UPDATE meta SET value = \(Self.schemaVersion) WHERE key = 'schema_version';
                """)
            try database.execute("COMMIT")
        } catch {
            try? database.execute("ROLLBACK")
            throw error
        }
    }

    private func loadCounts() throws {
        let meta = try database.prepare(
            "SELECT key, value FROM meta WHERE key IN ('last_sequence', 'evicted_through', 'reserved_through')")
        while try meta.step() {
            switch meta.text(0) {
            case "last_sequence": lastSequence = meta.uint64(1)
            case "evicted_through": evictedThrough = meta.uint64(1)
            default: reservedThrough = meta.uint64(1)
            }
        }
        let blocks = try database.prepare("SELECT last_seq, prefixes FROM blocks")
        perPrefix = [:]
        while try blocks.step() {
            highestStored = max(highestStored, blocks.uint64(0))
            for (prefix, counts) in try Self.decodePrefixCounts(blocks.blob(1)) {
                perPrefix[prefix, default: PrefixCounts()].add(counts)
            }
        }
        highestStored = max(highestStored, evictedThrough)
        lastSequence = max(lastSequence, highestStored)
        messageCount = perPrefix.values.reduce(0) { $0 + $1.messages }
        byteCount = perPrefix.values.reduce(0) { $0 + $1.bytes }
        // The oldest block's evicted part is still in its counts.
        if let block = try oldestBlock(), block.first <= evictedThrough {
            try block.records.withUnsafeBytes { all in
                let evicted = UnsafeRawBufferPointer(rebasing: all[..<block.offset])
                var tally = PrefixTally()
                try Self.forEachMessage(in: evicted, block: block.first) { message, bytes in
                    tally.add(message.prefix, bytes: message.bytes, in: bytes)
                    return true
                }
                forget(tally.counts(in: evicted))
            }
        }
        try loadLastValueSizes()
        try loadFirstSequence()
        try notKeptLedger.load(database, storedThrough: highestStored)
        try splitNumbering.load(database)
    }

    /// The oldest sequence still kept: the first after `evictedThrough`, in the oldest block.
    private func loadFirstSequence() throws {
        firstSequence = 0
        try oldestBlock()?.forEachKept { message, _ in
            firstSequence = message.sequence
            return false
        }
    }

    /// The oldest block that still holds kept messages, read once and then walked forward as its
    /// records are evicted: evicting a few messages at a time from a large block costs those
    /// few records, not a walk through the whole block each time.
    private func oldestBlock() throws -> OldestBlock? {
        if let oldest { return oldest }
        let select = try database.prepare(
            "SELECT first_seq, last_seq, records FROM blocks WHERE last_seq > ? ORDER BY first_seq LIMIT 1")
        select.bind(1, evictedThrough)
        guard try select.step() else { return nil }
        var block = OldestBlock(first: select.uint64(0), last: select.uint64(1), records: select.blob(2), offset: 0)
        try block.skip(through: evictedThrough)
        oldest = block
        return block
    }

    // MARK: Writing

    /// Stores the message records in `records` (the history queue's bytes as they were drained;
    /// records of another kind, and any that are not well-formed or not above the sequences
    /// already stored, are left out) in one transaction, committed: it survives a SIGKILL. Then
    /// applies the bounds (a failure there is kept in `evictionError`, not thrown: the batch is
    /// stored). `assignedThrough` is the highest sequence assigned so far, including
    /// messages dropped before they reached the store: sequences are never reused. Returns how
    /// many messages were stored and how many were left out.
    @discardableResult
    public func append(
        records: [UInt8], lastValues: [LastValueRecord] = [], assignedThrough: UInt64, nowMilliseconds: UInt64
    ) throws -> Appended {
        try records.withUnsafeBytes {
            try append(
                records: $0, lastValues: lastValues, assignedThrough: assignedThrough, nowMilliseconds: nowMilliseconds)
        }
    }

    /// `append` of records where they lie (the history queue's own memory): bound to SQLite
    /// without a copy; they need to stay valid only until this returns.
    @discardableResult
    public func append(
        records: UnsafeRawBufferPointer, lastValues: [LastValueRecord] = [], assignedThrough: UInt64,
        nowMilliseconds: UInt64
    ) throws -> Appended {
        let added: [BlockSummary]
        let leftOut: Int
        try database.execute("BEGIN")
        do {
            for record in lastValues {
                let topic = record.frames.first ?? []
                if record.isDeletion {
                    try deleteLastValueRow(topic)
                } else {
                    let encoded = FrameCodec.encode(record.frames)
                    upsertLastValue.bind(1, blob: topic)
                    upsertLastValue.bind(2, record.sequence)
                    upsertLastValue.bind(3, record.storedMilliseconds)
                    upsertLastValue.bind(4, blob: encoded)
                    try upsertLastValue.run()
                    lastValueSizes.update(topic, sequence: record.sequence, bytes: encoded.count)
                    // After each update, as the cache evicts.
                    try evictLastValuesOverLimits()
                }
            }
            (added, leftOut) = try insertBlocks(from: records)
            notKeptLedger.settled(through: assignedThrough)
            try notKeptLedger.write(database)
            let through = max(assignedThrough, added.last?.lastSequence ?? 0, lastSequence)
            // A restart takes the highest sequence from the blocks too (`loadCounts`): the meta
            // row is needed only for sequences assigned above the last one stored (messages
            // history dropped). Left alone otherwise, it spares each commit a page of the log.
            if through > max(added.last?.lastSequence ?? 0, highestStored) {
                try setMeta(key: "last_sequence", through)
            }
            // Once every 2^29 numbers: a page of the log, not one per commit.
            let reserved = renewedReserve(above: through) ?? reservedThrough
            if reserved != reservedThrough { try setMeta(key: "reserved_through", reserved) }
            try database.execute("COMMIT")
            notKeptLedger.committed()
            let renewed = reserved != reservedThrough
            reservedThrough = reserved
            lastSequence = through
            highestStored = added.last?.lastSequence ?? highestStored
            // Durable before the loop may number into it (`durableReserve`). The batch is
            // stored whatever this does; a failed checkpoint is retried at the next sync.
            if renewed { try? checkpoint() }
        } catch {
            try? database.execute("ROLLBACK")
            notKeptLedger.rolledBack()
            // The sizes were told of updates the rollback undid: read them again.
            if !lastValues.isEmpty { try? loadLastValueSizes() }
            throw error
        }
        var stored = 0
        for block in added {
            for (prefix, counts) in block.prefixes { perPrefix[prefix, default: PrefixCounts()].add(counts) }
            messageCount += block.count
            byteCount += block.bytes
            stored += block.count
        }
        if firstSequence == 0, let first = added.first { firstSequence = first.firstSequence }
        // The batch is stored whatever happens now: a failure to evict is told apart from a
        // failure to store (`evictionError`), not reported as lost messages.
        do {
            try applyBounds(nowMilliseconds: nowMilliseconds)
            evictionError = nil
        } catch {
            evictionError = error
        }
        return Appended(stored: stored, leftOut: leftOut)
    }

    /// What `append` did with the message records it was given.
    public struct Appended: Equatable, Sendable {
        public var stored: Int
        /// Message records not stored: not well-formed (one for a record cut short at the end,
        /// which hides how many followed), or their sequence not above those stored. Never
        /// expected: the history queue hands over what the forwarding loop wrote.
        public var leftOut: Int
    }

    private func setMeta(key: String, _ value: UInt64) throws {
        var key = key
        try key.withUTF8 { key in
            setMeta.bind(1, borrowingText: key)
            setMeta.bind(2, value)
            try setMeta.run()
        }
    }

    /// What one inserted block added, to be counted once its transaction commits.
    private struct BlockSummary {
        var firstSequence: UInt64
        var lastSequence: UInt64
        var count: Int
        var bytes: Int
        var prefixes: [(String, PrefixCounts)]
    }

    /// Gathers the message records of `buffer` into blocks and inserts them (inside the
    /// caller's transaction); counts the message records left out. Each block's records are
    /// bound where they lie in `buffer` when they lie there one after the other, as they do
    /// unless something was left out.
    private func insertBlocks(from records: [UInt8]) throws -> (blocks: [BlockSummary], leftOut: Int) {
        try records.withUnsafeBytes { try insertBlocks(from: $0) }
    }

    private func insertBlocks(from buffer: UnsafeRawBufferPointer) throws -> (
        blocks: [BlockSummary], leftOut: Int
    ) {
        var summaries: [BlockSummary] = []
        // Counted where a record is skipped, which is rare: the records are not counted one by
        // one (the history queue does not count them either).
        var leftOut = 0
        var floor = highestStored
        // A local copy, stored back once every block is inserted: a class's property changed
        // per message would be checked for exclusive access each time.
        var ledger = notKeptLedger
        // Every kept message passes through this loop once, so it is written for the machine
        // (callgrind, one 32 B message: 191 instructions before 2026-12-04, 135 since; the
        // rest of the writer's ~285 is SQLite's). The ledger hears of a run of consecutive
        // sequences once, not per message; the block being gathered keeps its count, size and
        // last record's end in `open` (the compiler holds them in registers), the rest in
        // `draft`, whose prefix tally adds up a run of one prefix in two integers.
        var nextInOrder = ledger.nextInOrder
        var offset = 0
        while true {
            var open = OpenBlock()
            var draft = BlockDraft()
            // One block's messages; the block is inserted after the loop, which calls out
            // only for what is rare (a hole in the sequences, a new prefix run or piece).
            while let slot = HistoryRecord.record(in: buffer, at: offset) {
                guard let message = HistoryRecord.Message(slot, in: buffer), message.sequence > floor else {
                    if slot.kind == HistoryRecord.messageKind { leftOut &+= 1 }
                    offset = slot.range.upperBound
                    continue
                }
                // The block is full: this record starts the next one (read again there).
                if open.count > 0 && open.isFull(adding: slot.range) { break }
                offset = slot.range.upperBound
                floor = message.sequence
                if message.sequence == nextInOrder {
                    nextInOrder &+= 1
                } else {
                    ledger.storedInOrder(before: nextInOrder)
                    ledger.stored(message.sequence)
                    nextInOrder = ledger.nextInOrder
                }
                open.add(message, record: slot.range, to: &draft, in: buffer)
            }
            guard open.count > 0 else { break }
            open.close(&draft, lastSequence: floor)
            summaries.append(try insert(draft, from: buffer))
        }
        ledger.storedInOrder(before: nextInOrder)
        notKeptLedger = ledger
        // A record cut short stopped the walk: what it and any after it were is unknown.
        if offset < buffer.count { leftOut &+= 1 }
        return (summaries, leftOut)
    }

    /// What a block being gathered changes with every message it adds; `BlockDraft` holds
    /// what changes once in a while.
    private struct OpenBlock {
        var count = 0
        var recordBytes = 0
        /// The end of the last record added: the next one continues the piece if it starts here.
        var pieceEnd = 0

        @inline(__always)
        func isFull(adding record: Range<Int>) -> Bool {
            count == HistoryStore.blockMessages
                || recordBytes &+ (record.upperBound &- record.lowerBound) > HistoryStore.blockBytes
        }

        @inline(__always)
        mutating func add(
            _ message: HistoryRecord.Message, record: Range<Int>, to draft: inout BlockDraft,
            in buffer: UnsafeRawBufferPointer
        ) {
            if count == 0 {
                draft.firstSequence = message.sequence
                draft.pieceStart = record.lowerBound
            } else if record.lowerBound != pieceEnd {
                draft.startPiece(at: record.lowerBound, after: pieceEnd)
            }
            pieceEnd = record.upperBound
            count &+= 1
            recordBytes &+= record.upperBound &- record.lowerBound
            draft.prefixes.add(message.prefix, bytes: message.bytes, in: buffer)
            // In the draft: compared every message, changed seldom (the clock moves forward).
            let milliseconds = message.receivedMilliseconds
            if milliseconds < draft.minMilliseconds { draft.minMilliseconds = milliseconds }
            if milliseconds > draft.maxMilliseconds { draft.maxMilliseconds = milliseconds }
        }

        /// Completes `draft` with these fields; its last message is `lastSequence` (the
        /// writer's floor).
        @inline(__always)
        func close(_ draft: inout BlockDraft, lastSequence: UInt64) {
            draft.piece = Range(uncheckedBounds: (draft.pieceStart, pieceEnd))
            draft.count = count
            draft.bytes = draft.prefixes.bytes
            draft.recordBytes = recordBytes
            draft.lastSequence = lastSequence
        }
    }

    private func insert(_ draft: BlockDraft, from buffer: UnsafeRawBufferPointer) throws -> BlockSummary {
        insertBlock.bind(1, draft.firstSequence)
        insertBlock.bind(2, draft.lastSequence)
        insertBlock.bind(3, Int64(draft.count))
        insertBlock.bind(4, Int64(draft.bytes))
        insertBlock.bind(5, draft.minMilliseconds)
        insertBlock.bind(6, draft.maxMilliseconds)
        insertBlock.bind(7, blob: draft.prefixes.encoded(in: buffer))
        if draft.earlierPieces.isEmpty {
            // Bound where the bytes lie: SQLite copies them once, into its pages.
            insertBlock.bind(8, borrowing: UnsafeRawBufferPointer(rebasing: buffer[draft.piece]))
            defer { insertBlock.clearBindings() }
            try insertBlock.runKeepingBindings()
        } else {
            var joined: [UInt8] = []
            joined.reserveCapacity(draft.recordBytes)
            for piece in draft.pieces { joined += UnsafeRawBufferPointer(rebasing: buffer[piece]) }
            insertBlock.bind(8, blob: joined)
            try insertBlock.run()
        }
        return BlockSummary(
            firstSequence: draft.firstSequence, lastSequence: draft.lastSequence, count: draft.count,
            bytes: draft.bytes, prefixes: draft.prefixes.counts(in: buffer))
    }

    /// Evicts the oldest messages until the count, bytes and age are within the bounds.
    public func applyBounds(nowMilliseconds: UInt64) throws {
        var evictThrough: UInt64 = 0
        if bounds.maxAgeMilliseconds > 0 && nowMilliseconds > bounds.maxAgeMilliseconds {
            evictThrough = try newestExpired(before: nowMilliseconds - bounds.maxAgeMilliseconds)
        }
        let excessMessages = messageCount - bounds.maxMessages
        let excessBytes = byteCount - bounds.maxBytes
        if excessMessages > 0 || excessBytes > 0 {
            evictThrough = max(evictThrough, try oldestCovering(messages: excessMessages, bytes: excessBytes))
        }
        guard evictThrough > evictedThrough else { return }
        try evict(through: evictThrough)
    }

    /// The newest kept sequence received before `cutoff` (0 if none): everything up to it goes,
    /// as before blocks (a clock set back does not keep an old message alive).
    private func newestExpired(before cutoff: UInt64) throws -> UInt64 {
        let select = try database.prepare(
            "SELECT first_seq, last_seq, max_ms FROM blocks WHERE min_ms < ?1 AND last_seq > ?2 ORDER BY first_seq DESC LIMIT 1"
        )
        select.bind(1, cutoff)
        select.bind(2, evictedThrough)
        guard try select.step() else { return 0 }
        if select.uint64(2) < cutoff { return select.uint64(1) }
        var newest: UInt64 = 0
        let visit: (HistoryRecord.Message, UnsafeRawBufferPointer) -> Bool = { message, _ in
            if message.receivedMilliseconds < cutoff { newest = message.sequence }
            return true
        }
        if let oldest = try oldestBlock(), oldest.first == select.uint64(0) {
            try oldest.forEachKept(visit)
        } else {
            try forEachMessage(inBlock: select.uint64(0), visit)
        }
        return newest
    }

    /// The sequence through which the oldest kept messages add up to at least `messages` and
    /// `bytes`: whole blocks by their counts, the oldest one and the last one record by record.
    private func oldestCovering(messages: Int, bytes: Int) throws -> UInt64 {
        guard let oldest = try oldestBlock() else { return 0 }
        var count = 0
        var total = 0
        var through: UInt64 = 0
        let visit: (HistoryRecord.Message, UnsafeRawBufferPointer) -> Bool = { message, _ in
            count += 1
            total += message.bytes
            guard count >= messages && total >= bytes else { return true }
            through = message.sequence
            return false
        }
        try oldest.forEachKept(visit)
        if through > 0 { return through }
        let blocks = try database.prepare(
            "SELECT first_seq, last_seq, count, bytes FROM blocks WHERE first_seq > ? ORDER BY first_seq")
        blocks.bind(1, oldest.first)
        var last = oldest.last
        while try blocks.step() {
            last = blocks.uint64(1)
            let blockCount = Int(blocks.int64(2))
            let blockBytes = Int(blocks.int64(3))
            if count + blockCount < messages || total + blockBytes < bytes {
                count += blockCount
                total += blockBytes
                continue
            }
            try forEachMessage(inBlock: blocks.uint64(0), visit)
            if through > 0 { return through }
        }
        return last
    }

    /// Evicts every message up to `sequence`, in one transaction: whole blocks are deleted,
    /// and the block that straddles `sequence` stays, its older records skipped from now on.
    private func evict(through sequence: UInt64) throws {
        guard let oldest = try oldestBlock() else { return }
        var removed: [(String, PrefixCounts)] = []
        var notKeptRowsEvicted = 0
        try database.execute("BEGIN")
        do {
            // The oldest block from its first kept record, and the block that straddles
            // `sequence` if it is another: record by record.
            var tally = PrefixTally()
            try oldest.records.withUnsafeBytes { all in
                let rest = UnsafeRawBufferPointer(rebasing: all[oldest.offset...])
                try Self.forEachMessage(in: rest, block: oldest.first) { message, bytes in
                    guard message.sequence <= sequence else { return false }
                    tally.add(message.prefix, bytes: message.bytes, in: bytes)
                    return true
                }
                removed += tally.counts(in: rest)
            }
            // The blocks after it: whole ones by their counts.
            let blocks = try database.prepare(
                "SELECT first_seq, last_seq, prefixes FROM blocks WHERE first_seq > ? AND first_seq <= ? ORDER BY first_seq"
            )
            blocks.bind(1, oldest.first)
            blocks.bind(2, sequence)
            while try blocks.step() {
                if blocks.uint64(1) <= sequence {
                    removed += try Self.decodePrefixCounts(blocks.blob(2))
                    continue
                }
                var tally = PrefixTally()
                try forEachMessage(inBlock: blocks.uint64(0)) { message, bytes in
                    guard message.sequence <= sequence else {
                        removed += tally.counts(in: bytes)
                        return false
                    }
                    tally.add(message.prefix, bytes: message.bytes, in: bytes)
                    return true
                }
            }
            let delete = try database.prepare("DELETE FROM blocks WHERE last_seq <= ?")
            delete.bind(1, sequence)
            try delete.run()
            notKeptRowsEvicted = try NotKeptLedger.deleteEvicted(database, through: sequence)
            try splitNumbering.deleteEvicted(database, through: sequence)
            try setMeta(key: "evicted_through", sequence)
            try database.execute("COMMIT")
        } catch {
            try? database.execute("ROLLBACK")
            throw error
        }
        notKeptLedger.forgetEvicted(rows: notKeptRowsEvicted, through: sequence)
        splitNumbering.forgetEvicted(through: sequence)
        evictedThrough = sequence
        forget(removed)
        evictions &+= UInt64(removed.reduce(0) { $0 + $1.1.messages })
        // Last, after every count: the same bytes were just read, but if this throws, the
        // counts are right and only the cache is lost (read again when next needed).
        if oldest.last <= sequence {
            self.oldest = nil
        } else {
            do {
                try self.oldest?.skip(through: sequence)
            } catch {
                self.oldest = nil
                throw error
            }
        }
        try loadFirstSequence()
    }

    /// Takes evicted messages out of the counts.
    private func forget(_ removed: [(String, PrefixCounts)]) {
        for (prefix, counts) in removed {
            perPrefix[prefix]?.messages -= counts.messages
            perPrefix[prefix]?.bytes -= counts.bytes
            if let left = perPrefix[prefix], left.messages <= 0 { perPrefix[prefix] = nil }
            messageCount -= counts.messages
            byteCount -= counts.bytes
        }
    }

    /// Calls `body` with each message record of the block that starts at `firstSequence`, in
    /// order, while it returns true. Throws when the block's records are damaged.
    private func forEachMessage(
        inBlock firstSequence: UInt64, _ body: (HistoryRecord.Message, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        selectBlockRecords.bind(1, firstSequence)
        defer { selectBlockRecords.reset() }
        guard try selectBlockRecords.step() else { return }
        try selectBlockRecords.withBlob(0) { bytes in try Self.forEachMessage(in: bytes, block: firstSequence, body) }
    }

    static func forEachMessage(
        in bytes: UnsafeRawBufferPointer, block: UInt64,
        _ body: (HistoryRecord.Message, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        // Record by record, so that stopping early costs nothing more.
        var offset = 0
        while offset < bytes.count {
            guard let slot = HistoryRecord.record(in: bytes, at: offset),
                let message = HistoryRecord.Message(slot, in: bytes)
            else { throw damaged(block) }
            guard try body(message, bytes) else { return }
            offset = slot.range.upperBound
        }
    }

    /// A block of messages a page needed could not be read (records that do not parse, a
    /// damaged page, a failing disk): with its range, so that a reader can read on after it.
    public struct UnreadableBlock: Error, CustomStringConvertible {
        public let first: UInt64
        public let last: UInt64
        public let reason: any Error
        public var description: String { "messages \(first) to \(last) (one block): \(reason)" }
    }

    /// What `checkNextBlock` found wrong with a block.
    public struct BlockDamage: Error, CustomStringConvertible {
        /// The block's first sequence; nil when the table could not be read on to the next.
        public let block: UInt64?
        public let reason: any Error
        public var description: String {
            // SQLite's own words (the operation would name the block a second time), or
            // zpub's, which no SQLite code names.
            let why =
                (reason as? SQLiteError).map {
                    $0.message == HistoryStore.recordsDamaged ? $0.message : "\($0.message) (SQLite error \($0.code))"
                } ?? "\(reason)"
            return block.map { "the block of messages from \($0): \(why)" } ?? "the table of blocks: \(why)"
        }
    }

    /// Reads the block after the last one checked, as a reader would, and checks its records
    /// against its row (their number, their sequences within its range). The open reads every
    /// block's row but not its records, which hold most of the file's pages: a damaged page
    /// there was found only by the reader who asked for those messages. Throws `BlockDamage`
    /// (the check goes on at the next block, or is over if the table itself cannot be read);
    /// sets `checkIsOver` once past the last block.
    public func checkNextBlock() throws(BlockDamage) {
        guard !checkIsOver else { return }
        // The row first, then its records on their own: SQLite reads a blob's overflow pages
        // (where damage mostly lies) only when the column is asked for, so a damaged block
        // still names itself and the check goes on after it.
        selectBlockToCheck.bind(1, checkedThrough.map { Int64(bitPattern: $0) } ?? -1)
        let row: (first: UInt64, last: UInt64, count: Int64)
        do {
            defer { selectBlockToCheck.reset() }
            guard try selectBlockToCheck.step(), selectBlockToCheck.uint64(0) <= checkUpTo else {
                checkIsOver = true
                return
            }
            row = (selectBlockToCheck.uint64(0), selectBlockToCheck.uint64(1), selectBlockToCheck.int64(2))
        } catch {
            checkIsOver = true
            throw BlockDamage(block: nil, reason: error)
        }
        checkedThrough = row.first
        blocksChecked += 1
        do {
            var found: Int64 = 0
            try forEachMessage(inBlock: row.first) { message, _ in
                guard message.sequence >= row.first && message.sequence <= row.last else {
                    throw Self.damaged(row.first)
                }
                found += 1
                return true
            }
            if found != row.count { throw Self.damaged(row.first) }
        } catch {
            throw BlockDamage(block: row.first, reason: error)
        }
    }

    /// Records SQLite read whole that do not parse, or do not match their block's row.
    static let recordsDamaged = "its records are damaged"

    private static func damaged(_ block: UInt64) -> SQLiteError {
        SQLiteError(operation: "read the block of messages from \(block)", code: 11, message: recordsDamaged)
    }

    /// At a clean stop, once everything assigned is committed: the next start continues right
    /// after the last number instead of above this run's reserve. Never below `startsAfter`:
    /// a run that committed nothing keeps the floor an earlier unclean stop set.
    public func releaseReservation() throws {
        let floor = max(lastSequence, startsAfter)
        guard reservedThrough > floor else { return }
        try setMeta(key: "reserved_through", floor)
        reservedThrough = floor
    }

    /// Before the loop numbers from `sequence` on (a pair member taking over from a peer that
    /// was far ahead, or a loop stopped at the reserve while commits failed): the reserve
    /// covers it, committed and synced. Nothing is written while the recorded one has more
    /// than half its room left.
    public func reserve(above sequence: UInt64) throws {
        if let reserved = renewedReserve(above: sequence) {
            try setMeta(key: "reserved_through", reserved)
            reservedThrough = reserved
        }
        // Also when a renewal in `append` was committed but its checkpoint failed: the loop
        // may number only as far as the disk holds.
        if durableReserve < reservedThrough { try checkpoint() }
    }

    /// A pair member takes over and numbers from `sequence` on: the numbers between what it
    /// mirrored and `sequence` are told as the peer's (`takeover`), not as its own drops; those
    /// above `unusedAbove` (the peer handed over every number it gave through it, at a planned
    /// stop) are not told at all: nobody used them.
    public func expectTakeover(numberingFrom sequence: UInt64, unusedAbove: UInt64? = nil) {
        notKeptLedger.takeoverStart = sequence
        notKeptLedger.takeoverUnusedAbove = unusedAbove
    }

    /// A takeover numbers from `sequence` on, and this store holds everything it mirrored:
    /// the numbers below it not stored are settled now (the peer's, `takeover`, as
    /// `expectTakeover` said), so that a reader who resumes before the first new message is
    /// stored is told of them too (until 2026-12-05 only that message revealed the hole).
    public func settleBeforeTakeover(numberingFrom sequence: UInt64) throws {
        guard sequence > 1 else { return }
        notKeptLedger.settled(through: sequence - 1)
        try writeLedger()
    }

    /// Writes what the not-kept ledger found outside a batch, in a transaction of its own.
    private func writeLedger() throws {
        try database.execute("BEGIN")
        do {
            try notKeptLedger.write(database)
            try database.execute("COMMIT")
            notKeptLedger.committed()
        } catch {
            try? database.execute("ROLLBACK")
            notKeptLedger.rolledBack()
            throw error
        }
    }

    /// The reserve to record before numbering above `sequence`, or nil while the one recorded
    /// has more than half its room left: the one rule for opening, appending and taking over.
    private func renewedReserve(above sequence: UInt64) -> UInt64? {
        sequence &+ sequenceReserve / 2 > reservedThrough ? sequence &+ sequenceReserve : nil
    }

    /// At open: where this run continues, and its reserve, durable before anything is numbered
    /// (`startsAfter` is at least the recorded reserve, so a new one is always taken).
    private func reserveAtOpen() throws {
        startsAfter = max(lastSequence, reservedThrough)
        // Not yet accounted for: the run before this one stopped uncleanly. (After an unclean
        // stop and then a clean one, the reserve is already a recorded range.)
        earlierRunStoppedUncleanly = startsAfter > max(lastSequence, notKeptLedger.accountedThrough)
        try reserve(above: startsAfter)
        try recordWhatEarlierRunsDidNotKeep()
    }

    /// The numbers an earlier run handed out and never stored: those it knew it dropped (a
    /// file from before the `not_kept` table), and the reserve of a run that stopped
    /// uncleanly, above everything it recorded (told once the first number of this run
    /// shows whether this store numbers on, or mirrors a pair peer that did).
    private func recordWhatEarlierRunsDidNotKeep() throws {
        notKeptLedger.settled(through: lastSequence)
        notKeptLedger.expectUncleanStop(through: startsAfter, numbersOnItsOwn: numbersOnItsOwn)
        try writeLedger()
    }

    /// Writes the log to the database file and syncs both: everything committed so far
    /// survives a power loss (SQLite's `wal_checkpoint`; with `synchronous=NORMAL` the log is
    /// synced before each checkpoint).
    public func checkpoint() throws {
        let reserve = reservedThrough
        if path != nil { try database.execute("PRAGMA wal_checkpoint(PASSIVE)") }
        durableReserve = reserve
    }

    /// Sets the cache's bounds (at start, and on reload), and trims what is kept to them at
    /// once: a file written under larger bounds, or by a zpubd that trimmed by count only, is
    /// not read whole into memory at the next start.
    public func setLastValueLimits(entries: Int, bytes: Int) throws {
        lastValueLimits = (entries, bytes)
        guard lastValueCount > entries || lastValueBytes > bytes else { return }
        try changingLastValues { try evictLastValuesOverLimits() }
    }

    /// Runs `body`, which deletes last values, in a transaction of its own. A rollback keeps
    /// rows the sizes let go of: they are read again, so that the next update trims them.
    private func changingLastValues(_ body: () throws -> Void) throws {
        try database.execute("BEGIN")
        do {
            try body()
            try database.execute("COMMIT")
        } catch {
            try? database.execute("ROLLBACK")
            try? loadLastValueSizes()
            throw error
        }
    }

    private func loadLastValueSizes() throws {
        lastValueSizes = LastValueSizes()
        let rows = try database.prepare("SELECT topic, seq, length(frames) FROM last_values ORDER BY seq")
        while try rows.step() {
            lastValueSizes.update(rows.blob(0), sequence: rows.uint64(1), bytes: Int(rows.int64(2)))
        }
    }

    /// Deletes the persisted last values whose topic is under none of `prefixes` (the cache's
    /// at start): the cache does not restore them, and counted against its bounds they would
    /// make the table evict values the cache holds.
    public func deleteLastValues(outside prefixes: [[UInt8]]) throws {
        let rows = try database.prepare("SELECT topic FROM last_values")
        var outside: [[UInt8]] = []
        while try rows.step() {
            let topic = rows.blob(0)
            if !prefixes.contains(where: { topic.starts(with: $0) }) { outside.append(topic) }
        }
        guard !outside.isEmpty else { return }
        try changingLastValues {
            for topic in outside { try deleteLastValueRow(topic) }
        }
    }

    /// Deletes the persisted last values stored before `milliseconds` (wall clock): those the
    /// cache's max_age_s has expired.
    public func deleteLastValues(storedBefore milliseconds: UInt64) throws {
        let rows = try database.prepare("SELECT topic FROM last_values WHERE stored_ms < ?")
        rows.bind(1, milliseconds)
        var expired: [[UInt8]] = []
        while try rows.step() { expired.append(rows.blob(0)) }
        guard !expired.isEmpty else { return }
        try changingLastValues {
            for topic in expired { try deleteLastValueRow(topic) }
        }
    }

    /// Deletes the oldest updates while more is kept than the bounds allow.
    private func evictLastValuesOverLimits() throws {
        while lastValueCount > lastValueLimits.entries || lastValueBytes > lastValueLimits.bytes,
            let topic = lastValueSizes.removeOldest()
        {
            deleteLastValue.bind(1, blob: topic)
            try deleteLastValue.run()
        }
    }

    private func deleteLastValueRow(_ topic: [UInt8]) throws {
        deleteLastValue.bind(1, blob: topic)
        try deleteLastValue.run()
        lastValueSizes.remove(topic)
    }

    /// The persisted last values, oldest update first (to be restored into the cache).
    public func lastValues() throws -> [LastValueRecord] {
        let select = try database.prepare("SELECT seq, stored_ms, frames FROM last_values ORDER BY seq")
        var result: [LastValueRecord] = []
        while try select.step() {
            guard let frames = FrameCodec.decode(select.blob(2)) else { continue }
            result.append(
                LastValueRecord(frames: frames, sequence: select.uint64(0), storedMilliseconds: select.uint64(1)))
        }
        return result
    }

    // MARK: Reading

    /// Stored messages with `after < sequence <= through`, whose topic starts with `prefix`,
    /// oldest first, at most `limit`, and no more frame bytes than `maxBytes` (one message at
    /// least, whatever its size). With `newest`, the last of them instead.
    public func messages(
        after: UInt64, through: UInt64 = UInt64(Int64.max), prefix: [UInt8], limit: Int, maxBytes: Int = .max,
        newest: Bool = false
    ) throws -> [StoredMessage] {
        try page(after: after, through: through, prefix: prefix, limit: limit, maxBytes: maxBytes, newest: newest)
            .messages
    }

    /// `messages`, and whether `maxBytes` cut it short (more may follow below `limit`).
    public func page(
        after: UInt64, through: UInt64 = UInt64(Int64.max), prefix: [UInt8], limit: Int, maxBytes: Int = .max,
        newest: Bool = false
    ) throws -> (messages: [StoredMessage], cutByBytes: Bool) {
        let lower = max(after, evictedThrough)
        let through = min(through, UInt64(Int64.max))
        guard limit > 0, lower < through else { return ([], false) }
        // Blocks from the one that holds `lower + 1` (the last to start at or before it) on.
        // Not the last to start at or before `lower`: a page that begins where a block does
        // read the block before it too (found when that one was damaged: the page failed).
        let select = try database.prepare(
            """
            SELECT first_seq, prefixes, last_seq FROM blocks
            WHERE first_seq >= coalesce((SELECT max(first_seq) FROM blocks WHERE first_seq <= ?1), 0)
              AND first_seq <= ?2
            ORDER BY first_seq \(newest ? "DESC" : "ASC")
            """)
        select.bind(1, lower + 1)
        select.bind(2, through)
        var result: [StoredMessage] = []
        var resultBytes = 0
        var full = false
        while !full, result.count < limit, try select.step() {
            // A block none of whose history prefixes can hold a topic under `prefix` is skipped
            // unread: SQLite reads a row's records only when asked for them. Without this, a
            // page for a rare prefix parsed the whole store, on the writer's thread.
            if !prefix.isEmpty, try !Self.block(select.blob(1), mayHoldTopicsUnder: prefix) { continue }
            var found: [StoredMessage] = []
            let wanted = newest ? Int.max : limit - result.count
            let block = (first: select.uint64(0), last: select.uint64(2))
            // The records on their own (SQLite reads a blob's overflow pages, where damage
            // mostly lies, when it is asked for), and a failure named with the block's range:
            // a reader can then read on after it (`zpub history`).
            do {
                selectBlockRecords.bind(1, block.first)
                defer { selectBlockRecords.reset() }
                guard try selectBlockRecords.step() else { throw Self.damaged(block.first) }
                try selectBlockRecords.withBlob(0) { bytes in
                    // Where they lie first, decoded once it is known which are kept: `last 1` decodes
                    // one message, not a block's worth.
                    var matches: [HistoryRecord.Message] = []
                    var matchedBytes = 0
                    // A block read to its end must end with its row's last sequence: records cut
                    // where one ends parse, and would have been served as the whole block.
                    var last: UInt64 = 0
                    var readToTheEnd = true
                    func take(_ message: HistoryRecord.Message, _ bytes: UnsafeRawBufferPointer) -> Bool {
                        guard message.sequence <= through else { return false }
                        guard message.sequence > lower, message.topicStarts(with: prefix, in: bytes) else {
                            return true
                        }
                        if !newest && resultBytes + matchedBytes + message.bytes > maxBytes
                            && result.count + matches.count > 0
                        {
                            full = true
                            return false
                        }
                        matches.append(message)
                        matchedBytes += message.bytes
                        return matches.count < wanted
                    }
                    try Self.forEachMessage(in: bytes, block: block.first) { message, bytes in
                        last = message.sequence
                        readToTheEnd = take(message, bytes)
                        return readToTheEnd
                    }
                    if readToTheEnd && last != block.last { throw Self.damaged(block.first) }
                    var chosen = matches.suffix(limit - result.count)
                    if newest {
                        // The newest first: this block's oldest go while over the budget.
                        var total = chosen.reduce(0) { $0 + $1.bytes }
                        while resultBytes + total > maxBytes, chosen.count > (result.isEmpty ? 1 : 0) {
                            total -= chosen.removeFirst().bytes
                            full = true
                        }
                        matchedBytes = total
                    }
                    resultBytes += matchedBytes
                    found = chosen.map { message in
                        StoredMessage(
                            sequence: message.sequence, receivedMilliseconds: message.receivedMilliseconds,
                            frames: message.decodedFrames(in: bytes),
                            prefix: String(
                                decoding: UnsafeRawBufferPointer(rebasing: bytes[message.prefix]), as: UTF8.self)
                        )
                    }
                }
            } catch {
                throw UnreadableBlock(first: block.first, last: block.last, reason: error)
            }
            if newest {
                result = found + result
            } else {
                result += found
            }
        }
        return (result, full)
    }

    /// Up to where a reader's `gap` goes (`HistoryReply.gap`): the numbers evicted, and above
    /// them, below the oldest kept message, those no `not_kept` range tells of (a file written
    /// before that table, 2026-12-02). Numbers a range does tell of (a dead run's reserve
    /// before anything was kept) are reported there, with their reason, instead.
    public func gapCeiling() throws -> UInt64 {
        let below = firstSequence > 0 ? firstSequence - 1 : lastSequence
        guard below > evictedThrough else { return evictedThrough }
        let told = try NotKeptLedger.ranges(database, after: evictedThrough, through: below, limit: 1)
        return told.first.map { $0.first - 1 } ?? below
    }

    /// How far readers are told of numbers: the highest assigned that the store knows of, or
    /// further, through the reserve of a run that stopped uncleanly, once it is recorded as not
    /// kept (`numbersOnItsOwn`): numbers that run may have handed out, above all it stored.
    public var toldThrough: UInt64 { max(lastSequence, notKeptLedger.accountedThrough) }

    /// The numbers in `after + 1 ... through` that were handed out and are not stored (nor
    /// evicted: that is the reader's `gap`), as ranges, oldest first: at most `limit`, the rest
    /// joined into the last. See `HistoryReply.NotKept`.
    public func notKept(after: UInt64, through: UInt64, limit: Int = HistoryReply.notKeptRanges) throws
        -> [HistoryReply.NotKept]
    {
        // Not at or below `evictedThrough`: what lies there is the reader's `gap`
        // (`HistoryReply.gap`), told once. Between it and the oldest kept message lie numbers
        // never kept (a dead run's reserve before anything was stored): told here, with their
        // reason, not as evicted by the bounds.
        return try NotKeptLedger.ranges(
            database, after: max(after, evictedThrough), through: through, limit: limit
        )
        .map {
            HistoryReply.NotKept(from: $0.first, to: $0.last, reason: $0.reason)
        }
    }

    /// A passive pair member's record of numbers its active peer did not keep takes the peer's
    /// reasons (`takeover`, `unclean_stop`) instead of `dropped`: rows already recorded wholly
    /// inside one of `ranges` now, later ones as they are found (`NotKeptLedger.peerReasons`).
    public func takeReasons(from ranges: [HistoryReply.NotKept]) throws {
        let told = ranges.filter { $0.reason != .dropped }
        guard !told.isEmpty else { return }
        for range in told {
            try NotKeptLedger.relabel(database, from: range.from, to: range.to, as: range.reason)
            notKeptLedger.expect(range)
        }
    }

    /// A pair's primary numbers far above its backup after both were active: the numbers
    /// `first...last` are the backup's (or none's), and a reader positioned among them has
    /// what the backup had mirrored, up to `resumeAfter`, and no more of this broker's
    /// (`SplitNumbering`).
    public func recordSplit(numbers first: UInt64, through last: UInt64, resumeAfter: UInt64) throws {
        try splitNumbering.record(database, first: first, last: last, resumeAfter: resumeAfter)
    }

    /// Where a replay for a reader positioned at `since` starts: below it when `since` is a
    /// number the pair's other broker gave while both were active (`recordSplit`), else nil.
    public func resumePoint(since: UInt64) -> UInt64? {
        splitNumbering.resumePoint(since: since)
    }

    /// The split records (`recordSplit`) with numbers in `numbers`, oldest first, for the
    /// pair's other broker to record as it mirrors.
    public func splits(overlapping numbers: ClosedRange<UInt64>) -> [HistoryReply.Split] {
        splitNumbering.records(overlapping: numbers).map {
            HistoryReply.Split(first: $0.first, last: $0.last, resumeAfter: $0.resumeAfter)
        }
    }

    /// A passive pair member's record of holes its active peer's HISTORY reply left out with no
    /// `not_kept` range: numbers the peer never used (a takeover's skip after a complete
    /// hand-over). No row for them here either: rows already recorded go, later holes inside
    /// them record none (`NotKeptLedger.peerUnused`).
    public func takeUnused(_ ranges: [ClosedRange<UInt64>]) throws {
        for unused in ranges {
            let rows = try NotKeptLedger.deleteUnused(database, unused)
            notKeptLedger.forgetDeleted(rows: rows, inside: unused)
            notKeptLedger.expectUnused(unused)
        }
    }

    /// Rows in the `not_kept` table.
    public var notKeptRanges: Int { notKeptLedger.rows }

    /// Bytes on disk: the database file and its write-ahead log.
    public var diskBytes: Int {
        guard let path else { return 0 }
        var total = 0
        for file in [path, path + "-wal"] {
            var status = stat()
            if stat(file, &status) == 0 { total += Int(status.st_size) }
        }
        return total
    }

    /// The per-prefix counts a block keeps beside its records: for each prefix, its length (2
    /// bytes), its bytes, the messages (4) and their bytes (8), big-endian.
    /// Whether a block whose history prefixes (its `prefixes` column) are these can hold a
    /// message whose topic starts with `prefix`: one of them starts with it, or it with one.
    static func block(_ prefixCounts: [UInt8], mayHoldTopicsUnder prefix: [UInt8]) throws -> Bool {
        try decodePrefixCounts(prefixCounts).contains { kept, _ in
            PrefixMatcher.overlap(kept.utf8, prefix)
        }
    }

    static func decodePrefixCounts(_ blob: [UInt8]) throws -> [(String, PrefixCounts)] {
        var result: [(String, PrefixCounts)] = []
        var index = 0
        func integer(_ size: Int) throws -> Int {
            guard blob.count - index >= size else {
                throw SQLiteError(operation: "read a block's counts", code: 11, message: "they are damaged")
            }
            defer { index += size }
            return blob[index..<(index + size)].reduce(0) { $0 << 8 | Int($1) }
        }
        while index < blob.count {
            let length = try integer(2)
            guard blob.count - index >= length else {
                throw SQLiteError(operation: "read a block's counts", code: 11, message: "they are damaged")
            }
            let prefix = String(decoding: blob[index..<(index + length)], as: UTF8.self)
            index += length
            let messages = try integer(4)
            let bytes = try integer(8)
            // A block holds at most 4,096 messages; far above what any block can hold, the
            // counts are damaged (SQLite checks its pages' structure, not the values in them),
            // and adding them up would trap instead of refusing the file with the reason.
            guard messages <= 1 << 24, bytes >= 0, bytes <= 1 << 40 else {
                throw SQLiteError(operation: "read a block's counts", code: 11, message: "they are damaged")
            }
            result.append((prefix, PrefixCounts(messages: messages, bytes: bytes)))
        }
        return result
    }
}

/// A block being gathered from a batch of records: which records, and what they add up to.
private struct BlockDraft {
    /// Where its records lie in the batch: `earlierPieces`, then `piece`; one range (nothing
    /// in `earlierPieces`) unless some records were left out between them.
    var earlierPieces: [Range<Int>] = []
    var piece = 0..<0
    /// Where `piece` starts, while the block is open (`OpenBlock` has its end).
    var pieceStart = 0
    var recordBytes = 0
    var count = 0
    var bytes = 0
    var firstSequence: UInt64 = 0
    var lastSequence: UInt64 = 0
    var minMilliseconds = UInt64.max
    var maxMilliseconds: UInt64 = 0
    var prefixes = PrefixTally()

    var pieces: [Range<Int>] { earlierPieces + [piece] }

    /// Records were left out: the piece that ended at `end` is done, the next starts at `start`.
    mutating func startPiece(at start: Int, after end: Int) {
        earlierPieces.append(Range(uncheckedBounds: (pieceStart, end)))
        pieceStart = start
    }
}

/// A block's messages and bytes per prefix, counted where the prefixes lie in the batch: a run
/// of one prefix (the usual case) adds up in two integers, with one comparison of the prefix
/// per message, and no string is made per message.
private struct PrefixTally {
    /// Each prefix seen: where its bytes lie (its first occurrence) and its counts, those of
    /// the current run not included.
    private var entries: [(prefix: Range<Int>, messages: Int, bytes: Int)] = []
    /// The entry the current run adds to (-1 before the first message), its prefix, and the
    /// run's counts.
    private var current = -1
    private var currentPrefix = 0..<0
    private var runMessages = 0
    private var runBytes = 0

    @inline(__always)
    mutating func add(_ prefix: Range<Int>, bytes: Int, in buffer: UnsafeRawBufferPointer) {
        if current < 0 || !Self.equal(currentPrefix, prefix, in: buffer) { startRun(prefix, in: buffer) }
        runMessages &+= 1
        runBytes &+= bytes
    }

    /// The bytes of every prefix, the current run's included.
    var bytes: Int { entries.reduce(runBytes) { $0 &+ $1.bytes } }

    @inline(never)
    private mutating func startRun(_ prefix: Range<Int>, in buffer: UnsafeRawBufferPointer) {
        if current >= 0 {
            entries[current].messages &+= runMessages
            entries[current].bytes &+= runBytes
        }
        runMessages = 0
        runBytes = 0
        current = entries.firstIndex { Self.equal($0.prefix, prefix, in: buffer) } ?? -1
        if current < 0 {
            entries.append((prefix, 0, 0))
            current = entries.count - 1
        }
        currentPrefix = entries[current].prefix
    }

    @inline(__always)
    private static func equal(_ a: Range<Int>, _ b: Range<Int>, in buffer: UnsafeRawBufferPointer) -> Bool {
        // Wrapping: both lie inside `buffer`. (`Range.count` checks for overflow, twice a message.)
        let count = a.upperBound &- a.lowerBound
        guard count == b.upperBound &- b.lowerBound else { return false }
        guard count > 0, let base = buffer.baseAddress else { return true }
        return RawBytes.equal(base + a.lowerBound, base + b.lowerBound, count: count)
    }

    /// Every prefix's counts, the current run's included.
    private var totals: [(prefix: Range<Int>, messages: Int, bytes: Int)] {
        var totals = entries
        if current >= 0 {
            totals[current].messages &+= runMessages
            totals[current].bytes &+= runBytes
        }
        return totals
    }

    func counts(in buffer: UnsafeRawBufferPointer) -> [(String, HistoryStore.PrefixCounts)] {
        totals.map {
            (
                String(decoding: UnsafeRawBufferPointer(rebasing: buffer[$0.prefix]), as: UTF8.self),
                HistoryStore.PrefixCounts(messages: $0.messages, bytes: $0.bytes)
            )
        }
    }

    /// `HistoryStore.decodePrefixCounts`' layout.
    func encoded(in buffer: UnsafeRawBufferPointer) -> [UInt8] {
        var blob: [UInt8] = []
        for entry in totals {
            HistoryRecord.appendBigEndian(UInt16(entry.prefix.count), to: &blob)
            blob += UnsafeRawBufferPointer(rebasing: buffer[entry.prefix])
            HistoryRecord.appendBigEndian(UInt32(entry.messages), to: &blob)
            HistoryRecord.appendBigEndian(UInt64(entry.bytes), to: &blob)
        }
        return blob
    }
}

/// The oldest block that still holds kept messages, its records in memory (`HistoryStore`'s
/// cache), and where the first one still kept starts.
private struct OldestBlock {
    let first: UInt64
    let last: UInt64
    let records: [UInt8]
    var offset: Int

    /// Calls `body` with each kept message, oldest first, while it returns true. The ranges in
    /// each message are relative to the buffer `body` is given.
    func forEachKept(_ body: (HistoryRecord.Message, UnsafeRawBufferPointer) throws -> Bool) throws {
        try records.withUnsafeBytes { all in
            try HistoryStore.forEachMessage(in: UnsafeRawBufferPointer(rebasing: all[offset...]), block: first, body)
        }
    }

    /// Moves past the records up to `sequence`.
    mutating func skip(through sequence: UInt64) throws {
        var advanced = 0
        try forEachKept { message, _ in
            guard message.sequence <= sequence else { return false }
            advanced = message.frames.upperBound
            return true
        }
        offset += advanced
    }
}
