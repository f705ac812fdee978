import Glibc
import Logging
import Synchronization
import ZPubCore
import ZPubStore
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// The hand-off from the forwarding loop to the history writer: a byte ring (`RecordRing`),
/// bounded by `[history] queue_bytes`. The loop writes each kept message into it frame by
/// frame, as a `HistoryRecord`, with no allocation and no lock; when it is full, history drops
/// the message (counted) and forwarding goes on. Last-value updates to persist travel the same
/// way. The writer takes the records out as they lie, and the store keeps them so.
final class HistoryQueue: Sendable {
    private let ring: RecordRing
    /// The highest sequence the loop assigned, kept or dropped.
    private let assigned = Atomic<UInt64>(0)
    private let droppedCount = Atomic<UInt64>(0)
    /// The highest sequence the store has reserved durably (`HistoryStore.durableReserve`):
    /// the loop numbers nothing above it. Reached while the writer's commits fail (the reserve
    /// is renewed with half of it left), or when more than half a small `sequence_reserve`
    /// arrives between two commits; the loop then keeps nothing until the writer renews it,
    /// instead of handing out numbers that a restart would give again.
    private let ceiling = Atomic<UInt64>(.max)
    /// The last sequence refused at the ceiling: the writer renews the reserve above it (a
    /// pair member taking over numbers far above its store's reserve would otherwise wait for
    /// a commit that never comes, with nothing kept to commit).
    private let refused = Atomic<UInt64>(0)
    /// Last-value records put in the ring (counted before they are published), and those the
    /// writer has found in it: while the two are equal, a batch holds only messages, and the
    /// writer does not look at each record before the store parses it (`withTaken`).
    private let lastValuesQueued = Atomic<UInt64>(0)
    private let lastValuesTaken = Atomic<UInt64>(0)

    init(capacityBytes: Int) {
        ring = RecordRing(capacity: capacityBytes)
    }

    var capacityBytes: Int { ring.capacity }

    // MARK: The forwarding loop's side

    /// Starts the record of a kept message with its first frame: `HistoryRecord`'s header, then
    /// the topic. The fixed fields and the topic go in as one piece: each separate append costs
    /// a check for room (callgrind: some 35 instructions).
    @inline(__always)
    func begin(sequence: UInt64, milliseconds: UInt64, prefixLength: Int, topic: UnsafeRawBufferPointer) {
        ring.begin()
        let header = HistoryRecord.messageHeaderSize
        ring.append(count: header &+ 4 &+ topic.count) { record in
            record.storeBytes(of: HistoryRecord.messageKind, toByteOffset: 0, as: UInt8.self)
            record.storeBytes(of: sequence.bigEndian, toByteOffset: 1, as: UInt64.self)
            record.storeBytes(of: milliseconds.bigEndian, toByteOffset: 9, as: UInt64.self)
            record.storeBytes(of: UInt16(truncatingIfNeeded: prefixLength).bigEndian, toByteOffset: 17, as: UInt16.self)
            record.storeBytes(
                of: UInt32(truncatingIfNeeded: topic.count).bigEndian, toByteOffset: header, as: UInt32.self)
            RawBytes.copy(record + header + 4, from: topic)
        }
    }

    /// Whether the loop may number a message `sequence`; a refusal counts as a drop (STATS
    /// `history.dropped`; the loop logs why).
    @inline(__always)
    func mayNumber(_ sequence: UInt64) -> Bool {
        if sequence <= ceiling.load(ordering: .relaxed) { return true }
        droppedCount.add(1, ordering: .relaxed)
        refused.store(sequence, ordering: .relaxed)
        return false
    }

    @inline(__always)
    func appendFrame(_ bytes: UnsafeRawBufferPointer) {
        ring.appendLengthPrefixed(bytes)
    }

    @inline(__always)
    func commit(sequence: UInt64) {
        if !ring.commit() { droppedCount.add(1, ordering: .relaxed) }
        assigned.store(sequence, ordering: .releasing)
    }

    /// A mirrored message (a pair's passive side): committed if it was begun (`kept`), and its
    /// sequence counted as assigned, so that sequences are never reused. False when it did not
    /// fit: nothing of it is kept, its sequence is not counted, and it is not a drop (the pair
    /// link asks for it again). One larger than the whole queue (`recordBytes`, its 4-byte
    /// length in the ring aside) never fits: dropped and counted, as the forwarding loop's own.
    func commitMirrored(sequence: UInt64, kept: Bool, recordBytes: Int) -> Bool {
        if kept && !ring.commit() {
            guard recordBytes &+ 4 > ring.capacity else { return false }
            droppedCount.add(1, ordering: .relaxed)
        }
        assigned.store(sequence, ordering: .releasing)
        return true
    }

