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

/// A message on its way into the store, as the history queue hands it over: its frames already
/// in `FrameCodec`'s layout (topic first), which is how the store keeps them, so that the writer
/// binds those bytes as they are instead of decoding them into arrays and encoding them again
/// (callgrind: that round trip was a fifth of the writer's instructions per message).
///
/// Immutable, and not Equatable: `append` hands SQLite pointers computed from `topic` and
/// `encodedFrames`, which must therefore stay as `init` checked them; and two equal messages at
/// different places in their buffers would have different `topic` ranges.
public struct EncodedMessage: Sendable {
    public let sequence: UInt64
    public let receivedMilliseconds: UInt64
    /// The history prefix it is kept under.
    public let prefix: String
    /// `FrameCodec.encode(frames)`; often a slice of a larger record.
    public let encodedFrames: ArraySlice<UInt8>
    /// Where the topic's bytes lie, in `encodedFrames`' indices.
    public let topic: Range<Int>
    /// The bytes of all frames, as the bounds count them (the length prefixes not counted).
    public let bytes: Int

    /// Nil unless `encodedFrames` is a sequence of length-prefixed frames whose first, the
    /// topic, is at least `prefixLength` bytes long; the prefix is the topic's first
    /// `prefixLength` bytes.
    public init?(
        sequence: UInt64, receivedMilliseconds: UInt64, prefixLength: Int, encodedFrames: ArraySlice<UInt8>
    ) {
        var topic: Range<Int>?
        var bytes = 0
        let wellFormed = FrameCodec.forEachFrame(in: encodedFrames) { frame in
            if topic == nil { topic = frame }
            bytes += frame.count
        }
        guard wellFormed else { return nil }
        guard let topic, topic.count >= prefixLength else { return nil }
        self.sequence = sequence
        self.receivedMilliseconds = receivedMilliseconds
        self.prefix = String(decoding: encodedFrames[topic].prefix(prefixLength), as: UTF8.self)
        self.encodedFrames = encodedFrames
        self.topic = topic
        self.bytes = bytes
    }

    /// The same message encoded (tests, and callers holding frames as arrays).
    public init(_ message: StoredMessage) {
        let encoded = FrameCodec.encode(message.frames)
        let topicCount = message.frames.first?.count ?? 0
        sequence = message.sequence
        receivedMilliseconds = message.receivedMilliseconds
        prefix = message.prefix
        encodedFrames = encoded[...]
        topic = message.frames.isEmpty ? 0..<0 : 4..<(4 + topicCount)
        bytes = message.bytes
    }
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

/// The message history on SQLite: one table of messages keyed by sequence number, bounded by
/// count, bytes and age (the oldest go first). In WAL mode with `synchronous=NORMAL`, every
/// committed batch survives a SIGKILL; `checkpoint()` syncs it to the disk (docs/history.md).
///
/// Without a directory the same schema lives in an in-memory database. Not thread safe: the
/// history writer's thread owns it.
public final class HistoryStore {
    public static let fileName = "history.sqlite3"
    static let schemaVersion: Int64 = 1

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
    private let database: SQLiteDatabase
    private let insert: SQLiteStatement
    private let setLastSequence: SQLiteStatement
    private let upsertLastValue: SQLiteStatement
    private let deleteLastValue: SQLiteStatement
    /// Last values kept at most (the cache's `max_entries`): the oldest updates go first.
    public var lastValueLimit = Int.max
    public private(set) var lastValueCount = 0

    /// The highest sequence ever assigned (stored or not): new ones continue above it.
    public private(set) var lastSequence: UInt64 = 0
    public private(set) var firstSequence: UInt64 = 0
    public private(set) var messageCount = 0
    public private(set) var byteCount = 0
    public private(set) var perPrefix: [String: PrefixCounts] = [:]
    public private(set) var evictions: UInt64 = 0

