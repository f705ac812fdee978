import XCTest
import ZPubCore

final class PairLinkWatchTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000

    /// Heartbeats every quarter of a 1 s failover, one way or both, for `seconds`.
    private func watch(seconds: UInt64, onBind: Bool, onConnection: Bool) -> PairLinkWatch {
        var watch = PairLinkWatch(failoverMilliseconds: 1_000, nowNanoseconds: 0)
        var now: UInt64 = 0
        while now <= seconds * second {
            if onBind { watch.peerHeardOnBind(nowNanoseconds: now) }
            if onConnection { watch.peerHeardOnConnection(nowNanoseconds: now) }
            now += second / 4
        }
        return watch
    }

    func testHeartbeatsBothWaysAreNoProblem() {
        let both = watch(seconds: 10, onBind: true, onConnection: true)
        XCTAssertNil(both.problem(nowNanoseconds: 10 * second, bind: "b", peer: "p"))
    }

    func testAPeerHeardOnlyOnTheBindIsTold() throws {
        let oneWay = watch(seconds: 10, onBind: true, onConnection: false)
        let problem = try XCTUnwrap(oneWay.problem(nowNanoseconds: 10 * second, bind: "tcp://b", peer: "tcp://p"))
        XCTAssertEqual(problem.kind, PairProblem.oneWayLink)
        XCTAssertTrue(problem.message.contains("its connection to [ha] peer (tcp://p) gets no answer"), problem.message)
        XCTAssertFalse(problem.affectsServing)
    }

    func testAPeerHeardOnlyOnTheConnectionIsTold() throws {
        let oneWay = watch(seconds: 10, onBind: false, onConnection: true)
        let problem = try XCTUnwrap(oneWay.problem(nowNanoseconds: 10 * second, bind: "tcp://b", peer: "tcp://p"))
        XCTAssertTrue(
            problem.message.contains("sends none of its own to this broker's bind (tcp://b)"), problem.message)
    }

    /// The first heartbeat one way, before the first the other way: not yet a problem; the
    /// other way silent for twice the failover time since the start is one.
    func testAMomentsDifferenceIsNoProblem() {
        var watch = PairLinkWatch(failoverMilliseconds: 1_000, nowNanoseconds: 0)
        watch.peerHeardOnBind(nowNanoseconds: second / 2)
        XCTAssertNil(watch.problem(nowNanoseconds: second, bind: "b", peer: "p"))
        // Heartbeats every quarter second one way only: a problem once the other way has been
        // silent for twice the failover time since the first.
        for quarter in UInt64(2)...10 { watch.peerHeardOnBind(nowNanoseconds: quarter * second / 4) }
        XCTAssertNil(watch.problem(nowNanoseconds: 2 * second + second / 4, bind: "b", peer: "p"))
        watch.peerHeardOnBind(nowNanoseconds: 2 * second + second / 2)
        XCTAssertNotNil(watch.problem(nowNanoseconds: 2 * second + second / 2 + second / 10, bind: "b", peer: "p"))
    }

    /// A peer heard again long after the start, or after a silence (its restart, the pair
    /// forming late), or after this broker's own stall: the first heartbeat one way comes up to
    /// a heartbeat before the first the other way, and is no problem.
    func testAPeerHeardAgainAfterASilenceIsNoProblemAtFirst() {
        var late = PairLinkWatch(failoverMilliseconds: 1_000, nowNanoseconds: 0)
        late.peerHeardOnBind(nowNanoseconds: 10 * second)
        XCTAssertNil(late.problem(nowNanoseconds: 10 * second + second / 4, bind: "b", peer: "p"))
        late.peerHeardOnConnection(nowNanoseconds: 10 * second + second / 4)
        XCTAssertNil(late.problem(nowNanoseconds: 12 * second, bind: "b", peer: "p"))

        var restarted = watch(seconds: 10, onBind: true, onConnection: true)
        restarted.peerHeardOnConnection(nowNanoseconds: 20 * second)
        XCTAssertNil(restarted.problem(nowNanoseconds: 20 * second + second / 4, bind: "b", peer: "p"))
        // Still one way only (every quarter second), twice the failover time after it was heard
        // again: a problem.
        for quarter in UInt64(81)...88 { restarted.peerHeardOnConnection(nowNanoseconds: quarter * second / 4) }
        XCTAssertNotNil(restarted.problem(nowNanoseconds: 22 * second + second / 10, bind: "b", peer: "p"))

        var stalled = watch(seconds: 10, onBind: true, onConnection: true)
        stalled.noteOwnStall(nowNanoseconds: 15 * second)
        stalled.peerHeardOnBind(nowNanoseconds: 15 * second)
        XCTAssertNil(stalled.problem(nowNanoseconds: 15 * second + second / 4, bind: "b", peer: "p"))
    }

    /// A peer silent both ways is the silent peer's problem, not the link's.
    func testAPeerSilentBothWaysIsNoLinkProblem() {
        let watch = watch(seconds: 10, onBind: true, onConnection: true)
        XCTAssertNil(watch.problem(nowNanoseconds: 20 * second, bind: "b", peer: "p"))
    }
}
