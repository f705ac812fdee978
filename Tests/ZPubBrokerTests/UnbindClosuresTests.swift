import XCTest
import ZPubCore

@testable import ZPubBroker

/// The connections an unbind ends without a disconnect event (`UnbindClosures`), on descriptors
/// the test says are open or closed.
final class UnbindClosuresTests: XCTestCase {
    private typealias Socket = SubscriberConnections.Socket

    func testTheUnboundEndpointsClosedConnectionsAreCountedOutOnce() {
        var sockets: [Int32: Socket] = [
            7: .init(device: 1, inode: 70), 8: .init(device: 1, inode: 80), 9: .init(device: 1, inode: 90),
        ]
        var closures = UnbindClosures()
        closures.accepted(descriptor: 7, role: .xpub, endpoint: "tcp://127.0.0.1:5556", socket: { sockets[$0] })
        closures.accepted(descriptor: 8, role: .xpub, endpoint: "tcp://127.0.0.1:5556", socket: { sockets[$0] })
        closures.accepted(descriptor: 9, role: .xpub, endpoint: "tcp://127.0.0.1:6666", socket: { sockets[$0] })
        XCTAssertEqual(closures.closedByUnbind(now: 0, socket: { sockets[$0] }), [], "nothing unbound")

        closures.unbound(["tcp://127.0.0.1:5556"], role: .xpub, now: 1_000)
        // libzmq closes them a moment after the unbind: 7 now, 8 reused by another socket.
        sockets[7] = nil
        XCTAssertEqual(
            closures.closedByUnbind(now: 2_000, socket: { sockets[$0] }), [.init(descriptor: 7, role: .xpub)])
        sockets[8] = .init(device: 1, inode: 81)
        sockets[9] = nil  // closed too, but on an endpoint still bound: its disconnect event counts
        XCTAssertEqual(
            closures.closedByUnbind(now: 3_000, socket: { sockets[$0] }), [.init(descriptor: 8, role: .xpub)])
        XCTAssertEqual(closures.closedByUnbind(now: 4_000, socket: { sockets[$0] }), [], "each once")

        XCTAssertFalse(closures.expectsDisconnect(descriptor: 7), "counted out already")
        XCTAssertTrue(closures.expectsDisconnect(descriptor: 7), "a later connection's")
        XCTAssertTrue(closures.expectsDisconnect(descriptor: 9))
        // A new connection on a counted-out descriptor: its disconnect counts.
        closures.accepted(descriptor: 8, role: .xpub, endpoint: "tcp://127.0.0.1:6666", socket: { sockets[$0] })
        XCTAssertTrue(closures.expectsDisconnect(descriptor: 8))
    }

    /// After the loop took events as counts, what is open is not known: nothing is counted out.
    func testASummaryForgetsTheConnections() {
        var sockets: [Int32: Socket] = [7: .init(device: 1, inode: 70)]
        var closures = UnbindClosures()
        closures.accepted(descriptor: 7, role: .pull, endpoint: "ipc:///tmp/p", socket: { sockets[$0] })
        closures.summarized()
        closures.unbound(["ipc:///tmp/p"], role: .pull, now: 0)
        sockets[7] = nil
        XCTAssertEqual(closures.closedByUnbind(now: 1, socket: { sockets[$0] }), [])
    }

    /// An unbind's connections are looked for a few seconds, then no more.
    func testTheWatchEnds() {
        var sockets: [Int32: Socket] = [7: .init(device: 1, inode: 70)]
        var closures = UnbindClosures()
        closures.accepted(descriptor: 7, role: .xsub, endpoint: "tcp://127.0.0.1:5558", socket: { sockets[$0] })
        closures.unbound(["tcp://127.0.0.1:5558"], role: .xsub, now: 0)
        XCTAssertEqual(closures.closedByUnbind(now: UnbindClosures.watchNanoseconds, socket: { sockets[$0] }), [])
        sockets[7] = nil
        XCTAssertEqual(closures.closedByUnbind(now: UnbindClosures.watchNanoseconds + 1, socket: { sockets[$0] }), [])
    }
}
