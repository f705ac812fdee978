import XCTest
import ZPubCore

@testable import ZPubGateway

/// A client's prefix that the control protocol cannot carry exactly ("a\n" reaches the broker
/// as "a") is asked for wider, as the longest start of it that travels, and what comes back is
/// filtered by the client's own prefixes (`ResumeScope.carried`, `HistoryReplay`).
final class CarriedPrefixTests: XCTestCase {
    private let travelling: [[UInt8]] = [
        "", "a", "state.", "a b", "a\n b", "a\tb", "\na", "é", "a\u{301}", "日本.", "a ",
        // Carried since 2026-12-08: the prefix is everything after the one space before it.
        " a", "  ", "\ta",
    ].map { Array($0.utf8) }

    private let notTravelling: [[UInt8]] =
        ["a\n", "a\r\n", "a\r", "a\u{2028}", "\u{301}a", "\u{200D}a"].map { Array($0.utf8) }
        + [[0xFF], [0x61, 0xC3], [0x61, 0x62, 0xFF, 0x63], [0x09, 0x61, 0xFF]]

    /// The prefix each of SNAPSHOT, REPLAY and HISTORY passes to the broker when a request
    /// carries `prefix` as its last argument, parsed as the control socket parses it (nil when
    /// the request is refused).
    private func asReceived(_ prefix: [UInt8]) -> [[UInt8]?] {
        func parse(_ start: String) -> ControlRequest? {
            try? ControlRequest.parse(Array(start.utf8) + prefix, maxSize: 1 << 20).get()
        }
        let history = parse("HISTORY since 5 until 9 ").flatMap { HistoryQuery.parse($0.argument) }
        return [
            parse("SNAPSHOT t ")?.snapshotArguments?.prefix,
            parse("REPLAY t 5 ")?.replayArguments?.prefix,
            history?.through == 9 ? history?.prefix : nil,
        ]
    }

    /// The predicate agrees with the control socket's own parsers: what it lets through arrives
    /// unchanged; what it holds back would arrive as another prefix, or be refused.
    func testWhatTravelsExactlyIsWhatTheBrokerReadsBack() {
        for prefix in travelling {
            XCTAssertTrue(ResumeScope.travelsExactly(prefix), "\(prefix)")
            XCTAssertEqual(asReceived(prefix), [prefix, prefix, prefix], "\(prefix)")
        }
        for prefix in notTravelling {
            XCTAssertFalse(ResumeScope.travelsExactly(prefix), "\(prefix)")
            XCTAssertFalse(asReceived(prefix).contains(prefix), "\(prefix) arrives as itself: \(asReceived(prefix))")
        }
    }

    /// The longest start of a prefix that travels: a leading combining mark leaves the empty
    /// prefix (everything), trailing newlines and bytes from the first that is not
    /// UTF-8 are cut.
    func testAPrefixIsCarriedAsItsLongestStartThatTravels() {
        func carried(_ prefix: [UInt8]) -> String { String(decoding: ResumeScope.carried(prefix), as: UTF8.self) }
        XCTAssertEqual(carried(Array(" a".utf8)), " a")
        XCTAssertEqual(carried(Array("\ta".utf8)), "\ta")
        XCTAssertEqual(carried(Array("\u{301}a".utf8)), "")
        XCTAssertEqual(carried(Array("a\r\n".utf8)), "a")
        XCTAssertEqual(carried(Array("a\n\n".utf8)), "a")
        XCTAssertEqual(carried(Array("a\nb\n".utf8)), "a\nb")
        XCTAssertEqual(carried([0x61, 0x62, 0xFF, 0x63]), "ab")
        XCTAssertEqual(carried([0x61, 0xC3]), "a")
        XCTAssertEqual(carried(Array("state.".utf8)), "state.")
        for prefix in travelling + notTravelling {
            let longest = (0...prefix.count).last { ResumeScope.travelsExactly(Array(prefix.prefix($0))) }!
            XCTAssertEqual(ResumeScope.carried(prefix), Array(prefix.prefix(longest)), "\(prefix)")
        }
    }

    /// A SNAPSHOT for a client of "\u{301}a" asks for everything (the client gets only its own
    /// values: `BrokerLink` filters what it delivers by the client's prefixes); one for " a"
    /// asks for " a" itself.
    func testASnapshotAsksForWhatTravels() {
        XCTAssertEqual(ResumeScope.snapshotPrefix(for: [Array("\u{301}a".utf8)], cached: nil), [])
        XCTAssertEqual(ResumeScope.snapshotPrefix(for: [Array(" a".utf8)], cached: nil), Array(" a".utf8))
        XCTAssertEqual(
            ResumeScope.snapshotPrefix(for: [Array(" a".utf8)], cached: [Array(" ".utf8)]), Array(" a".utf8))
        XCTAssertEqual(
            ResumeScope.snapshotPrefix(for: [Array("x.a\n".utf8)], cached: [Array("x.".utf8)]), Array("x.a".utf8))
    }

    private func message(_ topic: String, _ sequence: UInt64) -> MessageJSON {
        MessageJSON(frames: [Array(topic.utf8), Array("x".utf8)], style: .exact, seq: sequence)
    }

    /// A replay for "\u{301}a." (a combining mark first: it cannot follow the separating space as
    /// itself) reads under the empty prefix, once for it and "\u{301}b." together, and
    /// keeps only theirs: its bound counts the client's own messages, so others read with them
    /// cannot push them into the gap.
    func testAReplayReadsWiderAndKeepsOnlyTheClientsMessages() {
        var replay = HistoryReplay(
            after: 0, wanted: [Array("\u{301}a.".utf8), Array("\u{301}b.".utf8)], kept: [[]], limit: 2)
        XCTAssertEqual(replay.replayArguments.prefix, [], "\"\u{301}a.\" and \"\u{301}b.\" read once, under everything")
        let messages = [
            message("a.x", 1), message("\u{301}a.x", 2), message("b.", 3), message("\u{301}b.y", 4), message("a.z", 5),
            message("\u{301}a.z", 6), message("a.w", 7),
        ]
        let reply = ControlReply.replay(
            ReplayReply(
                token: "t", through: 7, prefixes: [""], asked: [],
                history: HistoryReply(
                    firstSequence: 1, lastSequence: 7, through: 7, messages: messages, more: false, gap: nil)))
        XCTAssertEqual(replay.take(reply), .done)
        XCTAssertEqual(replay.entries.map(\.sequence), [4, 6], "the newest 2 of the client's own")
        XCTAssertEqual(replay.gap, HistoryReply.Gap(from: 2, to: 2), "its older one is told, no other")
        XCTAssertEqual(replay.covering, ["\u{301}a.", "\u{301}b."])
    }
}
