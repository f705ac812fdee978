import XCTest
import ZPubCore

@testable import ZPubStore

/// Where a pair's numbering split, as the primary's store records it (`HistoryStore.recordSplit`)
/// and a replay asks for it (`resumePoint`): inside a recorded range only, a second jump's
/// too, kept across a reopen (in `meta`, which older zpubd ignore), gone with the numbers
/// evicted, bounded.
final class SplitNumberingTests: XCTestCase {
    private var directory = ""
    private let roomy = HistoryStore.Bounds(maxMessages: 1_000, maxBytes: 1 << 20, maxAgeMilliseconds: 0)

    override func setUpWithError() throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("zpub-split-\(UUID().uuidString)").path
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func append(_ store: HistoryStore, _ sequences: [UInt64]) throws {
        let records = sequences.flatMap { sequence in
            HistoryRecord.encodeMessage(
                sequence: sequence, receivedMilliseconds: 1_000, prefixLength: 2,
                frames: [Array("a.x".utf8), Array("\(sequence)".utf8)])
        }
        try store.append(records: records, assignedThrough: sequences.max() ?? 0, nowMilliseconds: 1_000)
    }

    func testAPositionAmongTheBackupsNumbersResumesAtTheSplitAndNoOtherDoes() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try append(store, Array(1...20))
            XCTAssertNil(store.resumePoint(since: 1_000))
            // The backup had mirrored through 8; this broker numbered 9 to 20, then jumped to 5,000.
            try store.recordSplit(numbers: 21, through: 4_999, resumeAfter: 8)
            XCTAssertEqual(store.resumePoint(since: 1_000), 8, "one of the backup's numbers")
            XCTAssertEqual(store.resumePoint(since: 21), 8)
            XCTAssertEqual(store.resumePoint(since: 4_999), 8)
            XCTAssertNil(store.resumePoint(since: 20), "this broker's own number: everything up to it was had")
            XCTAssertNil(store.resumePoint(since: 5_000), "above the jump")
            XCTAssertNil(store.resumePoint(since: UInt64.max), "beyond SQLite's integers")
            // A later heartbeat showed the backup further: the primary jumps again, from above
            // its first jump.
            try store.recordSplit(numbers: 5_000, through: 9_999, resumeAfter: 8)
            XCTAssertEqual(store.resumePoint(since: 7_000), 8)
            // Kept as rows of `meta`, which a zpubd from before them ignores: no table of its
            // own, which that zpubd would refuse the file for.
            let tables = try store.database.prepare(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT IN ('meta', 'blocks', 'last_values', 'not_kept')"
            )
            XCTAssertTrue(try tables.step())
            XCTAssertEqual(tables.int64(0), 0)
        }
        let reopened = try HistoryStore(directory: directory, bounds: roomy)
        XCTAssertEqual(reopened.resumePoint(since: 7_000), 8, "kept on disk")
        XCTAssertEqual(reopened.resumePoint(since: 21), 8)
    }

    /// The pair's other broker, mirroring page by page, is told the records among the numbers
    /// each page covers (`HistoryQuery.tellsSplits`), and none other.
    func testAMirrorIsToldTheRecordsAmongTheNumbersItReads() throws {
        let store = try HistoryStore(directory: directory, bounds: roomy)
        try append(store, Array(1...20))
        try store.recordSplit(numbers: 21, through: 4_999, resumeAfter: 8)
        try store.recordSplit(numbers: 5_000, through: 9_999, resumeAfter: 8)
        let first = HistoryReply.Split(first: 21, last: 4_999, resumeAfter: 8)
        let second = HistoryReply.Split(first: 5_000, last: 9_999, resumeAfter: 8)
        XCTAssertEqual(store.splits(overlapping: 1...20), [])
        XCTAssertEqual(store.splits(overlapping: 9...21), [first])
        XCTAssertEqual(store.splits(overlapping: 4_999...5_000), [first, second], "oldest first")
        XCTAssertEqual(store.splits(overlapping: 9_999...UInt64.max), [second])
        XCTAssertEqual(store.splits(overlapping: 10_000...UInt64.max), [])
    }

    func testARangeGoesWhenItsNumbersAreEvictedAndAtMostSixtyFourAreKept() throws {
        let store = try HistoryStore(
            directory: nil, bounds: HistoryStore.Bounds(maxMessages: 2, maxBytes: 1 << 20, maxAgeMilliseconds: 0))
        try append(store, [1, 2])
        try store.recordSplit(numbers: 3, through: 9, resumeAfter: 1)
        XCTAssertEqual(store.resumePoint(since: 5), 1)
        try append(store, [10, 11, 12, 13])
        XCTAssertEqual(store.evictedThrough, 11)
        XCTAssertNil(store.resumePoint(since: 5), "evicted with the numbers it covered")

        for index in 0..<(SplitNumbering.maximumRows + 1) {
            let first = UInt64(100 + index * 10)
            try store.recordSplit(numbers: first, through: first + 5, resumeAfter: first - 1)
        }
        XCTAssertNil(store.resumePoint(since: 102), "the oldest gave way")
        XCTAssertEqual(store.resumePoint(since: 112), 109)
        let rows = try store.database.prepare("SELECT count(*) FROM meta WHERE key LIKE 'split %'")
        XCTAssertTrue(try rows.step())
        XCTAssertEqual(rows.int64(0), Int64(SplitNumbering.maximumRows))
    }
}