    /// A last-value update (the cache stored or deleted the message), to persist: its frames
    /// as `message` holds them, in `FrameCodec`'s layout (the record's own layout for them, as
    /// `appendFrame` writes them).
    func lastValue(encoded message: UnsafeRawBufferPointer, sequence: UInt64, milliseconds: UInt64) {
        ring.begin()
        ring.append(integer: HistoryRecord.lastValueKind)
        ring.append(integer: sequence)
        ring.append(integer: milliseconds)
        ring.append(message)
        // Counted before the commit publishes it: a writer that sees the record sees the count.
        lastValuesQueued.add(1, ordering: .relaxed)
        if !ring.commit() {
            lastValuesQueued.subtract(1, ordering: .relaxed)
            droppedCount.add(1, ordering: .relaxed)
        }
    }

    // MARK: The writer's side

    /// Calls `body` with what is waiting (at most `byteLimit` bytes of records, at least one:
    /// one transaction's worth) as the ring holds it (valid during `body` only; its space is
    /// freed after), the last-value updates among it decoded, the highest sequence assigned
    /// before it was taken (0 when it was cut), and whether it was cut: records were left for
    /// the next call.
    func withTaken<Result>(
        byteLimit: Int,
        _ body: (
            _ records: UnsafeRawBufferPointer, _ lastValues: [LastValueRecord], _ assignedThrough: UInt64,
            _ cut: Bool
        ) throws -> Result
    ) rethrows -> Result {
        let assignedAtLoad = assigned.load(ordering: .acquiring)
        return try ring.consumeBatch(byteLimit: byteLimit) { records, cut in
            // Every record numbered up to `assignedAtLoad` was published before the load; a
            // batch cut by `byteLimit` may leave some of them for the next, and must not claim
            // their numbers as stored (a reply's last_seq would then tell a passive pair
            // member to mirror past them). The next batch that is not cut claims them.
            let assignedThrough = cut ? 0 : assignedAtLoad
            // Read after the ring's published end (an acquiring load): every last-value record
            // in `records` is counted in it. While none is waiting, the records are not looked
            // at before the store parses them.
            if lastValuesQueued.load(ordering: .relaxed) == lastValuesTaken.load(ordering: .relaxed) {
                return try body(records, [], assignedThrough, cut)
            }
            var lastValues: [LastValueRecord] = []
            _ = HistoryRecord.forEachRecord(in: records) { slot in
                guard slot.kind == HistoryRecord.lastValueKind else { return }
                let fields = Array(
                    UnsafeRawBufferPointer(rebasing: records[(slot.body.lowerBound + 1)..<slot.body.upperBound]))
                if let update = Self.decodeLastValue(fields[...]) { lastValues.append(update) }
                lastValuesTaken.add(1, ordering: .relaxed)
            }
            return try body(records, lastValues, assignedThrough, cut)
        }
    }

    /// The writer's, each turn: the store's reserve as synced to disk (`UInt64.max`: in memory,
    /// where numbering restarts at 1 anyway).
    func setCeiling(_ sequence: UInt64) {
        ceiling.store(sequence, ordering: .relaxed)
    }

    /// The highest sequence the loop has assigned so far.
    var assignedThrough: UInt64 { assigned.load(ordering: .acquiring) }

    /// The last sequence the loop could not number (0: none yet).
    var refusedSequence: UInt64 { refused.load(ordering: .relaxed) }

    /// Where the ring's published records end now, and where the writer has read to.
    var published: Int { ring.published }
    var consumed: Int { ring.consumed }

    var depth: (queuedBytes: Int, dropped: UInt64) {
        (ring.usedBytes, droppedCount.load(ordering: .relaxed))
    }

    /// Bytes of the queue's memory resident now.
    var residentBytes: Int { ring.residentBytes }

    static func decodeLastValue(_ record: ArraySlice<UInt8>) -> LastValueRecord? {
        var reader = RecordReader(record)
        guard let sequence = reader.integer(8), let milliseconds = reader.integer(8),
            let frames = FrameCodec.decode(reader.rest)
        else { return nil }
        return LastValueRecord(frames: frames, sequence: sequence, storedMilliseconds: milliseconds)
    }
}

/// Reads a ring record's fixed fields (big-endian), then leaves the frames to `FrameCodec`.
private struct RecordReader {
    private let record: ArraySlice<UInt8>
    private var index: Int

    init(_ record: ArraySlice<UInt8>) {
        self.record = record
        index = record.startIndex
    }

    mutating func integer(_ size: Int) -> UInt64? {
        bytes(size).map { $0.reduce(0) { $0 << 8 | UInt64($1) } }
    }

    mutating func bytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard index + count <= record.endIndex else { return nil }
        defer { index += count }
        return record[index..<index + count]
    }

    var rest: ArraySlice<UInt8> { record[index...] }
}

