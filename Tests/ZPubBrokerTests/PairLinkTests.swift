import XCTest
import ZPubCore
import ZPubStore

@testable import ZPubBroker

/// What the pair link takes from its peer's HISTORY replies (the whole exchange runs against
/// real brokers and a forging peer in `PairTests`).
final class PairLinkTests: XCTestCase {
    private func page(_ sequences: [UInt64], last: UInt64 = 10, gapTo: UInt64? = nil) -> (
        HistoryReply, [StoredMessage]
    ) {
        let frames: [[UInt8]] = [Array("n.1".utf8), Array("x".utf8)]
        let reply = HistoryReply(
            firstSequence: 1, lastSequence: last,
            messages: sequences.map { MessageJSON(frames: frames, style: .exact, seq: $0, storedMilliseconds: 1) },
            more: false, gap: gapTo.map { HistoryReply.Gap(from: 1, to: $0) })
        let messages = sequences.map {
            StoredMessage(sequence: $0, receivedMilliseconds: 1, frames: frames, prefix: "")
        }
        return (reply, messages)
    }

    func testAPageOfRisingSequencesAfterTheRequestIsTaken() {
        let (reply, messages) = page([4, 5, 9])
        XCTAssertNil(PairLink.implausible(reply, messages: messages, since: 3))
        let (empty, none) = page([])
        XCTAssertNil(PairLink.implausible(empty, messages: none, since: 3))
    }

    /// The holes of a page that neither `not_kept` nor `gap` tells of are numbers the peer never
    /// used (a takeover's skip after a complete hand-over): mirrored as such.
    func testHolesAPageTellsNothingOfAreTheNumbersThePeerNeverUsed() {
        var (reply, messages) = page([2, 5, 9, 20], gapTo: 1)
        reply.notKept = [HistoryReply.NotKept(from: 6, to: 8, reason: .dropped)]
        XCTAssertEqual(PairLink.unusedNumbers(in: reply, messages: messages, after: 0), [3...4, 10...19])
        XCTAssertEqual(PairLink.unusedNumbers(in: reply, messages: messages, after: 2), [3...4, 10...19])
        let (none, nothing) = page([])
        XCTAssertEqual(PairLink.unusedNumbers(in: none, messages: nothing, after: 5), [])
        // A hole partly told: the rest is unused (a takeover's skip, then its first messages
        // dropped).
        var (partly, its) = page([2, 100])
        partly.notKept = [HistoryReply.NotKept(from: 50, to: 60, reason: .dropped)]
        XCTAssertEqual(PairLink.unusedNumbers(in: partly, messages: its, after: 2), [3...49, 61...99])
        partly.notKept = [HistoryReply.NotKept(from: 3, to: 99, reason: .takeover)]
        XCTAssertEqual(PairLink.unusedNumbers(in: partly, messages: its, after: 2), [])
    }

    func testSequencesThatFallRepeatOrStartAtTheRequestAreRefused() {
        let falling = page([4, 3])
        XCTAssertEqual(
            PairLink.implausible(falling.0, messages: falling.1, since: 0),
            "message sequence 3 after 4 (sequences rise, and stay below 2^62)")
        let repeated = page([4, 4])
        XCTAssertNotNil(PairLink.implausible(repeated.0, messages: repeated.1, since: 0))
        let notAfter = page([3])
        XCTAssertNotNil(PairLink.implausible(notAfter.0, messages: notAfter.1, since: 3), "asked for what follows 3")
    }

    func testNumbersAboveTheCeilingAreRefusedWhereverTheyAre() {
        let ceiling = PairLink.sequenceCeiling
        let atCeiling = page([ceiling], last: ceiling)
        XCTAssertNil(PairLink.implausible(atCeiling.0, messages: atCeiling.1, since: 0))
        let message = page([UInt64.max])
        XCTAssertNotNil(PairLink.implausible(message.0, messages: message.1, since: 0))
        let last = page([], last: ceiling + 1)
        XCTAssertNotNil(PairLink.implausible(last.0, messages: last.1, since: 0))
        let gap = page([], gapTo: UInt64.max)
        XCTAssertNotNil(PairLink.implausible(gap.0, messages: gap.1, since: 0))
    }

    /// `unusedNumbers` makes ranges of `not_kept` and `gap`: one that runs downwards trapped,
    /// and a peer's one reply stopped this broker.
    func testRangesThatRunDownwardsOrPastTheCeilingAreRefused() {
        var (reply, messages) = page([])
        reply.notKept = [HistoryReply.NotKept(from: 2, to: 1, reason: .dropped)]
        XCTAssertEqual(
            PairLink.implausible(reply, messages: messages, since: 0),
            "numbers 2 to 1 (ranges run upwards, and stay below 2^62)")
        reply.notKept = [HistoryReply.NotKept(from: 1, to: PairLink.sequenceCeiling + 1, reason: .takeover)]
        XCTAssertNotNil(PairLink.implausible(reply, messages: messages, since: 0))
        reply.notKept = nil
        reply.gap = HistoryReply.Gap(from: 5, to: 4)
        XCTAssertNotNil(PairLink.implausible(reply, messages: messages, since: 0))
        reply.gap = HistoryReply.Gap(from: 4, to: 4)
        reply.notKept = [HistoryReply.NotKept(from: 6, to: 6, reason: .dropped)]
        XCTAssertNil(PairLink.implausible(reply, messages: messages, since: 0), "one number is a range")
    }

    func testAMessageWithoutASequenceOrFramesIsRefused() {
        let (reply, messages) = page([4, 5])
        XCTAssertNotNil(PairLink.implausible(reply, messages: Array(messages.prefix(1)), since: 0))
    }
}
