import XCTest
import ZPubCore

@testable import ZPubStore

extension HistoryStore {
    /// The messages as the writer hands them over: one buffer of `HistoryRecord`s.
    fileprivate func append(_ messages: [StoredMessage], assignedThrough: UInt64, nowMilliseconds: UInt64) throws {
        try append(
            records: messages.flatMap(HistoryStoreTests.record), assignedThrough: assignedThrough,
            nowMilliseconds: nowMilliseconds)
    }

    /// How many rows (blocks) hold the messages.
    fileprivate func blockCount() throws -> Int {
        let count = try database.prepare("SELECT count(*) FROM blocks")
        return try count.step() ? Int(count.int64(0)) : 0
    }

    /// Every block's row, oldest first: what it claims to hold, and its records.
    fileprivate func blockRows() throws -> [BlockRow] {
        let select = try database.prepare(
            "SELECT first_seq, last_seq, count, bytes, min_ms, max_ms, prefixes, records FROM blocks ORDER BY first_seq"
        )
        var rows: [BlockRow] = []
        while try select.step() {
            var prefixes: [String: PrefixCounts] = [:]
            for (prefix, counts) in try Self.decodePrefixCounts(select.blob(6)) {
                XCTAssertNil(prefixes[prefix], "\(prefix) once in a block's counts")
                prefixes[prefix] = counts
            }
            rows.append(
                BlockRow(
                    first: select.uint64(0), last: select.uint64(1), count: Int(select.int64(2)),
                    bytes: Int(select.int64(3)), minMilliseconds: select.uint64(4), maxMilliseconds: select.uint64(5),
                    prefixes: prefixes, records: select.blob(7)))
        }
        return rows
    }
}

fileprivate struct BlockRow {
    var first: UInt64
    var last: UInt64
    var count: Int
    var bytes: Int
    var minMilliseconds: UInt64
    var maxMilliseconds: UInt64
    var prefixes: [String: HistoryStore.PrefixCounts]
    var records: [UInt8]
}

/// The history store on a real SQLite file in a temporary directory (and in memory): what it
/// keeps, in what order, within which bounds, across a reopen, and how it refuses a bad file.
final class HistoryStoreTests: XCTestCase {
    private var directory = ""
    private let roomy = HistoryStore.Bounds(maxMessages: 1_000, maxBytes: 1 << 20, maxAgeMilliseconds: 0)

    override func setUpWithError() throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("zpub-store-\(UUID().uuidString)")
            .path
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func message(_ sequence: UInt64, _ topic: String, _ payload: String, at milliseconds: UInt64 = 1_000)
        -> StoredMessage
    {
        StoredMessage(
            sequence: sequence, receivedMilliseconds: milliseconds,
            frames: [Array(topic.utf8), Array(payload.utf8), []],
            prefix: String(topic.prefix(2)))
    }

    /// Opening a store in `directory` fails with `exitStatus`, and its message says each phrase.
    private func assertOpenIsRefused(
        _ directory: String, exitStatus: Int32, saying phrases: String..., line: UInt = #line
    ) {
        XCTAssertThrowsError(try HistoryStore(directory: directory, bounds: roomy), line: line) { error in
            let error = error as! HistoryStoreError
            XCTAssertEqual(error.exitStatus, exitStatus, line: line)
            for phrase in phrases {
                XCTAssertTrue(error.description.contains(phrase), error.description, line: line)
            }
        }
    }