/// What other threads ask the history writer.
enum HistoryCommand: Sendable {
    /// Stored messages for HISTORY (or a replay): answered after everything queued before it
    /// is written, so a reader sees every message the loop handed over until then.
    case query(HistoryQuery, ReplySlot<Result<HistoryReply, ControlError>>)
    /// A reloaded configuration: its bounds apply from now on.
    case reconfigure(BrokerConfiguration)
    /// A pair member taking over numbers from here on: its store reserves above it, durably,
    /// before the loop hands any out (true once done). `unusedAbove`: the peer handed over
    /// every number it gave through this one, and the numbers skipped above it were never used.
    /// `settles`: a passive broker's takeover, which mirrors nothing more: once reserved, the
    /// numbers below are settled (`HistoryStore.settleBeforeTakeover`).
    case reserve(above: UInt64, unusedAbove: UInt64?, settles: Bool, ReplySlot<Bool>)
    /// A passive pair member: the ranges the active peer told as not kept, with its reasons
    /// (its takeover jump, its unclean stop), for this store's record of the same numbers.
    case peerNotKept([HistoryReply.NotKept])
    /// A passive pair member: numbers the active peer's HISTORY reply left out with no
    /// `not_kept` range, never used (`HistoryStore.takeUnused`).
    case peerUnused([ClosedRange<UInt64>])
    /// A primary numbers far above its backup after both were active: `numbers` are the
    /// backup's (or none's), and a reader positioned there resumes after `resumeAfter`
    /// (`HistoryStore.recordSplit`).
    case split(numbers: ClosedRange<UInt64>, resumeAfter: UInt64)
    /// Test hook: the writer blocks for a while, as one on a stalled disk would.
    case stall(milliseconds: Int)
    case stop
}

/// What other threads may use of the history writer: the loop's queue, the mailbox for
/// queries, the stats for STATS.
final class HistoryHandle: Sendable {
    let queue: HistoryQueue
    let mailbox = Mailbox<HistoryCommand>()
    let stats: Locked<HistoryStats>
    /// Where the forwarding loop's own numbering starts (above an unclean stop's reserve).
    let firstNewSequence: UInt64
    /// Where a passive pair member's mirroring of its peer's numbers continues: after the last
    /// number this store holds, not above its reserve (the peer numbers those messages).
    let firstMirroredSequence: UInt64

    init(queue: HistoryQueue, stats: HistoryStats, firstNewSequence: UInt64, firstMirroredSequence: UInt64) {
        self.queue = queue
        self.stats = Locked(stats)
        self.firstNewSequence = firstNewSequence
        self.firstMirroredSequence = firstMirroredSequence
    }

    /// Asks the writer for stored messages; waits at most `milliseconds`.
    func query(_ query: HistoryQuery, milliseconds: Int) -> Result<HistoryReply, ControlError> {
        let slot = ReplySlot<Result<HistoryReply, ControlError>>()
        mailbox.post(.query(query, slot))
        return slot.wait(milliseconds: milliseconds)
            ?? .failure(ControlError(.unavailable, "the history writer did not answer within \(milliseconds) ms"))
    }
}

/// The history writer's thread: owns the store (SQLite is used by this thread only), writes
/// what the loop hands over in batches, one transaction each (a SIGKILL loses at most the
/// batch in flight), syncs to disk every `sync_interval_ms`, applies the bounds, and answers
/// queries. It never touches a socket, so a slow or full disk costs forwarding nothing.
final class HistoryWriter {
    /// How long the writer sleeps between looks at its queue.
    static let batchMilliseconds = 20
    /// The writer commits what waits once it fills `commitBytes` or has waited this long (and
    /// always before a sync, a query's answer and a stop). A commit writes each page its rows
    /// touch whole into the log, so at a few messages a second a commit per look wrote ~8,800
    /// bytes per 32-byte message, and its fixed cost (the log's checksum over those pages) was
    /// what kept history's instructions above 1.15x of forwarding without it. Waiting costs
    /// nothing promised: a SIGKILL loses at most this long, a power loss `sync_interval_ms`.
    static let commitMilliseconds = 100
    /// What the writer gathers before committing early: a block's worth (`blockBytes`; a batch
    /// ends its last block, so smaller commits store smaller blocks, each with its row, its
    /// last overflow page part empty and the table's page written again: 64 KiB cost some 13
    /// instructions a 32 B message more, callgrind), and a quarter of the queue at most, so
    /// that a small queue never fills while the writer waits.
    let commitBytes: Int

    let handle: HistoryHandle
    private var queue: HistoryQueue { handle.queue }
    private var mailbox: Mailbox<HistoryCommand> { handle.mailbox }
    private let store: HistoryStore
    private var syncIntervalNanoseconds: UInt64
    private let logger: Logger
    private var written: UInt64 = 0
    private var commits: UInt64 = 0
    /// Whether the last transaction failed: its numbers may be above what is committed.
    private var lastWriteFailed = false
    /// Whether messages failed to be stored since the last write that stored one: a write of
    /// no message (the not-kept numbers only) may succeed on a full disk, and said the outage
    /// was over while every message still failed.
    private var failingToStore = false
    /// Why it failed, for HEALTH while it lasts.
    private var lastWriteError = ""

