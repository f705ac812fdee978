import XCTest
import ZPubCore

/// HISTORY and REPLAY arguments, and the gap a reader is told about.
final class HistoryQueryTests: XCTestCase {
    private func parse(_ text: String) -> HistoryQuery? { HistoryQuery.parse(Array(text.utf8)) }

    func testSinceUntilAndLastWithAndWithoutAPrefix() {
        XCTAssertEqual(parse("since 0"), HistoryQuery(position: .since(0), prefix: []))
        XCTAssertEqual(parse("since 42 orders."), HistoryQuery(position: .since(42), prefix: Array("orders.".utf8)))
        XCTAssertEqual(
            parse("since 42 until 99 orders. eu"),
            HistoryQuery(position: .since(42), through: 99, prefix: Array("orders. eu".utf8)),
            "a prefix may hold spaces")
        XCTAssertEqual(parse("last 10 a."), HistoryQuery(position: .last(10), prefix: Array("a.".utf8)))
        XCTAssertEqual(
            parse("last 10 until 77 a."), HistoryQuery(position: .last(10), through: 77, prefix: Array("a.".utf8)),
            "the newest at or before 77")
        // After one space, byte for byte (an audit: " orders." was answered as "orders.").
        XCTAssertEqual(parse("since 1  orders."), HistoryQuery(position: .since(1), prefix: Array(" orders.".utf8)))
        XCTAssertEqual(
            parse("last 3 until 9  a."), HistoryQuery(position: .last(3), through: 9, prefix: Array(" a.".utf8)))
    }

    func testMalformedArgumentsAreRefused() {
        // `until` names a sequence: one it does not name is no prefix (they were read as
        // the prefix "until -1", and answered with no message).
        for text in [
            "", "since", "since x", "last 0", "last -1", "first 3", "since -1", "SINCE 1 until", "last 2 until -1",
            "since 0 until 18446744073709551616", "since 0 until x orders.",
            // Decimal digits only: Swift's UInt64("+5") is 5.
            "since +5", "last +2", "since 1 until +9",
        ] {
            XCTAssertNil(parse(text), text)
        }
        // A range that holds nothing is a mistake, said as such: answered with no message, it
        // read as "nothing was kept there". `since` is exclusive, so since 5 until 5 is fine
        // (empty: what a pager asks once it has everything).
        if case .failure(let error) = ControlRequest.parse(Array("HISTORY since 5 until 3".utf8), maxSize: 100) {
            XCTAssertEqual(error.code, .badArgument)
            XCTAssertTrue(error.message.contains("until is below since"), error.message)
        } else {
            XCTFail("HISTORY since 5 until 3 must be refused")
        }
        XCTAssertNotNil(try? ControlRequest.parse(Array("HISTORY since 5 until 5".utf8), maxSize: 100).get())
        XCTAssertNotNil(try? ControlRequest.parse(Array("HISTORY last 5 until 3".utf8), maxSize: 100).get())
        XCTAssertNil(try? ControlRequest.parse(Array("REPLAY tok +5".utf8), maxSize: 100).get())
        if case .failure(let error) = ControlRequest.parse(Array("HISTORY whenever".utf8), maxSize: 100) {
            XCTAssertEqual(error.code, .badArgument)
        } else {
            XCTFail("HISTORY whenever must be refused")
        }
    }

    func testReplayArguments() throws {
        let request = try ControlRequest.parse(Array("REPLAY tok 17 h.".utf8), maxSize: 100).get()
        let arguments = try XCTUnwrap(request.replayArguments)
        XCTAssertEqual(arguments.token, "tok")
        XCTAssertEqual(arguments.since, 17)
        XCTAssertEqual(arguments.prefix, Array("h.".utf8))
        for bad in ["REPLAY tok", "REPLAY tok x", "REPLAY bad/token 1"] {
            XCTAssertThrowsError(try ControlRequest.parse(Array(bad.utf8), maxSize: 100).get(), bad)
        }
    }

    func testTheGapIsWhatWasAskedForButIsNoLongerKept() {
        XCTAssertEqual(HistoryReply.gap(since: 2, firstSequence: 8, lastSequence: 12), .init(from: 3, to: 7))
        XCTAssertNil(HistoryReply.gap(since: 7, firstSequence: 8, lastSequence: 12))
        XCTAssertNil(HistoryReply.gap(since: 20, firstSequence: 8, lastSequence: 12), "asking past the end")
        XCTAssertEqual(
            HistoryReply.gap(since: 0, firstSequence: 0, lastSequence: 5), .init(from: 1, to: 5), "all evicted")
        XCTAssertNil(HistoryReply.gap(since: 0, firstSequence: 0, lastSequence: 0), "nothing ever kept")
        // The largest position a client may name: nothing after it, and no arithmetic trap
        // (`since + 1` wrapped and passed the check once: HISTORY, REPLAY and a WebSocket's
        // `since` stopped zpubd).
        XCTAssertEqual(
            HistoryReply.gap(since: 2, through: nil, firstSequence: 8, lastSequence: 12, evictedThrough: 5),
            .init(from: 3, to: 5), "6 and 7 were never kept, not evicted: not_kept tells them")
        XCTAssertNil(
            HistoryReply.gap(since: 0, through: nil, firstSequence: 8, lastSequence: 12, evictedThrough: 0),
            "nothing evicted: no gap")
        XCTAssertNil(HistoryReply.gap(since: .max, firstSequence: 8, lastSequence: 12))
        XCTAssertNil(HistoryReply.gap(since: .max - 1, firstSequence: 8, lastSequence: 12))
        XCTAssertNil(HistoryReply.gap(since: .max, firstSequence: 0, lastSequence: 5))
        XCTAssertEqual(
            HistoryReply.gap(since: 0, firstSequence: .max, lastSequence: .max), .init(from: 1, to: .max - 1))
    }

    /// A replay's marker bounds what it reports: what came after `through` comes live, and was
    /// not missed (eviction passing `through` between two pages, or a store that kept nothing).
    func testTheGapOfAReplayEndsAtItsThrough() {
        XCTAssertEqual(
            HistoryReply.gap(since: 2, through: 5, firstSequence: 8, lastSequence: 12, evictedThrough: .max),
            .init(from: 3, to: 5))
        XCTAssertNil(HistoryReply.gap(since: 6, through: 5, firstSequence: 8, lastSequence: 12, evictedThrough: .max))
        XCTAssertEqual(
            HistoryReply.gap(since: 0, through: 3, firstSequence: 0, lastSequence: 5, evictedThrough: .max),
            .init(from: 1, to: 3))
        XCTAssertEqual(
            HistoryReply.gap(since: 2, through: nil, firstSequence: 8, lastSequence: 12, evictedThrough: .max),
            .init(from: 3, to: 7))
        XCTAssertEqual(
            HistoryReply.gap(since: 2, through: 20, firstSequence: 8, lastSequence: 12, evictedThrough: .max),
            .init(from: 3, to: 7))
    }
}
