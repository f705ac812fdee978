import XCTest
import ZPubCore

@testable import ZPubGateway

/// What a catch-up asks the broker for: only what the client wants (`ResumeScope`), read page
/// by page (`HistoryReplay`), a few at a time (`ResumeTurns`).
final class ResumeScopeTests: XCTestCase {
    private func bytes(_ prefixes: String...) -> [[UInt8]] { prefixes.map { Array($0.utf8) } }

    private func message(_ topic: String, _ sequence: UInt64) -> MessageJSON {
        MessageJSON(frames: [Array(topic.utf8), Array("x".utf8)], style: .exact, seq: sequence)
    }

    private func replayReply(
        through: UInt64, prefixes: [String], _ messages: [MessageJSON], more: Bool = false,
        gap: HistoryReply.Gap? = nil, resumedAfter: UInt64? = nil
    ) -> ControlReply {
        var history = HistoryReply(
            firstSequence: 1, lastSequence: through, through: through, messages: messages, more: more, gap: gap)
        history.resumedAfter = resumedAfter
        return .replay(ReplayReply(token: "t", through: through, prefixes: prefixes, asked: [], history: history))
    }

    private func page(_ messages: [MessageJSON], more: Bool = false, gap: HistoryReply.Gap? = nil) -> ControlReply {
        .history(
            HistoryReply(firstSequence: 1, lastSequence: 100, through: 100, messages: messages, more: more, gap: gap))
    }

    // MARK: ResumeScope

    /// What a replay of the wanted prefixes covers: live messages before its marker on topics
    /// under these are in the replay, all others pass.
    func testAReplayCoversTheHistoryPrefixesUnderTheWantedOnes() {
        let history = bytes("h.", "orders.eu.")
        XCTAssertEqual(ResumeScope.overlap(of: bytes("h.a"), with: history), bytes("h.a"))
        XCTAssertEqual(ResumeScope.overlap(of: bytes("orders."), with: history), bytes("orders.eu."))
        XCTAssertEqual(ResumeScope.overlap(of: bytes("live."), with: history), [])
        XCTAssertEqual(ResumeScope.overlap(of: [[]], with: history), history)
    }

    /// No prefix is read twice: one under another, or the same twice, is left out.
    func testOverlappingWantedPrefixesAreReadOnce() {
        XCTAssertEqual(ResumeScope.overlap(of: bytes("h.a", "h.", "h.a.b", "h."), with: bytes("h.")), bytes("h."))
        XCTAssertEqual(ResumeScope.outermost(bytes("b.", "a.", "b.", "a.x")), bytes("b.", "a."))
    }

    /// One SNAPSHOT per catch-up: the longest prefix common to what the client wants of the cache.
    func testASnapshotAsksForTheLongestCommonPrefixOfWhatTheCacheCanHold() {
        XCTAssertEqual(ResumeScope.snapshotPrefix(for: bytes("state.a"), cached: nil), Array("state.a".utf8))
        XCTAssertEqual(ResumeScope.snapshotPrefix(for: bytes("state.a", "state.b"), cached: nil), Array("state.".utf8))
        XCTAssertEqual(
            ResumeScope.snapshotPrefix(for: bytes("state.a", "chat."), cached: bytes("state.")), Array("state.a".utf8))
        XCTAssertEqual(ResumeScope.snapshotPrefix(for: bytes("a.", "b."), cached: nil), [])
        XCTAssertEqual(
            ResumeScope.snapshotPrefix(for: bytes("anything"), cached: bytes("state.")), Array("$zpub/".utf8),
            "nothing cached is wanted: the marker alone")
        XCTAssertEqual(
            ResumeScope.snapshotPrefix(for: bytes("a.", "b."), cached: bytes("state.")), Array("$zpub/".utf8))
    }