    /// A history file as an earlier zpubd wrote it (schema 1: one row per message), with
    /// `statements` run after its tables are made.
    private func writeSchemaOneFile(_ file: String, _ statements: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try SQLiteDatabase(path: file).execute(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE messages (seq INTEGER PRIMARY KEY, prefix TEXT NOT NULL, topic BLOB NOT NULL,
                received_ms INTEGER NOT NULL, bytes INTEGER NOT NULL, frames BLOB NOT NULL);
            CREATE TABLE last_values (topic BLOB PRIMARY KEY, seq INTEGER NOT NULL, stored_ms INTEGER NOT NULL,
                frames BLOB NOT NULL);
            INSERT INTO meta VALUES ('schema_version', 1);
            \(statements)
            """)
    }

    static func record(_ message: StoredMessage) -> [UInt8] {
        HistoryRecord.encodeMessage(
            sequence: message.sequence, receivedMilliseconds: message.receivedMilliseconds,
            prefixLength: message.prefix.utf8.count, frames: message.frames)
    }

    /// Topics are bytes: a prefix with a NUL in it is stored and read back whole, so the
    /// per-prefix counts keep their keys across a reopen.
    func testAPrefixWithANulByteKeepsItsCountsAcrossAReopen() throws {
        let prefix = "\u{0}a"
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try store.append(
                [message(1, "\u{0}a.x", "one"), message(2, "\u{0}a.y", "two")], assignedThrough: 2,
                nowMilliseconds: 1_000)
            XCTAssertEqual(store.perPrefix, [prefix: HistoryStore.PrefixCounts(messages: 2, bytes: 14)])
        }
        let reopened = try HistoryStore(directory: directory, bounds: roomy)
        XCTAssertEqual(reopened.perPrefix, [prefix: HistoryStore.PrefixCounts(messages: 2, bytes: 14)])
        XCTAssertEqual(try reopened.messages(after: 0, prefix: [], limit: 10).map(\.prefix), [prefix, prefix])
    }

    /// The check after the open reads each block stored before it and names the damaged ones,
    /// going on after each: records that do not parse, fewer or more than the row says, a
    /// sequence outside the row's range. Blocks written after the open are not its to check.
    func testTheCheckAfterTheOpenNamesEachDamagedBlockAndGoesOn() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            // One block a batch: 1-2, 3-4, 5-6, 7-8, 9-10.
            for first in stride(from: UInt64(1), through: 9, by: 2) {
                try store.append(
                    [message(first, "h.x", "one"), message(first + 1, "h.x", "two")], assignedThrough: first + 1,
                    nowMilliseconds: 1_000)
            }
            XCTAssertEqual(try store.blockCount(), 5)
        }
        do {
            let database = try SQLiteDatabase(path: directory + "/" + HistoryStore.fileName)
            try database.execute(
                "UPDATE blocks SET records = substr(records, 1, length(records) - 3) WHERE first_seq = 3")
            try database.execute("UPDATE blocks SET count = 3 WHERE first_seq = 5")
            try database.execute("UPDATE blocks SET last_seq = 7 WHERE first_seq = 7")
            // Where one record ends (the two are of one size): the rest parses.
            try database.execute(
                "UPDATE blocks SET records = substr(records, 1, length(records) / 2) WHERE first_seq = 9")
        }
        let store = try HistoryStore(directory: directory, bounds: roomy)
        try store.append([message(11, "h.x", "new")], assignedThrough: 11, nowMilliseconds: 1_000)
        var damaged: [UInt64?] = []
        var turns = 0
        while !store.checkIsOver && turns < 100 {
            turns += 1
            do throws(HistoryStore.BlockDamage) {
                try store.checkNextBlock()
            } catch {
                damaged.append(error.block)
                XCTAssertTrue((error.reason as? SQLiteError)?.isCorrupt == true, "\(error)")
            }
        }
        XCTAssertEqual(damaged, [3, 5, 7, 9])
        XCTAssertEqual(store.blocksChecked, 5, "the five of before the open, not the one written since")
        XCTAssertNoThrow(try store.checkNextBlock(), "over: nothing more")
        XCTAssertEqual(store.blocksChecked, 5)
        // A reader of the block cut where a record ends is told, not served half of it; the
        // whole blocks around it are served.
        XCTAssertThrowsError(try store.messages(after: 8, through: 10, prefix: [], limit: 10))
        XCTAssertEqual(try store.messages(after: 0, through: 2, prefix: [], limit: 10).map(\.sequence), [1, 2])
        XCTAssertEqual(try store.messages(after: 10, prefix: [], limit: 10).map(\.sequence), [11])
    }

    /// The persisted last values are the cache's, batch after batch and after a reopen: the
    /// store evicts by the cache's rule (oldest update first, while over max_entries or
    /// max_bytes, after each update), not by count at the end of a batch, which kept rows the
    /// cache had dropped (by bytes) and brought back a value evicted before a deletion.
    func testThePersistedLastValuesAreTheCachesAfterEveryBatch() throws {
        let (maxEntries, maxBytes) = (8, 600)
        var cache = LastValueCache(
            prefixes: [Array("t.".utf8)], maxEntries: maxEntries, maxBytes: maxBytes, maxAgeMilliseconds: 0)
        func cached() -> Set<[UInt8]> { Set(cache.entries(under: [], nowMilliseconds: 1_000).map { $0.frames[0] }) }
        func kept(_ store: HistoryStore) throws -> Set<[UInt8]> { Set(try store.lastValues().map { $0.frames[0] }) }
        var random: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: UInt64) -> Int {
            random = random &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((random >> 33) % bound)
        }
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try store.setLastValueLimits(entries: maxEntries, bytes: maxBytes)
            var pending: [LastValueRecord] = []
            var batches = 0
            for _ in 0..<3_000 {
                let topic = Array("t.\(next(24))".utf8)
                let frames =
                    next(5) == 0 ? [topic] : [topic, Array(repeating: UInt8(ascii: "v"), count: 1 + next(150))]
                if frames.count == 2 && next(10) == 0 && cache.lastSequence > 50 {
                    // A pair peer's value, restored with an older number of its own: the cache
                    // puts it in its order by sequence, and the store must too.
                    let older = cache.lastSequence - 1 - UInt64(next(50))
                    cache.restore(
                        LastValueCache.Entry(
                            frames: frames, bytes: frames.reduce(0) { $0 + 4 + $1.count }, sequence: older,
                            storedMilliseconds: 1_000))
                    pending.append(LastValueRecord(frames: frames, sequence: older, storedMilliseconds: 1_000))
                } else {
                    cache.store(frames, nowMilliseconds: 1_000)
                    pending.append(
                        LastValueRecord(frames: frames, sequence: cache.lastSequence, storedMilliseconds: 1_000))
                }
                guard next(6) == 0 else { continue }
                try store.append(records: [], lastValues: pending, assignedThrough: 0, nowMilliseconds: 1_000)
                pending = []
                batches += 1
                XCTAssertEqual(try kept(store), cached(), "after batch \(batches)")
                XCTAssertLessThanOrEqual(store.lastValueBytes, maxBytes)
                XCTAssertEqual(store.lastValueBytes, cache.totalBytes, "counted as the cache counts")
            }
            try store.append(records: [], lastValues: pending, assignedThrough: 0, nowMilliseconds: 1_000)
            XCTAssertGreaterThan(batches, 100)
        }
        let reopened = try HistoryStore(directory: directory, bounds: roomy)
        XCTAssertEqual(try kept(reopened), cached(), "the same after a reopen")
        XCTAssertEqual(reopened.lastValueBytes, cache.totalBytes)
    }

    /// Values under no prefix of the cache are deleted at start: the cache does not restore
    /// them, and counted against its bounds they would evict values it holds.
    func testLastValuesOutsideTheCachesPrefixesAreDeleted() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        let values = ["a.1", "b.1", "a.2"].enumerated().map {
            LastValueRecord(
                frames: [Array($0.element.utf8), [1]], sequence: UInt64($0.offset + 1), storedMilliseconds: 1_000)
        }
        try store.append(records: [], lastValues: values, assignedThrough: 0, nowMilliseconds: 1_000)
        try store.deleteLastValues(outside: [Array("a.".utf8)])
        XCTAssertEqual(try store.lastValues().map { String(decoding: $0.frames[0], as: UTF8.self) }, ["a.1", "a.2"])
        XCTAssertEqual(store.lastValueCount, 2)
        XCTAssertEqual(store.lastValueBytes, 2 * (4 + 3 + 4 + 1))
    }

    /// A file kept under larger bounds is trimmed to the new ones when they are set (at start,
    /// before its values are read), the oldest updates first.
    func testLowerLastValueBoundsTrimWhatIsKeptAtOnce() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            let values = (1...50).map {
                LastValueRecord(
                    frames: [Array("t.\($0)".utf8), Array(repeating: 1, count: 96)], sequence: UInt64($0),
                    storedMilliseconds: 1_000)
            }
            try store.append(records: [], lastValues: values, assignedThrough: 0, nowMilliseconds: 1_000)
            XCTAssertEqual(store.lastValueCount, 50)
        }
        let reopened = try HistoryStore(directory: directory, bounds: roomy)
        // The newest values are 4 + 4 (topic) + 4 + 96 = 108 bytes: room for 9 in 1,000.
        try reopened.setLastValueLimits(entries: 100, bytes: 1_000)
        let kept = try reopened.lastValues()
        XCTAssertLessThanOrEqual(reopened.lastValueBytes, 1_000)
        XCTAssertEqual(kept.map(\.sequence), Array(UInt64(51 - kept.count)...50), "the newest stay")
        XCTAssertEqual(kept.count, 9)
    }

    func testMessagesComeBackWholeInOrderAndSurviveAReopen() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try store.append(
                [message(1, "a.x", "one"), message(2, "b.y", "two"), message(3, "a.z", "three")], assignedThrough: 3,
                nowMilliseconds: 1_000)
            XCTAssertEqual(store.messageCount, 3)
        }
        let reopened = try HistoryStore(directory: directory, bounds: roomy)
        XCTAssertEqual(reopened.lastSequence, 3)
        XCTAssertEqual(reopened.firstSequence, 1)
        XCTAssertEqual(reopened.perPrefix["a."], HistoryStore.PrefixCounts(messages: 2, bytes: 14))
        let all = try reopened.messages(after: 0, prefix: [], limit: 10)
        XCTAssertEqual(all, [message(1, "a.x", "one"), message(2, "b.y", "two"), message(3, "a.z", "three")])
        XCTAssertEqual(try reopened.messages(after: 1, prefix: Array("a.".utf8), limit: 10).map(\.sequence), [3])
        XCTAssertEqual(try reopened.messages(after: 0, prefix: [], limit: 2, newest: true).map(\.sequence), [2, 3])
        XCTAssertEqual(try reopened.messages(after: 0, through: 2, prefix: [], limit: 10).map(\.sequence), [1, 2])
    }

    func testSequencesOfDroppedMessagesAreNeverReused() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            // 2..5 were dropped before the store: the store still remembers 5 was assigned.
            try store.append([message(1, "a.x", "one")], assignedThrough: 5, nowMilliseconds: 1_000)
        }
        XCTAssertEqual(try HistoryStore(directory: directory, bounds: roomy).lastSequence, 5)
    }

    /// A page holds at most `maxBytes` of frames (one message at least): a reply of 1,000 large
    /// messages is not built in memory.
    func testAPageStopsAtItsByteBudget() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        let big = String(repeating: "x", count: 100_000)
        try store.append(
            (1...10).map { message($0, "a.x", big) }, assignedThrough: 10, nowMilliseconds: 1_000)
        let oldest = try store.page(after: 0, prefix: [], limit: 1_000, maxBytes: 250_000)
        XCTAssertEqual(oldest.messages.map(\.sequence), [1, 2], "two of 100,003 bytes fit in 250,000")
        XCTAssertTrue(oldest.cutByBytes)
        let rest = try store.page(after: 8, prefix: [], limit: 1_000, maxBytes: 250_000)
        XCTAssertEqual(rest.messages.map(\.sequence), [9, 10])
        XCTAssertFalse(rest.cutByBytes, "all that was left")
        XCTAssertEqual(
            try store.page(after: 0, prefix: [], limit: 1_000, maxBytes: 10).messages.map(\.sequence), [1],
            "one at least")
        XCTAssertEqual(
            try store.messages(after: 0, prefix: [], limit: 5, maxBytes: 250_000, newest: true).map(\.sequence),
            [9, 10])
        XCTAssertEqual(
            try store.messages(after: 0, prefix: [], limit: 5, maxBytes: 10, newest: true).map(\.sequence), [10])
    }

    /// A page for a prefix reads only blocks whose history prefixes can hold its topics (one of
    /// them starts with it, or it with one): what it finds must be what a full read finds.
    func testAPrefixPageSkipsBlocksThatCannotHoldItsTopicsAndMissesNothing() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try store.append((1...3).map { message($0, "a.x\($0)", "a") }, assignedThrough: 3, nowMilliseconds: 1_000)
        try store.append([message(4, "b.y", "b")], assignedThrough: 4, nowMilliseconds: 1_000)
        let long = StoredMessage(
            sequence: 5, receivedMilliseconds: 1_000, frames: [Array("c.long.z".utf8), Array("c".utf8)],
            prefix: "c.long.")
        try store.append([long], assignedThrough: 5, nowMilliseconds: 1_000)
        XCTAssertEqual(try store.blockCount(), 3, "a block per history prefix here")
        func sequences(_ prefix: String, limit: Int = 100, newest: Bool = false) throws -> [UInt64] {
            try store.messages(after: 0, prefix: Array(prefix.utf8), limit: limit, newest: newest).map(\.sequence)
        }
        XCTAssertEqual(try sequences("b."), [4])
        XCTAssertEqual(try sequences("a.x2"), [2], "longer than its history prefix")
        XCTAssertEqual(try sequences("c."), [5], "shorter than its history prefix")
        XCTAssertEqual(try sequences("c.long.z"), [5])
        XCTAssertEqual(try sequences("d."), [])
        XCTAssertEqual(try sequences(""), [1, 2, 3, 4, 5])
        XCTAssertEqual(try sequences("a.", limit: 2, newest: true), [2, 3])
        XCTAssertEqual(try sequences("b.", limit: 1, newest: true), [4])
    }

    /// The forwarding loop hands a number out before the writer commits it. The store reserves
    /// numbers when it opens, durable before the loop numbers anything; a store closed without
    /// `releaseReservation` (a SIGKILL, a power loss) continues above that reserve, a clean
    /// stop continues right after the last number, and never below an earlier unclean stop's.
    func testAStartAfterAnUncleanStopContinuesAboveTheReserve() throws {
        let reserve = HistoryStore.defaultSequenceReserve
        let far = 2 * reserve + reserve / 2 + 1
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            XCTAssertEqual(store.startsAfter, 0, "a new store starts at 1")
        }  // killed before its first commit: the loop may have numbered messages all the same
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            XCTAssertEqual(store.startsAfter, reserve, "above the reserve taken at the first open")
            try store.append([message(reserve + 1, "a.x", "one")], assignedThrough: reserve + 1, nowMilliseconds: 1_000)
        }  // killed again
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            XCTAssertEqual(store.lastSequence, reserve + 1)
            XCTAssertEqual(store.startsAfter, 2 * reserve, "above the second open's reserve")
            try store.releaseReservation()  // a clean stop that committed nothing
        }
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            XCTAssertEqual(store.startsAfter, 2 * reserve, "the unclean stop's floor stays")
            // Half the reserve used: renewed in the same transaction.
            try store.append([message(far, "a.x", "two")], assignedThrough: far, nowMilliseconds: 1_000)
        }  // killed
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            XCTAssertEqual(store.startsAfter, far + reserve, "the renewed reserve")
            let next = store.startsAfter + 1
            try store.append([message(next, "a.x", "three")], assignedThrough: next, nowMilliseconds: 1_000)
            try store.releaseReservation()
        }
        let store = try HistoryStore(directory: directory, bounds: roomy)
        let last = far + reserve + 1
        XCTAssertEqual(store.startsAfter, last, "after a clean stop: right after the last")
        XCTAssertEqual(
            try store.messages(after: 0, prefix: [], limit: 10).map(\.sequence),
            [reserve + 1, far, last])
    }

    /// A pair member that takes over numbers from far above its own reserve (its peer was
    /// ahead) has the store reserve above them, durably, before it hands any out.
    func testATakeoverFarAboveTheReserveIsCoveredBeforeItNumbers() throws {
        let reserve = HistoryStore.defaultSequenceReserve
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try store.reserve(above: 10 * reserve)
            try store.reserve(above: 10 * reserve + 5)  // within the reserve: nothing to do
        }  // killed before its first commit
        let store = try HistoryStore(directory: directory, bounds: roomy)
        XCTAssertEqual(store.startsAfter, 11 * reserve, "the takeover's reserve held")
    }

    /// A configured reserve is the one taken, renewed and given back; `reservedThrough` is what
    /// the forwarding loop may number up to (its ceiling) at every step.
    func testAConfiguredReserveIsTheOneTakenAndRenewed() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy, sequenceReserve: 1_000)
            XCTAssertEqual(store.reservedThrough, 1_000)
            try store.append([message(400, "a.x", "one")], assignedThrough: 400, nowMilliseconds: 1_000)
            XCTAssertEqual(store.reservedThrough, 1_000, "more than half left: not renewed")
            XCTAssertEqual(store.durableReserve, 1_000)
            try store.append([message(501, "a.x", "two")], assignedThrough: 501, nowMilliseconds: 1_000)
            XCTAssertEqual(store.reservedThrough, 1_501, "half used: renewed above the batch")
            XCTAssertEqual(store.durableReserve, 1_501, "and checkpointed before the loop may use it")
            try store.reserve(above: 900)
            XCTAssertEqual(store.reservedThrough, 1_501, "a reserve with room left is kept")
            try store.reserve(above: 1_400)
            XCTAssertEqual(store.reservedThrough, 2_400)
            XCTAssertEqual(store.durableReserve, 2_400)
        }  // killed
        let store = try HistoryStore(directory: directory, bounds: roomy, sequenceReserve: 1_000)
        XCTAssertEqual(store.startsAfter, 2_400, "above the last reserve recorded")
        XCTAssertEqual(store.reservedThrough, 3_400)
    }

    /// The last sequence is written apart only when it is above the last one stored: a reopen
    /// takes it from the blocks otherwise, and from the eviction mark once they are all gone.
    func testTheLastSequenceSurvivesAReopenWithoutItsOwnRow() throws {
        let oneSecond = HistoryStore.Bounds(maxMessages: 1_000, maxBytes: 1 << 20, maxAgeMilliseconds: 1_000)
        do {
            let store = try HistoryStore(directory: directory, bounds: oneSecond)
            try store.append((1...3).map { message($0, "a.x", "p\($0)") }, assignedThrough: 3, nowMilliseconds: 1_000)
        }
        do {
            let store = try HistoryStore(directory: directory, bounds: oneSecond)
            XCTAssertEqual(store.lastSequence, 3)
            try store.applyBounds(nowMilliseconds: 60_000)
            XCTAssertEqual(store.messageCount, 0, "all evicted")
        }
        let store = try HistoryStore(directory: directory, bounds: oneSecond)
        XCTAssertEqual(store.lastSequence, 3, "never reused, with every message evicted")
        try store.append([message(4, "a.x", "four", at: 60_000)], assignedThrough: 4, nowMilliseconds: 60_000)
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10).map(\.sequence), [4])
    }

    /// The writer takes at most a batch's worth at a time, so a batch may end before sequences
    /// that were assigned when it was taken: the messages that carry them, in the next batch,
    /// are stored all the same, here and after a reopen.
    func testMessagesBelowTheLastAssignedSequenceAreStillStored() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try store.append([message(1, "a.x", "one")], assignedThrough: 3, nowMilliseconds: 1_000)
            try store.append([message(2, "a.x", "two")], assignedThrough: 3, nowMilliseconds: 1_000)
            XCTAssertEqual(store.lastSequence, 3)
        }
        let store = try HistoryStore(directory: directory, bounds: roomy)
        try store.append([message(3, "a.x", "three")], assignedThrough: 3, nowMilliseconds: 1_000)
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10).map(\.sequence), [1, 2, 3])
        XCTAssertEqual(store.messageCount, 3)
    }

    func testTheOldestGoFirstByCountBytesAndAge() throws {
        let store = try HistoryStore(
            directory: nil, bounds: HistoryStore.Bounds(maxMessages: 3, maxBytes: 1 << 20, maxAgeMilliseconds: 0))
        try store.append((1...5).map { message($0, "a.x", "p\($0)") }, assignedThrough: 5, nowMilliseconds: 1_000)
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10).map(\.sequence), [3, 4, 5])
        XCTAssertEqual(store.evictions, 2)
        XCTAssertEqual(store.firstSequence, 3)

        store.bounds = HistoryStore.Bounds(maxMessages: 100, maxBytes: 12, maxAgeMilliseconds: 0)
        try store.applyBounds(nowMilliseconds: 1_000)
        // Each message is 3 + 2 bytes: 12 bytes hold two.
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10).map(\.sequence), [4, 5])
        XCTAssertEqual(store.byteCount, 10)

        store.bounds = HistoryStore.Bounds(maxMessages: 100, maxBytes: 1 << 20, maxAgeMilliseconds: 500)
        try store.append([message(6, "a.x", "new", at: 2_000)], assignedThrough: 6, nowMilliseconds: 2_000)
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10).map(\.sequence), [6], "older than 500 ms")
        XCTAssertEqual(store.messageCount, 1)
    }

    /// Many messages go into a few rows (blocks), and every read finds them across the rows'
    /// edges: by sequence, by prefix, the newest, and up to a bound.
    func testMessagesAreKeptInBlocksAndReadAcrossTheirEdges() throws {
        let store = try HistoryStore(
            directory: directory,
            bounds: HistoryStore.Bounds(maxMessages: 100_000, maxBytes: 1 << 30, maxAgeMilliseconds: 0))
        let all = (1...10_000).map { message(UInt64($0), $0 % 2 == 0 ? "a.\($0)" : "b.\($0)", "p\($0)") }
        try store.append(all, assignedThrough: 10_000, nowMilliseconds: 1_000)
        XCTAssertEqual(try store.blockCount(), 3, "4,096 messages to a block")
        XCTAssertEqual(store.messageCount, 10_000)
        XCTAssertEqual(store.perPrefix["a."]?.messages, 5_000)
        XCTAssertEqual(store.byteCount, all.reduce(0) { $0 + $1.bytes })

        XCTAssertEqual(try store.messages(after: 4_000, prefix: [], limit: 200), Array(all[4_000..<4_200]))
        XCTAssertEqual(
            try store.messages(after: 4_090, prefix: Array("a.".utf8), limit: 5).map(\.sequence),
            [4_092, 4_094, 4_096, 4_098, 4_100])
        XCTAssertEqual(
            try store.messages(after: 0, prefix: Array("b.".utf8), limit: 3, newest: true).map(\.sequence),
            [9_995, 9_997, 9_999])
        XCTAssertEqual(
            try store.messages(after: 0, through: 8_193, prefix: [], limit: 4, newest: true).map(\.sequence),
            [8_190, 8_191, 8_192, 8_193], "the newest up to a bound, across a block's edge")
        XCTAssertEqual(try store.messages(after: 8_190, through: 8_193, prefix: [], limit: 10).count, 3)
        XCTAssertEqual(try store.messages(after: 10_000, prefix: [], limit: 10), [])
        XCTAssertEqual(try store.messages(after: 0, prefix: Array("c.".utf8), limit: 10), [])
    }

    /// The writer's gathering of records into blocks against a plain model, over random
    /// batches: every new message is stored once, in order, whatever lies between them in the
    /// batch (last-value updates, damaged records, sequences already stored); each block's row
    /// (sequences, count, bytes, oldest and newest time, counts per prefix) is what its own
    /// records add up to; a block ends only when the next message would take it past 4,096
    /// messages or 256 KiB of records; and the numbers never stored are the not-kept ranges.
    func testEveryBlockAddsUpToItsRecordsOverRandomBatches() throws {
        var generator = SystemRandomNumberGenerator()
        let store = try HistoryStore(
            directory: nil,
            bounds: HistoryStore.Bounds(maxMessages: 1 << 40, maxBytes: 1 << 40, maxAgeMilliseconds: 0))
        let prefixes = ["a.", "b.", "b,", "a.b.", "", "c.a.longer.prefix.", "c.a.longer.suffix."]
        var expected: [StoredMessage] = []
        var batchOf: [UInt64: Int] = [:]
        var sizeOf: [UInt64: Int] = [:]
        var sequence: UInt64 = 0
        var milliseconds: UInt64 = 10_000_000
        var prefix = prefixes[0]
        for batch in 0..<12 {
            var records: [UInt8] = []
            var leftOut = 0
            var holes = 0
            // Batches of 1 to 3, of small messages only (their blocks fill by count), and of
            // messages of every size, some larger than a block (blocks fill by bytes).
            let small = batch % 3 == 1
            let messages =
                batch % 4 == 3
                ? Int.random(in: 1...3, using: &generator)
                : Int.random(in: (small ? 4_097 : 1)...9_000, using: &generator)
            for _ in 0..<messages {
                // Runs of one prefix, as traffic mostly comes, with switches.
                if Int.random(in: 0..<50, using: &generator) == 0 {
                    prefix = prefixes.randomElement(using: &generator)!
                }
                // A few numbers not kept (at most 10 a batch: a batch records 16 ranges at most).
                if holes < 10 && Int.random(in: 0..<500, using: &generator) == 0 {
                    sequence += UInt64.random(in: 1...3, using: &generator)
                    holes += 1
                }
                sequence += 1
                // The clock mostly moves on, sometimes back.
                milliseconds =
                    Int.random(in: 0..<500, using: &generator) == 0
                    ? milliseconds - UInt64.random(in: 0...500, using: &generator)
                    : milliseconds + UInt64.random(in: 0...3, using: &generator)
                let large = !small && Int.random(in: 0..<100, using: &generator) == 0
                let payload = [UInt8](
                    repeating: 0x61,
                    count: large
                        ? Int.random(in: 10_000...300_000, using: &generator)
                        : Int.random(in: 0...(small ? 16 : 64), using: &generator))
                let message = StoredMessage(
                    sequence: sequence, receivedMilliseconds: milliseconds,
                    frames: [Array("\(prefix)t\(sequence % 7)".utf8), payload]
                        + (Bool.random(using: &generator) ? [[]] : []),
                    prefix: prefix)
                let record = Self.record(message)
                records += record
                expected.append(message)
                batchOf[sequence] = batch
                sizeOf[sequence] = record.count
                // Left out between the messages: what is not a new message.
                switch Int.random(in: 0..<200, using: &generator) {
                case 0:
                    var lastValue = record
                    lastValue[4] = HistoryRecord.lastValueKind
                    records += lastValue
                case 1:
                    records += HistoryRecord.encodeMessage(
                        sequence: sequence + 1, receivedMilliseconds: milliseconds, prefixLength: 200,
                        frames: [Array("short".utf8)])
                    leftOut += 1
                case 2:
                    records += Self.record(expected[Int.random(in: 0..<expected.count, using: &generator)])
                    leftOut += 1
                default: break
                }
            }
            XCTAssertEqual(
                try store.append(records: records, assignedThrough: 0, nowMilliseconds: milliseconds),
                HistoryStore.Appended(stored: messages, leftOut: leftOut))
        }

        let rows = try store.blockRows()
        var stored: [StoredMessage] = []
        for (index, row) in rows.enumerated() {
            var inBlock: [StoredMessage] = []
            var prefixCounts: [String: HistoryStore.PrefixCounts] = [:]
            let whole = try row.records.withUnsafeBytes { bytes in
                try HistoryRecord.forEachRecord(in: bytes) { slot in
                    let message = try XCTUnwrap(HistoryRecord.Message(slot, in: bytes), "block \(row.first): a record")
                    let prefix = String(
                        decoding: UnsafeRawBufferPointer(rebasing: bytes[message.prefix]), as: UTF8.self)
                    inBlock.append(
                        StoredMessage(
                            sequence: message.sequence, receivedMilliseconds: message.receivedMilliseconds,
                            frames: message.decodedFrames(in: bytes), prefix: prefix))
                    prefixCounts[prefix, default: HistoryStore.PrefixCounts()].add(
                        HistoryStore.PrefixCounts(messages: 1, bytes: message.bytes))
                }
            }
            XCTAssertTrue(whole, "block \(row.first): its records end where the blob does")
            let what = "block \(row.first)-\(row.last)"
            XCTAssertEqual(row.first, inBlock.first?.sequence, what)
            XCTAssertEqual(row.last, inBlock.last?.sequence, what)
            XCTAssertEqual(row.count, inBlock.count, what)
            XCTAssertEqual(row.bytes, inBlock.reduce(0) { $0 + $1.bytes }, what)
            XCTAssertEqual(row.minMilliseconds, inBlock.map(\.receivedMilliseconds).min(), what)
            XCTAssertEqual(row.maxMilliseconds, inBlock.map(\.receivedMilliseconds).max(), what)
            XCTAssertEqual(row.prefixes, prefixCounts, what)
            XCTAssertLessThanOrEqual(row.count, 4_096, what)
            XCTAssertTrue(row.count == 1 || row.records.count <= 256 * 1_024, "\(what): \(row.records.count) bytes")
            // Full, when the next block comes from the same batch.
            if index + 1 < rows.count, batchOf[rows[index + 1].first] == batchOf[row.last] {
                XCTAssertTrue(
                    row.count == 4_096 || row.records.count + sizeOf[rows[index + 1].first]! > 256 * 1_024,
                    "\(what) ended with room for the next message: \(row.count) messages, \(row.records.count) bytes")
            }
            stored += inBlock
        }
        XCTAssertEqual(stored.count, expected.count)
        XCTAssertTrue(stored == expected, "every message once, in order, as it came")
        XCTAssertEqual(store.messageCount, expected.count)
        XCTAssertEqual(store.byteCount, expected.reduce(0) { $0 + $1.bytes })
        for prefix in prefixes {
            let mine = expected.filter { $0.prefix == prefix }
            XCTAssertEqual(store.perPrefix[prefix]?.messages ?? 0, mine.count, prefix)
            XCTAssertEqual(store.perPrefix[prefix]?.bytes ?? 0, mine.reduce(0) { $0 + $1.bytes }, prefix)
        }
        var holes: [String] = []
        for (earlier, later) in zip(expected, expected.dropFirst()) where later.sequence > earlier.sequence + 1 {
            holes.append("\(earlier.sequence + 1)-\(later.sequence - 1)")
        }
        XCTAssertEqual(
            try store.notKept(after: 0, through: sequence, limit: 10_000).map { "\($0.from)-\($0.to)" }, holes)
    }

    /// Eviction is exact inside a block: the evicted part of the oldest block is gone for every
    /// read and count at once, before and after a reopen, and the block goes once all of it has.
    func testEvictionInsideABlockIsExactAndSurvivesAReopen() throws {
        let bounds = HistoryStore.Bounds(maxMessages: 3_000, maxBytes: 1 << 30, maxAgeMilliseconds: 0)
        let all = (1...9_000).map { message(UInt64($0), $0 % 3 == 0 ? "a.x" : "b.y", "payload") }
        func expect(_ store: HistoryStore, first: UInt64, _ line: UInt = #line) throws {
            let kept = all[Int(first - 1)..<Int(first - 1 + 3_000)]
            XCTAssertEqual(store.messageCount, 3_000, line: line)
            XCTAssertEqual(store.firstSequence, first, line: line)
            XCTAssertEqual(store.byteCount, kept.reduce(0) { $0 + $1.bytes }, line: line)
            XCTAssertEqual(
                store.perPrefix["a."]?.messages, kept.filter { $0.prefix == "a." }.count, line: line)
            XCTAssertEqual(
                try store.messages(after: 0, prefix: [], limit: 2).map(\.sequence), [first, first + 1], line: line)
            XCTAssertEqual(
                try store.messages(after: 0, prefix: [], limit: 3_000, newest: true).count, 3_000, line: line)
        }
        do {
            let store = try HistoryStore(directory: directory, bounds: bounds)
            try store.append(Array(all[0..<5_000]), assignedThrough: 5_000, nowMilliseconds: 1_000)
            XCTAssertEqual(store.evictions, 2_000)
            try expect(store, first: 2_001)
            XCTAssertEqual(try store.blockCount(), 2, "the first block is only partly evicted")
        }
        let store = try HistoryStore(directory: directory, bounds: bounds)
        try expect(store, first: 2_001)
        // One at a time, as a slow producer would: each evicts one more of the same block.
        for index in 5_000..<5_010 {
            try store.append([all[index]], assignedThrough: UInt64(index + 1), nowMilliseconds: 1_000)
        }
        try expect(store, first: 2_011)
        try store.append(Array(all[5_010..<9_000]), assignedThrough: 9_000, nowMilliseconds: 1_000)
        try expect(store, first: 6_001)
        XCTAssertEqual(try store.blockCount(), 1, "only the block that straddles 6,000 is left")
        XCTAssertEqual(store.evictions, 10 + 3_990, "counted since this open")
    }

    /// Age evicts record by record too, inside a block.
    func testAgeEvictsInsideABlock() throws {
        let store = try HistoryStore(
            directory: nil, bounds: HistoryStore.Bounds(maxMessages: 100, maxBytes: 1 << 20, maxAgeMilliseconds: 500))
        try store.append(
            (1...10).map { message($0, "a.x", "p", at: 1_000 + 100 * $0) }, assignedThrough: 10, nowMilliseconds: 2_050)
        // Received before 1,550: sequences 1 to 5.
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 20).map(\.sequence), Array(6...10))
        XCTAssertEqual(store.firstSequence, 6)
        try store.applyBounds(nowMilliseconds: 2_600)
        XCTAssertEqual(store.messageCount, 0, "all older than 500 ms")
        XCTAssertEqual(store.firstSequence, 0)
        XCTAssertEqual(store.lastSequence, 10)
    }

    /// What is not a kept message in the writer's batch (a last-value update, a damaged record,
    /// a sequence already stored) is left out, and the rest is stored in order.
    func testRecordsThatAreNotNewMessagesAreLeftOut() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        var lastValue = Self.record(message(2, "a.v", "value"))
        lastValue[4] = HistoryRecord.lastValueKind
        let damaged = HistoryRecord.encodeMessage(
            sequence: 3, receivedMilliseconds: 1_000, prefixLength: 9, frames: [Array("a.x".utf8)])
        let records =
            Self.record(message(1, "a.x", "one")) + lastValue + damaged + Self.record(message(4, "a.x", "four"))
            + Self.record(message(4, "a.x", "again")) + Self.record(message(5, "a.x", "five"))
        XCTAssertEqual(
            try store.append(records: records, assignedThrough: 5, nowMilliseconds: 1_000),
            HistoryStore.Appended(stored: 3, leftOut: 2),
            "the damaged record and the repeated 4; a last value is no message")
        XCTAssertEqual(
            try store.messages(after: 0, prefix: [], limit: 10),
            [message(1, "a.x", "one"), message(4, "a.x", "four"), message(5, "a.x", "five")])
        XCTAssertEqual(try store.blockCount(), 1)
        XCTAssertEqual(store.messageCount, 3)
        XCTAssertEqual(store.lastSequence, 5)
    }

    /// A history written by an earlier zpubd (one row per message, schema 1) is converted at
    /// start: every message, count and sequence kept; a newer schema is refused untouched.
    func testAHistoryOfOneRowPerMessageIsConverted() throws {
        let file = directory + "/" + HistoryStore.fileName
        let kept = [message(3, "a.x", "three"), message(4, "b.y", "four"), message(6, "a.z", "six")]
        try writeSchemaOneFile(file, "INSERT INTO meta VALUES ('last_sequence', 7);")
        do {
            let old = try SQLiteDatabase(path: file)
            let insert = try old.prepare(
                "INSERT INTO messages (seq, prefix, topic, received_ms, bytes, frames) VALUES (?, ?, ?, ?, ?, ?)")
            for stored in kept {
                insert.bind(1, stored.sequence)
                Array(stored.prefix.utf8).withUnsafeBufferPointer { insert.bind(2, borrowingText: $0) }
                insert.bind(3, blob: stored.frames[0])
                insert.bind(4, stored.receivedMilliseconds)
                insert.bind(5, Int64(stored.bytes))
                insert.bind(6, blob: FrameCodec.encode(stored.frames))
                try insert.run()
            }
        }
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10), kept)
            XCTAssertEqual(store.lastSequence, 7)
            XCTAssertEqual(store.firstSequence, 3)
            XCTAssertEqual(store.perPrefix["a."], HistoryStore.PrefixCounts(messages: 2, bytes: 14))
            XCTAssertEqual(try store.blockCount(), 1)
            let table = try store.database.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'messages'")
            XCTAssertTrue(try table.step())
            XCTAssertEqual(table.int64(0), 0, "the old table is gone")
            try store.append([message(8, "a.x", "eight")], assignedThrough: 8, nowMilliseconds: 1_000)
        }
        do {
            let reopened = try HistoryStore(directory: directory, bounds: roomy)
            XCTAssertEqual(try reopened.messages(after: 0, prefix: [], limit: 10).map(\.sequence), [3, 4, 6, 8])
        }
        try SQLiteDatabase(path: file).execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'")
        assertOpenIsRefused(directory, exitStatus: 74, saying: "schema version 3")
    }

    /// A conversion that meets a message it cannot read stops and changes nothing: zpubd
    /// refuses to start with the reason, and the old file is as it was.
    func testAConversionThatMeetsADamagedMessageChangesNothing() throws {
        let file = directory + "/" + HistoryStore.fileName
        try writeSchemaOneFile(
            file,
            """
            INSERT INTO messages VALUES (1, 'a.', x'612e78', 1000, 3, x'00000003612e78');
            INSERT INTO messages VALUES (2, 'a.', x'612e78', 1000, 3, x'00000009612e78');
            """)
        assertOpenIsRefused(directory, exitStatus: 74, saying: "1 of 2 could not be read", "move it aside")
        let old = try SQLiteDatabase(path: file)
        let check = try old.prepare(
            "SELECT (SELECT value FROM meta WHERE key = 'schema_version'), (SELECT count(*) FROM messages)")
        XCTAssertTrue(try check.step())
        XCTAssertEqual(check.int64(0), 1, "still schema 1")
        XCTAssertEqual(check.int64(1), 2, "every row still there")
    }

    /// A batch whose last record is cut short (its length runs past the end) stores what came
    /// before and counts the rest as left out: one, since how many it hid is unknown.
    func testARecordCutShortAtTheEndIsCountedAsLeftOut() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        let records = Self.record(message(1, "a.x", "one")) + Self.record(message(2, "a.x", "two")).dropLast(3)
        XCTAssertEqual(
            try store.append(records: Array(records), assignedThrough: 2, nowMilliseconds: 1_000),
            HistoryStore.Appended(stored: 1, leftOut: 1))
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10), [message(1, "a.x", "one")])
    }

    /// A block that cannot be read when the bounds need it does not make a stored batch look
    /// lost: the batch counts as stored, and the store says it could not evict.
    func testAFailureToEvictIsNotAFailureToStore() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try store.append((1...3).map { message($0, "a.x", "p") }, assignedThrough: 3, nowMilliseconds: 1_000)
        try store.database.execute("UPDATE blocks SET records = x'0000000900'")
        store.bounds = HistoryStore.Bounds(maxMessages: 2, maxBytes: 1 << 20, maxAgeMilliseconds: 0)
        XCTAssertEqual(
            try store.append(records: Self.record(message(4, "a.x", "p")), assignedThrough: 4, nowMilliseconds: 1_000),
            HistoryStore.Appended(stored: 1, leftOut: 0))
        XCTAssertNotNil(store.evictionError)
        XCTAssertEqual(store.lastSequence, 4)
        XCTAssertEqual(store.messageCount, 4, "nothing evicted, nothing lost")
    }

    func testADamagedFileIsRefusedWithItsNameAndLeftInPlace() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/" + HistoryStore.fileName
        let garbage = Data(repeating: 0x41, count: 8_192)
        try garbage.write(to: URL(fileURLWithPath: file))
        assertOpenIsRefused(directory, exitStatus: 74, saying: file, "move it aside")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file)), garbage, "never wiped")
    }

    /// Another program's SQLite file where the history belongs is refused, byte for byte as it
    /// was: it was taken for a new history and zpubd's tables were written into it.
    func testAnotherProgramsDatabaseIsRefusedAndLeftAsItWas() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/" + HistoryStore.fileName
        do {
            let other = try SQLiteDatabase(path: file)
            try other.execute("CREATE TABLE foo (a INTEGER); INSERT INTO foo VALUES (42)")
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: file))
        assertOpenIsRefused(directory, exitStatus: 74, saying: "not a zpub history", "(foo)", "move it aside")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file)), before, "never changed")
    }

    func testASecondStoreOnTheSameDirectoryIsRefused() throws {
        let first = try HistoryStore(directory: directory, bounds: roomy)
        try first.append([message(1, "a.x", "one")], assignedThrough: 1, nowMilliseconds: 1_000)
        assertOpenIsRefused(directory, exitStatus: 74, saying: "in use by another process")
    }

    func testADirectoryThatCannotBeMadeIsRefused() throws {
        // A directory under a regular file cannot be made, even by root.
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/plain-file"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        assertOpenIsRefused(file + "/state", exitStatus: 73, saying: file + "/state")
        XCTAssertThrowsError(try HistoryStore(directory: file, bounds: roomy)) { error in
            XCTAssertTrue((error as! HistoryStoreError).description.contains("is not a directory"))
        }
    }
}
