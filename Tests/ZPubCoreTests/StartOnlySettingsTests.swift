import XCTest
import ZPubCore

final class StartOnlySettingsTests: XCTestCase {
    /// Compared with the start, not the last reload: a file that changes a start-only key and is
    /// then restored is warned about once, and the restore says nothing.
    func testAChangeThenARestoreWarnsOnceWithTheValuesInForce() {
        let started = BrokerConfiguration()
        let startOnly = StartOnlySettings(started)
        var changed = started
        changed.ioThreads = 4
        changed.historySequenceReserve = 5_000
        changed.historyQueueBytes = 1 << 20
        changed.stateDirectory = "/var/lib/elsewhere"
        changed.maxTopics = 5
        let (kept, warnings) = startOnly.keep(in: changed)
        XCTAssertEqual(kept.ioThreads, 1)
        XCTAssertEqual(kept.historySequenceReserve, 1 << 30)
        XCTAssertEqual(kept.historyQueueBytes, started.historyQueueBytes)
        XCTAssertNil(kept.stateDirectory)
        XCTAssertEqual(kept.maxTopics, 5, "a key a reload applies is the file's")
        XCTAssertEqual(warnings.count, 4, "\(warnings)")
        XCTAssertTrue(warnings[0].contains("libzmq keeps 1 I/O thread(s) until a restart, not 4"), warnings[0])
        XCTAssertTrue(warnings[1].contains("history stays in memory"), warnings[1])
        XCTAssertTrue(warnings[2].contains("keeps \(started.historyQueueBytes) bytes"), warnings[2])
        XCTAssertTrue(warnings[3].contains("keeps reserving 1073741824"), warnings[3])

        let restored = startOnly.keep(in: started)
        XCTAssertEqual(restored.configuration, started)
        XCTAssertEqual(restored.warnings, [])
    }

    /// The start's hold is over once zpubd runs: a reload that changes it says so, and CONFIG
    /// keeps what the start used.
    func testAChangedStartHoldIsKeptAndSaid() {
        let started = BrokerConfiguration()
        var changed = started
        changed.startHoldMilliseconds = 2_000
        let (kept, warnings) = StartOnlySettings(started).keep(in: changed)
        XCTAssertEqual(kept.startHoldMilliseconds, 500)
        XCTAssertEqual(warnings, ["start_hold_ms is read at start: 500 ms is in force until a restart, not 2000"])
    }

    /// Each [ha] change names its keys: a reload tells a warning once, and with one fixed text a
    /// second, different change (a new role after a new failover_ms) was taken for the first
    /// and said nothing (exit 0 from `zpub reload`).
    func testDifferentPairChangesAreToldApart() {
        var started = BrokerConfiguration()
        started.pair.role = .backup
        started.pair.bind = "tcp://127.0.0.1:5600"
        started.pair.peer = "tcp://127.0.0.1:5601"
        let startOnly = StartOnlySettings(started)
        var slower = started
        slower.pair.failoverMilliseconds = 5_000
        var promoted = slower
        promoted.pair.role = .primary
        let first = startOnly.keep(in: slower).warnings
        let second = startOnly.keep(in: promoted).warnings
        XCTAssertEqual(
            first,
            [
                "[ha] is read at start (failover_ms = 5000 changed): this broker keeps its role (backup) and its peer until a restart"
            ])
        XCTAssertEqual(second.count, 1)
        XCTAssertTrue(second[0].contains("role = \"primary\", failover_ms = 5000 changed"), second[0])
        XCTAssertNotEqual(first, second)
    }

    /// [ha] and [http]'s listen and enabled are kept too (the pair and the gateway are set up
    /// at start); a gateway that did not start takes the file's address at the next start.
    func testThePairAndTheGatewaysAddressAreKept() {
        var started = BrokerConfiguration()
        started.http.enabled = true
        started.http.listen = "127.0.0.1:8080"
        let startOnly = StartOnlySettings(started)
        var reloaded = started
        reloaded.pair.role = .primary
        reloaded.http.listen = "127.0.0.1:9090"
        reloaded.http.enabled = false
        let (kept, warnings) = startOnly.keep(in: reloaded)
        XCTAssertEqual(kept.pair, started.pair)
        XCTAssertEqual(kept.http.listen, "127.0.0.1:8080")
        XCTAssertTrue(kept.http.enabled)
        XCTAssertEqual(warnings.count, 3, "\(warnings)")
        XCTAssertTrue(warnings.contains { $0.contains("keeps its role (none)") }, "\(warnings)")
        XCTAssertTrue(warnings.contains { $0.contains("keeps listening on 127.0.0.1:8080") }, "\(warnings)")

        let off = StartOnlySettings(BrokerConfiguration())
        var on = BrokerConfiguration()
        on.http.enabled = true
        on.http.listen = "127.0.0.1:9090"
        let later = off.keep(in: on)
        XCTAssertFalse(later.configuration.http.enabled)
        XCTAssertEqual(later.configuration.http.listen, "127.0.0.1:9090")
        XCTAssertEqual(later.warnings, ["[http] enabled = true: the gateway starts at the next restart"])
    }