    private var writeFailures: UInt64 = 0
    private var lastSyncMilliseconds: UInt64 = 0
    /// The store's file as opened (device, inode): one deleted or replaced under zpubd is said.
    private let openedFile: [UInt64]?
    /// Said once, until the file is back.
    private var fileGoneTold = false
    /// The first damage found in the store (by the check after start, or by a read), and how
    /// many times damage was found: said once, in HEALTH until zpubd restarts.
    private var damage: String?
    private var damageFound = 0
    /// The check after the start (`checkSomeBlocks`): when it began, the damaged blocks it
    /// found, and why it stopped short if it did.
    private var checkStarted: UInt64?
    private var checkFoundDamaged = 0
    private var checkStoppedShort: String?
    private var failureLog = LogRateLimit()
    /// Persisted last values read at start, handed to the forwarding loop once.
    private var restored: [LastValueRecord]

    /// Opens the store (throws `HistoryStoreError` at start, never later).
    init(configuration: BrokerConfiguration, logger: Logger) throws(HistoryStoreError) {
        store = try HistoryStore(
            directory: configuration.stateDirectory,
            bounds: HistoryStore.Bounds(
                maxMessages: configuration.historyMaxMessages, maxBytes: configuration.historyMaxBytes,
                maxAgeMilliseconds: UInt64(configuration.historyMaxAgeSeconds) * 1_000),
            sequenceReserve: UInt64(configuration.historySequenceReserve),
            numbersOnItsOwn: !configuration.pair.isEnabled)
        openedFile = store.path.flatMap(Self.fileIdentity)
        do {
            // With the cache on, the table keeps what the cache can hold: values under its
            // prefixes, within its bounds. With it off, the values are left for a start that
            // turns it on again.
            if !configuration.lastValuePrefixes.isEmpty {
                try store.deleteLastValues(outside: configuration.lastValuePrefixes.map { Array($0.utf8) })
            }
            try store.setLastValueLimits(
                entries: configuration.lastValueMaxEntries, bytes: configuration.lastValueMaxBytes)
            // Values that expired while zpubd was down are not restored, to be expired at once
            // (and told as restored).
            if configuration.lastValueMaxAgeSeconds > 0 && !configuration.lastValuePrefixes.isEmpty {
                let maxAge = UInt64(configuration.lastValueMaxAgeSeconds) * 1_000
                let now = SystemClock.wallMilliseconds()
                if now > maxAge { try store.deleteLastValues(storedBefore: now - maxAge) }
            }
            restored = configuration.lastValuePrefixes.isEmpty ? [] : try store.lastValues()
        } catch {
            throw HistoryStoreError(
                description:
                    "cannot read the last values in \(store.path ?? "history"): \(error); move the file aside to start afresh",
                exitStatus: 74)
        }
        handle = HistoryHandle(
            queue: HistoryQueue(capacityBytes: configuration.historyQueueBytes),
            stats: HistoryStats(
                prefixes: configuration.historyPrefixes, persistent: configuration.stateDirectory != nil,
                directory: configuration.stateDirectory),
            firstNewSequence: store.startsAfter + 1, firstMirroredSequence: store.lastSequence + 1)
        syncIntervalNanoseconds = UInt64(configuration.historySyncIntervalMilliseconds) * 1_000_000
        commitBytes = min(HistoryStore.blockBytes, configuration.historyQueueBytes / 4)
        self.logger = logger
        publishCeiling()
        refreshStats()
        if let path = store.path {
            if !configuration.historyPrefixes.isEmpty {
                logger.notice(
                    "history of \(configuration.historyPrefixes.joined(separator: ", ")) in \(path): \(store.messageCount) message\(store.messageCount == 1 ? "" : "s") kept, sequences continue after \(store.startsAfter)\(store.earlierRunStoppedUncleanly ? " (above the last kept, \(store.lastSequence): an earlier run stopped uncleanly and may have handed out numbers it never committed)" : "")"
                )
            }
            if !configuration.lastValuePrefixes.isEmpty {
                logger.notice("last values persist in \(path): \(restored.count) restored")
            }
        } else {
            logger.notice(
                "history of \(configuration.historyPrefixes.joined(separator: ", ")) in memory only: it is lost at exit; give a state directory (--state-dir, [history] directory) to keep it"
            )
        }
    }

