import XCTest
import ZPubCore

@testable import ZPubBroker

/// The connections an unbind ends without a disconnect event (`UnbindClosures`), on descriptors
/// the test says are open or closed.
final class UnbindClosuresTests: XCTestCase {
    private typealias Socket = SubscriberConnections.Socket

    func testTheUnboundEndpointsConnectionsAreCountedOutOnceClosed() {
        var sockets: [Int32: Socket] = [
            7: .init(device: 1, inode: 70), 8: .init(device: 1, inode: 80), 9: .init(device: 1, inode: 90),
        ]
        var closures = UnbindClosures()
        let socket: (Int32) -> Socket? = { sockets[$0] }
        closures.accepted(descriptor: 7, role: .xpub, endpoint: "tcp://127.0.0.1:5556", socket: socket)
        closures.accepted(descriptor: 8, role: .xpub, endpoint: "tcp://127.0.0.1:5556", socket: socket)
        closures.accepted(descriptor: 9, role: .xpub, endpoint: "tcp://127.0.0.1:6666", socket: socket)
        XCTAssertEqual(closures.closedByUnbind(now: 0, socket: { sockets[$0] }), [], "nothing unbound")

        closures.unbound(["tcp://127.0.0.1:5556"], role: .xpub)
        // libzmq closes them after the unbind: 7 now, 8 (its queue sent) later, on another socket.
        sockets[7] = nil
        XCTAssertEqual(
            closures.closedByUnbind(now: 2_000, socket: { sockets[$0] }), [.init(descriptor: 7, role: .xpub)])
        sockets[8] = .init(device: 1, inode: 81)
        sockets[9] = nil  // closed too, but on an endpoint still bound: its disconnect event counts
        XCTAssertEqual(
            closures.closedByUnbind(now: 60_000_000_000, socket: { sockets[$0] }), [.init(descriptor: 8, role: .xpub)])
        XCTAssertEqual(closures.closedByUnbind(now: 60_000_000_001, socket: { sockets[$0] }), [], "each once")

        XCTAssertFalse(closures.expectsDisconnect(descriptor: 8, role: .xpub), "counted out already")
        XCTAssertTrue(closures.expectsDisconnect(descriptor: 8, role: .xpub), "a later connection's")
        XCTAssertTrue(closures.expectsDisconnect(descriptor: 9, role: .xpub))
        // 7 was counted out long ago: a disconnect for it now is another connection's.
        XCTAssertTrue(closures.expectsDisconnect(descriptor: 7, role: .xpub))
    }

    /// Each socket's monitor reports its own connections: a descriptor counted out for one role
    /// does not swallow another role's disconnect, and a connect on it clears it.
    func testRolesAreApartAndAConnectClearsACountedOutDescriptor() {
        var sockets: [Int32: Socket] = [7: .init(device: 1, inode: 70)]
        var closures = UnbindClosures()
        closures.accepted(descriptor: 7, role: .xpub, endpoint: "ipc:///tmp/x", socket: { sockets[$0] })
        closures.unbound(["ipc:///tmp/x"], role: .xpub)
        sockets[7] = nil
        XCTAssertEqual(closures.closedByUnbind(now: 1, socket: { sockets[$0] }).count, 1)
        XCTAssertTrue(closures.expectsDisconnect(descriptor: 7, role: .xsub), "another socket's connection")
        closures.connected(descriptor: 7, role: .xpub)
        XCTAssertTrue(closures.expectsDisconnect(descriptor: 7, role: .xpub), "the connect's own")
    }

    /// After the loop took events as counts, what is open is not known: nothing is counted out.
    func testASummaryForgetsTheConnections() {
        var sockets: [Int32: Socket] = [7: .init(device: 1, inode: 70)]
        var closures = UnbindClosures()
        closures.accepted(descriptor: 7, role: .pull, endpoint: "ipc:///tmp/p", socket: { sockets[$0] })
        closures.summarized()
        closures.unbound(["ipc:///tmp/p"], role: .pull)
        sockets[7] = nil
        XCTAssertEqual(closures.closedByUnbind(now: 1, socket: { sockets[$0] }), [])
    }
}