    /// A snapshot asked with cached prefixes a reload has changed since: asked again when its
    /// reply (which names the new ones) lacks what the client wants, and only then.
    func testASnapshotIsAskedAgainWhenTheReplyNamesCachedPrefixesItMissed() throws {
        let reloaded = bytes("state.", "cfg.")
        XCTAssertEqual(
            ResumeScope.snapshotPrefixToRedo(asked: Array("$zpub/".utf8), for: bytes("cfg."), cached: reloaded),
            Array("cfg.".utf8), "asked for the marker alone: cfg. was not cached then")
        XCTAssertEqual(
            ResumeScope.snapshotPrefixToRedo(
                asked: Array("state.a".utf8), for: bytes("state.a", "cfg.x"), cached: reloaded), [],
            "too narrow: both, under their common prefix")
        XCTAssertNil(ResumeScope.snapshotPrefixToRedo(asked: Array("cfg.".utf8), for: bytes("cfg."), cached: reloaded))
        XCTAssertNil(
            ResumeScope.snapshotPrefixToRedo(asked: [], for: bytes("a.", "b."), cached: bytes("a.")),
            "a prefix no longer cached: the reply has more than needed, not less")
        XCTAssertNil(
            ResumeScope.snapshotPrefixToRedo(asked: Array("$zpub/".utf8), for: bytes("x."), cached: reloaded),
            "nothing wanted is cached")
        XCTAssertNil(
            ResumeScope.snapshotPrefixToRedo(asked: [], for: bytes(" a"), cached: bytes("")),
            "\" a\" was asked as everything")
        // Asked again as told, the reply has it all.
        for (asked, wanted) in [("$zpub/", bytes("cfg.")), ("state.a", bytes("state.a", "cfg.x"))] {
            let again = try XCTUnwrap(
                ResumeScope.snapshotPrefixToRedo(asked: Array(asked.utf8), for: wanted, cached: reloaded))
            XCTAssertNil(ResumeScope.snapshotPrefixToRedo(asked: again, for: wanted, cached: reloaded))
        }
    }

    // MARK: HistoryReplay

    /// A client of a quiet prefix reads its own messages, not the pages of a busy neighbour's.
    func testAReplayAsksOnlyForTheClientsPrefix() {
        var replay = HistoryReplay(after: 0, wanted: bytes("b."), kept: bytes("a.", "b."), limit: 100)
        XCTAssertEqual(replay.replayArguments.since, 0)
        XCTAssertEqual(replay.replayArguments.prefix, Array("b.".utf8))
        XCTAssertEqual(replay.take(replayReply(through: 5_000, prefixes: ["a.", "b."], [message("b.x", 7)])), .done)
        XCTAssertEqual(replay.entries.map(\.sequence), [7])
        XCTAssertEqual(replay.covering, ["b."])
    }

    /// Several prefixes: the REPLAY reads the first, HISTORY up to `through` each of the others;
    /// one with more than a page is read backwards from `through` (here down to the start of
    /// what is kept); the client gets them merged in sequence order.
    func testSeveralPrefixesAreReadOneAfterTheOtherAndMerged() {
        var replay = HistoryReplay(after: 3, wanted: bytes("b.", "c."), kept: bytes("a.", "b.", "c."), limit: 100)
        XCTAssertEqual(replay.replayArguments.prefix, Array("b.".utf8))
        XCTAssertEqual(
            replay.take(
                replayReply(
                    through: 50, prefixes: ["a.", "b.", "c."], [message("b.x", 4), message("b.x", 9)], more: true)),
            .newest(count: 100, until: 50, prefix: Array("b.".utf8)))
        XCTAssertEqual(
            replay.take(page([message("b.x", 9), message("b.x", 20)])),
            .history(since: 3, until: 50, prefix: Array("c.".utf8)))
        XCTAssertEqual(replay.take(page([message("c.x", 5), message("c.x", 30)])), .done)
        XCTAssertEqual(replay.entries.map(\.sequence), [4, 5, 9, 20, 30])
        XCTAssertEqual(replay.covering, ["b.", "c."])
        XCTAssertEqual(replay.through, 50)
    }

    /// A Last-Event-ID among the numbers a pair's other broker gave while both were active: the
    /// REPLAY started where the numberings split (`resumedAfter`), and every other prefix is read
    /// from there too, not from the client's id.
    func testAReplayResumedBelowTheClientsPositionReadsEveryPrefixFromThere() {
        var replay = HistoryReplay(after: 5_000, wanted: bytes("b.", "c."), kept: bytes("b.", "c."), limit: 100)
        XCTAssertEqual(replay.replayArguments.since, 5_000)
        XCTAssertEqual(
            replay.take(
                replayReply(
                    through: 9_000, prefixes: ["b.", "c."], [message("b.x", 12), message("b.x", 8_000)],
                    resumedAfter: 10)),
            .history(since: 10, until: 9_000, prefix: Array("c.".utf8)))
        XCTAssertEqual(replay.take(page([message("c.x", 11), message("c.x", 8_001)])), .done)
        XCTAssertEqual(replay.entries.map(\.sequence), [11, 12, 8_000, 8_001])
    }