    func run() {
        ran = true
        var poller = Poller()
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        var lastSync = SystemClock.monotonicNanoseconds()
        var lastCommit = lastSync
        let commitInterval = UInt64(Self.commitMilliseconds) * 1_000_000
        var stopping = false
        while !stopping {
            _ = try? poller.poll(timeoutMilliseconds: Self.batchMilliseconds)
            let commands = poller.isReadable(mailboxIndex) ? mailbox.take() : []
            let now = SystemClock.monotonicNanoseconds()
            let syncDue = now &- lastSync >= syncIntervalNanoseconds
            var committed = false
            if syncDue || now &- lastCommit >= commitInterval || queue.depth.queuedBytes >= commitBytes {
                writeWaiting()
                committed = true
                lastCommit = now
                // Commits renew the reserve above what the loop numbered; not above a number
                // it could not give, far above the rest (a takeover's).
                if queue.refusedSequence > store.durableReserve { renewReserve() }
            }
            if syncDue {
                // Bounds apply at each commit, and here too: with no traffic, `max_age_s` would
                // otherwise keep messages until the next one arrives.
                applyBounds()
                renewReserve()
                sync()
                lastSync = now
            }
            for command in commands {
                switch command {
                case .query(let query, let slot):
                    slot.fulfill(answerOnceWritten(query))
                case .reconfigure(let configuration):
                    apply(configuration)
                    applyBounds()
                case .peerNotKept(let ranges):
                    do {
                        try store.takeReasons(from: ranges)
                    } catch {
                        logger.warning(
                            "history could not record the peer's reasons for numbers it did not keep: \(error)")
                    }
                case .peerUnused(let ranges):
                    do {
                        try store.takeUnused(ranges)
                    } catch {
                        logger.warning(
                            "history could not record the numbers the peer never used (\(error)): they may be told as not kept here"
                        )
                    }
                case .split(let numbers, let resumeAfter):
                    do {
                        try store.recordSplit(
                            numbers: numbers.lowerBound, through: numbers.upperBound, resumeAfter: resumeAfter)
                    } catch {
                        logger.warning(
                            "history could not record where the pair's numbering split (\(error)): a client resuming from one of the backup's numbers \(numbers.lowerBound) to \(numbers.upperBound) misses this broker's messages after \(resumeAfter)"
                        )
                    }
                case .reserve(let sequence, let unusedAbove, let settles, let slot):
                    store.expectTakeover(numberingFrom: sequence, unusedAbove: unusedAbove)
                    do {
                        try store.reserve(above: sequence)
                        publishCeiling()  // before the loop, waiting for this, numbers anything
                        slot.fulfill(true)
                    } catch {
                        logger.error("history could not reserve sequences above \(sequence): \(error)")
                        slot.fulfill(false)
                    }
                    if settles { settleBeforeTakeover(numberingFrom: sequence) }
                case .stall(let milliseconds):
                    logger.warning("test hook: stalling the history writer for \(milliseconds) ms")
                    usleep(UInt32(min(max(milliseconds, 0), 60_000)) * 1_000)
                case .stop: stopping = true
                }
            }
            // While idle, and after each commit also under steady traffic (2 ms a commit:
            // the check ends, and the queue waits 2% longer at most).
            if !store.checkIsOver && (committed || queue.depth.queuedBytes == 0) { checkSomeBlocks() }
            publishCeiling()
            refreshStats()
        }
        // Everything, not a turn's worth: the loop has stopped, and numbers it handed out must
        // be committed before the reserve above them is given back.
        while writeBatch().bytes > 0 {}
        do {
            if !lastWriteFailed { try store.releaseReservation() }
        } catch {
            logger.error("history could not record a clean stop: \(error); the next start numbers above a reserve")
        }
        sync()
        refreshStats()
    }

    /// Set when `run` begins: a writer dropped before that belonged to a start that failed.
    private var ran = false

    /// zpubd did not start after all (a bind failed once the store was open): nothing was
    /// numbered, so the reserve taken at open is given back. Kept, it was told at the next
    /// start as the numbers of a zpubd that stopped uncleanly (a probe).
    deinit {
        guard !ran else { return }
        do {
            try store.releaseReservation()
        } catch {
            logger.error(
                "history could not give back the sequences reserved at start: \(error); the next start numbers above them"
            )
        }
    }

    /// The last values persisted before this start, oldest update first (once: then empty).
    func takeRestoredLastValues() -> [LastValueRecord] {
        defer { restored = [] }
        return restored
    }

    /// Applies a reloaded configuration's bounds and sync interval (prefixes are the loop's
    /// business; STATS shows them as in force).
    private func apply(_ configuration: BrokerConfiguration) {
        syncIntervalNanoseconds = UInt64(configuration.historySyncIntervalMilliseconds) * 1_000_000
        handle.stats.withLock { $0.prefixes = configuration.historyPrefixes }
        do {
            // As the cache drops the values its prefixes no longer cover (as at start: with
            // the cache off, they are left for a start that turns it on again).
            if !configuration.lastValuePrefixes.isEmpty {
                try store.deleteLastValues(outside: configuration.lastValuePrefixes.map { Array($0.utf8) })
            }
            try store.setLastValueLimits(
                entries: configuration.lastValueMaxEntries, bytes: configuration.lastValueMaxBytes)
        } catch {
            logger.error(
                "cannot trim the persisted last values to the reloaded max_entries and max_bytes: \(error); they are trimmed with the next update"
            )
        }
        store.bounds = HistoryStore.Bounds(
            maxMessages: configuration.historyMaxMessages, maxBytes: configuration.historyMaxBytes,
            maxAgeMilliseconds: UInt64(configuration.historyMaxAgeSeconds) * 1_000)
    }

    /// Writes what waits, in transactions of at most `batchBytes` and at most ten of them per
    /// turn, so that a backlog does not keep syncs and queries waiting for long.
    private func writeWaiting() {
        for _ in 0..<10 {
            guard writeBatch().cut else { return }
        }
    }

    /// At most this many bytes of records per transaction (and at least one record): some
    /// 60,000 messages of 32 bytes, 4,000 of 1 KiB, a few tens of milliseconds' work.
    static let batchBytes = 4 << 20

