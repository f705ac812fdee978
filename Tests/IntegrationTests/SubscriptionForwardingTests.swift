import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// Subscriptions travel upstream through XSUB to publishers, once per prefix, and are tracked.
final class SubscriptionForwardingTests: XCTestCase {
    /// An XPUB connected to the broker's XSUB plays the upstream publisher and sees exactly the
    /// subscription frames the broker forwards.
    func testUpstreamSeesTheFirstSubscribeAndTheLastUnsubscribeOfEachPrefix() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let upstream = try clients.socket(.xpub, connect: daemon.xsub) { try $0.setOption(.xpubVerboser, 1) }
        try Wait.until("the broker has accepted the upstream connection") { try daemon.stats().peers[.xsub] == 1 }

        let first = try clients.subscriber(daemon.xpub, prefixes: ["a", "b"])
        let second = try clients.subscriber(daemon.xpub, prefixes: ["a"])
        try daemon.waitForSubscriptions(3)
        let subscribed = try upstream.receive(2).map { $0[0] }
        XCTAssertEqual(Set(subscribed), [[1] + Array("a".utf8), [1] + Array("b".utf8)])
        try upstream.assertNothing(within: 200)

        clients.close(first)
        try daemon.waitForSubscriptions(1)
        XCTAssertEqual(
            try upstream.receive(1).map { $0[0] }, [[0] + Array("b".utf8)], "a is still wanted by the second")
        try upstream.assertNothing(within: 200)

