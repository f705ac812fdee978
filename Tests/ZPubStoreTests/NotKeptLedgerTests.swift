import XCTest
import ZPubCore

@testable import ZPubStore

/// The numbers history handed out but does not hold, as the store records them and tells
/// readers (`HistoryStore.notKept`): between stored messages, after a batch's last one, across
/// a reopen, after an unclean stop; evicted with the messages; bounded.
final class NotKeptLedgerTests: XCTestCase {
    private var directory = ""
    private let roomy = HistoryStore.Bounds(maxMessages: 1_000, maxBytes: 1 << 20, maxAgeMilliseconds: 0)

    override func setUpWithError() throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("zpub-notkept-\(UUID().uuidString)").path
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func append(_ store: HistoryStore, _ sequences: [UInt64], assignedThrough: UInt64) throws {
        let records = sequences.flatMap { sequence in
            HistoryRecord.encodeMessage(
                sequence: sequence, receivedMilliseconds: 1_000, prefixLength: 2,
                frames: [Array("a.x".utf8), Array("\(sequence)".utf8)])
        }
        try store.append(records: records, assignedThrough: assignedThrough, nowMilliseconds: 1_000)
    }

    private func ranges(_ store: HistoryStore, after: UInt64 = 0, through: UInt64 = .max, limit: Int = 100) throws
        -> [String]
    {
        try store.notKept(after: after, through: through, limit: limit).map {
            "\($0.from)-\($0.to)" + ($0.reason == .uncleanStop ? " unclean" : "")
        }
    }