    /// What one `writeBatch` took from the queue: its bytes, and whether it left records for
    /// the next (it took `batchBytes`).
    struct Batch {
        var bytes: Int
        var cut: Bool
    }

    /// Writes one transaction's worth.
    @discardableResult
    func writeBatch() -> Batch {
        queue.withTaken(byteLimit: Self.batchBytes) { records, lastValues, assignedThrough, cut in
            write(records, lastValues: lastValues, assignedThrough: assignedThrough)
            return Batch(bytes: records.count, cut: cut)
        }
    }

    private func write(_ records: UnsafeRawBufferPointer, lastValues: [LastValueRecord], assignedThrough: UInt64) {
        guard !records.isEmpty || assignedThrough > store.lastSequence else { return }
        do {
            let appended = try store.append(
                records: records, lastValues: lastValues, assignedThrough: assignedThrough,
                nowMilliseconds: SystemClock.wallMilliseconds())
            written &+= UInt64(appended.stored)
            commits &+= 1
            if failingToStore && appended.stored > 0 {
                // Its failures were logged (rate-limited): so is their end.
                logger.notice(
                    "history stores messages again (\(writeFailures) could not be stored since start; HISTORY replies name their numbers in not_kept)"
                )
                failingToStore = false
            }
            lastWriteFailed = false
            if damage == nil, let error = store.evictionError as? SQLiteError, error.isCorrupt {
                noteDamage("evicting the oldest messages failed: \(error)")
            }
            if let error = store.evictionError,
                let heldBack = failureLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds())
            {
                logger.error(
                    "history stored its messages but could not evict the oldest: \(error); the store may grow beyond max_messages, max_bytes and max_age_s until this is fixed (a damaged file: move it aside at the next restart)\(Self.heldBackNote(heldBack))"
                )
            }
            // The store leaves out a record it cannot read or whose sequence is not new: never
            // expected, and never silent.
            if appended.leftOut > 0 {
                writeFailures &+= UInt64(appended.leftOut)
                if let heldBack = failureLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                    logger.error(
                        "history left out \(appended.leftOut) of \(appended.stored + appended.leftOut) messages it could not read or whose sequence was not new; this is a bug in zpubd, please report it\(Self.heldBackNote(heldBack))"
                    )
                }
            }
        } catch {
            // Counted only now, on the rare path: a batch is not walked before it is stored.
            var messages = 0
            _ = HistoryRecord.forEachRecord(in: records) { if $0.kind == HistoryRecord.messageKind { messages += 1 } }
            writeFailures &+= UInt64(messages + lastValues.count)
            lastWriteFailed = true
            failingToStore = true
            lastWriteError = "\(error)"
            if let heldBack = failureLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                // A batch of no message records the numbers handed out and not kept.
                let what =
                    messages > 0
                    ? "store \(messages) messages" : "record the numbers through \(assignedThrough) it did not keep"
                logger.error(
                    "history could not \(what): \(error); forwarding goes on\(Self.heldBackNote(heldBack))")
            }
        }
    }

    /// What a rate-limited error ends with: how many were held back since the last one logged.
    private static func heldBackNote(_ heldBack: Int) -> String {
        heldBack == 0 ? "" : " (\(heldBack) more failures since the last such message)"
    }

    /// Tells the loop how far it may number: the store's reserve, as synced to disk (each
    /// turn: cheap, and a sync may have made more of it durable).
    private func publishCeiling() {
        queue.setCeiling(store.path == nil ? .max : store.durableReserve)
    }

    /// Renews the reserve above what the loop has numbered or tried to, if half of it is
    /// used. Commits do this too, but while they fail none renews it, and a loop stopped at
    /// the reserve keeps nothing, so nothing is committed to renew it: each sync tries again.
    private func renewReserve() {
        guard store.path != nil else { return }
        let sequence = max(queue.assignedThrough, store.lastSequence, queue.refusedSequence)
        do {
            try store.reserve(above: sequence)
        } catch {
            if let heldBack = failureLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                logger.error(
                    "history could not reserve sequences above \(sequence): \(error); messages are forwarded, and kept again once it can\(Self.heldBackNote(heldBack))"
                )
            }
        }
    }

    /// Evicts what the bounds no longer allow, between commits.
    private func applyBounds() {
        do {
            try store.applyBounds(nowMilliseconds: SystemClock.wallMilliseconds())
        } catch {
            if let heldBack = failureLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                logger.error(
                    "history could not evict what its bounds no longer allow: \(error)\(Self.heldBackNote(heldBack))"
                )
            }
        }
    }

    private func sync() {
        checkTheFileIsStillThere()
        do {
            try store.checkpoint()
            if store.path != nil { lastSyncMilliseconds = SystemClock.wallMilliseconds() }
        } catch {
            if let heldBack = failureLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                logger.error(
                    "history could not sync to disk: \(error)\(Self.heldBackNote(heldBack))"
                )
            }
        }
    }

    /// SQLite writes on into a file deleted under it (`rm -rf` of the state directory), which
    /// is gone when zpubd stops: everything kept since is lost, and the next start numbers from
    /// 1 again. Nothing failed, so nothing was said (a probe); now the sync, once a second,
    /// looks at the path.
    private func checkTheFileIsStillThere() {
        guard let path = store.path, let openedFile else { return }
        let now = Self.fileIdentity(path)
        guard now != openedFile else {
            fileGoneTold = false
            return
        }
        guard !fileGoneTold else { return }
        fileGoneTold = true
        logger.error(
            "history's file \(path) was \(now == nil ? "deleted" : "replaced by another file") while zpubd runs: what it keeps goes on into the file it opened, which is lost when zpubd stops, and the next start numbers from what the path holds then (from 1 if nothing); put the file back, or restart zpubd to keep history in a file that stays"
        )
    }

    /// Reads back the blocks stored before this start, for `checkMillisecondsPerTurn` a turn
    /// while nothing waits to be written and after each commit (idle, some 100 MiB a second:
    /// 1 GiB of history in about 12 s): damage is found after a start, not by the reader who
    /// asks for those messages.
    private func checkSomeBlocks() {
        let now = SystemClock.monotonicNanoseconds()
        if checkStarted == nil { checkStarted = now }
        let deadline = now &+ UInt64(Self.checkMillisecondsPerTurn) * 1_000_000
        repeat {
            do throws(HistoryStore.BlockDamage) {
                try store.checkNextBlock()
            } catch {
                if let failure = error.reason as? SQLiteError, !failure.isCorrupt {
                    // A failing disk or no memory says nothing of the file: not damage.
                    logger.warning("history could not read back \(error); the check goes on (the log may say more)")
                } else {
                    checkFoundDamaged += 1
                    noteDamage("\(error)")
                }
                if error.block == nil { checkStoppedShort = "\(error)" }
            }
        } while !store.checkIsOver && SystemClock.monotonicNanoseconds() < deadline
        guard store.checkIsOver, store.blocksChecked > 0 || checkStoppedShort != nil, let started = checkStarted,
            let path = store.path
        else { return }
        let tenths = (SystemClock.monotonicNanoseconds() &- started) / 100_000_000
        var outcome = checkFoundDamaged == 0 ? "all readable" : "\(checkFoundDamaged) damaged (the log said the first)"
        if checkStoppedShort != nil { outcome += "; it could not read on past them (the log said why)" }
        logger.info(
            "history read back \(store.blocksChecked) blocks of \(path) in \(tenths / 10).\(tenths % 10) s: \(outcome)"
        )
    }

    static let checkMillisecondsPerTurn = 2

    /// Damage in the store's file: said once (error level), and in HEALTH until zpubd restarts.
    private func noteDamage(_ what: String) {
        damageFound += 1
        guard damage == nil else { return }
        damage = what
        logger.error(
            "history's file \(store.path ?? "in memory") is damaged: \(what); readers asking for those messages get an error, the others are served. Stop zpubd and move the file aside, or restore a backup (`sqlite3 FILE 'PRAGMA integrity_check'` says more)"
        )
    }

    /// What keeps history from keeping messages now (HEALTH lists them; the log said each).
    private var problems: [HealthProblem] {
        var problems: [HealthProblem] = []
        if failingToStore {
            problems.append(
                HealthProblem(
                    .historyNotStoring,
                    "history could not store its last batch (\(lastWriteError)): messages are forwarded but not kept until a write succeeds; \(writeFailures) lost since start"
                ))
        }
        if let damage {
            problems.append(
                HealthProblem(
                    .historyDamaged,
                    "history's file \(store.path ?? "in memory") is damaged (\(damage)\(damageFound > 1 ? "; \(damageFound) times in all" : "")): readers asking for those messages get an error; stop zpubd and move the file aside, or restore a backup"
                ))
        }
        if fileGoneTold, let path = store.path {
            problems.append(
                HealthProblem(
                    .historyFileGone,
                    "history's file \(path) was deleted or replaced while zpubd runs: what it keeps is lost when zpubd stops; put the file back, or restart zpubd"
                ))
        }
        return problems
    }

    /// Device and inode of the file at `path`, nil when there is none.
    private static func fileIdentity(_ path: String) -> [UInt64]? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return [UInt64(status.st_dev), UInt64(status.st_ino)]
    }

    /// Writes every record the loop had handed over when this was called.
    private func writeEverythingPublished() {
        let mark = queue.published
        while queue.consumed < mark && writeBatch().bytes > 0 {}
    }

    /// After the takeover's reserve (not before it: the takeover does not wait for this): what
    /// was mirrored is written, and the numbers below `sequence` not stored are recorded.
    private func settleBeforeTakeover(numberingFrom sequence: UInt64) {
        writeEverythingPublished()
        do {
            try store.settleBeforeTakeover(numberingFrom: sequence)
        } catch {
            logger.warning(
                "history could not record the numbers below \(sequence) this takeover skips (\(error)): readers are told of them once the first new message is written"
            )
        }
    }

    /// Answers once everything the loop handed over before the query was posted is written: a
    /// replay up to its marker's sequence misses nothing. Numbers handed out after the last
    /// batch took its bound (dropped, or after a batch cut at its limit) are settled by one
    /// more, even an empty one: the replay is told of those not kept.
    func answerOnceWritten(_ query: HistoryQuery) -> Result<HistoryReply, ControlError> {
        writeEverythingPublished()
        if queue.assignedThrough > store.lastSequence { writeBatch() }
        return answer(query)
    }

    private func answer(_ query: HistoryQuery) -> Result<HistoryReply, ControlError> {
        do {
            let messages: [StoredMessage]
            var gap: HistoryReply.Gap?
            var more = false
            var notKept: [HistoryReply.NotKept] = []
            var resumedAfter: UInt64?
            var splits: [HistoryReply.Split] = []
            switch query.position {
            case .since(let asked):
                // A resume from a number the pair's other broker gave while both were active
                // starts where the numberings split: this broker's messages since lie below it.
                resumedAfter = query.resumesAcrossSplit ? store.resumePoint(since: asked) : nil
                let sequence = resumedAfter ?? asked
                let page = try store.page(
                    after: sequence, through: query.through ?? UInt64(Int64.max), prefix: query.prefix,
                    limit: HistoryReply.pageSize, maxBytes: min(query.maxBytes, HistoryReply.pageBytes))
                messages = page.messages
                more = page.cutByBytes || messages.count == HistoryReply.pageSize
                gap = HistoryReply.gap(
                    since: sequence, through: query.through, firstSequence: store.firstSequence,
                    lastSequence: store.lastSequence, evictedThrough: try store.gapCeiling())
                // Up to the last message when more follow (the next page tells the rest).
                let end =
                    more
                    ? messages.last?.sequence ?? sequence : min(query.through ?? store.toldThrough, store.toldThrough)
                notKept = try store.notKept(after: sequence, through: end)
                if query.tellsSplits && sequence < end { splits = store.splits(overlapping: (sequence + 1)...end) }
            case .last(let count):
                // `more`: the newest did not all fit in the reply's bytes.
                let page = try store.page(
                    after: 0, through: query.through ?? UInt64(Int64.max), prefix: query.prefix,
                    limit: min(count, HistoryReply.pageSize), maxBytes: HistoryReply.pageBytes, newest: true)
                messages = page.messages
                more = page.cutByBytes
                // Fewer than asked for (and than a page holds), and older numbers evicted: they
                // may have held the rest.
                if messages.count < min(count, HistoryReply.pageSize) && !more {
                    gap = HistoryReply.gap(
                        since: 0, through: query.through, firstSequence: store.firstSequence,
                        lastSequence: store.lastSequence, evictedThrough: try store.gapCeiling())
                }
                if let first = messages.first?.sequence {
                    notKept = try store.notKept(
                        after: first - 1, through: min(query.through ?? store.toldThrough, store.toldThrough))
                }
            }
            var reply = HistoryReply(
                firstSequence: store.firstSequence, lastSequence: store.lastSequence, through: query.through,
                messages: messages.map {
                    MessageJSON(
                        frames: $0.frames, style: .exact, seq: $0.sequence,
                        storedMilliseconds: $0.receivedMilliseconds)
                }, more: more, gap: gap, notKept: notKept)
            reply.resumedAfter = resumedAfter
            reply.splits = splits.isEmpty ? nil : splits
            return .success(reply)
        } catch {
            let unreadable = error as? HistoryStore.UnreadableBlock
            if let cause = (unreadable?.reason ?? error) as? SQLiteError, cause.isCorrupt {
                noteDamage("a read failed: \(error)")
            }
            // Not `internal_error`: a damaged file or a failing disk is the operator's to see to.
            var failure = ControlError(
                .historyReadFailed,
                "history could not be read from its store: \(error); check the disk and the state directory (the log may say more), and see docs/history.md for a damaged store"
            )
            failure.damaged = unreadable.map { HistoryReply.Gap(from: $0.first, to: $0.last) }
            return .failure(failure)
        }
    }

    private func refreshStats() {
        let (queuedBytes, dropped) = queue.depth
        let perPrefix = store.perPrefix.mapValues { HistoryStats.PrefixStats(messages: $0.messages, bytes: $0.bytes) }
        let diskBytes = store.diskBytes
        handle.stats.withLock { stats in
            stats.messages = store.messageCount
            stats.bytes = store.byteCount
            stats.firstSequence = store.firstSequence
            stats.lastSequence = store.lastSequence
            stats.perPrefix = perPrefix
            stats.written = written
            stats.commits = commits
            stats.queuedBytes = queuedBytes
            stats.dropped = dropped
            stats.writeFailures = writeFailures
            stats.evictions = store.evictions
            stats.notKeptRanges = store.notKeptRanges
            stats.diskBytes = diskBytes
            stats.lastSyncMilliseconds = lastSyncMilliseconds
            stats.problems = problems.isEmpty ? nil : problems
        }
    }
}
