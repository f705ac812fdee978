import Foundation
import Synchronization
import XCTest
import ZPubCore
import ZeroMQ

/// Faults and load: each test is short and bounded in `make test`; `make soak` (ZPUB_SOAK=1)
/// runs the same tests at full size. Each prints its figure as `figure: ...` (docs/reliability.md).
final class FaultTests: XCTestCase {
    private func figure(_ text: String) { print("figure: \(text)") }

    /// Producers keep their rate and a healthy subscriber keeps receiving while another
    /// subscriber stops reading. One daemon, and segments with and without the stalled
    /// subscriber alternate, so that a machine whose load changes during the test slows both
    /// conditions alike. The bound, 0.7x, leaves room for
    /// that noise; a loop that waited for the stalled subscriber would fall to nearly 0x, as its
    /// queue (send_hwm 2,000) fills within the first 3 of 50 rounds of each segment.
    func testAStalledSubscriberCostsTheOthersNothing() throws {
        let roundsPerSegment = Soak.scale(50, 400)
        let daemon = try Daemon(configuration: "[sockets]\nsend_hwm = 2000\n")
        let clients = try Clients()
        let healthy = try clients.subscriber(daemon.xpub, prefixes: [""])
        try daemon.waitForSubscriptions(1)
        let push = try clients.socket(.push, connect: daemon.pull)
        let payload = [UInt8](repeating: 7, count: 512)

        func segment(_ index: Int) throws -> (sendRate: Double, receiveRate: Double) {
            var sending = 0.0
            let start = Date()
            for round in 0..<roundsPerSegment {
                let sendStart = Date()
                for i in 0..<1_000 {
                    try push.send(frames: [Array("t".utf8), Array("\(index)-\(round)-\(i)".utf8), payload])
                }
                sending += Date().timeIntervalSince(sendStart)
                XCTAssertEqual(try healthy.receive(1_000).count, 1_000, "the healthy subscriber lost messages")
            }
            let total = Double(roundsPerSegment * 1_000)
            return (total / sending, total / Date().timeIntervalSince(start))
        }

        // Pairs of adjacent segments, alone then with a stalled subscriber: the ratio of each
        // pair compares like with like even when the machine's load changes, and the median of
        // five pairs discards the one a burst of load happened to hit.
        var sendRatios: [Double] = []
        var receiveRatios: [Double] = []
        var aloneRate = 0.0
        for pair in 0..<5 {
            let alone = try segment(2 * pair)
            let stalledSubscriber = try clients.subscriber(daemon.xpub, prefixes: [""], receiveHWM: 1)
            try daemon.waitForSubscriptions(2)
            let stalled = try segment(2 * pair + 1)
            clients.close(stalledSubscriber)
            try daemon.waitForSubscriptions(1)
            sendRatios.append(stalled.sendRate / alone.sendRate)
            receiveRatios.append(stalled.receiveRate / alone.receiveRate)
            aloneRate = max(aloneRate, alone.receiveRate)
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let sendRatio = median(sendRatios)
        let receiveRatio = median(receiveRatios)
        figure(
            String(
                format:
                    "stalled subscriber (5 pairs of segments of %d x 1,000 messages of 512 B, median of the pairs' ratios): producer send rate %.2fx, healthy receive rate %.2fx (up to %.0f msg/s alone)",
                roundsPerSegment, sendRatio, receiveRatio, aloneRate))
        XCTAssertGreaterThanOrEqual(receiveRatio, Soak.enabled ? 0.9 : 0.7, "the healthy subscriber slowed down")
        XCTAssertGreaterThanOrEqual(sendRatio, Soak.enabled ? 0.9 : 0.7, "the producer slowed down")
    }

    /// Twenty untrusted peers connected to the XPUB port as XSUB sockets flood it with random
    /// subscribe and unsubscribe frames, as fast as they can, while a producer sends 100
    /// messages a second to a healthy subscriber (prefixes of 1 to 200 bytes for 3 s here,
    /// 1 to 1,000 bytes for 8 s in `make soak`). zpubd must live, lose nothing, and keep
    /// handling subscriptions; the latency is a figure, not an assertion: libzmq 4.3.4 does
    /// most of the work inside its own calls, where zpubd cannot bound it
    /// (docs/reliability.md, "A subscription flood"). The kernel guard in front of the port
    /// keeps it within bounds: `NetworkFaultTests.testTheXPUBGuardKeepsDataAheadOfASubscriptionFlood`.
    func testASubscriptionFloodLosesNothing() throws {
        // Not under `make sanitize`: the sanitized zpubd's libzmq (not instrumented) reads the
        // flood as fast as ever while the instrumented loop digests it several times slower, so
        // the frames waiting in the unbounded XPUB queue grew by some 700 MB a second even with
        // 5 peers, and the machine's OOM killer ended zpubd within 25 s (docs/reliability.md).
        if Soak.sanitized {
            throw XCTSkip("a flood exhausts memory against a sanitized zpubd (docs/reliability.md)")
        }
        let port = try FreePort.find()
        let daemon = try Daemon(endpoints: [.xpub: "tcp://127.0.0.1:\(port)"])
        let clients = try Clients()
        let healthy = try clients.subscriber(daemon.xpub, prefixes: ["latency"])
        let push = try clients.socket(.push, connect: daemon.pull)
        try daemon.waitForSubscriptions(1)

        /// Sends one message every 10 ms for `seconds`; each must arrive, within 10 s.
        func latencies(seconds: Double) throws -> [Double] {
            var measured: [Double] = []
            let count = Int(seconds * 100)
            let start = Date()
            for i in 0..<count {
                let sent = Date()
                try push.send(frames: frames("latency", "\(i)"))
                let received = try XCTUnwrap(
                    try healthy.receiveFrames(timeoutMilliseconds: 10_000), "message \(i) did not arrive within 10 s")
                XCTAssertEqual(received, frames("latency", "\(i)"))
                measured.append(Date().timeIntervalSince(sent) * 1_000)
                let next = start.addingTimeInterval(Double(i + 1) / 100)
                let wait = next.timeIntervalSinceNow
                if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
            }
            return measured.sorted()
        }
        func summary(_ sorted: [Double]) -> String {
            String(
                format: "p50 %.1f ms, p99 %.1f ms, max %.1f ms", sorted[sorted.count / 2],
                sorted[sorted.count * 99 / 100], sorted.last ?? 0)
        }

        let quiet = try latencies(seconds: 1)
        let before = try daemon.stats()
        let floodSeconds = Soak.scale(3, 8)
        let prefixBytes = Soak.scale(200, 1_000)
        // The flood runs until this test ends it, however long its peers take to connect.
        let peers = 20
        let flood = try RunningProgram(
            python: "subscription_flood.py", [daemon.xpub, "\(peers)", "\(prefixBytes)", "600"])
        // STATS may answer "unavailable" while libzmq holds the loop: that is not a failure here.
        func stats() -> StatsSnapshot? { try? daemon.stats() }
        try Wait.until("\(peers) flooding peers are connected", timeout: 30) {
            stats()?.peers[.xpub] == peers + 1
        }
        let flooded = try latencies(seconds: Double(floodSeconds))
        var after: StatsSnapshot?
        try Wait.until("STATS answers during the flood", timeout: 30) {
            after = stats()
            return after != nil
        }
        flood.signal(SIGKILL)

        let handled = after!.subscriptions.subscribeEvents - before.subscriptions.subscribeEvents
        XCTAssertGreaterThan(handled, 1_000, "the flood's subscriptions were not handled")
        figure(
            "subscription flood (\(peers) peers, 1-\(prefixBytes) B frames, measured over \(floodSeconds) s of it): healthy subscriber \(summary(flooded)) (quiet: \(summary(quiet))), \(flooded.count)/\(flooded.count) delivered, \(handled) subscribe frames handled meanwhile, zpubd RSS \(ProcessMemory.residentKilobytes(of: daemon.process.processIdentifier) / 1024) MiB"
        )
        // A PING, not Process.isRunning: a zpubd that aborted can linger as a zombie.
        XCTAssertNotNil(
            try? daemon.request("PING", timeout: 5_000), "zpubd answers after the flood:\n\(daemon.log.suffix(400))")
    }

    /// A socket of the wrong type (a PUSH on the XPUB's port) passes ZAP, is then dropped by
    /// libzmq with no event but the disconnect, and reconnects every 100 ms, its messages going
    /// nowhere: a walkthrough found it invisible to both sides. zpubd warns, naming the socket
    /// and what connects where; a right one beside it is no cause.
    func testSocketsOfTheWrongTypeAreWarnedOf() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: [""])
        try daemon.waitForSubscriptions(1)
        // The right one, connected all along: the looks that find the wrong one count it too,
        // and must not take it for one (checked before the wrong one existed, this could not fail).
        let right = try clients.socket(.push, connect: daemon.pull)
        try right.send(frames: frames("t.ok", "y"))
        XCTAssertEqual(try subscriber.receive(1), [frames("t.ok", "y")])
        let wrong = try clients.socket(.push, connect: daemon.xpub)
        _ = try wrong.send(frames: frames("t.lost", "x"), dontWait: true)
        try Wait.until("zpubd warns of the xpub socket's incomplete handshakes", timeout: 60) {
            // "1 connection" or "N connections": how many attempts the look counted.
            daemon.log.contains("to the xpub socket passed its address and key checks but never completed")
        }
        XCTAssertTrue(daemon.log.contains("producers' PUSH connect to pull"), daemon.log)
        XCTAssertFalse(daemon.log.contains("to the pull socket passed"), daemon.log)
        // The right one still works.
        try right.send(frames: frames("t.ok", "z"))
        XCTAssertEqual(try subscriber.receive(1), [frames("t.ok", "z")])
    }

    /// Flooding peers that vanish mid-flood must not abort zpubd (`scripts/flood-vanish.sh`
    /// is the same scenario by hand). libzmq 4.3.4 asserts (`!_io_error`,
    /// stream_engine_base.cpp:331) when a ZMTP heartbeat falls due on a connection whose peer
    /// hung up while its input was stopped by a full receive queue; zpubd keeps the XPUB's
    /// receive queue unbounded so that input never stops there (docs/reliability.md, "A
    /// subscription flood"). The rounds follow each other as an attacker's would, without
    /// waiting for the last round's peers to be cleared (which takes libzmq minutes).
    func testFloodingPeersThatVanishDoNotAbortTheBroker() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(
            configuration: "[sockets]\nheartbeat_interval_ms = 100\nheartbeat_timeout_ms = 30000\n",
            endpoints: [.xpub: "tcp://127.0.0.1:\(port)"])
        for round in 1...Soak.scale(4, 12) {
            let flood = try RunningProgram(python: "subscription_flood.py", [daemon.xpub, "20", "1000", "600"])
            // The flood's length and the pause after it are this test's input (the attack), not
            // waits for something: long enough for receive queues to fill behind libzmq's slow
            // reading of long subscriptions, and for heartbeats to fall due after the hang-up.
            Thread.sleep(forTimeInterval: 2.5)
            flood.signal(SIGKILL)
            Thread.sleep(forTimeInterval: 2)
            // A PING, not Process.isRunning: a zpubd that aborted can linger as a zombie. The
            // control thread answers PING even while libzmq holds the forwarding loop.
            let alive = (try? daemon.request("PING", timeout: 5_000)) != nil
            XCTAssertTrue(alive, "round \(round): zpubd does not answer; its log ends:\n\(daemon.log.suffix(400))")
            if !alive { return }
        }
    }

    /// A producer or a publisher that hangs up while PAUSE holds it back must not abort
    /// zpubd. Its connection's input is stopped (the queue is full); libzmq 4.3.4 asserts
    /// (`!_io_error`) when a heartbeat then falls due on it. With heartbeats on PULL and XSUB,
    /// zpubd aborted in the first round (pyzmq peers, 100 ms heartbeats).
    func testPeersHangingUpWhileHeldBackByPauseDoNotAbortTheBroker() throws {
        let heartbeat = 100
        let daemon = try Daemon(
            configuration: "[sockets]\nheartbeat_interval_ms = \(heartbeat)\nheartbeat_timeout_ms = 30000\n",
            endpoints: [
                .pull: "tcp://127.0.0.1:\(try FreePort.find())", .xsub: "tcp://127.0.0.1:\(try FreePort.find())",
            ])
        let clients = try Clients()
        _ = try clients.subscriber(daemon.xpub, prefixes: [""])
        try daemon.waitForSubscriptions(1)
        XCTAssertEqual(try daemon.json("PAUSE")["forwarding"] as? String, "paused")
        let payload = String(repeating: "x", count: 200)
        for (round, type) in [SocketType.push, .xpub, .push, .xpub].enumerated() {
            let context = try Context()
            let peer = try Socket(context, type: type)
            try peer.setOption(.linger, 0)
            try peer.setOption(.sendTimeout, 50)
            if type == .xpub {
                // A publisher that waits for a subscriber's subscription (forwarded by zpubd's
                // XSUB) and then blocks instead of dropping once its queue is full.
                try peer.setOption(.xpubNoDrop, 1)
                try peer.connect(daemon.xsub)
                XCTAssertNotNil(try peer.receiveFrames(timeoutMilliseconds: 10_000), "round \(round): no subscription")
            } else {
                try peer.connect(daemon.pull)
            }
            guard try peer.sendUntilHeldBack({ _ in frames("t", payload) }) != nil else { return }
            peer.close()
            context.terminate()
            // Heartbeats fall due on the dead connection (ten intervals: the hazard's time to
            // show, not a wait for something).
            usleep(UInt32(10 * heartbeat * 1_000))
            let alive = (try? daemon.request("PING", timeout: 5_000)) != nil
            XCTAssertTrue(
                alive, "round \(round) (\(type)): zpubd does not answer; its log ends:\n\(daemon.log.suffix(400))")
            if !alive { return }
        }
        XCTAssertEqual(try daemon.json("RESUME")["forwarding"] as? String, "running")
    }

    func testKilledPeersLeaveTheTableAsTheLiveOnesHoldIt() throws {
        let daemon = try Daemon()
        var subscribers: [RunningProgram] = []
        for i in 0..<6 {
            subscribers.append(try RunningProgram(python: "killable_peer.py", ["sub", daemon.xpub, "k\(i)", "common"]))
        }
        let producer = try RunningProgram(python: "killable_peer.py", ["push", daemon.pull])
        try daemon.waitForSubscriptions(12, timeout: 20)
        try Wait.until("the flood is flowing") { try daemon.stats().messagesIn > 1_000 }
        for victim in [0, 2, 4] { subscribers[victim].signal(SIGKILL) }
        producer.signal(SIGKILL)
        try daemon.waitForSubscriptions(6, timeout: 20)
        let table = try daemon.subscriptions().subscriptions
        XCTAssertEqual(
            Dictionary(uniqueKeysWithValues: table.map { ($0.prefix, $0.count) }),
            ["common": 3, "k1": 1, "k3": 1, "k5": 1])
        // Peers are counted from libzmq's connection events, which come by another path than
        // the unsubscriptions: the killed producer's disconnect is seen once the broker has
        // read what its connection still held.
        try Wait.until("the broker counts the live peers only") {
            let peers = try daemon.stats().peers
            return peers[.xpub] == 3 && peers[.pull] == 0
        }
        let clients = try Clients()
        let probe = try clients.subscriber(daemon.xpub, prefixes: ["common"])
        try daemon.waitForSubscriptions(7)
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("common", "after"))
        XCTAssertEqual(try probe.receive(1), [frames("common", "after")])
        XCTAssertTrue(daemon.process.isRunning)
        figure("after SIGKILL of 3 subscribers and the producer: the table holds exactly the 3 live subscribers")
    }

    func testARestartedBrokerIsFoundAgainByItsPeers() throws {
        let pullPort = try FreePort.find()
        let xpubPort = try FreePort.find()
        let endpoints: [BrokerSocketRole: String] = [
            .pull: "tcp://127.0.0.1:\(pullPort)", .xpub: "tcp://127.0.0.1:\(xpubPort)",
        ]
        var daemon: Daemon? = try Daemon(endpoints: endpoints)
        let clients = try Clients()
        let subscriber = try clients.subscriber(endpoints[.xpub]!, prefixes: ["live"])
        let push = try clients.socket(.push, connect: endpoints[.pull]!)
        try daemon!.waitForSubscriptions(1)
        try push.send(frames: frames("live", "before"))
        XCTAssertEqual(try subscriber.receive(1), [frames("live", "before")])

        daemon!.signal(SIGKILL)
        _ = daemon!.waitForExit()
        daemon = nil
        let restartedAt = Date()
        let restarted = try Daemon(endpoints: endpoints)
        // The peers reconnect by themselves (libzmq backoff) and the SUB replays its subscription.
        var probes = 0
        try Wait.until("traffic resumes after the restart", timeout: 20) {
            probes += 1
            _ = try push.send(frames: frames("live", "probe \(probes)"), dontWait: true)
            return try subscriber.receiveFrames(timeoutMilliseconds: 100) != nil
        }
        let resumed = Date().timeIntervalSince(restartedAt)
        figure(String(format: "broker restarted under live peers: traffic resumed after %.2f s", resumed))
        XCTAssertEqual(try restarted.subscriptions().total, 1, "the subscription is re-established")
        XCTAssertLessThan(resumed, 10)
    }

    /// What a producer queued while zpubd was down reaches the subscribers that come back with
    /// it: zpubd reads producers only `start_hold_ms` (500 ms) after start. The producer
    /// retries every 100 ms (libzmq's default), the subscriber every 250 ms; before the hold, the
    /// producer's queue arrived first whenever the subscriber's next retry came later (four
    /// restarts in five), and was dropped as unwanted.
    func testWhatAProducerQueuedWhileTheBrokerWasDownReachesTheSubscribersThatComeBack() throws {
        let endpoints: [BrokerSocketRole: String] = [
            .pull: "tcp://127.0.0.1:\(try FreePort.find())", .xpub: "tcp://127.0.0.1:\(try FreePort.find())",
        ]
        var daemon: Daemon? = try Daemon(endpoints: endpoints)
        let clients = try Clients()
        let subscriber = try clients.socket(.sub, connect: endpoints[.xpub]!) {
            try $0.setOption(.reconnectInterval, 250)
            try $0.setOption(.receiveHighWaterMark, 0)
            try $0.setOption(.subscribe, bytes: Array("q".utf8))
        }
        let push = try clients.socket(.push, connect: endpoints[.pull]!) { try $0.setOption(.sendHighWaterMark, 0) }
        try daemon!.waitForSubscriptions(1)
        try push.send(frames: frames("q", "before"))
        XCTAssertEqual(try subscriber.receive(1), [frames("q", "before")])

        daemon!.signal(SIGTERM)
        XCTAssertEqual(daemon!.waitForExit(), 0)
        daemon = nil
        let count = 1_000
        for i in 0..<count { try push.send(frames: frames("q", "\(i)")) }
        let restarted = try Daemon(endpoints: endpoints)
        let numbers = try subscriber.receive(count).map { String(decoding: $0[1], as: UTF8.self) }
        XCTAssertEqual(numbers, (0..<count).map(String.init))
        XCTAssertEqual(try restarted.stats().unwantedMessages, 0)
        try Wait.until("zpubd logs that the backlog is out\n\(restarted.log)") {
            restarted.log.contains("the backlog held at start (start_hold_ms) is out")
        }
    }

    /// No HWM pressure, healthy subscriber: every message arrives, in order per producer.
    func testNothingIsLostAndOrderIsKeptPerProducer() throws {
        let perProducer = Soak.scale(50_000, 500_000)
        let daemon = try Daemon(configuration: "[sockets]\nsend_hwm = 0\nreceive_hwm = 0\n")
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["p"], receiveHWM: 0)
        try daemon.waitForSubscriptions(1)
        let pull = daemon.pull
        let done = DispatchGroup()
        for producer in 0..<2 {
            done.enter()
            Thread {
                defer { done.leave() }
                guard let context = try? Context(), let push = try? Socket(context, type: .push) else { return }
                defer {
                    push.close()
                    context.terminate()
                }
                try? push.setOption(.sendHighWaterMark, 0)
                try? push.connect(pull)
                for seq in 0..<perProducer {
                    _ = try? push.send(frames: [Array("p\(producer)".utf8), Array("\(seq)".utf8)])
                }
            }.start()
        }
        var next = [0, 0]
        let start = Date()
        let message = Message()
        for _ in 0..<(2 * perProducer) {
            guard try Poller.waitReadable(subscriber, timeoutMilliseconds: 10_000) else {
                return XCTFail("stalled after \(next) messages")
            }
            _ = try subscriber.receive(into: message)
            let producer = Int(message.bytes.last! - UInt8(ascii: "0"))
            _ = try subscriber.receive(into: message)
            let seq = Int(String(decoding: message.bytes, as: UTF8.self))!
            if seq != next[producer] { return XCTFail("producer \(producer): expected \(next[producer]), got \(seq)") }
            next[producer] += 1
        }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(next, [perProducer, perProducer])
        let seconds = Date().timeIntervalSince(start)
        figure(
            "\(2 * perProducer) numbered messages from 2 producers: all arrived, in order per producer, in \(String(format: "%.1f", seconds)) s"
        )
        XCTAssertEqual(try daemon.stats().messagesOut, UInt64(2 * perProducer))
    }

    /// Random bytes, truncated and oversized greetings and wrong mechanisms against every
    /// port: each bad connection is dropped; the broker forwards and answers as before.
    func testGarbageAgainstEveryPort() throws {
        let ports = try (0..<4).map { _ in try FreePort.find() }
        let daemon = try Daemon(
            endpoints: [
                .pull: "tcp://127.0.0.1:\(ports[0])", .xsub: "tcp://127.0.0.1:\(ports[1])",
                .xpub: "tcp://127.0.0.1:\(ports[2])", .control: "tcp://127.0.0.1:\(ports[3])",
            ])
        let signature: [UInt8] = [0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F]
        func greeting(_ mechanism: String) -> [UInt8] {
            signature + [3, 0] + Array(mechanism.utf8) + [UInt8](repeating: 0, count: 20 - mechanism.utf8.count) + [0]
                + [UInt8](repeating: 0, count: 31)
        }
        var generator = SystemRandomNumberGenerator()
        var cases: [[UInt8]] = [
            Array(greeting("NULL").prefix(11)),  // truncated
            greeting("NULL") + [UInt8](repeating: 0xEE, count: 70_000),  // a greeting, then junk
            greeting("PLAIN") + [4, 5, 0x05] + Array("HELLO".utf8),  // a mechanism the server does not speak
            greeting("CURVE") + [UInt8](repeating: 1, count: 200),
            signature + [3, 0] + [UInt8](repeating: 0x41, count: 52),  // no mechanism name at all
        ]
        for size in [1, 10, 64, 1_000, 100_000] {
            cases.append((0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
        for port in ports {
            for bytes in cases { try RawTCP.send(bytes, port: port) }
        }
        let clients = try Clients()
        let subscriber = try clients.subscriber("tcp://127.0.0.1:\(ports[2])", prefixes: [""])
        try daemon.waitForSubscriptions(1)
        try clients.socket(.push, connect: "tcp://127.0.0.1:\(ports[0])").send(frames: frames("after", "garbage"))
        XCTAssertEqual(try subscriber.receive(1), [frames("after", "garbage")])
        let stats = try daemon.stats()
        XCTAssertEqual(stats.messagesIn, 1, "no garbage became a message")
        XCTAssertGreaterThan(stats.handshakeFailures, 0)
        figure(
            "\(cases.count * ports.count) garbage connections on 4 ports: \(stats.handshakeFailures) handshake failures counted, 0 messages let through"
        )
    }

    func testAFloodOfMalformedControlRequestsIsAllAnswered() throws {
        let count = Soak.scale(10_000, 100_000)
        let daemon = try Daemon()
        let clients = try Clients()
        let request = try clients.socket(.req, connect: daemon.control)
        var generator = SystemRandomNumberGenerator()
        let start = Date()
        for i in 0..<count {
            let frames: [[UInt8]]
            switch i % 5 {
            case 0:
                frames = [
                    (0..<Int.random(in: 0..<300, using: &generator)).map { _ in
                        UInt8.random(in: 0...255, using: &generator)
                    }
                ]
            case 1: frames = [Array(repeating: 0x41, count: 10_000)]
            case 2: frames = [Array("STATS".utf8), Array("x".utf8)]
            case 3: frames = [[0xC3, 0x28]]
            default: frames = [Array("NOPE \(i)".utf8)]
            }
            try request.send(frames: frames)
            guard let reply = try request.receiveFrames(timeoutMilliseconds: 5_000) else {
                return XCTFail(
                    "request \(i) (\(frames.map(\.count)) bytes) got no reply; zpubd \(daemon.process.isRunning ? "runs" : "is gone"), its log:\n\(daemon.log)"
                )
            }
            XCTAssertEqual(reply.count, 1)
            XCTAssertEqual(reply[0].first, UInt8(ascii: "{"))
        }
        let seconds = Date().timeIntervalSince(start)
        figure("\(count) malformed control requests: all answered, \(Int(Double(count) / seconds)) per second")
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: [""])
        try daemon.waitForSubscriptions(1)
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("still", "fine"))
        XCTAssertEqual(try subscriber.receive(1), [frames("still", "fine")])
    }

    /// Clients asking one request after another, each as soon as the last is answered, get
    /// every reply. libzmq drops a reply once a client has `controlRepliesQueued` (16) unread,
    /// counting what it has read by notes its I/O thread sends every eighth reply read; the
    /// socket takes them in when polled or when a read finds nothing, and on a send at most once
    /// a millisecond. A client whose next request was there before the control thread looked
    /// again kept it from doing either, and after 16 replies its next was dropped: with three
    /// such clients and two cores kept busy, every few seconds (`ControlServer.send`). Here
    /// four clients ask PING (the quickest reply) in a row, each as soon as it has its reply, with
    /// two spinning threads per core meanwhile: the control thread is then often set aside
    /// between a reply and its next read while a client's next request arrives. Without the
    /// fix 10 runs in 12 failed here (3 in 6 with one spinning thread per core, none of 5 with
    /// none); the flood test above, one client, failed twice in a dozen full runs.
    func testClientsAskingInLockstepAreAnsweredEveryTime() throws {
        let daemon = try Daemon()
        let endpoint = daemon.control
        let context = try Context()
        defer { context.terminate() }
        let clients = 4
        let requests = Soak.scale(8_000, 50_000)
        let unanswered = Locked<[String]>([])
        let answered = Locked(0)
        // Spinning for 60 s at most, whatever happens: the suite run beside this one shares
        // the cores.
        let spinning = Atomic<Bool>(true)
        let spinUntil = ProcessInfo.processInfo.systemUptime + 60
        let spinners = (0..<2 * ProcessInfo.processInfo.activeProcessorCount).map { _ in
            Thread {
                while spinning.load(ordering: .relaxed) && ProcessInfo.processInfo.systemUptime < spinUntil {}
            }
        }
        spinners.forEach { $0.start() }
        defer { spinning.store(false, ordering: .relaxed) }
        let start = Date()
        // As many clients at once as there are cores (`concurrentPerform`): on 2 cores, with a
        // thread per client instead, 1 run in 6 failed without the fix.
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            do {
                let socket = try Socket(context, type: .req)
                defer { socket.close() }
                try socket.setOption(.linger, 0)
                try socket.connect(endpoint)
                for index in 0..<requests {
                    try socket.send(text: "PING")
                    guard let reply = try socket.receiveFrames(timeoutMilliseconds: 5_000) else {
                        unanswered.withLock { $0.append("client \(client): request \(index) got no reply in 5 s") }
                        return
                    }
                    guard reply == [Array(#"{"pong":true}"#.utf8)] else {
                        unanswered.withLock { $0.append("client \(client): request \(index) got \(reply)") }
                        return
                    }
                    answered.withLock { $0 += 1 }
                }
            } catch {
                unanswered.withLock { $0.append("client \(client): \(error)") }
            }
        }
        let seconds = Date().timeIntervalSince(start)
        spinning.store(false, ordering: .relaxed)
        XCTAssertEqual(unanswered.withLock { $0 }, [], "zpubd \(daemon.process.isRunning ? "runs" : "is gone")")
        let stats = try daemon.stats()
        XCTAssertEqual(stats.controlRepliesDropped, 0)
        figure(
            "\(clients) clients asking PING in lockstep beside \(spinners.count) spinning threads: \(answered.withLock { $0 }) of \(clients * requests) requests answered in \(String(format: "%.1f", seconds)) s"
        )
    }

    /// Out of file descriptors, libzmq 4.3.4's TCP listener retries accept() in a tight loop
    /// and its ipc listener aborts the process (EMFILE is not among the errors it expects).
    /// zpubd pauses new TCP connections before the limit (docs/reliability.md), so the control
    /// socket, here on ipc like under systemd, keeps answering and zpubd lives. Each round
    /// lowers nothing new: the limit is lowered once with prlimit, then 150 idle TCP
    /// connections arrive in batches, with a fresh control connection asking STATS between
    /// batches and all through the pause.
    func testOutOfDescriptorsZpubdLivesAndAnswersOnIPC() throws {
        try outOfDescriptorRounds(controlEndpoint: nil)
    }

    /// Each kind of refused subscription is logged, each under its own rate limit: with one
    /// for both, a prefix refused as too long hid the full table's refusals for 10 s, and the
    /// operator never read "max_subscriptions" (a walkthrough).
    func testATooLongPrefixDoesNotHideAFullTablesRefusalFromTheLog() throws {
        let daemon = try Daemon(configuration: "[limits]\nmax_subscriptions = 2\nmax_subscription_length = 16\n")
        let clients = try Clients()
        _ = try clients.subscriber(daemon.xpub, prefixes: [String(repeating: "x", count: 20)])
        try Wait.until("the long prefix is refused") { try daemon.stats().subscriptions.refusedTooLong == 1 }
        _ = try clients.subscriber(daemon.xpub, prefixes: ["a", "b", "c"])
        try Wait.until("the third prefix is refused") { try daemon.stats().subscriptions.refusedTableFull == 1 }
        try Wait.until("both refusals are logged\n\(daemon.log)") {
            daemon.log.contains("longer than max_subscription_length (16)")
                && daemon.log.contains("the table holds max_subscriptions (2)")
        }
    }

    /// A burst of connections at a small hard limit (`ulimit -n 64`: the pause leaves 20
    /// descriptors of room, less than the kernel's accept queues hold). The table filled up:
    /// libzmq's TCP listener retried accept() without end (1.7 cores, the control socket
    /// silent for seconds), and one more ipc connection aborted zpubd (libzmq 4.3.4's ipc
    /// listener asserts on EMFILE; a walkthrough, 2026-12-07). Now a listener that meets a full
    /// table rests for 100 ms, and the ipc listener's EMFILE reaches libzmq as one aborted
    /// connection (CHangupDeferral).
    func testABurstOfConnectionsAtASmallHardLimitNeitherSpinsNorAbortsZpubd() throws {
        let xpubPort = try FreePort.find()
        let daemon = try Daemon(
            configuration: "[sockets]\nhandshake_timeout_ms = 5000", endpoints: [.xpub: "tcp://127.0.0.1:\(xpubPort)"],
            launcher: ["/usr/bin/prlimit", "--nofile=64:64"])
        let pid = daemon.process.processIdentifier
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: [""])
        let producer = try clients.socket(.push, connect: daemon.pull)
        try daemon.waitForSubscriptions(1)
        var raw: [Int32] = []
        defer { raw.forEach { close($0) } }
        for _ in 0..<150 { raw.append(try RawTCP.connect(port: xpubPort, blocking: false)) }
        // With the table full, a control connection waits in the kernel's queue until idle
        // connections leave (handshake_timeout_ms): asked again until then.
        func pausedNow() -> Bool {
            guard let reply = try? daemon.request("STATS", timeout: 2_000),
                let stats = try? JSONDecoder().decode(StatsSnapshot.self, from: Data(reply))
            else { return false }
            return stats.descriptors?.acceptPaused == true
        }
        try Wait.until("zpubd paused new connections", timeout: 30) { pausedNow() }
        /// zpubd's CPU over 2 s, as a share of one core; nil if it died meanwhile.
        func cpuShareOverTwoSeconds() -> Double? {
            guard let before = try? cpuSeconds(of: pid) else { return nil }
            let start = Date()
            usleep(2_000_000)
            guard daemon.process.isRunning, let after = try? cpuSeconds(of: pid) else { return nil }
            return (after - before) / Date().timeIntervalSince(start)
        }
        let paused = try XCTUnwrap(cpuShareOverTwoSeconds(), "zpubd died after the TCP burst:\n\(daemon.log)")
        XCTAssertLessThan(paused, 0.25, "zpubd used \(paused) of a core after the TCP burst: spinning")
        // More than the room: the table fills, and the control socket's listener meets EMFILE.
        let controlPath = String(daemon.control.dropFirst("ipc://".count))
        for _ in 0..<60 { raw.append(try RawTCP.connect(unixPath: controlPath)) }
        let full = try XCTUnwrap(cpuShareOverTwoSeconds(), "zpubd died with its descriptor table full:\n\(daemon.log)")
        XCTAssertLessThan(full, 0.25, "zpubd used \(full) of a core with its descriptor table full: spinning")

        raw.forEach { close($0) }
        raw = []
        try Wait.until("the control socket answers again", timeout: 20) {
            try daemon.request("PING", timeout: 1_000) != nil
        }
        for i in 0..<10 { try producer.send(frames: frames("t", "\(i)")) }
        XCTAssertEqual(try subscriber.receive(10).count, 10, "the connected subscriber is served")
        try Wait.until("zpubd accepts connections again", timeout: 20) {
            try daemon.stats().descriptors?.acceptPaused == false
        }
        figure(
            "a burst of 150 TCP and 60 ipc connections at a hard limit of 64: zpubd used \(String(format: "%.2f", paused)) of a core paused, \(String(format: "%.2f", full)) with its table full, and lived"
        )
    }

    /// The same with the control socket on TCP (it is not filtered: operators reach it).
    func testOutOfDescriptorsZpubdLivesAndAnswersOnTCP() throws {
        try outOfDescriptorRounds(controlEndpoint: "tcp://127.0.0.1:\(try FreePort.find())")
    }

    private func outOfDescriptorRounds(controlEndpoint: String?) throws {
        let xpubPort = try FreePort.find()
        var endpoints: [BrokerSocketRole: String] = [.xpub: "tcp://127.0.0.1:\(xpubPort)"]
        if let controlEndpoint { endpoints[.control] = controlEndpoint }
        // Idle connections are dropped after 5 s, longer than the 2 s the CPU is measured over.
        let daemon = try Daemon(configuration: "[sockets]\nhandshake_timeout_ms = 5000", endpoints: endpoints)
        let pid = daemon.process.processIdentifier
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: [""])
        let producer = try clients.socket(.push, connect: daemon.pull)
        try daemon.waitForSubscriptions(1)

        let prlimit = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/prlimit"), ["--pid=\(pid)", "--nofile=64:256"]
        ).finish(timeout: 10)
        XCTAssertEqual(prlimit.status, 0, prlimit.stderr)

        // Every STATS comes on a new control connection and must be answered: within 10 s, for
        // hundreds of them on a loaded machine (a spinning loop is caught by its CPU share below).
        var answered = 0
        func stats(_ when: String) throws -> StatsSnapshot {
            guard daemon.process.isRunning else { throw DaemonExited(log: daemon.log) }
            guard let reply = try daemon.request("STATS", timeout: 10_000) else {
                let died = daemon.process.isRunning ? "" : " (zpubd died, status \(daemon.process.terminationStatus))"
                XCTFail("no reply to STATS within 10 s \(when)\(died)\nlog:\n\(daemon.log)")
                throw TimedOut(what: "a reply to STATS \(when)")
            }
            answered += 1
            return try JSONDecoder().decode(StatsSnapshot.self, from: Data(reply))
        }

        let rounds = Soak.scale(8, 40)
        var cpuShare = -1.0
        for round in 0..<rounds {
            var idle: [Int32] = []
            defer { idle.forEach { close($0) } }
            for batch in 0..<15 {
                for _ in 0..<10 { idle.append(try RawTCP.connect(port: xpubPort, blocking: false)) }
                _ = try stats("in round \(round), after \(10 * (batch + 1)) idle connections")
            }
            try Wait.until("zpubd paused new connections", timeout: 10) {
                try stats("waiting for the pause").descriptors?.acceptPaused == true
            }
            if round == 0 {
                let cpuBefore = try cpuSeconds(of: pid)
                let start = Date()
                // Control requests all through the pause, one every 100 ms.
                while Date().timeIntervalSince(start) < 2 {
                    _ = try stats("during the pause")
                    usleep(100_000)
                }
                cpuShare = (try cpuSeconds(of: pid) - cpuBefore) / Date().timeIntervalSince(start)
                XCTAssertEqual(
                    try stats("after the CPU measurement").descriptors?.acceptPaused, true,
                    "the CPU share must be measured while paused")
                XCTAssertLessThan(cpuShare, 0.25, "zpubd used \(cpuShare) of a core while out of descriptors: spinning")
            }
            for i in 0..<100 { try producer.send(frames: frames("t", "\(round)-\(i)")) }
            XCTAssertEqual(
                try subscriber.receive(100).count, 100, "the connected subscriber is served (round \(round))")

            idle.forEach { close($0) }
            idle = []
            try Wait.until("zpubd accepts connections again (round \(round))", timeout: 20) {
                try stats("waiting for the resume").descriptors?.acceptPaused == false
            }
            XCTAssertTrue(daemon.process.isRunning, "zpubd died in round \(round):\n\(daemon.log)")
        }

        let late = try clients.subscriber(daemon.xpub, prefixes: ["late"])
        try daemon.waitForSubscriptions(2)
        try producer.send(frames: frames("late", "welcome"))
        XCTAssertEqual(try late.receive(1), [frames("late", "welcome")])
        let pauses = try stats("at the end").descriptors?.acceptPauses ?? 0
        XCTAssertGreaterThanOrEqual(pauses, UInt64(rounds))
        XCTAssertTrue(daemon.log.contains("out of file descriptors soon"), daemon.log)
        XCTAssertTrue(daemon.process.isRunning)
        figure(
            "out of descriptors (limit 64, 150 idle connections, \(rounds) rounds, control on \(controlEndpoint == nil ? "ipc" : "tcp")): \(answered) STATS on new connections all answered within 2 s, zpubd used \(String(format: "%.2f", cpuShare)) of a core while paused, the connected subscriber got every message, \(pauses) pauses"
        )
    }

    /// The configured TCP keepalive is set on zpubd's side of a connection: `ss` shows the
    /// socket's keepalive timer, counting down from `tcp_keepalive_idle_s`.
    func testTCPKeepaliveIsOnEveryTCPConnection() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(
            configuration: "[sockets]\ntcp_keepalive_idle_s = 777", endpoints: [.xpub: "tcp://127.0.0.1:\(port)"])
        let clients = try Clients()
        _ = try clients.subscriber(daemon.xpub, prefixes: ["k"])
        try daemon.waitForSubscriptions(1)
        // zpubd's end of the connection: source port = the XPUB's port.
        let ss = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/ss"), ["-tnoH", "state", "established", "( sport = :\(port) )"]
        ).finish(timeout: 10)
        XCTAssertEqual(ss.status, 0, ss.stderr)
        XCTAssertTrue(ss.stdout.contains("timer:(keepalive,12min"), "keepalive timer of about 777 s: \(ss.stdout)")
    }

    /// User plus system CPU time a process has used, from /proc/<pid>/stat. Throws when it
    /// cannot be read: a share of 0 would let a spinning zpubd pass.
    private func cpuSeconds(of pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = try XCTUnwrap(stat.split(separator: ")").last, "no fields in /proc/\(pid)/stat")
            .split(separator: " ")
        let user = try XCTUnwrap(Double(fields[11]), "utime in /proc/\(pid)/stat")
        let system = try XCTUnwrap(Double(fields[12]), "stime in /proc/\(pid)/stat")
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Peers that connect and hang up while the forwarding loop is held (here by the test hook,
    /// as a subscription flood holds it inside libzmq) do not each leave an event in its mailbox
    /// without bound: past 4,096 the connection event reader adds them up
    /// (`ConnectionEventBacklog`), and once the loop runs again the peer counts and what is
    /// delivered are as if it had taken them one by one.
    func testConnectionChurnWhileTheLoopIsHeldIsAddedUpNotQueuedWithoutBound() throws {
        let churned = 3_000
        let stallSeconds = 20.0
        let port = try FreePort.find()
        // An upstream that comes up while the loop is held: its link's change is added up too.
        let upstreamPort = try FreePort.find()
        let upstream = "tcp://127.0.0.1:\(upstreamPort)"
        let daemon = try Daemon(
            arguments: ["--upstream", upstream],
            environment: ["ZPUBD_TEST_HOOKS": "1", "ZPUBD_TEST_STALL_MS": "\(Int(stallSeconds * 1_000))"],
            endpoints: [.xpub: "tcp://127.0.0.1:\(port)"])
        let clients = try Clients()
        let kept = try clients.subscriber(daemon.xpub, prefixes: ["k"])
        try daemon.waitForSubscriptions(1)
        daemon.signal(SIGUSR2)
        try Wait.until("the loop stalls") { daemon.log.contains("test hook: stalling the forwarding loop") }
        let stalled = Date()
        // While it is held: a subscriber that stays, one that comes and goes, and thousands of
        // connections that open and close at once (two events each, three with the handshake's).
        let late = try clients.subscriber(daemon.xpub, prefixes: ["k"])
        let gone = try clients.subscriber(daemon.xpub, prefixes: ["g"])
        // Paced: libzmq's listen backlog is 100, and a connection beyond it waits a second for
        // the kernel's SYN retry.
        for i in 0..<churned {
            close(try RawTCP.connect(port: port))
            if i % 25 == 24 {
                try Wait.until("libzmq takes the churned connections", timeout: stallSeconds) {
                    Self.serverSideTCPStates(port: port).values.reduce(0, +) <= 3 + 25
                }
            }
        }
        try Wait.until("libzmq has closed every churned connection", timeout: stallSeconds) {
            let states = Self.serverSideTCPStates(port: port)
            return states["08", default: 0] == 0 && states["01", default: 0] == 3
        }
        gone.close()
        try Wait.until("libzmq has closed the subscriber that left", timeout: stallSeconds) {
            Self.serverSideTCPStates(port: port)["01", default: 0] == 2
        }
        let upstreamContext = try Context()
        let upstreamBroker = try Socket(upstreamContext, type: .xpub)
        defer {
            upstreamBroker.close()
            upstreamContext.terminate()
        }
        try upstreamBroker.setOption(.linger, 0)
        try upstreamBroker.bind(upstream)
        try Wait.until("zpubd's XSUB connects to the upstream", timeout: stallSeconds) {
            Self.serverSideTCPStates(port: upstreamPort)["01", default: 0] == 1
        }
        let churnSeconds = Date().timeIntervalSince(stalled)
        try XCTSkipIf(
            churnSeconds > stallSeconds - 3,
            "the churn took \(churnSeconds) s of the \(stallSeconds) s stall: this machine is too slow to churn while the loop is held"
        )
        // Done while it was held: a second SIGUSR2 lets the loop run again at once.
        daemon.signal(SIGUSR2)
        // Handled again: two subscribers, the others counted out, the upstream's handshake (its
        // monitor event may come just after the TCP connection seen above).
        // STATS answers with an error while the loop is held.
        try Wait.until("the loop counts two subscribers and the upstream", timeout: 30) {
            let stats = try? daemon.stats()
            return stats?.peers[.xpub] == 2 && stats?.upstreams.first?.state == .connected
        }
        let stats = try daemon.stats()
        let summarized = try XCTUnwrap(stats.connectionEventsSummarized)
        XCTAssertGreaterThanOrEqual(
            Int(summarized), 2 * churned + 3 - ConnectionEventBacklogLimit.events,
            "every event past the 4,096 queued ones was added up")
        XCTAssertEqual(stats.peers[.pull] ?? 0, 0)
        XCTAssertEqual(stats.upstreams.first?.state, .connected, "\(stats.upstreams)")
        XCTAssertEqual(stats.upstreams.first?.connects, 1, "\(stats.upstreams)")
        XCTAssertGreaterThanOrEqual(
            stats.handshakeFailures, UInt64(churned),
            "each churned connection failed the handshake (counted in the summary)")
        // Written by the log's own thread, after the loop handed it over.
        try Wait.until("the summary is logged") { daemon.log.contains("connection events behind") }
        let cli = try Run.program(Binaries.zpub, ["stats", "--control", daemon.control], timeout: 20)
        XCTAssertTrue(
            cli.stdout.contains("connections    \(summarized) events taken as counts"), cli.stdout + cli.stderr)
        try daemon.waitForSubscriptions(to: ["k"])
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("k", "after the churn"))
        XCTAssertEqual(try kept.receive(1), [frames("k", "after the churn")])
        XCTAssertEqual(try late.receive(1), [frames("k", "after the churn")])
        figure(
            "\(churned) connections opened and closed while the loop was held: \(summarized) events added up, peer count right after (2)"
        )
    }

    /// Server-side TCP sockets on `port` by state (/proc/net/tcp: "01" established, "08" close
    /// wait: the peer closed, the listener has not), the listening one left out.
    private static func serverSideTCPStates(port: Int) -> [String: Int] {
        // Read to the end: String(contentsOfFile:) stops at the first 4 KiB of a /proc file.
        guard let data = FileHandle(forReadingAtPath: "/proc/net/tcp")?.readDataToEndOfFile() else { return [:] }
        let table = String(decoding: data, as: UTF8.self)
        let local = String(format: ":%04X", port)
        var states: [String: Int] = [:]
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[1].hasSuffix(local), fields[3] != "0A" else { continue }
            states[String(fields[3]), default: 0] += 1
        }
        return states
    }

    func testAThousandSimultaneousConnections() throws {
        let connections = 1_000
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        try XCTSkipIf(limit.rlim_max < 2_600, "the hard open-file limit (\(limit.rlim_max)) is too low for this test")
        if limit.rlim_cur < 2_600 {
            limit.rlim_cur = min(limit.rlim_max, 4_096)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let port = try FreePort.find()
        let daemon = try Daemon(endpoints: [.xpub: "tcp://127.0.0.1:\(port)"])
        let context = try Context()
        context.setMaxSockets(Int32(connections + 50))
        defer { context.terminate() }
        var sockets: [Socket] = []
        defer { sockets.forEach { $0.close() } }
        let start = Date()
        for i in 0..<connections {
            let socket = try Socket(context, type: .sub)
            try socket.setOption(.linger, 0)
            try socket.connect("tcp://127.0.0.1:\(port)")
            try socket.setOption(.subscribe, bytes: Array("c\(i % 10)".utf8))
            sockets.append(socket)
        }
        try Wait.until("\(connections) peers are connected", timeout: 60) {
            try daemon.stats().peers[.xpub] == connections
        }
        try daemon.waitForSubscriptions(connections, timeout: 30)
        let connected = Date().timeIntervalSince(start)
        let clients = try Clients()
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("c3", "to a tenth"))
        for (i, socket) in sockets.enumerated() where i % 10 == 3 {
            XCTAssertEqual(try socket.receiveFrames(timeoutMilliseconds: 5_000), frames("c3", "to a tenth"))
        }
        let rss = ProcessMemory.residentKilobytes(of: daemon.process.processIdentifier)
        figure(
            "\(connections) simultaneous connections: all connected in \(String(format: "%.1f", connected)) s; zpubd RSS \(rss / 1024) MiB"
        )
    }
}