    func testNumbersNeverStoredAreToldBetweenMessagesAfterABatchAndAcrossAReopen() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try append(store, [1, 2, 5], assignedThrough: 5)
            XCTAssertEqual(try ranges(store), ["3-4"])
            // 8 and 9 were numbered and never reached the store: settled by the batch's bound.
            try append(store, [7], assignedThrough: 9)
            XCTAssertEqual(try ranges(store), ["3-4", "6-6", "8-9"])
            // A batch cut short (bound 0) claims nothing beyond its messages.
            try append(store, [10, 11], assignedThrough: 0)
            // The next number stored continues the newest range's neighbour, not a new hole.
            try append(store, [13], assignedThrough: 13)
            XCTAssertEqual(try ranges(store), ["3-4", "6-6", "8-9", "12-12"])
            XCTAssertEqual(try ranges(store, after: 3, through: 8), ["4-4", "6-6", "8-8"], "cut to what was asked")
            XCTAssertEqual(try ranges(store, after: 9, through: 11), [])
            try store.releaseReservation()
        }
        let store = try HistoryStore(directory: directory, bounds: roomy)
        XCTAssertEqual(try ranges(store), ["3-4", "6-6", "8-9", "12-12"], "a clean restart adds none")
        XCTAssertEqual(store.notKeptRanges, 4)
        XCTAssertEqual(store.startsAfter, 13)
    }

    func testARangeThatContinuesTheNewestIsOneRow() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try append(store, [1], assignedThrough: 3)
        try append(store, [], assignedThrough: 6)
        XCTAssertEqual(try ranges(store), ["2-6"])
        XCTAssertEqual(store.notKeptRanges, 1)
    }

    func testAnUncleanStopsReserveIsToldAsPossiblyUsed() throws {
        let reserve = HistoryStore.defaultSequenceReserve
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try append(store, [1, 2], assignedThrough: 4)
        }  // killed: 3 and 4 were dropped, and numbers up to the reserve may have been handed out
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            XCTAssertEqual(store.startsAfter, reserve)
            XCTAssertEqual(try ranges(store), ["3-4"], "the reserve waits for this run's first number")
            try append(store, [reserve + 1], assignedThrough: reserve + 1)
            XCTAssertEqual(
                try ranges(store, after: 2), ["3-4", "5-\(reserve) unclean"], "the new run's message adds none")
            try store.releaseReservation()
        }
        let store = try HistoryStore(directory: directory, bounds: roomy)
        XCTAssertEqual(try ranges(store), ["3-4", "5-\(reserve) unclean"], "recorded once, not at every start")
    }

    func testRangesGoWithTheMessagesEvictedAndReadsStartAfterTheEvicted() throws {
        let store = try HistoryStore(
            directory: nil, bounds: HistoryStore.Bounds(maxMessages: 2, maxBytes: 1 << 20, maxAgeMilliseconds: 0))
        try append(store, [1, 3, 5, 7], assignedThrough: 7)
        // The newest two (5, 7) are kept: evicted through 3, and the range 2-2 with them.
        XCTAssertEqual(store.firstSequence, 5)
        // 4 is below the oldest kept but above what was evicted: never kept, told as such
        // (a reader's gap is 1-3 only, `HistoryReply.gap` with `evictedThrough`).
        XCTAssertEqual(store.evictedThrough, 3)
        XCTAssertEqual(try ranges(store), ["4-4", "6-6"])
        XCTAssertEqual(try store.gapCeiling(), 3, "a reader's gap: the evicted numbers")
        // A file from before the not_kept table holds no range for 4: it stays in the gap,
        // never silence.
        try store.database.execute("DELETE FROM not_kept")
        XCTAssertEqual(try store.gapCeiling(), 4)
        XCTAssertEqual(store.notKeptRanges, 2)
    }

    func testABatchRecordsAtMostSixteenRangesAndTheTableAtMostItsLimit() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        // Every other number: 20 holes in one batch.
        try append(store, (0...20).map { $0 * 2 + 1 }, assignedThrough: 41)
        let recorded = try ranges(store)
        XCTAssertEqual(recorded.count, NotKeptLedger.maximumPerBatch)
        XCTAssertEqual(recorded.first, "2-2")
        XCTAssertEqual(recorded.last, "32-40", "the rest joined into the last, messages in between and all")

        store.notKeptLedger.maximumRows = 18
        try append(store, [43, 45, 47], assignedThrough: 47)  // 42, 44, 46: 19 rows
        let joined = try ranges(store)
        XCTAssertEqual(store.notKeptRanges, 18)
        XCTAssertEqual(joined.count, 18)
        XCTAssertEqual(joined.first, "2-4", "the oldest two joined")
        XCTAssertEqual(joined.last, "46-46")
    }

    /// A pair member restarted after an unclean stop mirrors its peer from where it stopped:
    /// its own reserve is not told, the peer's stream is.
    func testAMemberThatMirrorsAfterAnUncleanStopDoesNotTellItsReserve() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try append(store, [1, 2], assignedThrough: 2)
        }  // killed
        let store = try HistoryStore(directory: directory, bounds: roomy)
        try append(store, [3, 4], assignedThrough: 4)
        XCTAssertEqual(try ranges(store), [])
        try append(store, [5_000_000], assignedThrough: 5_000_000)
        XCTAssertEqual(try ranges(store), ["5-4999999"], "the peer's own jump")
    }

    func testTheNumbersBelowATakeoverAreThePeers() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try append(store, [1, 2], assignedThrough: 2)
        store.expectTakeover(numberingFrom: 1_000)
        try append(store, [1_000, 1_002], assignedThrough: 1_002)
        XCTAssertEqual(
            try store.notKept(after: 0, through: .max),
            [
                HistoryReply.NotKept(from: 3, to: 999, reason: .takeover),
                HistoryReply.NotKept(from: 1_001, to: 1_001, reason: .dropped),
            ])
        // The first numbers of the takeover dropped as well: the peer's part is still its own.
        let other = try HistoryStore(directory: nil, bounds: roomy)
        try append(other, [1], assignedThrough: 1)
        other.expectTakeover(numberingFrom: 100)
        try append(other, [102], assignedThrough: 102)
        XCTAssertEqual(
            try other.notKept(after: 0, through: .max),
            [
                HistoryReply.NotKept(from: 2, to: 99, reason: .takeover),
                HistoryReply.NotKept(from: 100, to: 101, reason: .dropped),
            ])
    }

    /// After a complete hand-over (the peer gave nothing above `unusedAbove`), the numbers the
    /// takeover skips are nobody's: no range. Numbers the peer gave that are missing here (below
    /// it) are still the peer's; this broker's own drops are still its own.
    func testNumbersATakeoverSkipsAfterACompleteHandOverAreNotTold() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try append(store, [1, 2], assignedThrough: 2)
        store.expectTakeover(numberingFrom: 1_000, unusedAbove: 2)
        try append(store, [1_000, 1_002], assignedThrough: 1_002)
        XCTAssertEqual(
            try store.notKept(after: 0, through: .max), [HistoryReply.NotKept(from: 1_001, to: 1_001, reason: .dropped)]
        )

        let short = try HistoryStore(directory: nil, bounds: roomy)
        try append(short, [1], assignedThrough: 1)
        short.expectTakeover(numberingFrom: 100, unusedAbove: 3)
        try append(short, [100], assignedThrough: 100)
        XCTAssertEqual(
            try short.notKept(after: 0, through: .max), [HistoryReply.NotKept(from: 2, to: 3, reason: .takeover)])
    }

    /// A passive pair member mirroring a peer whose reply tells nothing of a hole (numbers the
    /// peer never used): no row, whether the hole was recorded before the word came or is
    /// found after it.
    func testHolesThePeerNeverUsedRecordNoRow() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try append(store, [1, 2, 10], assignedThrough: 10)
        XCTAssertEqual(try ranges(store), ["3-9"])
        try store.takeUnused([3...9, 12...19])
        XCTAssertEqual(try ranges(store), [])
        XCTAssertEqual(store.notKeptRanges, 0)
        try append(store, [11, 20], assignedThrough: 20)
        XCTAssertEqual(try ranges(store), [])
        // Only inside: a hole that reaches past it is told for the rest.
        try append(store, [30], assignedThrough: 30)
        XCTAssertEqual(try ranges(store), ["21-29"])
    }

    /// A passive pair member records the peer's takeover jump as a hole like any other; the
    /// peer's HISTORY reply tells its reason, before the hole is found or after.
    func testAPassiveMemberTakesThePeersReasons() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try append(store, [1, 2], assignedThrough: 2)
        try append(store, [1_000], assignedThrough: 1_000)  // the peer's jump, mirrored
        try store.takeReasons(from: [HistoryReply.NotKept(from: 3, to: 999, reason: .takeover)])
        // Told first, found later.
        try store.takeReasons(from: [HistoryReply.NotKept(from: 1_001, to: 5_000, reason: .uncleanStop)])
        try append(store, [5_001, 5_003], assignedThrough: 5_003)
        XCTAssertEqual(
            try store.notKept(after: 0, through: .max),
            [
                HistoryReply.NotKept(from: 3, to: 999, reason: .takeover),
                HistoryReply.NotKept(from: 1_001, to: 5_000, reason: .uncleanStop),
                HistoryReply.NotKept(from: 5_002, to: 5_002, reason: .dropped),
            ])
    }

    /// A hole found as one range that spans several the peer told of (its unclean stop's
    /// reserve, then its takeover's skip) is recorded as the peer's ranges with their reasons,
    /// and what lies outside them as dropped. It was one `dropped` row.
    func testAHoleOverSeveralOfThePeersRangesTakesEachOnesReason() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try append(store, [1, 2], assignedThrough: 2)
        try store.takeReasons(from: [
            HistoryReply.NotKept(from: 3, to: 999, reason: .uncleanStop),
            HistoryReply.NotKept(from: 1_000, to: 4_000, reason: .takeover),
        ])
        try append(store, [5_001], assignedThrough: 5_001)
        XCTAssertEqual(
            try store.notKept(after: 0, through: .max),
            [
                HistoryReply.NotKept(from: 3, to: 999, reason: .uncleanStop),
                HistoryReply.NotKept(from: 1_000, to: 4_000, reason: .takeover),
                HistoryReply.NotKept(from: 4_001, to: 5_000, reason: .dropped),
            ])
    }

    func testAReadTellsAtMostItsLimitJoiningTheRest() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try append(store, [1, 3, 5, 7, 9, 11, 13], assignedThrough: 13)
        XCTAssertEqual(try ranges(store, limit: 3), ["2-2", "4-4", "6-12"])
    }

    func testAFailedTransactionRecordsNothing() throws {
        let store = try HistoryStore(directory: nil, bounds: roomy)
        try append(store, [1], assignedThrough: 1)
        try store.database.execute("CREATE TRIGGER refuse BEFORE INSERT ON blocks BEGIN SELECT RAISE(ABORT, 'no'); END")
        XCTAssertThrowsError(try append(store, [3], assignedThrough: 3))
        XCTAssertEqual(try ranges(store), [], "rolled back with the batch")
        try store.database.execute("DROP TRIGGER refuse")
        try append(store, [5], assignedThrough: 5)
        XCTAssertEqual(try ranges(store), ["2-4"], "the failed batch's message among them")
    }

    func testAReportTellsEachNumberOnceOverPages() {
        var report = NotKeptReport()
        let first = [HistoryReply.NotKept(from: 3, to: 9, reason: .dropped)]
        XCTAssertEqual(report.untold(first), first)
        XCTAssertEqual(
            report.untold([
                HistoryReply.NotKept(from: 5, to: 12, reason: .dropped),
                HistoryReply.NotKept(from: 20, to: 20, reason: .uncleanStop),
            ]),
            [
                HistoryReply.NotKept(from: 10, to: 12, reason: .dropped),
                HistoryReply.NotKept(from: 20, to: 20, reason: .uncleanStop),
            ])
        XCTAssertEqual(report.untold(nil), [])
    }

    func testTheWordingNamesTheRangeTheReasonAndThePrefix() {
        XCTAssertEqual(
            HistoryReply.NotKept(from: 4, to: 4, reason: .dropped).describe(readUnder: ""),
            "message 4 was not kept: history's queue was full or a write failed, or, mirrored from the pair's other broker, its topic is under none of this broker's [history] prefixes"
        )
        XCTAssertEqual(
            HistoryReply.NotKept(from: 4, to: 9, reason: .uncleanStop).describe(readUnder: "orders."),
            "numbers 4 to 9 were reserved by a zpubd that stopped uncleanly (SIGKILL, a crash, a power loss): the messages it numbered there in its last moments and had not yet written are lost (any under orders.); most of these numbers were never used"
        )
        XCTAssertEqual(
            HistoryReply.NotKept(from: 4, to: 4, reason: .uncleanStop).describe(readUnder: ""),
            "number 4 was reserved by a zpubd that stopped uncleanly (SIGKILL, a crash, a power loss): the messages it numbered there in its last moments and had not yet written are lost"
        )
        // A fresh pair's reader saw "messages 1 to 1073741824 ... (those under orders. among
        // them are lost)" of numbers nobody used.
        XCTAssertEqual(
            HistoryReply.NotKept(from: 1, to: 1 << 30, reason: .takeover).describe(readUnder: "orders."),
            "messages 1 to 1073741824 were not kept here: the pair's other broker may have used some of these numbers before this one took over, and those never reached it (any of them under orders. are lost); a takeover numbers far above the peer's last known number, so most were never used"
        )
    }
}
