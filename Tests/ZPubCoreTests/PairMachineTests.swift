import XCTest

@testable import ZPubCore

/// Binary Star's rules as zpubd applies them (docs/topologies.md, "A pair").
final class PairMachineTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000

    private func machine(_ role: PairSettings.Role) -> PairMachine {
        PairMachine(role: role, failoverMilliseconds: 2_000, nowNanoseconds: 0)
    }

    func testTwoBrokersStartingTogetherMakeThePrimaryActiveAndTheBackupPassive() {
        var primary = machine(.primary)
        var backup = machine(.backup)
        XCTAssertNil(backup.peerSaid(.waiting, nowNanoseconds: second / 10), "the backup waits for the primary")
        XCTAssertEqual(primary.peerSaid(.waiting, nowNanoseconds: second / 10)?.to, .active)
        XCTAssertEqual(backup.peerSaid(primary.state, nowNanoseconds: second / 5)?.to, .passive)
        XCTAssertNil(primary.peerSaid(backup.state, nowNanoseconds: second / 4))
        XCTAssertEqual([primary.state, backup.state], [.active, .passive])
    }

    func testAPrimaryAloneStartsActiveAfterTheFailoverTimeButABackupAloneWaitsForClients() {
        var primary = machine(.primary)
        XCTAssertNil(primary.tick(nowNanoseconds: second, clientsConnected: false))
        XCTAssertEqual(primary.tick(nowNanoseconds: 2 * second, clientsConnected: false)?.to, .active)
        var backup = machine(.backup)
        XCTAssertNil(backup.tick(nowNanoseconds: 10 * second, clientsConnected: false))
        XCTAssertEqual(backup.tick(nowNanoseconds: 10 * second, clientsConnected: true)?.to, .active)
    }

    /// Clients counted before the primary fell silent decide nothing: a partition just before
    /// its last heartbeat may not have cut them from the count yet (the loop's late answer to
    /// an earlier question, 2026-12-03 review). A count taken since does.
    func testOnlyAClientCountTakenOnceThePeerIsSilentIsFresh() {
        var backup = machine(.backup)
        _ = backup.peerSaid(.active, nowNanoseconds: second)
        XCTAssertFalse(backup.countIsFresh(countedAtNanoseconds: 0))
        XCTAssertFalse(backup.countIsFresh(countedAtNanoseconds: 3 * second - 1), "before the peer counts as silent")
        XCTAssertTrue(backup.countIsFresh(countedAtNanoseconds: 3 * second))
        _ = backup.peerSaid(.active, nowNanoseconds: 4 * second)
        XCTAssertFalse(backup.countIsFresh(countedAtNanoseconds: 3 * second), "heard again since")
        let never = machine(.backup)
        XCTAssertTrue(never.countIsFresh(countedAtNanoseconds: 2 * second), "never heard: silent since its start")
    }

    /// The split-brain rule: a passive backup takes over only when the primary is silent *and*
    /// clients are connected to it.
    func testAPassiveBackupTakesOverOnlyWhenThePrimaryIsSilentAndClientsAreConnected() {
        var backup = machine(.backup)
        _ = backup.peerSaid(.active, nowNanoseconds: second)
        XCTAssertEqual(backup.state, .passive)
        XCTAssertNil(backup.tick(nowNanoseconds: 2 * second, clientsConnected: true), "heard 1 s ago")
        XCTAssertNil(backup.tick(nowNanoseconds: 3 * second + 1, clientsConnected: false), "a partition: no clients")
        let takeover = backup.tick(nowNanoseconds: 3 * second + 1, clientsConnected: true)
        XCTAssertEqual(takeover?.to, .active)
        XCTAssertTrue(takeover?.reason.contains("silent") ?? false)
    }

    /// A peer that says it stops (its goodbye, after its hand-over) is silent at once: the
    /// backup takes over with clients counted since, without waiting `failover`. Heard again
    /// (a new run), it is not.
    func testAPeerThatSaysItStopsIsSilentAtOnce() {
        var backup = machine(.backup)
        _ = backup.peerSaid(.active, nowNanoseconds: second)
        backup.peerStopped(nowNanoseconds: second + 10)
        XCTAssertTrue(backup.peerIsSilent(nowNanoseconds: second + 10))
        XCTAssertFalse(backup.countIsFresh(countedAtNanoseconds: second + 9), "counted before the goodbye")
        XCTAssertNil(
            backup.tick(nowNanoseconds: second + 20, clientsConnected: false), "still no takeover without clients")
        let takeover = backup.tick(nowNanoseconds: second + 20, clientsConnected: true)
        XCTAssertEqual(takeover?.to, .active)
        XCTAssertTrue(takeover?.reason.contains("said it stops") ?? false)

        var again = machine(.backup)
        _ = again.peerSaid(.active, nowNanoseconds: second)
        again.peerStopped(nowNanoseconds: second + 10)
        _ = again.peerSaid(.waiting, nowNanoseconds: second + 20)
        XCTAssertFalse(again.peerIsSilent(nowNanoseconds: second + 30), "a new run was heard")
    }

    /// A backup that was itself stopped (SIGSTOP, a starved machine) past the failover time
    /// does not take the primary's silence over that time for a dead primary: the heartbeats
    /// sent meanwhile may still be on their way in. Its silence counts from the resume.
    func testABackupThatWasStoppedItselfCountsThePeersSilenceFromItsResume() {
        var backup = machine(.backup)
        _ = backup.peerSaid(.waiting, nowNanoseconds: 0)
        _ = backup.peerSaid(.active, nowNanoseconds: second)
        XCTAssertEqual(backup.state, .passive)
        // Stopped from 1 s to 5 s; it runs again at 5 s.
        backup.noteOwnStall(nowNanoseconds: 5 * second)
        XCTAssertFalse(backup.peerIsSilent(nowNanoseconds: 5 * second))
        XCTAssertNil(backup.tick(nowNanoseconds: 5 * second, clientsConnected: true), "no takeover on resuming")
        XCTAssertFalse(backup.countIsFresh(countedAtNanoseconds: 5 * second))
        _ = backup.peerSaid(.active, nowNanoseconds: 5 * second + second / 10)
        XCTAssertEqual(backup.state, .passive)
        // A primary silent for the failover time after the resume is silent.
        XCTAssertEqual(backup.tick(nowNanoseconds: 8 * second, clientsConnected: true)?.to, .active)
    }

    func testARecoveredPrimaryRejoinsAsPassiveAndTakesOverAgainLater() {
        var primary = machine(.primary)
        XCTAssertEqual(primary.peerSaid(.active, nowNanoseconds: second / 2)?.to, .passive, "the backup is active")
        XCTAssertNil(primary.tick(nowNanoseconds: 2 * second, clientsConnected: true))
        XCTAssertEqual(primary.tick(nowNanoseconds: 3 * second, clientsConnected: true)?.to, .active)
    }

    func testWhenBothAreActiveTheBackupYieldsAndAPassivePeerRestartingIsCovered() {
        var backup = machine(.backup)
        _ = backup.tick(nowNanoseconds: 3 * second, clientsConnected: true)
        XCTAssertEqual(backup.state, .active)
        XCTAssertEqual(backup.peerSaid(.active, nowNanoseconds: 4 * second)?.to, .passive)
        var primary = machine(.primary)
        _ = primary.tick(nowNanoseconds: 3 * second, clientsConnected: false)
        XCTAssertNil(primary.peerSaid(.active, nowNanoseconds: 4 * second), "the primary keeps the role")
        var passive = machine(.backup)
        _ = passive.peerSaid(.active, nowNanoseconds: second)
        XCTAssertEqual(passive.peerSaid(.waiting, nowNanoseconds: 2 * second)?.to, .active, "the peer restarted")
    }

    /// A primary restarting beside a passive backup waits for the backup to take over and then
    /// joins as passive: were it to take over as well, both would be active at once.
    func testARestartingPrimaryLetsThePassiveBackupLead() {
        var restarted = machine(.primary)
        XCTAssertNil(restarted.peerSaid(.passive, nowNanoseconds: second / 10))
        var backup = machine(.backup)
        _ = backup.peerSaid(.active, nowNanoseconds: 0)
        XCTAssertEqual(backup.peerSaid(restarted.state, nowNanoseconds: second / 5)?.to, .active)
        XCTAssertEqual(restarted.peerSaid(backup.state, nowNanoseconds: second / 4)?.to, .passive)
        XCTAssertNil(restarted.tick(nowNanoseconds: second / 2, clientsConnected: true), "heard the peer just now")
    }

    func testPairSettingsAreReadAndChecked() throws {
        let pair = try ConfigurationFile.parse(
            """
            [ha]
            role = "backup"
            bind = "tcp://10.0.0.2:5600"
            peer = "tcp://10.0.0.1:5600"
            failover_ms = 3000
            """
        ).get().pair
        XCTAssertEqual(pair.role, .backup)
        XCTAssertEqual(pair.heartbeatMilliseconds, 750)
        guard case .failure(let failure) = ConfigurationFile.parse("[ha]\nrole = \"leader\"\nbind = \"10.0.0.1\"\n")
        else { return XCTFail("accepted") }
        let found = failure.problems.map(\.description)
        XCTAssertTrue(found.contains { $0.hasPrefix("line 2:") && $0.contains("primary") }, "\(found)")
        guard case .failure(let missing) = ConfigurationFile.parse("[ha]\nrole = \"primary\"\nbind = \"tcp://a:1\"\n")
        else { return XCTFail("accepted") }
        XCTAssertEqual(
            missing.problems.map(\.description),
            [
                "line 2: [ha] needs peer (or --ha-peer): the other broker's pair endpoint, e.g. \"tcp://10.0.0.2:5600\""
            ], "at the role's line, where [ha] is")
        guard case .failure(let noBind) = ConfigurationFile.parse("[ha]\nrole = \"primary\"\npeer = \"tcp://a:1\"\n")
        else { return XCTFail("accepted") }
        XCTAssertEqual(
            noBind.problems.map(\.description),
            ["line 2: [ha] needs bind (or --ha-bind): this broker's own pair endpoint, e.g. \"tcp://10.0.0.1:5600\""])
    }

    /// What would start and then fail at a takeover, or never do what it says, is refused at
    /// start with the line: the pair's endpoint shared with a producers' endpoint, a wildcard
    /// the pair cannot use, [ha] keys without a role.
    func testPairSettingsThatCannotWorkAreRefusedWithTheirLine() {
        func problems(_ text: String) -> [String] {
            guard case .failure(let failure) = ConfigurationFile.parse(text) else { return [] }
            return failure.problems.map(\.description)
        }
        let shared = problems(
            "[endpoints]\npull = \"tcp://*:5555\"\n[ha]\nrole = \"primary\"\nbind = \"tcp://*:5555\"\npeer = \"tcp://b:5600\"\n"
        )
        XCTAssertTrue(shared.contains { $0.hasPrefix("line 5:") && $0.contains("also the pull endpoint") }, "\(shared)")
        let wildPeer = problems("[ha]\nrole = \"backup\"\nbind = \"tcp://*:5600\"\npeer = \"tcp://*:5600\"\n")
        XCTAssertTrue(
            wildPeer.contains { $0.hasPrefix("line 4:") && $0.contains("must name the other broker's host") },
            "\(wildPeer)")
        let wildPort = problems("[ha]\nrole = \"backup\"\nbind = \"tcp://*:*\"\npeer = \"tcp://a:5600\"\n")
        XCTAssertTrue(wildPort.contains { $0.hasPrefix("line 3:") && $0.contains("needs a fixed port") }, "\(wildPort)")
        let noRole = problems("[ha]\nfailover_ms = 3000\n")
        XCTAssertTrue(noRole.contains { $0.hasPrefix("line 2:") && $0.contains("no role") }, "\(noRole)")
        let keyNoRole = problems("[ha]\npeer_public_key_file = \"/etc/zpub/peer.public\"\n")
        XCTAssertTrue(keyNoRole.contains { $0.hasPrefix("line 2:") && $0.contains("no role") }, "\(keyNoRole)")
    }
}