    /// A position above every number given, where history's numbering starts again at each
    /// start (in memory, no pair): every prefix is read from the start, and the round says so.
    /// Not where numbering does not start again (a pair's passive broker lags its peer), nor for
    /// a position at the newest number, nor in a pair split (`resumedAfter`).
    func testAPositionAboveEveryNumberReadsFromTheStartWhereNumberingRestarts() {
        var restarted = HistoryReplay(
            after: 13, wanted: bytes("b.", "c."), kept: bytes("b.", "c."), limit: 100, numberingRestarts: true)
        XCTAssertEqual(
            restarted.take(replayReply(through: 4, prefixes: ["b.", "c."], [])),
            .history(since: 0, until: 4, prefix: Array("b.".utf8)))
        XCTAssertEqual(restarted.numberingStartedAfter, 13)
        XCTAssertEqual(
            restarted.take(page([message("b.x", 1), message("b.x", 3)])),
            .history(since: 0, until: 4, prefix: Array("c.".utf8)))
        XCTAssertEqual(restarted.take(page([message("c.x", 2)])), .done)
        XCTAssertEqual(restarted.entries.map(\.sequence), [1, 2, 3])

        var passive = HistoryReplay(after: 13, wanted: bytes("b."), kept: bytes("b."), limit: 100)
        XCTAssertEqual(passive.take(replayReply(through: 4, prefixes: ["b."], [])), .done)
        XCTAssertNil(passive.numberingStartedAfter, "a lagging broker's numbers are no restart")
        var atTheNewest = HistoryReplay(
            after: 4, wanted: bytes("b."), kept: bytes("b."), limit: 100, numberingRestarts: true)
        XCTAssertEqual(atTheNewest.take(replayReply(through: 4, prefixes: ["b."], [])), .done)
        XCTAssertNil(atTheNewest.numberingStartedAfter)
        var empty = HistoryReplay(
            after: 13, wanted: bytes("b."), kept: bytes("b."), limit: 100, numberingRestarts: true)
        XCTAssertEqual(empty.take(replayReply(through: 0, prefixes: ["b."], [])), .done)
        XCTAssertEqual(empty.numberingStartedAfter, 13, "told, with nothing to read")
    }

    /// Nothing the client wants is kept (as far as the gateway knows): the REPLAY reads nothing
    /// and brings the marker; if the broker's own list says otherwise (a reload), that is read.
    func testAClientOfNothingKeptAsksForTheMarkerOnly() {
        var replay = HistoryReplay(after: 0, wanted: bytes("live."), kept: bytes("a."), limit: 100)
        XCTAssertEqual(replay.replayArguments.since, HistoryReplay.markerOnly)
        XCTAssertEqual(replay.take(replayReply(through: 10, prefixes: ["a."], [])), .done)
        XCTAssertEqual(replay.covering, [])

        var reloaded = HistoryReplay(after: 0, wanted: bytes("live."), kept: bytes("a."), limit: 100)
        XCTAssertEqual(
            reloaded.take(replayReply(through: 10, prefixes: ["a.", "live."], [])),
            .history(since: 0, until: 10, prefix: Array("live.".utf8)))
    }

    /// The newest `limit` are kept; older ones, and what history evicted, are one gap.
    func testTheNewestLimitAreKeptAndTheRestIsOneGap() {
        var replay = HistoryReplay(after: 0, wanted: bytes("b.", "c."), kept: bytes("b.", "c."), limit: 2)
        _ = replay.take(
            replayReply(
                through: 50, prefixes: ["b.", "c."], [message("b.x", 10), message("b.x", 40)],
                gap: .init(from: 1, to: 4)))
        _ = replay.take(page([message("c.x", 20), message("c.x", 30)]))
        XCTAssertEqual(replay.entries.map(\.sequence), [30, 40])
        XCTAssertEqual(replay.gap, HistoryReply.Gap(from: 1, to: 20))
    }

    /// A client far behind reads the newest `limit` of its prefix backwards from `through`, not
    /// every page after its position: what lies between its forward page and them is the gap,
    /// unread. A page cut short by bytes is followed by the next one further back.
    func testAPrefixWithMoreThanAPageIsReadBackwardsToTheLimit() {
        var replay = HistoryReplay(after: 0, wanted: bytes("b."), kept: bytes("b."), limit: 3)
        XCTAssertEqual(
            replay.take(
                replayReply(through: 100, prefixes: ["b."], [message("b.x", 1), message("b.x", 2)], more: true)),
            .newest(count: 3, until: 100, prefix: Array("b.".utf8)))
        XCTAssertEqual(replay.take(page([message("b.x", 90), message("b.x", 95), message("b.x", 99)])), .done)
        XCTAssertEqual(replay.entries.map(\.sequence), [90, 95, 99])
        XCTAssertEqual(replay.gap, HistoryReply.Gap(from: 1, to: 89), "the forward page's and the unread ones")

        var cut = HistoryReplay(after: 0, wanted: bytes("b."), kept: bytes("b."), limit: 5)
        _ = cut.take(replayReply(through: 100, prefixes: ["b."], [message("b.x", 1), message("b.x", 2)], more: true))
        XCTAssertEqual(
            cut.take(page([message("b.x", 97), message("b.x", 99)], more: true)),
            .newest(count: 3, until: 96, prefix: Array("b.".utf8)))
        XCTAssertEqual(cut.take(page([message("b.x", 3), message("b.x", 50), message("b.x", 60)])), .done)
        XCTAssertEqual(cut.entries.map(\.sequence), [3, 50, 60, 97, 99])
        XCTAssertEqual(cut.gap, HistoryReply.Gap(from: 1, to: 2), "only what did not fit: nothing went unread")
        XCTAssertEqual(
            HistoryReplay.Step.newest(count: 3, until: 96, prefix: Array("b.".utf8)).historyArgument,
            Array("last 3 until 96 b.".utf8))
    }