/// `ConnectionEventBacklog.defaultLimit`, as the tests know it.
enum ConnectionEventBacklogLimit {
    static let events = 4_096
}

enum Soak {
    /// `make soak` sets ZPUB_SOAK=1: full-size runs and the ratio assertions.
    static var enabled: Bool { ProcessInfo.processInfo.environment["ZPUB_SOAK"] != nil }
    static func scale(_ quick: Int, _ soak: Int) -> Int { enabled ? soak : quick }
    /// `make sanitize` runs the tests against a ThreadSanitizer or AddressSanitizer build and
    /// sets these.
    static var sanitized: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["TSAN_OPTIONS"] != nil || environment["LSAN_OPTIONS"] != nil
            || environment["ASAN_OPTIONS"] != nil
    }
}

enum ProcessMemory {
    static func residentKilobytes(of pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
}

extension RunningProgram {
    /// One of the test's pyzmq scripts, in the background.
    convenience init(python script: String, _ arguments: [String]) throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "python/\(script)"
        ).path
        try self.init(URL(fileURLWithPath: "/usr/bin/python3"), [path] + arguments)
    }
}

extension FaultTests {
    /// zpubd's stderr is a pipe whose reader stopped reading (a `zpubd 2>&1 | tool` whose tool
    /// hangs; journald stalled is the same for the journal's socket). The forwarding loop logs
    /// two debug lines per connection; once the pipe is full, a loop that wrote its log itself
    /// would block in write(2) and stop forwarding and answering STATS. It hands its records to
    /// a writer thread instead, which drops what does not fit and says so when it can write again.
    func testALogReaderThatStopsReadingDoesNotStopTheLoop() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpubd-fifo-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("stderr").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        // Held open and never read until the end: the pipe fills at its 64 KiB.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        XCTAssertGreaterThanOrEqual(reader, 0)
        defer { close(reader) }
        let daemon = try Daemon(
            arguments: ["--log-level", "debug"], launcher: ["/bin/sh", "-c", "exec \"$@\" 2>\(fifo)", "sh"])
        let path = String(daemon.xpub.dropFirst("ipc://".count))
        func unreadBytes() -> Int32 {
            var count: Int32 = 0
            _ = ioctl(reader, UInt(FIONREAD), &count)
            return count
        }
        // Connections opened and closed: "peer connected" and "peer disconnected" for each.
        func connectAndClose() {
            XCTAssertTrue(UnixSocket.canConnect(path), "connect to \(path): errno \(errno)")
        }
        var connections = 0
        try Wait.until(
            "the log pipe is full (\(unreadBytes()) bytes unread after \(connections) connections)", timeout: 60
        ) {
            for _ in 0..<20 { connectAndClose() }
            connections += 20
            // A write of up to 4 KiB (PIPE_BUF) waits until all of it fits.
            return unreadBytes() >= 65_536 - 4_096
        }
        // Full: every further line waits. More than the 1,000 records the loop's log queue
        // holds (two lines a connection), so that some are dropped.
        for _ in 0..<1_000 { connectAndClose() }
        try Wait.until("the loop has seen the connections (STATS answers)", timeout: 10) {
            (try daemon.request("STATS", timeout: 1_000)) != nil
        }
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["t"])
        try daemon.waitForSubscriptions(1)
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("t", "through"))
        XCTAssertEqual(try subscriber.receive(1), [frames("t", "through")])
        XCTAssertGreaterThanOrEqual(unreadBytes(), 65_536 - 4_096, "the pipe was read after all")
        let dropped = try XCTUnwrap(try daemon.json("STATS")["dropped_log_records"] as? Int)
        XCTAssertGreaterThan(dropped, 0, "STATS counts the records the loop could not queue")
        let stats = try Run.program(Binaries.zpub, ["stats", "--control", daemon.control], timeout: 20)
        XCTAssertTrue(stats.stdout.contains("records of the forwarding loop dropped"), stats.stdout + stats.stderr)

        // Read again: the writer writes on, and says how many records it dropped.
        var text = ""
        try Wait.until("the writer reports its drops", timeout: 20) {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(reader, &buffer, buffer.count)
                if count <= 0 { break }
                text += String(decoding: buffer[..<count], as: UTF8.self)
            }
            return text.contains("log records were dropped")
        }
    }
}