        clients.close(second)
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[0] + Array("a".utf8)])
        let stats = try daemon.stats()
        XCTAssertEqual(stats.sockets[.xsub]?.messagesOut, 4)
        XCTAssertEqual(stats.subscriptions.subscribeEvents, 3)
        XCTAssertEqual(stats.subscriptions.unsubscribeEvents, 3)
    }

    /// History and the last-value cache keep what publishers send under their prefixes with no
    /// subscriber there: a PUB sends only what is subscribed, and a walkthrough's history missed
    /// the 150 of 400 messages a PUB sent while its consumer was away. zpubd holds those
    /// prefixes upstream itself, through subscribers' comings and goings, and a reload's changes.
    func testHistoryAndLastValuePrefixesAreSubscribedUpstreamWithNoSubscriber() throws {
        let daemon = try Daemon(
            configuration: "[history]\nprefixes = [\"orders.\"]\n[last_value]\nprefixes = [\"state.\"]\n")
        let clients = try Clients()
        let upstream = try clients.socket(.xpub, connect: daemon.xsub) { try $0.setOption(.xpubVerboser, 1) }
        XCTAssertEqual(
            Set(try upstream.receive(2).map { $0[0] }), [[1] + Array("orders.".utf8), [1] + Array("state.".utf8)])
        // The upstream plays a PUB: it sends what is subscribed, and no subscriber is there.
        try upstream.send(frames: frames("news.x", "wanted by nobody"))
        try upstream.send(frames: frames("orders.1", "kept"))
        try upstream.send(frames: frames("state.lamp", "on"))
        try Wait.until("the order is kept and the value cached") {
            let stats = try daemon.stats()
            return stats.history?.written == 1 && stats.lastValue.entries == 1
        }
        let kept = try daemon.decode("HISTORY since 0", as: HistoryReply.self).messages
        XCTAssertEqual(kept.compactMap(\.messageFrames), [frames("orders.1", "kept")])
        // Shown: SUBSCRIPTIONS lists what zpubd holds for itself, and `zpub subscriptions` says it.
        XCTAssertEqual(try daemon.subscriptions().heldUpstream, ["orders.", "state."])
        let listed = try Run.program(Binaries.zpub, ["subscriptions", "-c", daemon.control])
        XCTAssertTrue(listed.stdout.contains("zpubd itself holds orders., state. upstream"), listed.stdout)

        // A subscriber of a held prefix comes and goes: upstream hears nothing of it (the frames
        // of one connection keep their order, so "other." coming first would show it).
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["orders."])
        try daemon.waitForSubscriptions(1)
        clients.close(subscriber)
        try daemon.waitForSubscriptions(0)
        let other = try clients.subscriber(daemon.xpub, prefixes: ["other."])
        try daemon.waitForSubscriptions(1)
        clients.close(other)
        XCTAssertEqual(
            try upstream.receive(2).map { $0[0] }, [[1] + Array("other.".utf8), [0] + Array("other.".utf8)])

        // A reload lets go of a prefix no longer kept and holds a new one; one a subscriber
        // still holds stays subscribed until that subscriber leaves.
        let holder = try clients.subscriber(daemon.xpub, prefixes: ["state."])
        try daemon.waitForSubscriptions(1)
        try "[history]\nprefixes = [\"orders.\"]\n[last_value]\nprefixes = [\"cfg.\"]\n".write(
            to: daemon.configURL, atomically: true, encoding: .utf8)
        XCTAssertEqual(try daemon.json("RELOAD")["reloaded"] as? Bool, true, daemon.log)
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[1] + Array("cfg.".utf8)])
        clients.close(holder)
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[0] + Array("state.".utf8)])
    }

    func testAPublisherThatConnectsLaterGetsEverySubscription() throws {
        // A full table: XSUB's send queue for one peer is sized from it, and must hold the
        // whole replay (libzmq's default HWM of 1,000 silently capped it).
        let daemon = try Daemon(configuration: "[limits]\nmax_subscriptions = 1500\n")
        let clients = try Clients()
        let prefixes = (0..<1_500).map { "p\($0)." }
        _ = try clients.subscriber(daemon.xpub, prefixes: prefixes) { _ in }
        try daemon.waitForSubscriptions(prefixes.count, timeout: 20)
        let upstream = try clients.socket(.xpub, connect: daemon.xsub)
        let received = try upstream.receive(prefixes.count)
        XCTAssertEqual(Set(received.map { String(decoding: $0[0].dropFirst(), as: UTF8.self) }), Set(prefixes))
        XCTAssertTrue(received.allSatisfy { $0[0].first == 1 })
    }

    func testTooLongAndTooManySubscriptionsAreRefusedAndCounted() throws {
        let daemon = try Daemon(configuration: "[limits]\nmax_subscriptions = 3\nmax_subscription_length = 16\n")
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["a", "b", "c", "d"])
        try Wait.until("one subscription refused for the full table") {
            try daemon.stats().subscriptions.refusedTableFull == 1
        }
        XCTAssertEqual(try daemon.subscriptions().total, 3)
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("d.refused"))
        try push.send(frames: frames("a.accepted"))
        XCTAssertEqual(try subscriber.receive(1), [frames("a.accepted")], "a refused subscription delivers nothing")

        // Longer than the limit: refused and counted; the others carry on.
        let greedy = try clients.subscriber(daemon.xpub, prefixes: [String(repeating: "z", count: 64)])
        try Wait.until("a too long subscription is refused") { try daemon.stats().subscriptions.refusedTooLong == 1 }
        try push.send(frames: frames(String(repeating: "z", count: 64)))
        try greedy.assertNothing(within: 200)
        // Far longer than any allowed prefix: libzmq disconnects that subscriber (ZMQ_MAXMSGSIZE
        // on XPUB) before the prefix is stored anywhere. The subscriber's own monitor shows the
        // broker dropping it, i.e. the frame did reach the broker; then nothing may have changed.
        let before = try daemon.stats()
        var monitor: Socket?
        _ = try clients.socket(.sub, connect: daemon.xpub) { socket in
            try socket.startMonitor("inproc://too-long-subscriber", events: .disconnected)
            monitor = try clients.socket(.pair, connect: "inproc://too-long-subscriber")
            try socket.setOption(.subscribe, bytes: Array(String(repeating: "y", count: 5_000).utf8))
        }
        try Wait.until("the broker drops the subscriber of a 5,000-byte prefix") {
            try monitor?.readMonitorEvent()?.event == .disconnected
        }
        let after = try daemon.stats()
        XCTAssertEqual(after.subscriptions, before.subscriptions, "nothing subscribed, refused or counted")
        XCTAssertEqual(after.sockets[.xsub]?.messagesOut, before.sockets[.xsub]?.messagesOut, "nothing forwarded")
        XCTAssertEqual(try daemon.subscriptions().total, 3)
        try push.send(frames: frames("b.still"))
        XCTAssertEqual(try subscriber.receive(1), [frames("b.still")])
    }

    /// A subscriber refused for a full table is admitted at its next subscription frame once
    /// the table has room (libzmq lets zpubd apply a prefix only to the connection whose frame
    /// was read last): any frame, or `$zpub/retry`, which subscribes to nothing.
    func testARefusedSubscriberIsAdmittedAtItsNextFrameOnceThereIsRoom() throws {
        let daemon = try Daemon(configuration: "[limits]\nmax_subscriptions = 1\n")
        let clients = try Clients()
        let occupant = try clients.subscriber(daemon.xpub, prefixes: ["a"])
        try daemon.waitForSubscriptions(1)
        let late = try clients.subscriber(daemon.xpub, prefixes: ["b"])
        try Wait.until("b is refused") { try daemon.stats().subscriptions.refusedTableFull == 1 }
        clients.close(occupant)
        try daemon.waitForSubscriptions(0)
        try late.setOption(.subscribe, bytes: BrokerState.retryPrefix)
        try daemon.waitForSubscriptions(to: ["b"])
        XCTAssertEqual(try daemon.subscriptions().total, 1)
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("b", "admitted"))
        XCTAssertEqual(try late.receive(1), [frames("b", "admitted")])
    }

    /// A prefix of every allowed length is taken, the longest (`max_subscription_length`, 1,024
    /// by default) too, and one byte longer is refused and counted. libzmq 4.3's SUB sends a
    /// subscription as a SUBSCRIBE command, 10 bytes more than the prefix: with room for 1,
    /// prefixes of 1,016 to 1,024 bytes dropped their subscriber's connection, again and again.
    /// `max_live_subscriptions` bounds every connection's subscriptions together (a prefix three
    /// connections hold is three): a connection that subscribes past it is dropped, and the
    /// others are not disturbed. Before, only distinct prefixes were bounded, and connections
    /// holding the same ones grew zpubd's records of them without end.
    func testAConnectionThatSubscribesPastTheTotalIsDroppedAndTheOthersGoOn() throws {
        let daemon = try Daemon(configuration: "[limits]\nmax_live_subscriptions = 3\n")
        let clients = try Clients()
        let first = try clients.subscriber(daemon.xpub, prefixes: ["a.", "b."]) { _ in }
        let second = try clients.subscriber(daemon.xpub, prefixes: ["a."]) { _ in }
        try daemon.waitForSubscriptions(3)
        let third = try clients.subscriber(daemon.xpub, prefixes: ["a."]) { _ in }
        try Wait.until("the connection past the total is dropped") {
            try daemon.stats().subscriptions.droppedOverTheTotal >= 1
        }
        XCTAssertEqual(try daemon.stats().subscriptions.totalLimit, 3)
        XCTAssertEqual(try daemon.stats().subscriptions.prefixes, 2, "a held prefix counts too")
        try Wait.until("the log says which limit") { daemon.log.contains("max_live_subscriptions (3)") }
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("a.1", "x"))
        try push.send(frames: frames("b.1", "x"))
        XCTAssertEqual(try first.receive(2), [frames("a.1", "x"), frames("b.1", "x")])
        XCTAssertEqual(try second.receive(1), [frames("a.1", "x")])
        // Back within libzmq's reconnect interval (100 ms; a SUB subscribes again as its thread
        // calls in, hence the reads), it is dropped again, for as long as the total stays past
        // the limit. It got in for good at its first return: its subscriptions, counted down by
        // libzmq's unsubscriptions, were still held as leaving, and subtracted twice (an audit).
        try Wait.until("it is dropped again each time it comes back", timeout: 30) {
            _ = try third.receiveFrames(timeoutMilliseconds: 50)
            return try daemon.stats().subscriptions.droppedOverTheTotal >= 3
        }
        // Gone, the third leaves the counts as the two others hold them.
        clients.close(third)
        try Wait.until("the two others' subscriptions are counted, exactly", timeout: 15) {
            try daemon.subscriptions().total == 3
        }
        try push.send(frames: frames("a.2", "x"))
        XCTAssertEqual(try second.receive(1), [frames("a.2", "x")])
    }

    func testTheLongestAllowedPrefixIsTakenAndOneByteMoreIsCounted() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let longest = String(repeating: "p", count: 1_024)
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: [longest])
        try daemon.waitForSubscriptions(1)
        try clients.socket(.push, connect: daemon.pull).send(frames: frames(longest + ".x", "1"))
        XCTAssertEqual(try subscriber.receive(1), [frames(longest + ".x", "1")])
        _ = try clients.subscriber(daemon.xpub, prefixes: [longest + "q"])
        try Wait.until("one byte longer is refused") { try daemon.stats().subscriptions.refusedTooLong == 1 }
        XCTAssertEqual(try daemon.subscriptions().total, 1)
    }

    /// libzmq keeps a prefix per subscriber as a set, and a SUB that subscribed twice sends one
    /// unsubscription after its second unsubscribe: counted frame by frame, that subscription
    /// stayed for good, and the prefix was never unsubscribed upstream.
    func testASubscriberThatSubscribesTwiceCountsOnceAndLeavesNothingBehind() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let upstream = try clients.socket(.xpub, connect: daemon.xsub) { try $0.setOption(.xpubVerboser, 1) }
        try Wait.until("the broker has accepted the upstream connection") { try daemon.stats().peers[.xsub] == 1 }

        // Subscribed again once connected: before that, a SUB sends what it holds, once each.
        let twice = try clients.subscriber(daemon.xpub, prefixes: ["news."])
        try daemon.waitForSubscriptions(1)
        // Then another prefix: a connection's frames arrive in order, so once this one is seen,
        // so is the repeat.
        try twice.setOption(.subscribe, bytes: Array("news.".utf8))
        try twice.setOption(.subscribe, bytes: Array("sync.".utf8))
        try Wait.until("all three frames are seen") { try daemon.stats().subscriptions.subscribeEvents == 3 }
        XCTAssertEqual(try daemon.subscriptions().total, 2, "news. once, sync. once")
        XCTAssertEqual(try daemon.stats().subscriptions.repeated, 1)
        try twice.setOption(.unsubscribe, bytes: Array("sync.".utf8))
        XCTAssertEqual(
            Set(try upstream.receive(3).map { $0[0] }),
            [[1] + Array("news.".utf8), [1] + Array("sync.".utf8), [0] + Array("sync.".utf8)])
        for _ in 0..<2 { try twice.setOption(.unsubscribe, bytes: Array("news.".utf8)) }
        XCTAssertEqual(
            try upstream.receive(1).map { $0[0] }, [[0] + Array("news.".utf8)], "nobody wants news. any more")
        try Wait.until("the subscription is gone") { try daemon.subscriptions().total == 0 }

        // The same, ended by a disconnect: libzmq then sends one unsubscription per prefix held.
        let leaver = try clients.subscriber(daemon.xpub, prefixes: ["gone."])
        try daemon.waitForSubscriptions(1)
        try leaver.setOption(.subscribe, bytes: Array("gone.".utf8))
        try Wait.until("both frames are seen") { try daemon.stats().subscriptions.subscribeEvents == 5 }
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[1] + Array("gone.".utf8)])
        clients.close(leaver)
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[0] + Array("gone.".utf8)])
        try Wait.until("nothing is left") { try daemon.subscriptions().total == 0 }
    }

    /// A broker whose table holds one prefix, with an upstream XPUB that sees what it forwards,
    /// a subscriber holding "a", and another whose "b" the full table refused.
    private func fullTableWithARefusedSubscriber() throws -> (
        Daemon, Clients, upstream: Socket, first: Socket, refused: Socket
    ) {
        let daemon = try Daemon(configuration: "[limits]\nmax_subscriptions = 1\n")
        let clients = try Clients()
        let upstream = try clients.socket(.xpub, connect: daemon.xsub) { try $0.setOption(.xpubVerboser, 1) }
        try Wait.until("the broker has accepted the upstream connection") { try daemon.stats().peers[.xsub] == 1 }
        let first = try clients.subscriber(daemon.xpub, prefixes: ["a"])
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[1] + Array("a".utf8)])
        let refused = try clients.subscriber(daemon.xpub, prefixes: ["b"])
        try Wait.until("b is refused: the table is full") { try daemon.stats().subscriptions.refusedTableFull == 1 }
        return (daemon, clients, upstream, first, refused)
    }

    /// An unsubscription from a prefix the sender does not hold (here one the broker refused
    /// it) must not count down the subscriber that does: that sent the prefix's last
    /// unsubscription upstream, and the subscriber got nothing more from upstream.
    func testAnUnsubscriptionFromAPrefixNotHeldLeavesTheHoldersSubscription() throws {
        let (daemon, clients, upstream, first, refused) = try fullTableWithARefusedSubscriber()
        try first.setOption(.unsubscribe, bytes: Array("a".utf8))
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[0] + Array("a".utf8)])
        let holder = try clients.subscriber(daemon.xpub, prefixes: ["b"])
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[1] + Array("b".utf8)], "room again")

        // The refused subscriber's SUB still holds b, so it does send the unsubscription.
        // Then a subscription the full table refuses: once it is seen, so is the unsubscription.
        try refused.setOption(.unsubscribe, bytes: Array("b".utf8))
        try refused.setOption(.subscribe, bytes: Array("c".utf8))
        try Wait.until("the connection's next frame is seen") {
            try daemon.stats().subscriptions.subscribeEvents == 4
        }
        XCTAssertEqual(try daemon.subscriptions().subscriptions.map { [$0.prefix: $0.count] }, [["b": 1]])
        XCTAssertEqual(try daemon.stats().subscriptions.unheldUnsubscribes, 1)
        try upstream.assertNothing(within: 200)
        try upstream.send(frames: frames("b.1", "from upstream"))
        XCTAssertEqual(try holder.receive(1), [frames("b.1", "from upstream")])
    }

    /// libzmq's XPUB keeps a subscription zpubd refused (the table full) for its connection,
    /// and sends an unsubscription for it, without saying whose, when the connection closes.
    /// Counted, it took the holder's subscription away and withdrew the prefix upstream while
    /// the holder still wanted it.
    func testARefusedSubscribersDisconnectLeavesTheHoldersSubscription() throws {
        let (daemon, clients, upstream, first, refused) = try fullTableWithARefusedSubscriber()
        clients.close(first)
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[0] + Array("a".utf8)])
        let holder = try clients.subscriber(daemon.xpub, prefixes: ["b"])
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[1] + Array("b".utf8)], "room again")

        clients.close(refused)
        try Wait.until("libzmq's unsubscription for the refused b is seen") {
            try daemon.stats().subscriptions.unheldUnsubscribes == 1
        }
        XCTAssertEqual(try daemon.subscriptions().subscriptions.map { [$0.prefix: $0.count] }, [["b": 1]])
        try upstream.assertNothing(within: 200)
        try upstream.send(frames: frames("b.1", "from upstream"))
        XCTAssertEqual(try holder.receive(1), [frames("b.1", "from upstream")])
        // The holder's own disconnect still ends the subscription, upstream too.
        clients.close(holder)
        XCTAssertEqual(try upstream.receive(1).map { $0[0] }, [[0] + Array("b".utf8)])
        try daemon.waitForSubscriptions(0)
    }

    func testAVeryLongSubscriptionThenDisconnectDoesNotCrashTheBroker() throws {
        // ../shared/NOTES.md: ~100 KB subscriptions crash a naive XSUB/XPUB forwarder on removal.
        // The client runs in a pyzmq process: libzmq crashes on the client side too.
        let daemon = try Daemon()
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["ok"])
        try daemon.waitForSubscriptions(1)
        for _ in 0..<3 {
            // Returns once the broker has dropped that subscriber (it never reconnects).
            let run = try Run.python("long_subscription.py", [daemon.xpub, "200000"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertEqual(run.stdout, "dropped by the broker\n", run.stderr)
        }
        XCTAssertTrue(daemon.process.isRunning, daemon.log)
        XCTAssertEqual(try daemon.json("PING")["pong"] as? Bool, true)
        XCTAssertEqual(try daemon.subscriptions().total, 1)
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("ok.still"))
        XCTAssertEqual(try subscriber.receive(1), [frames("ok.still")])
    }
}

extension Clients {
    fileprivate func subscriber(_ endpoint: String, prefixes: [String], _ extra: (Socket) throws -> Void) throws
        -> Socket
    {
        // A SUB's own send HWM caps a burst of subscriptions (../shared/NOTES.md): lift it.
        try socket(.sub, connect: endpoint) { socket in
            try socket.setOption(.sendHighWaterMark, 0)
            try extra(socket)
            for prefix in prefixes { try socket.setOption(.subscribe, bytes: Array(prefix.utf8)) }
        }
    }
}
