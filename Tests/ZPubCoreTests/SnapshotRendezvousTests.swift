import XCTest
import ZPubCore

/// The broker side of the snapshot handshake, in memory: the orders in which a SNAPSHOT
/// request and its marker subscription can reach the forwarding loop.
final class SnapshotRendezvousTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000

    func testRequestFirstIsServedWhenItsMarkerArrives() {
        var rendezvous = SnapshotRendezvous<String>()
        XCTAssertNil(rendezvous.requested(token: "a", "request a", nowNanoseconds: 0))
        XCTAssertNil(rendezvous.markerSubscribed(token: "b"), "another client's marker serves nothing")
        XCTAssertEqual(rendezvous.markerSubscribed(token: "a"), "request a")
        XCTAssertEqual(rendezvous.waitingCount, 0)
    }

    func testMarkerBeforeRequestServesTheRequestAtOnce() {
        var rendezvous = SnapshotRendezvous<String>()
        XCTAssertNil(rendezvous.markerSubscribed(token: "a"))
        XCTAssertEqual(rendezvous.requested(token: "a", "request a", nowNanoseconds: 0), "request a")
        XCTAssertEqual(rendezvous.waitingCount, 0)
    }

    /// The loop's stop hands back every request still waiting (each is answered "stopping"
    /// then, not at its timeout), and forgets the markers that came early.
    func testRemoveAllReturnsEveryWaitingRequestOnce() {
        var rendezvous = SnapshotRendezvous<String>()
        _ = rendezvous.requested(token: "a", "request a", nowNanoseconds: 0)
        _ = rendezvous.requested(token: "b", "request b", nowNanoseconds: 0)
        _ = rendezvous.markerSubscribed(token: "c")
        XCTAssertEqual(rendezvous.removeAll(), ["request a", "request b"])
        XCTAssertEqual(rendezvous.waitingCount, 0)
        XCTAssertEqual(rendezvous.removeAll(), [])
        XCTAssertNil(rendezvous.requested(token: "c", "request c", nowNanoseconds: 0), "c's early marker is gone")
    }

    func testAMarkerUnsubscribedBeforeItsRequestIsForgotten() {
        var rendezvous = SnapshotRendezvous<String>()
        _ = rendezvous.markerSubscribed(token: "a")
        rendezvous.markerUnsubscribed(token: "a")
        XCTAssertNil(rendezvous.requested(token: "a", "request a", nowNanoseconds: 0), "waits for a new marker")
    }

    func testARequestWhoseMarkerNeverComesExpires() {
        var rendezvous = SnapshotRendezvous<String>()
        _ = rendezvous.requested(token: "a", "request a", nowNanoseconds: 0)
        _ = rendezvous.requested(token: "b", "request b", nowNanoseconds: 3 * second)
        XCTAssertEqual(rendezvous.expire(nowNanoseconds: 5 * second), [], "5 s, the control's wait, is not past yet")
        XCTAssertEqual(rendezvous.expire(nowNanoseconds: 5 * second + 1), ["request a"])
        XCTAssertNil(rendezvous.markerSubscribed(token: "a"), "a late marker no longer serves it")
        XCTAssertEqual(rendezvous.markerSubscribed(token: "b"), "request b")
    }

    func testBothSidesAreBounded() {
        var rendezvous = SnapshotRendezvous<Int>()
        let capacity = SnapshotRendezvous<Int>.capacity
        for i in 0...capacity { _ = rendezvous.requested(token: "r\(i)", i, nowNanoseconds: 0) }
        XCTAssertEqual(rendezvous.waitingCount, capacity)
        XCTAssertNil(rendezvous.markerSubscribed(token: "r0"), "the oldest request went first")
        XCTAssertEqual(rendezvous.markerSubscribed(token: "r1"), 1)

        for i in 0...capacity { _ = rendezvous.markerSubscribed(token: "m\(i)") }
        XCTAssertNil(rendezvous.requested(token: "m0", -1, nowNanoseconds: 0), "the oldest marker was forgotten")
        XCTAssertEqual(rendezvous.requested(token: "m1", -2, nowNanoseconds: 0), -2)
    }
}