    /// Opens the store in `directory` (creating it), or in memory when nil. Throws
    /// `HistoryStoreError` naming the file and what to do; never wipes a file it cannot read.
    public init(directory: String?, bounds: Bounds) throws(HistoryStoreError) {
        self.bounds = bounds
        let path = directory.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/" + Self.fileName }
        self.path = path
        if let directory { try Self.prepareDirectory(directory) }
        do {
            database = try SQLiteDatabase(path: path ?? ":memory:")
            if path != nil {
                // Exclusive: a second zpubd on the same directory fails at start instead of
                // interleaving sequences. WAL: readers never block the writer, and a commit is
                // one append to the log.
                try database.execute("PRAGMA locking_mode = EXCLUSIVE")
                try database.execute("PRAGMA journal_mode = WAL")
            }
            try database.execute("PRAGMA synchronous = NORMAL")
            try database.execute(
                """
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS messages (
                    seq INTEGER PRIMARY KEY,
                    prefix TEXT NOT NULL,
                    topic BLOB NOT NULL,
                    received_ms INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    frames BLOB NOT NULL
                );
                CREATE TABLE IF NOT EXISTS last_values (
                    topic BLOB PRIMARY KEY,
                    seq INTEGER NOT NULL,
                    stored_ms INTEGER NOT NULL,
                    frames BLOB NOT NULL
                );
                """)
            insert = try database.prepare(
                "INSERT INTO messages (seq, prefix, topic, received_ms, bytes, frames) VALUES (?, ?, ?, ?, ?, ?)")
            setLastSequence = try database.prepare(
                "INSERT INTO meta (key, value) VALUES ('last_sequence', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            )
            upsertLastValue = try database.prepare(
                "INSERT INTO last_values (topic, seq, stored_ms, frames) VALUES (?, ?, ?, ?) ON CONFLICT(topic) DO UPDATE SET seq = excluded.seq, stored_ms = excluded.stored_ms, frames = excluded.frames"
            )
            deleteLastValue = try database.prepare("DELETE FROM last_values WHERE topic = ?")
            try checkSchemaVersion()
            try loadCounts()
        } catch let error as HistoryStoreError {
            throw error
        } catch {
            throw Self.startError(error, path: path)
        }
    }

    private static func prepareDirectory(_ directory: String) throws(HistoryStoreError) {
        var status = stat()
        if stat(directory, &status) != 0 {
            guard mkdir(directory, 0o750) == 0 || errno == EEXIST else {
                throw HistoryStoreError(
                    description:
                        "cannot create the state directory \(directory): \(String(cString: strerror(errno))); create it, writable by zpubd's user, or choose another with --state-dir",
                    exitStatus: 73)
            }
        } else if status.st_mode & S_IFMT != S_IFDIR {
            throw HistoryStoreError(
                description: "the state directory \(directory) is not a directory; choose another with --state-dir",
                exitStatus: 73)
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

    private func checkSchemaVersion() throws {
        let select = try database.prepare("SELECT value FROM meta WHERE key = 'schema_version'")
        if try select.step() {
            let version = select.int64(0)
            guard version == Self.schemaVersion else {
                throw HistoryStoreError(
                    description:
                        "\(path ?? "history") has schema version \(version); this zpubd reads version \(Self.schemaVersion): use the zpubd that wrote it, or move the file aside",
                    exitStatus: 74)
            }
        } else {
            try database.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', \(Self.schemaVersion))")
        }
    }

    private func loadCounts() throws {
        let last = try database.prepare(
            "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'last_sequence'), 0), coalesce((SELECT max(seq) FROM messages), 0))"
        )
        if try last.step() { lastSequence = last.uint64(0) }
        let perPrefix = try database.prepare(
            "SELECT prefix, count(*), coalesce(sum(bytes), 0) FROM messages GROUP BY prefix")
        self.perPrefix = [:]
        while try perPrefix.step() {
            self.perPrefix[perPrefix.text(0)] = PrefixCounts(
                messages: Int(perPrefix.int64(1)), bytes: Int(perPrefix.int64(2)))
        }
        messageCount = self.perPrefix.values.reduce(0) { $0 + $1.messages }
        let lastValues = try database.prepare("SELECT count(*) FROM last_values")
        lastValueCount = try lastValues.step() ? Int(lastValues.int64(0)) : 0
        byteCount = self.perPrefix.values.reduce(0) { $0 + $1.bytes }
        try loadFirstSequence()
    }

    private func loadFirstSequence() throws {
        let first = try database.prepare("SELECT coalesce(min(seq), 0) FROM messages")
        firstSequence = try first.step() ? first.uint64(0) : 0
    }

    // MARK: Writing

    /// Stores a batch in one transaction (committed: it survives a SIGKILL), then applies the
    /// bounds. `assignedThrough` is the highest sequence assigned so far, including messages
    /// that were dropped before reaching the store: sequences are never reused.
    public func append(
        _ batch: [EncodedMessage], lastValues: [LastValueRecord] = [], assignedThrough: UInt64,
        nowMilliseconds: UInt64
    ) throws {
        try database.execute("BEGIN")
        do {
            for record in lastValues {
                let topic = record.frames.first ?? []
                if record.isDeletion {
                    deleteLastValue.bind(1, blob: topic)
                    try deleteLastValue.run()
                } else {
                    upsertLastValue.bind(1, blob: topic)
                    upsertLastValue.bind(2, record.sequence)
                    upsertLastValue.bind(3, record.storedMilliseconds)
                    upsertLastValue.bind(4, blob: FrameCodec.encode(record.frames))
                    try upsertLastValue.run()
                }
            }
            if !lastValues.isEmpty { try trimLastValues() }
            // The blobs are bound where they lie, valid for the one run; cleared after the
            // last row so that the statement keeps no pointer into freed records.
            defer { insert.clearBindings() }
            for message in batch {
                insert.bind(1, message.sequence)
                insert.bind(4, message.receivedMilliseconds)
                insert.bind(5, Int64(message.bytes))
                let topicOffset = message.topic.lowerBound - message.encodedFrames.startIndex
                var prefix = message.prefix
                try prefix.withUTF8 { prefix in
                    insert.bind(2, borrowingText: prefix)
                    try message.encodedFrames.withUnsafeBytes { frames in
                        insert.bind(
                            3,
                            borrowing: UnsafeRawBufferPointer(
                                rebasing: frames[topicOffset..<(topicOffset + message.topic.count)]))
                        insert.bind(6, borrowing: frames)
                        try insert.runKeepingBindings()
                    }
                }
            }
            let through = max(assignedThrough, batch.last?.sequence ?? 0, lastSequence)
            setLastSequence.bind(1, through)
            try setLastSequence.run()
            try database.execute("COMMIT")
            lastSequence = through
        } catch {
            try? database.execute("ROLLBACK")
            throw error
        }
        // Counted per run of messages under one prefix: one dictionary update per run, not
        // two per message.
        var run = (prefix: "", counts: PrefixCounts())
        for message in batch {
            if message.prefix != run.prefix {
                if run.counts.messages > 0 { perPrefix[run.prefix, default: PrefixCounts()].add(run.counts) }
                run = (message.prefix, PrefixCounts())
            }
            run.counts.messages += 1
            run.counts.bytes += message.bytes
            messageCount += 1
            byteCount += message.bytes
        }
        if run.counts.messages > 0 { perPrefix[run.prefix, default: PrefixCounts()].add(run.counts) }
        if firstSequence == 0, let first = batch.first { firstSequence = first.sequence }
        try applyBounds(nowMilliseconds: nowMilliseconds)
    }

    /// Evicts the oldest messages until the count, bytes and age are within the bounds.
    public func applyBounds(nowMilliseconds: UInt64) throws {
        var evictThrough: UInt64 = 0
        if bounds.maxAgeMilliseconds > 0 && nowMilliseconds > bounds.maxAgeMilliseconds {
            let cutoff = nowMilliseconds - bounds.maxAgeMilliseconds
            let expired = try database.prepare("SELECT coalesce(max(seq), 0) FROM messages WHERE received_ms < ?")
            expired.bind(1, cutoff)
            if try expired.step() { evictThrough = expired.uint64(0) }
        }
        let excessMessages = messageCount - bounds.maxMessages
        let excessBytes = byteCount - bounds.maxBytes
        if excessMessages > 0 || excessBytes > 0 {
            // Walk the oldest rows until enough is gone.
            let oldest = try database.prepare("SELECT seq, bytes FROM messages ORDER BY seq")
            var count = 0
            var bytes = 0
            while try oldest.step() {
                count += 1
                bytes += Int(oldest.int64(1))
                if count >= excessMessages && bytes >= excessBytes {
                    evictThrough = max(evictThrough, oldest.uint64(0))
                    break
                }
            }
        }
        guard evictThrough > 0 else { return }
        try evict(through: evictThrough)
    }

    private func evict(through sequence: UInt64) throws {
        let counts = try database.prepare(
            "SELECT prefix, count(*), coalesce(sum(bytes), 0) FROM messages WHERE seq <= ? GROUP BY prefix")
        counts.bind(1, sequence)
        var removed: [(String, Int, Int)] = []
        while try counts.step() {
            removed.append((counts.text(0), Int(counts.int64(1)), Int(counts.int64(2))))
        }
        let delete = try database.prepare("DELETE FROM messages WHERE seq <= ?")
        delete.bind(1, sequence)
        try delete.run()
        for (prefix, messages, bytes) in removed {
            perPrefix[prefix]?.messages -= messages
            perPrefix[prefix]?.bytes -= bytes
            if perPrefix[prefix]?.messages == 0 { perPrefix[prefix] = nil }
            messageCount -= messages
            byteCount -= bytes
            evictions &+= UInt64(messages)
        }
        try loadFirstSequence()
    }

    /// Writes the log to the database file and syncs both: everything committed so far
    /// survives a power loss (SQLite's `wal_checkpoint`; with `synchronous=NORMAL` the log is
    /// synced before each checkpoint).
    public func checkpoint() throws {
        guard path != nil else { return }
        try database.execute("PRAGMA wal_checkpoint(PASSIVE)")
    }

    /// Keeps at most `lastValueLimit` last values: the oldest updates go.
    private func trimLastValues() throws {
        let count = try database.prepare("SELECT count(*) FROM last_values")
        lastValueCount = try count.step() ? Int(count.int64(0)) : 0
        guard lastValueCount > lastValueLimit else { return }
        let trim = try database.prepare(
            "DELETE FROM last_values WHERE topic IN (SELECT topic FROM last_values ORDER BY seq LIMIT ?)")
        trim.bind(1, Int64(lastValueCount - lastValueLimit))
        try trim.run()
        lastValueCount = lastValueLimit
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
    /// oldest first, at most `limit`. With `newest`, the last `limit` of them instead.
    public func messages(
        after: UInt64, through: UInt64 = UInt64(Int64.max), prefix: [UInt8], limit: Int, newest: Bool = false
    ) throws -> [StoredMessage] {
        let prefixCondition = prefix.isEmpty ? "" : " AND substr(topic, 1, ?4) = ?5"
        let order = newest ? "DESC" : "ASC"
        let select = try database.prepare(
            "SELECT seq, received_ms, frames, prefix FROM messages WHERE seq > ?1 AND seq <= ?2\(prefixCondition) ORDER BY seq \(order) LIMIT ?3"
        )
        select.bind(1, after)
        select.bind(2, min(through, UInt64(Int64.max)))
        select.bind(3, Int64(limit))
        if !prefix.isEmpty {
            select.bind(4, Int64(prefix.count))
            select.bind(5, blob: prefix)
        }
        var result: [StoredMessage] = []
        while try select.step() {
            guard let frames = FrameCodec.decode(select.blob(2)) else {
                throw SQLiteError(
                    operation: "read message \(select.uint64(0))", code: 11, message: "its frames are damaged")
            }
            result.append(
                StoredMessage(
                    sequence: select.uint64(0), receivedMilliseconds: select.uint64(1), frames: frames,
                    prefix: select.text(3)))
        }
        return newest ? result.reversed() : result
    }

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
}
