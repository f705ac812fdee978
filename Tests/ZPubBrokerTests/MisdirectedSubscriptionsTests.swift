import Glibc
import XCTest
import ZPubCore

@testable import ZPubBroker

/// What is held back after a message on the XPUB that is no subscription, and whom it drops
/// (`MisdirectedSubscriptions`).
final class MisdirectedSubscriptionsTests: XCTestCase {
    private typealias Identity = SubscriberConnections.Identity

    private func connection(_ descriptor: Int32, inode: UInt64) -> Identity {
        Identity(descriptor: descriptor, device: 1, inode: inode, metadata: UInt(descriptor) * 64)
    }

    private func actions(_ change: SubscriptionActions.Change, lastValue: Bool = false) -> SubscriptionActions {
        var actions = SubscriptionActions()
        actions.apply = change
        actions.forwardUpstream = true
        if lastValue { actions.lastValue = [Array("t".utf8)] }
        return actions
    }

    private func withhold(
        _ window: inout MisdirectedSubscriptions, _ actions: SubscriptionActions, _ frame: String,
        from connection: Identity?, closed: Bool = false
    ) -> SubscriptionActions {
        let bytes = [frame.first == "-" ? 0 : 1] + Array(frame.dropFirst().utf8)
        return bytes.withUnsafeBytes { window.withhold(actions, frame: $0, from: connection, closed: closed) }
    }

    func testFromTheMessageUntilReadDryNothingIsAppliedAndThoseSubscribersAreDropped() {
        var window = MisdirectedSubscriptions()
        XCTAssertFalse(window.isOpen)
        window.notASubscription()
        XCTAssertTrue(window.isOpen)

        // A connection's subscription: counted and forwarded, neither applied nor given a value.
        var subscribed = actions(.subscribe, lastValue: true)
        subscribed.marker = .subscribed(token: "t")
        let held = withhold(&window, subscribed, "+a", from: connection(8, inode: 80))
        XCTAssertNil(held.apply)
        XCTAssertNil(held.lastValue)
        XCTAssertNil(held.marker, "its marker is taken when the new connection brings it")
        XCTAssertTrue(held.forwardUpstream, "the counting stands")
        // A closed connection's: nothing applied, nobody to drop.
        XCTAssertNil(withhold(&window, actions(.unsubscribe), "-b", from: connection(9, inode: 90), closed: true).apply)
        // A frame that applies nothing (a retry, a refusal): its connection is not dropped.
        _ = withhold(&window, SubscriptionActions(), "+$zpub/retry", from: connection(10, inode: 100))
        // Frames without a connection: the gateway's subscription is held for its next frame,
        // an unsubscription (libzmq's for a connection gone, or the gateway's) is not applied.
        XCTAssertNil(withhold(&window, actions(.subscribe), "+g", from: nil).apply)
        XCTAssertNil(withhold(&window, actions(.unsubscribe), "-h", from: nil).apply)
        XCTAssertEqual(window.inProcessHeld, [Array("g".utf8)])
        // A subscription of the sender's (it is one of the peers): its connection goes too.
        _ = withhold(&window, actions(.subscribe), "+s", from: connection(7, inode: 70))

        XCTAssertEqual(Set(window.readDry().map(\.descriptor)), [7, 8])
        XCTAssertFalse(window.isOpen)
        XCTAssertTrue(window.readDry().isEmpty, "each window once")
        XCTAssertEqual(window.takeInProcessHeld(), [Array("g".utf8)], "kept past the window, for the gateway")
        XCTAssertEqual(window.inProcessHeld, [])
    }

    /// The sender itself is not dropped: known by its descriptor only, which may be another
    /// connection's by then (it sent and closed while the loop was behind).
    func testTheSenderAloneDropsNobody() {
        var window = MisdirectedSubscriptions()
        window.notASubscription()
        XCTAssertTrue(window.isOpen)
        XCTAssertEqual(window.readDry().count, 0)
    }

    /// A connection is dropped only while its descriptor still shows its socket: a descriptor
    /// that went to another connection is left alone.
    func testOnlyASubscribersConnectionItsDescriptorStillShowsIsDropped() throws {
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        defer {
            close(pair[0])
            close(pair[1])
        }
        var info = stat()
        XCTAssertEqual(fstat(pair[0], &info), 0)
        let shown = SubscriberConnections.Socket(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        let current: (Int32) -> SubscriberConnections.Socket? = { $0 == pair[0] ? shown : nil }
        let subscriber: (Int32, SubscriberConnections.Socket) -> Bool = { $0 == pair[0] && $1 == shown }
        let other = Identity(descriptor: pair[0], device: shown.device, inode: shown.inode &+ 1, metadata: 1)
        XCTAssertFalse(MisdirectedSubscriptions.drop(other, current: current, isSubscriber: subscriber))
        let itself = Identity(descriptor: pair[0], device: shown.device, inode: shown.inode, metadata: 1)
        // Its descriptor shows it, but no accept event of the XPUB named it (a producer's, say).
        XCTAssertFalse(MisdirectedSubscriptions.drop(itself, current: current, isSubscriber: { _, _ in false }))
        var byte: UInt8 = 1
        XCTAssertEqual(write(pair[1], &byte, 1), 1, "still open")
        XCTAssertTrue(MisdirectedSubscriptions.drop(itself, current: current, isSubscriber: subscriber))
        // Shut down: the peer reads the end of the stream once the byte is read.
        XCTAssertEqual(read(pair[0], &byte, 1), 1)
        XCTAssertEqual(read(pair[1], &byte, 1), 0, "the peer sees the connection end")
    }
}
