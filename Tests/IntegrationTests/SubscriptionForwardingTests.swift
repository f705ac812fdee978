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

    func testAPublisherThatConnectsLaterGetsEverySubscription() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        // More than libzmq's default HWM of 1000, which would silently cap the replay.
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