    /// History starts only with zpubd (its store and writer): prefixes a reload gives a broker
    /// started without a store are kept at none and said, so that CONFIG and `zpub reload`'s
    /// exit status tell the truth; with a store open (last values persisting) they apply.
    func testHistoryPrefixesWithoutAStoreAreKeptAtNone() {
        let started = BrokerConfiguration()
        var reloaded = started
        reloaded.historyPrefixes = ["orders."]
        let (kept, warnings) = StartOnlySettings(started).keep(in: reloaded)
        XCTAssertEqual(kept.historyPrefixes, [])
        XCTAssertEqual(warnings.count, 1, "\(warnings)")
        XCTAssertTrue(warnings[0].contains("nothing is kept until a restart"), warnings[0])

        var persisting = started
        persisting.stateDirectory = "/var/lib/zpub"
        persisting.lastValuePrefixes = ["state."]
        var withHistory = persisting
        withHistory.historyPrefixes = ["orders."]
        let open = StartOnlySettings(persisting).keep(in: withHistory)
        XCTAssertEqual(open.configuration.historyPrefixes, ["orders."], "the store is open: applied")
        XCTAssertEqual(open.warnings, [])

        var pair = started
        pair.pair.role = .backup
        pair.pair.bind = "tcp://127.0.0.1:5600"
        pair.pair.peer = "tcp://127.0.0.1:5601"
        var pairWithHistory = pair
        pairWithHistory.historyPrefixes = ["orders."]
        let member = StartOnlySettings(pair).keep(in: pairWithHistory).warnings
        XCTAssertEqual(member.count, 1, "not also told as applied to its own messages: \(member)")
        XCTAssertTrue(member[0].contains("started without history"), member[0])
    }

    /// Last values persist through the store, opened at start only: a reload that names
    /// [last_value] prefixes to a broker started with a state directory but no store caches
    /// them and says they are not kept across restarts yet; `zpub reload` said "reloaded", and
    /// the values were gone after the next restart (an audit). With the store open, nothing
    /// is said.
    func testLastValuePrefixesWithoutAStoreAreCachedButToldNotPersisted() {
        var started = BrokerConfiguration()
        started.stateDirectory = "/var/lib/zpub"
        var reloaded = started
        reloaded.lastValuePrefixes = ["state."]
        let (kept, warnings) = StartOnlySettings(started).keep(in: reloaded)
        XCTAssertEqual(kept.lastValuePrefixes, ["state."], "cached from now on")
        XCTAssertEqual(warnings.count, 1, "\(warnings)")
        XCTAssertTrue(warnings[0].contains("kept across restarts only after a restart"), warnings[0])
        XCTAssertEqual(StartOnlySettings(reloaded).keep(in: reloaded).warnings, [])
        var inMemory = BrokerConfiguration()
        inMemory.lastValuePrefixes = ["s."]
        XCTAssertEqual(
            StartOnlySettings(BrokerConfiguration()).keep(in: inMemory).warnings, [],
            "without a state directory nothing persists, and nothing is promised")
    }

    /// Whether a pair member keeps history (and mirrors its peer's) is set up with its link at
    /// start: a reload that empties [history] prefixes, or sets them where there were none,
    /// says so, though the prefixes themselves apply (its store open for last values that
    /// persist); other prefix changes say nothing.
    func testAPairMemberTurningHistoryOnOrOffIsWarned() {
        var started = BrokerConfiguration()
        started.stateDirectory = "/var/lib/zpub"
        started.lastValuePrefixes = ["state."]
        started.pair.role = .backup
        started.pair.bind = "tcp://127.0.0.1:5600"
        started.pair.peer = "tcp://127.0.0.1:5601"
        let none = StartOnlySettings(started)
        var keeping = started
        keeping.historyPrefixes = ["orders."]
        let turnedOn = none.keep(in: keeping)
        XCTAssertEqual(turnedOn.configuration.historyPrefixes, ["orders."], "applied to its own messages")
        XCTAssertEqual(turnedOn.warnings.count, 1, "\(turnedOn.warnings)")
        XCTAssertTrue(turnedOn.warnings[0].contains("mirrors nothing until a restart"), turnedOn.warnings[0])

        let some = StartOnlySettings(keeping)
        XCTAssertTrue(some.keep(in: started).warnings.first?.contains("goes on asking its peer") == true)
        var other = keeping
        other.historyPrefixes = ["jobs."]
        XCTAssertEqual(some.keep(in: other).warnings, [], "prefixes that change, kept on")
        var single = keeping
        single.pair.role = nil
        XCTAssertFalse(
            StartOnlySettings(single).keep(in: BrokerConfiguration()).warnings.contains { $0.contains("pair member") })
    }
}
