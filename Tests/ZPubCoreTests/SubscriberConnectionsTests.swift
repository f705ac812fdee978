import XCTest
import ZPubCore

/// Counting subscribers, not frames: a connection's repeats and its unsubscriptions from
/// prefixes it does not hold change no count; closed connections' records go.
final class SubscriberConnectionsTests: XCTestCase {
    private typealias Identity = SubscriberConnections.Identity

    private func connection(_ descriptor: Int32, inode: UInt64 = 1, metadata: UInt = 0x1000) -> Identity {
        Identity(descriptor: descriptor, device: 9, inode: inode, metadata: metadata)
    }

    private func handle(_ state: inout BrokerState, _ kind: UInt8, _ prefix: String, from source: Identity?)
        -> SubscriptionActions
    {
        ([kind] + Array(prefix.utf8)).withUnsafeBytes {
            state.handleSubscriptionFrame($0, from: source, nowMilliseconds: 1_000)
        }
    }

    func testARepeatedSubscriptionIsAppliedButCountedOnce() {
        var state = BrokerState(configuration: BrokerConfiguration())
        let peer = connection(7)
        XCTAssertTrue(handle(&state, 1, "news.", from: peer).forwardUpstream)
        let repeated = handle(&state, 1, "news.", from: peer)
        XCTAssertEqual(repeated.apply, .subscribe, "libzmq keeps a set: applying again changes nothing there")
        XCTAssertFalse(repeated.forwardUpstream)
        XCTAssertEqual(state.subscriptions.count(of: Array("news.".utf8)), 1)
        // A SUB unsubscribes once after two subscribes: that one frame ends the subscription.
        let last = handle(&state, 0, "news.", from: peer)
        XCTAssertTrue(last.forwardUpstream, "nobody wants news. any more")
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 0)
        XCTAssertEqual(state.repeatedSubscriptions, 1)
        XCTAssertEqual(state.subscriptions.subscribeEvents, 2, "both frames were seen")
    }

    func testAnUnsubscriptionFromAPrefixNotHeldLeavesOthersCounts() {
        var state = BrokerState(configuration: BrokerConfiguration())
        _ = handle(&state, 1, "orders.", from: connection(7))
        _ = handle(&state, 1, "$zpub/seq/", from: connection(7))
        XCTAssertEqual(state.sequenceMarkerSubscriptions, 1)
        for prefix in ["orders.", "$zpub/seq/"] {
            let stray = handle(&state, 0, prefix, from: connection(8))
            XCTAssertFalse(stray.forwardUpstream, "the last unsubscription must not go upstream: 7 still wants it")
        }
        XCTAssertEqual(state.subscriptions.count(of: Array("orders.".utf8)), 1)
        XCTAssertEqual(state.sequenceMarkerSubscriptions, 1, "sequence markers still go to 7")
        XCTAssertEqual(state.unheldUnsubscriptions, 2)
    }

    func testARefusedSubscriptionsUnsubscriptionCountsForNothing() {
        var configuration = BrokerConfiguration()
        configuration.maxSubscriptions = 1
        var state = BrokerState(configuration: configuration)
        _ = handle(&state, 1, "a", from: connection(7))
        XCTAssertNotNil(handle(&state, 1, "b", from: connection(8)).refusal)
        _ = handle(&state, 0, "a", from: connection(7))
        XCTAssertTrue(handle(&state, 1, "b", from: connection(9)).forwardUpstream, "room again: 9 gets b")
        XCTAssertFalse(handle(&state, 0, "b", from: connection(8)).forwardUpstream, "8's b was refused")
        XCTAssertEqual(state.subscriptions.count(of: Array("b".utf8)), 1)
    }

    /// libzmq sends an unsubscription, without a connection, for each subscription it kept for
    /// a connection that closed, refused ones included: those count down nobody.
    func testTheUnsubscriptionLibzmqSendsForARefusedSubscriptionCountsDownNobody() {
        var configuration = BrokerConfiguration()
        configuration.maxSubscriptions = 1
        var state = BrokerState(configuration: configuration)
        _ = handle(&state, 1, "a", from: connection(7))
        XCTAssertNotNil(handle(&state, 1, "b", from: connection(8)).refusal)
        XCTAssertEqual(state.subscriberConnections.refusedPendingCount, 1)
        _ = handle(&state, 0, "a", from: connection(7))
        XCTAssertTrue(handle(&state, 1, "b", from: connection(9)).forwardUpstream, "room again: 9 gets b")
        // 8 closes.
        XCTAssertFalse(handle(&state, 0, "b", from: nil).forwardUpstream, "9 still wants b")
        XCTAssertEqual(state.subscriptions.count(of: Array("b".utf8)), 1)
        XCTAssertEqual(state.subscriberConnections.refusedPendingCount, 0)
        // 9 closes.
        XCTAssertTrue(handle(&state, 0, "b", from: nil).forwardUpstream)
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 0)
    }

    /// A refused prefix that its connection gets later (room again), or unsubscribes from,
    /// leaves no anonymous unsubscription to expect: libzmq keeps one record per connection.
    func testARefusedPrefixTakenLaterOrUnsubscribedLeavesNothingToAbsorb() {
        var configuration = BrokerConfiguration()
        configuration.maxSubscriptions = 1
        var state = BrokerState(configuration: configuration)
        _ = handle(&state, 1, "a", from: connection(7))
        XCTAssertNotNil(handle(&state, 1, "b", from: connection(8)).refusal)
        XCTAssertNotNil(handle(&state, 1, "c", from: connection(8)).refusal)
        XCTAssertNotNil(handle(&state, 1, "c", from: connection(8)).refusal, "again: libzmq keeps it once")
        XCTAssertEqual(state.subscriberConnections.refusedPendingCount, 2)
        _ = handle(&state, 0, "c", from: connection(8))
        XCTAssertEqual(state.subscriberConnections.refusedPendingCount, 1)
        _ = handle(&state, 0, "a", from: connection(7))
        XCTAssertTrue(handle(&state, 1, "b", from: connection(8)).forwardUpstream)
        XCTAssertEqual(state.subscriberConnections.refusedPendingCount, 0)
        // 8 closes: its one unsubscription for b counts.
        XCTAssertTrue(handle(&state, 0, "b", from: nil).forwardUpstream)
    }

    /// A frame read after its connection's descriptor closed is still that connection's,
    /// found by its metadata.
    func testAConnectionIsFoundByItsMetadataOnceItsDescriptorClosed() {
        var state = BrokerState(configuration: BrokerConfiguration())
        _ = handle(&state, 1, "x", from: connection(7, metadata: 0x2000))
        XCTAssertEqual(
            state.subscriberConnections.recorded(descriptor: 7, metadata: 0x2000), connection(7, metadata: 0x2000))
        XCTAssertNil(state.subscriberConnections.recorded(descriptor: 7, metadata: 0x3000))
        // One whose frames were all read after it closed: a placeholder that drops no other's.
        let closed = Identity(descriptor: 7, device: 0, inode: 0, metadata: 0x3000)
        _ = handle(&state, 1, "y", from: closed)
        XCTAssertFalse(handle(&state, 1, "y", from: closed).forwardUpstream, "a repeat")
        XCTAssertEqual(state.subscriptions.count(of: Array("y".utf8)), 1)
        XCTAssertNotNil(state.subscriberConnections.recorded(descriptor: 7, metadata: 0x2000))
        XCTAssertFalse(handle(&state, 0, "z", from: closed).forwardUpstream, "never held: counts for nothing")
    }

    func testFramesWithoutAConnectionAreCountedOneByOne() {
        var state = BrokerState(configuration: BrokerConfiguration())
        _ = handle(&state, 1, "x", from: nil)
        _ = handle(&state, 1, "x", from: nil)
        XCTAssertEqual(state.subscriptions.count(of: Array("x".utf8)), 2)
        // libzmq's unsubscriptions for a closed connection carry no metadata: they count.
        _ = handle(&state, 1, "x", from: connection(7))
        XCTAssertEqual(state.subscriptions.count(of: Array("x".utf8)), 3)
        _ = handle(&state, 0, "x", from: nil)
        XCTAssertEqual(state.subscriptions.count(of: Array("x".utf8)), 2)
    }

    func testConnectionsAreToldApartByInodeAndMetadata() {
        var state = BrokerState(configuration: BrokerConfiguration())
        _ = handle(&state, 1, "x", from: connection(7, inode: 1))
        // The descriptor number went to a new connection: its subscription is its own.
        XCTAssertFalse(handle(&state, 1, "x", from: connection(7, inode: 2)).forwardUpstream)
        XCTAssertEqual(state.subscriptions.count(of: Array("x".utf8)), 2)
        // The descriptor's earlier socket is closed: its record stays a while for late frames.
        XCTAssertEqual(state.subscriberConnections.count, 2)
        XCTAssertTrue(state.subscriberConnections.hasClosed)
        let none: (Int32) -> SubscriberConnections.Socket? = { _ in .init(device: 9, inode: 2) }
        state.subscriberConnections.forgetClosed(current: none, nowMilliseconds: 5_000)
        XCTAssertEqual(state.subscriberConnections.count, 2)
        state.subscriberConnections.forgetClosed(
            current: none, nowMilliseconds: 5_000 + SubscriberConnections.lateFrameMilliseconds)
        XCTAssertEqual(state.subscriberConnections.count, 1, "forgotten once it had time for its late frames")
        XCTAssertFalse(state.subscriberConnections.hasClosed)
        // While frames keep coming (never read dry), kept longer, but not for good.
        _ = handle(&state, 1, "y", from: connection(9, inode: 5))
        let closed: (Int32) -> SubscriberConnections.Socket? = { _ in nil }
        state.subscriberConnections.closed(descriptor: 9, current: closed, nowMilliseconds: 20_000)
        state.subscriberConnections.forgetClosed(
            current: closed, nowMilliseconds: 20_000 + SubscriberConnections.lateFrameMilliseconds, readDry: false)
        XCTAssertEqual(state.subscriberConnections.count, 2, "not read dry: its late frames may still come")
        state.subscriberConnections.forgetClosed(
            current: closed, nowMilliseconds: 20_000 + SubscriberConnections.lateFrameMaximumMilliseconds,
            readDry: false)
        XCTAssertEqual(state.subscriberConnections.count, 1)
        // Frames a closed connection left queued, read once its descriptor shows a new socket.
        _ = handle(&state, 1, "x", from: connection(7, inode: 2, metadata: 0x2000))
        XCTAssertEqual(state.subscriptions.count(of: Array("x".utf8)), 3, "not a repeat of the new connection")
    }

    func testClosedConnectionsAreForgottenOnceTheirDescriptorShowsAnotherSocket() {
        var connections = SubscriberConnections()
        connections.subscribed(1, connection(7, inode: 1))
        connections.subscribed(2, connection(8, inode: 5))
        var sockets: [Int32: SubscriberConnections.Socket] = [
            7: .init(device: 9, inode: 1), 8: .init(device: 9, inode: 5),
        ]
        // libzmq reports the close before it closes the descriptor.
        connections.closed(descriptor: 7, current: { sockets[$0] }, nowMilliseconds: 10_000)
        XCTAssertEqual(connections.count, 2)
        XCTAssertEqual(connections.closing, [7])
        sockets[7] = nil
        // Seen closed now: kept a while for its late frames.
        connections.forgetClosed(current: { sockets[$0] }, nowMilliseconds: 11_000)
        XCTAssertEqual(connections.count, 2)
        connections.forgetClosed(
            current: { sockets[$0] }, nowMilliseconds: 11_000 + SubscriberConnections.lateFrameMilliseconds - 1)
        XCTAssertEqual(connections.count, 2)
        connections.forgetClosed(
            current: { sockets[$0] }, nowMilliseconds: 11_000 + SubscriberConnections.lateFrameMilliseconds)
        XCTAssertEqual(connections.count, 1)
        XCTAssertEqual(connections.closing, [])
        XCTAssertFalse(connections.holds(1, connection(7, inode: 1)))
        XCTAssertTrue(connections.holds(2, connection(8, inode: 5)))
        // Reported after the descriptor was reused: the new connection's record stays.
        connections.subscribed(3, connection(7, inode: 6))
        sockets[7] = .init(device: 9, inode: 6)
        connections.closed(descriptor: 7, current: { sockets[$0] }, nowMilliseconds: 20_000)
        XCTAssertTrue(connections.holds(3, connection(7, inode: 6)))
    }

    /// One peer that connects, subscribes and closes over and over gets the same descriptor
    /// each time (the kernel gives the lowest free number), and the closed connections are
    /// kept a while for their late frames. Each was looked through at every new connection and
    /// every close on the descriptor, and at every frame: R reconnections a second cost R²
    /// looks on the forwarding loop. Now each connection is looked at a few times in all.
    func testAPeerThatReconnectsOverAndOverCostsLookupsInProportion() {
        var connections = SubscriberConnections()
        var sockets: [Int32: SubscriberConnections.Socket] = [:]
        let cycles = 20_000
        for cycle in 1...cycles {
            let identity = connection(7, inode: UInt64(cycle), metadata: UInt(0x1000 + cycle))
            sockets[7] = .init(device: 9, inode: UInt64(cycle))
            XCTAssertNil(connections.recorded(descriptor: 7, metadata: identity.metadata))
            connections.subscribed(1, identity)
            XCTAssertEqual(connections.recorded(descriptor: 7, metadata: identity.metadata), identity)
            // libzmq reports the close before it closes the descriptor.
            connections.closed(descriptor: 7, current: { sockets[$0] }, nowMilliseconds: 1_000)
        }
        XCTAssertEqual(connections.count, cycles, "all kept for their late frames")
        XCTAssertLessThanOrEqual(connections.connectionsLookedAt, 3 * cycles)
        // A late frame of the first connection is still its own.
        XCTAssertEqual(
            connections.recorded(descriptor: 7, metadata: 0x1001), connection(7, inode: 1, metadata: 0x1001))
        sockets[7] = nil
        connections.forgetClosed(current: { sockets[$0] }, nowMilliseconds: 1_000)
        connections.forgetClosed(
            current: { sockets[$0] }, nowMilliseconds: 1_000 + SubscriberConnections.lateFrameMilliseconds)
        XCTAssertEqual(connections.count, 0)
        XCTAssertFalse(connections.hasClosed)
        XCTAssertNil(connections.recorded(descriptor: 7, metadata: 0x1001))
        XCTAssertEqual(connections.takeForgotten().count, cycles)
    }

    /// A connection whose metadata lies where a closed one's lay (the closed one unpinned, its
    /// frames all read, its memory given to the new one's): a frame with it is the new one's.
    /// The oldest was taken, and the new connection's subscriptions went to the closed one.
    func testTwoConnectionsWithTheSameMetadataAddressGiveItToTheNewest() {
        var connections = SubscriberConnections()
        let old = connection(7, inode: 1, metadata: 0x4000)
        let new = connection(7, inode: 2, metadata: 0x4000)
        connections.subscribed(1, old)
        connections.subscribed(2, new)
        XCTAssertEqual(connections.recorded(descriptor: 7, metadata: 0x4000), new)
        XCTAssertFalse(connections.holds(2, old))
    }

    /// A close handled before the connection's late frames are read finds no records to keep;
    /// the records the late frames then make are those of a closed connection all the same,
    /// and go in time (they stayed, with their pin, until the descriptor was reused).
    func testRecordsMadeAfterTheCloseWasHandledGoInTime() {
        var state = BrokerState(configuration: BrokerConfiguration())
        let none: (Int32) -> SubscriberConnections.Socket? = { _ in nil }
        state.subscriberConnections.closed(descriptor: 5, current: none, nowMilliseconds: 1_000)
        XCTAssertFalse(state.subscriberConnections.hasClosed, "nothing recorded yet")
        let late = Identity(descriptor: 5, device: 0, inode: 0, metadata: 0x5000)
        _ = handle(&state, 1, "x", from: late)
        XCTAssertEqual(state.subscriberConnections.count, 1)
        XCTAssertTrue(state.subscriberConnections.hasClosed)
        state.subscriberConnections.forgetClosed(current: none, nowMilliseconds: 2_000)
        state.subscriberConnections.forgetClosed(
            current: none, nowMilliseconds: 2_000 + SubscriberConnections.lateFrameMilliseconds)
        XCTAssertEqual(state.subscriberConnections.count, 0)
        XCTAssertFalse(state.subscriberConnections.hasClosed)
    }

    /// libzmq reads frames ahead: a connection's subscription and its unsubscription can both
    /// be read after its close was reported (its descriptor closed by then). The record kept
    /// for such late frames makes the unsubscription count the subscription down. Forgotten at
    /// the close, it left the subscription counted for good: libzmq sends no unsubscription
    /// for a prefix whose unsubscription it had read.
    func testAClosedConnectionsLateUnsubscriptionCountsDownItsLateSubscription() {
        var state = BrokerState(configuration: BrokerConfiguration())
        let sockets: [Int32: SubscriberConnections.Socket] = [:]
        // The descriptor was closed when the frames were read: the loop names the connection by
        // its descriptor and metadata, with no socket (`ForwardingLoop.subscriberConnection`).
        func late() -> Identity {
            state.subscriberConnections.recorded(descriptor: 7, metadata: 0x3000)
                ?? Identity(descriptor: 7, device: 0, inode: 0, metadata: 0x3000)
        }
        let subscribe = ([1] + Array("p.1".utf8)).withUnsafeBytes {
            state.handleSubscriptionFrame($0, from: late(), connectionClosed: true, nowMilliseconds: 1_000)
        }
        XCTAssertTrue(subscribe.forwardUpstream)
        state.subscriberConnections.closed(descriptor: 7, current: { sockets[$0] }, nowMilliseconds: 50_000)
        let unsubscribe = ([0] + Array("p.1".utf8)).withUnsafeBytes {
            state.handleSubscriptionFrame($0, from: late(), connectionClosed: true, nowMilliseconds: 1_000)
        }
        XCTAssertTrue(unsubscribe.forwardUpstream, "the last subscriber of p.1 is gone")
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 0)
        XCTAssertEqual(state.unheldUnsubscriptions, 0)
        XCTAssertEqual(state.subscriberConnections.count, 0, "its record went with its last prefix")
    }

    private func state(maxSubscriptions: Int, maxLength: Int = 64) -> BrokerState {
        var configuration = BrokerConfiguration()
        configuration.maxSubscriptions = maxSubscriptions
        configuration.maxSubscriptionLength = maxLength
        return BrokerState(configuration: configuration)
    }

    /// A subscription refused for a full table waits: libzmq lets zpubd apply a prefix only to
    /// the connection whose frame was read last, so it is admitted at that connection's next
    /// frame once the table has room (a downstream zpubd sends `$zpub/retry` every second),
    /// in the order refused, as far as the room goes. Before, it was never admitted.
    func testARefusedSubscriptionIsAdmittedAtItsConnectionsNextFrameOnceThereIsRoom() {
        var state = state(maxSubscriptions: 2)
        _ = handle(&state, 1, "a", from: connection(7))
        _ = handle(&state, 1, "x", from: connection(9))
        XCTAssertNotNil(handle(&state, 1, "b", from: connection(8)).refusal)
        XCTAssertNotNil(handle(&state, 1, "c", from: connection(8)).refusal)
        XCTAssertNil(handle(&state, 1, "a", from: connection(8)).refusal, "7 holds a already: no room needed")
        XCTAssertEqual(state.subscriberConnections.waitingCount, 2)
        // What the table's total has of 8: a, not the two refused (the over-the-total drop
        // held those as leaving, and let a subscriber past the limit in: a review).
        XCTAssertEqual(state.subscriberConnections.recordCount(of: connection(8)), 3)
        XCTAssertEqual(state.subscriberConnections.heldCount(of: connection(8)), 1)
        let full = handle(&state, 1, "$zpub/retry", from: connection(8))
        XCTAssertEqual(full.admitted, [], "no room yet")
        _ = handle(&state, 0, "x", from: connection(9))
        // Room for one: the first refused goes in, at 8's next frame (not at 9's).
        let retry = handle(&state, 1, "$zpub/retry", from: connection(8))
        XCTAssertNil(retry.apply, "the retry frame subscribes to nothing")
        XCTAssertEqual(retry.admitted, [.init(prefix: Array("b".utf8), forwardUpstream: true)])
        XCTAssertEqual(state.subscriptions.count(of: Array("b".utf8)), 1)
        XCTAssertEqual(state.subscriberConnections.heldCount(of: connection(8)), 2, "b is held now")
        XCTAssertEqual(state.subscriberConnections.waitingCount, 1)
        XCTAssertEqual(state.admittedSubscriptions, 1)
        XCTAssertEqual(state.subscriptions.subscribeEvents, 5, "the retries are no subscription events")
        XCTAssertEqual(state.subscriptions.refusedTableFull, 2, "counted once, when refused")
        // Room again once neither holds a; any frame of 8's will do: its unsubscription from a.
        _ = handle(&state, 0, "a", from: connection(7))
        let next = handle(&state, 0, "a", from: connection(8))
        XCTAssertEqual(next.admitted, [.init(prefix: Array("c".utf8), forwardUpstream: true)])
        XCTAssertEqual(state.subscriberConnections.waitingCount, 0)
        // 8 closes: libzmq's unsubscriptions for b and c (no connection) count them down.
        XCTAssertTrue(handle(&state, 0, "b", from: nil).forwardUpstream)
        XCTAssertTrue(handle(&state, 0, "c", from: nil).forwardUpstream)
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 0)
        XCTAssertEqual(state.subscriberConnections.refusedPendingCount, 0)
    }

    /// A waiting subscription whose prefix the full table comes to hold (another subscriber's)
    /// needs no room: it is admitted at its connection's next frame, also behind one that
    /// still needs room, within `heldLookAhead` of the list. It waited for as long as the
    /// table stayed full (an audit: a downstream broker got nothing of a prefix the upstream
    /// forwarded to others).
    func testAWaitingPrefixTheFullTableHoldsIsAdmittedWithoutRoom() {
        var state = state(maxSubscriptions: 4)
        func names(_ admitted: [SubscriptionActions.Admission]) -> [String] {
            admitted.map { String(decoding: $0.prefix, as: UTF8.self) }
        }
        for prefix in ["a", "b", "d", "x"] { _ = handle(&state, 1, prefix, from: connection(7)) }
        let refused = ["n", "c"] + (0..<20).map { "q\($0)" }
        for prefix in refused { XCTAssertNotNil(handle(&state, 1, prefix, from: connection(8)).refusal, prefix) }
        XCTAssertEqual(state.subscriberConnections.waitingCount, 22)
        // 7 takes c for b and q19 for x: still full, and both now held.
        for (gone, taken) in [("b", "c"), ("x", "q19")] {
            _ = handle(&state, 0, gone, from: connection(7))
            _ = handle(&state, 1, taken, from: connection(7))
        }
        XCTAssertEqual(state.subscriptions.prefixCount, 4)
        let retry = handle(&state, 1, "$zpub/retry", from: connection(8))
        XCTAssertEqual(names(retry.admitted), ["c"], "n needs room; q19, 21st, is past the 16 looked at after n")
        XCTAssertEqual(retry.admitted.first?.forwardUpstream, false, "held already")
        XCTAssertEqual(state.subscriptions.count(of: Array("c".utf8)), 2)
        XCTAssertEqual(
            state.subscriberConnections.waiting(for: connection(8))?.map { String(decoding: $0.prefix, as: UTF8.self) },
            ["n"] + (0..<20).map { "q\($0)" }, "the rest, in the order refused")
        XCTAssertEqual(handle(&state, 1, "$zpub/retry", from: connection(8)).admitted, [], "nothing more in reach")
        // 7 takes q5 for a, then lets d go: room for one. n goes in first; past q0, which
        // needs room again, the look goes on to q5.
        _ = handle(&state, 0, "a", from: connection(7))
        _ = handle(&state, 1, "q5", from: connection(7))
        _ = handle(&state, 0, "d", from: connection(7))
        let next = handle(&state, 1, "$zpub/retry", from: connection(8))
        XCTAssertEqual(names(next.admitted), ["n", "q5"])
        XCTAssertEqual(next.admitted.map(\.forwardUpstream), [true, false])
        XCTAssertEqual(state.subscriberConnections.waitingCount, 19)
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 6, "c and q5 twice, q19, n")
    }

    /// What never waits: a prefix too long (no room makes it shorter), the broker's own
    /// prefixes, and refused subscriptions of a connection that unsubscribed or closed.
    func testOnlyAFullTablesRefusalsOfAConnectionStillThereWait() {
        var state = state(maxSubscriptions: 1, maxLength: 12)
        _ = handle(&state, 1, "a", from: connection(7))
        XCTAssertNotNil(handle(&state, 1, "toolongprefix", from: connection(8)).refusal)
        XCTAssertNotNil(handle(&state, 1, "$zpub/seq/", from: connection(8)).refusal)
        XCTAssertEqual(state.subscriberConnections.waitingCount, 0)
        XCTAssertNotNil(handle(&state, 1, "b", from: connection(8)).refusal)
        XCTAssertNotNil(handle(&state, 1, "c", from: connection(8)).refusal)
        XCTAssertEqual(state.subscriberConnections.waitingCount, 2)
        _ = handle(&state, 0, "b", from: connection(8))
        XCTAssertEqual(state.subscriberConnections.waitingCount, 1, "8 no longer wants b")
        // A retry from a connection without metadata (in-process) or one never refused: nothing.
        _ = handle(&state, 0, "a", from: connection(7))
        XCTAssertEqual(handle(&state, 1, "$zpub/retry", from: nil).admitted, [])
        XCTAssertEqual(handle(&state, 1, "$zpub/retry", from: connection(9)).admitted, [])
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 0, "retries are never counted")
        // 8 closes before it sends another frame: its waiting subscription goes with it.
        state.subscriberConnections.closed(descriptor: 8, current: { _ in nil }, nowMilliseconds: 1_000)
        state.subscriberConnections.forgetClosed(
            current: { _ in nil }, nowMilliseconds: 1_000 + SubscriberConnections.lateFrameMilliseconds)
        XCTAssertEqual(state.subscriberConnections.waitingCount, 0)
    }

    /// A waiting prefix that a reload made too long is let go, not left to block the others;
    /// many are admitted in one frame, as far as the room goes.
    func testAdmissionLetsGoOfWhatCanNeverFitAndTakesManyAtOnce() {
        var state = state(maxSubscriptions: 1, maxLength: 8)
        _ = handle(&state, 1, "a", from: connection(7))
        XCTAssertNotNil(handle(&state, 1, "longlong", from: connection(8)).refusal)
        for index in 0..<5_000 { _ = handle(&state, 1, "p\(index)", from: connection(8)) }
        XCTAssertEqual(state.subscriberConnections.waitingCount, 5_001)
        state.subscriptions.maxPrefixLength = 6
        state.subscriptions.maxPrefixes = 4_000
        let admitted = handle(&state, 1, "$zpub/retry", from: connection(8)).admitted
        XCTAssertEqual(admitted.count, 3_999, "the room there was")
        XCTAssertEqual(admitted.first?.prefix, Array("p0".utf8), "in the order refused, the long one let go")
        XCTAssertEqual(state.subscriberConnections.waitingCount, 5_000 - 3_999)
        state.subscriptions.maxPrefixes = 10_000
        XCTAssertEqual(handle(&state, 1, "$zpub/retry", from: connection(8)).admitted.count, 1_001)
        XCTAssertEqual(state.subscriberConnections.waitingCount, 0)
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 5_001)
    }

    /// Bounded: beyond `maxWaiting` refused subscriptions are still refused and tracked for
    /// their unsubscriptions, but none more waits.
    func testWaitingSubscriptionsAreBounded() {
        var state = state(maxSubscriptions: 1)
        _ = handle(&state, 1, "a", from: connection(7))
        for index in 0...SubscriberConnections.maxWaiting {
            _ = handle(&state, 1, "p\(index)", from: connection(8))
        }
        XCTAssertEqual(state.subscriberConnections.waitingCount, SubscriberConnections.maxWaiting)
        XCTAssertEqual(state.subscriberConnections.refusedPendingCount, SubscriberConnections.maxWaiting + 1)
    }

    /// At the bounds the places are shared fairly: a connection with fewer waiting takes the
    /// newest place of the one with the most, until both hold as many. Before, the first
    /// connection refused 10,000 times kept every other connection's refusals from waiting.
    func testOneConnectionCannotTakeEveryWaitingPlace() {
        let limit = SubscriberConnections.maxWaiting
        var state = state(maxSubscriptions: 1)
        _ = handle(&state, 1, "a", from: connection(7))
        for index in 0..<limit { _ = handle(&state, 1, "p\(index)", from: connection(8)) }
        for index in 0..<limit { _ = handle(&state, 1, "q\(index)", from: connection(9)) }
        XCTAssertEqual(state.subscriberConnections.waitingCount, limit)
        XCTAssertEqual(state.subscriberConnections.waiting(for: connection(8))?.count, limit / 2)
        XCTAssertEqual(state.subscriberConnections.waiting(for: connection(9))?.count, limit / 2)
        XCTAssertEqual(state.subscriberConnections.waitingGivenUp, UInt64(limit / 2))
        XCTAssertEqual(state.statsSnapshot(uptimeSeconds: 0).subscriptions.waitingGivenUp, UInt64(limit / 2))
        // 8 kept its oldest, in order; 9 its first refused.
        XCTAssertEqual(
            state.subscriberConnections.waiting(for: connection(8))?.last?.prefix, Array("p\(limit / 2 - 1)".utf8))
        XCTAssertEqual(state.subscriberConnections.waiting(for: connection(9))?.first?.prefix, Array("q0".utf8))
        // A third connection gets a place; once all are even, a newcomer's refusals take none.
        _ = handle(&state, 1, "r0", from: connection(10))
        XCTAssertEqual(state.subscriberConnections.waiting(for: connection(10))?.count, 1)
        XCTAssertEqual(state.subscriberConnections.waitingCount, limit)
        // Room for two: 9's oldest are admitted at its next frame.
        state.subscriptions.maxPrefixes = 3
        let admitted = handle(&state, 1, "$zpub/retry", from: connection(9)).admitted.map(\.prefix)
        XCTAssertEqual(admitted, [Array("q0".utf8), Array("q1".utf8)])
    }

    /// When every connection holds one place, a newcomer takes none (and finds that out
    /// without looking through them all at each refusal); the bytes are shared fairly too.
    func testEvenSharesAreKeptAndTheBytesBoundIsSharedToo() {
        let limit = SubscriberConnections.maxWaiting
        var state = state(maxSubscriptions: 1, maxLength: 1_000)
        _ = handle(&state, 1, "a", from: connection(7))
        for descriptor in 0..<Int32(limit) { _ = handle(&state, 1, "p", from: connection(100 + descriptor)) }
        XCTAssertEqual(state.subscriberConnections.waitingCount, limit)
        for index in 0..<1_000 { _ = handle(&state, 1, "q\(index)", from: connection(50)) }
        XCTAssertNil(state.subscriberConnections.waiting(for: connection(50)))
        XCTAssertEqual(state.subscriberConnections.waitingGivenUp, 0)

        var bytes = self.state(maxSubscriptions: 1, maxLength: 1_000)
        _ = handle(&bytes, 1, "a", from: connection(7))
        let long = { (tag: String, index: Int) in tag + String(repeating: "x", count: 900) + "\(index)" }
        for index in 0..<5_000 { _ = handle(&bytes, 1, long("p", index), from: connection(8)) }
        let fitting = bytes.subscriberConnections.waitingCount
        XCTAssertLessThan(fitting, 5_000, "4 MiB holds fewer than 5,000 prefixes of 900 bytes")
        for index in 0..<5_000 { _ = handle(&bytes, 1, long("q", index), from: connection(9)) }
        let eight = bytes.subscriberConnections.waiting(for: connection(8))?.count ?? 0
        let nine = bytes.subscriberConnections.waiting(for: connection(9))?.count ?? 0
        XCTAssertLessThanOrEqual(abs(eight - nine), 1, "\(eight) and \(nine)")
        XCTAssertGreaterThanOrEqual(eight + nine, fitting - 1)
    }

    /// At the bytes bound a long prefix may take several short ones' places, up to
    /// `maxPlacesTakenAtOnce`; when that is not enough, the places taken go back and nothing
    /// is given up for nothing (they were, before the review of this change).
    func testPlacesTakenForALongPrefixThatStillDoesNotFitGoBack() {
        var state = state(maxSubscriptions: 1, maxLength: 1_024)
        _ = handle(&state, 1, "a", from: connection(7))
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let short = { (index: Int) in String([alphabet[index / 36], alphabet[index % 36]]) }
        let long = { (index: Int) in short(index % 1_296) + "\(index / 1_296)" + String(repeating: "x", count: 1_021) }
        // 4,095 connections with one prefix of 1,024 bytes, and one with 300 of 2 bytes:
        // 424 bytes of the 4 MiB left.
        for index in 0..<4_095 { _ = handle(&state, 1, long(index), from: connection(Int32(100 + index))) }
        for index in 0..<300 { _ = handle(&state, 1, short(index), from: connection(8)) }
        XCTAssertEqual(state.subscriberConnections.waiting(for: connection(8))?.count, 300)
        // 600 bytes need 88 of the short places: more than one refusal may take.
        _ = handle(&state, 1, String(repeating: "y", count: 600), from: connection(9))
        XCTAssertNil(state.subscriberConnections.waiting(for: connection(9)))
        XCTAssertEqual(state.subscriberConnections.waiting(for: connection(8))?.count, 300, "all given back")
        XCTAssertEqual(state.subscriberConnections.waitingGivenUp, 0)
        XCTAssertEqual(state.subscriberConnections.waitingCount, 4_395)
        // 500 bytes need 38: taken, from the newest.
        _ = handle(&state, 1, String(repeating: "z", count: 500), from: connection(9))
        XCTAssertEqual(state.subscriberConnections.waiting(for: connection(9))?.count, 1)
        XCTAssertEqual(state.subscriberConnections.waiting(for: connection(8))?.count, 300 - 38)
        XCTAssertEqual(state.subscriberConnections.waitingGivenUp, 38)
    }
}