    /// History evicted the client's messages between its forward page and the page read
    /// backwards: the backward page is short and its gap (every evicted number up to `until`)
    /// tells of them, from after the forward page on; they are not silence.
    func testMessagesEvictedBeforeTheBackwardReadAreAGap() {
        var replay = HistoryReplay(after: 10, wanted: bytes("b."), kept: bytes("b."), limit: 3)
        _ = replay.take(
            replayReply(through: 100, prefixes: ["b."], [message("b.x", 11), message("b.x", 12)], more: true))
        XCTAssertEqual(replay.take(page([message("b.x", 99)], gap: .init(from: 1, to: 98))), .done)
        XCTAssertEqual(replay.entries.map(\.sequence), [11, 12, 99])
        XCTAssertEqual(replay.gap, HistoryReply.Gap(from: 13, to: 98), "not below what the client had")

        var nothingLeft = HistoryReplay(after: 0, wanted: bytes("b."), kept: bytes("b."), limit: 3)
        _ = nothingLeft.take(
            replayReply(through: 100, prefixes: ["b."], [message("b.x", 1), message("b.x", 2)], more: true))
        XCTAssertEqual(nothingLeft.take(page([], gap: .init(from: 1, to: 100))), .done)
        XCTAssertEqual(nothingLeft.gap, HistoryReply.Gap(from: 3, to: 100))
    }

    func testAnUnexpectedReplyEndsTheReplay() {
        var replay = HistoryReplay(after: 0, wanted: bytes("b."), kept: bytes("b."), limit: 10)
        XCTAssertNil(replay.take(page([])), "a HISTORY page before the REPLAY")
        XCTAssertNil(replay.take(.error(ControlError(.historyOff, "history is off"))))
    }

    // MARK: ResumeTurns

    /// A few catch-ups ask at once; the others wait in order, once each, and a client that left
    /// gets no turn.
    func testCatchUpsTakeTurns() {
        var turns = ResumeTurns()
        for id in 1...10 { turns.wait(ClientID(id)) }
        turns.wait(1)
        XCTAssertEqual(turns.waiting, 10)
        var started: [ClientID] = []
        while let id = turns.next() {
            started.append(id)
            turns.started()
        }
        XCTAssertEqual(started, Array(1...ClientID(ResumeTurns.places)))
        turns.leave(ClientID(ResumeTurns.places + 1))
        turns.finished()
        XCTAssertEqual(turns.next(), ClientID(ResumeTurns.places + 2), "the one that left was skipped")
        turns.started()
        XCTAssertNil(turns.next(), "every place taken")
        XCTAssertEqual(turns.waiting, 10 - ResumeTurns.places - 2)
    }

    /// Clients that wait and leave while every place is taken (browsers reconnecting in a loop)
    /// leave no lasting trace: the queue stays near the number still waiting, and the order of
    /// those does not change.
    func testClientsThatLeaveWhileEveryPlaceIsTakenDoNotGrowTheQueue() {
        var turns = ResumeTurns()
        for id in 1...ClientID(ResumeTurns.places) {
            turns.wait(id)
            _ = turns.next()
            turns.started()
        }
        turns.wait(1_000)
        for id in ClientID(2_000)..<12_000 {
            turns.wait(id)
            turns.leave(id)
        }
        turns.wait(1_001)
        XCTAssertLessThanOrEqual(turns.queueLength, 2 * turns.waiting + 17)
        XCTAssertEqual(turns.waiting, 2)
        turns.finished()
        XCTAssertEqual(turns.next(), 1_000)
        turns.started()
        turns.finished()
        XCTAssertEqual(turns.next(), 1_001)
    }
}
