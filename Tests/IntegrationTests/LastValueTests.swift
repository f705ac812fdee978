import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// Late joiners get the current state: the last value on subscribe, and SNAPSHOT.
final class LastValueTests: XCTestCase {
    func testALateSubscriberGetsTheLastValueAndNobodyElseGetsItAgain() throws {
        let daemon = try Daemon(arguments: ["--last-value", "state."])
        let clients = try Clients()
        let early = try clients.subscriber(daemon.xpub, prefixes: ["state."])
        try daemon.waitForSubscriptions(1)
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("state.lamp", "off"))
        try push.send(frames: frames("state.lamp", "on", "since 12:00"))
        try push.send(frames: frames("news.x", "not cached"))
        XCTAssertEqual(
            try early.receive(2).map { $0.dropFirst().map { String(decoding: $0, as: UTF8.self) } },
            [["off"], ["on", "since 12:00"]])
        try Wait.until("the cache holds state.lamp") { try daemon.stats().lastValue.entries == 1 }

        let late = try clients.subscriber(daemon.xpub, prefixes: ["state.lamp"])
        XCTAssertEqual(try late.receive(1), [frames("state.lamp", "on", "since 12:00")], "the whole last message")
        try early.assertNothing(within: 300)
        // Live traffic after that reaches both, once.
        try push.send(frames: frames("state.lamp", "dim"))
        XCTAssertEqual(try late.receive(1), [frames("state.lamp", "dim")])
        XCTAssertEqual(try early.receive(1), [frames("state.lamp", "dim")])
        try early.assertNothing(within: 200)
        try late.assertNothing(within: 50)
        let stats = try daemon.stats().lastValue
        XCTAssertTrue(stats.onSubscribe, "Debian's libzmq 4.3.4 accepts ZMQ_XPUB_MANUAL_LAST_VALUE")
        XCTAssertEqual(stats.hits, 1)
        XCTAssertEqual(stats.prefixes, ["state."])
    }

    /// With no store configured the loop forwards through its copy without the stores' checks;
    /// a reload that turns the cache on must be obeyed from the next message (the copy is chosen
    /// per burst), and one that turns it off too (that half checks the outcome: the other copy
    /// looks at the cache's own setting as well).
    /// A reload that moves the cache to other prefixes drops the values of the old ones: a
    /// walkthrough's SNAPSHOT served `state.a=v1` as current after its updates were no longer
    /// cached, while `zpub sub --snapshot` said none was.
    func testAReloadDropsTheValuesOfPrefixesNoLongerCached() throws {
        let daemon = try Daemon(configuration: "[last_value]\nprefixes = [\"state.\", \"cfg.\"]\n")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("state.a", "v1"))
        try push.send(frames: frames("cfg.a", "on"))
        try Wait.until("both are cached") { try daemon.stats().lastValue.entries == 2 }
        try "[last_value]\nprefixes = [\"cfg.\"]\n".write(to: daemon.configURL, atomically: true, encoding: .utf8)
        XCTAssertEqual(try daemon.json("RELOAD")["reloaded"] as? Bool, true, daemon.log)
        XCTAssertEqual(try daemon.stats().lastValue.entries, 1)
        try Wait.until("the log says so") {
            daemon.log.contains("dropped 1 cached last value that [last_value] prefixes no longer cover")
        }
        let late = try clients.subscriber(daemon.xpub, prefixes: ["cfg.", "state."])
        XCTAssertEqual(try late.receive(1), [frames("cfg.a", "on")])
        try late.assertNothing(within: 300)
    }

    func testAReloadThatTurnsTheCacheOnAndOffIsObeyedFromTheNextMessage() throws {
        let daemon = try Daemon(configuration: "[limits]\nmax_topics = 100\n")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        func send(_ payload: String, expectingIn count: UInt64) throws {
            try push.send(frames: frames("state.lamp", payload))
            try Wait.until("zpubd has taken message \(count)") { try daemon.stats().messagesIn == count }
        }
        func reload(_ configuration: String, cacheOn: Bool) throws {
            try configuration.write(to: daemon.configURL, atomically: true, encoding: .utf8)
            daemon.signal(SIGHUP)
            try Wait.until("the reload turned the cache \(cacheOn ? "on" : "off")") {
                try daemon.stats().lastValue.enabled == cacheOn
            }
        }
        try send("1", expectingIn: 1)
        XCTAssertEqual(try daemon.stats().lastValue.updates, 0)

        try reload("[limits]\nmax_topics = 100\n[last_value]\nprefixes = [\"state.\"]\n", cacheOn: true)
        try send("2", expectingIn: 2)
        XCTAssertEqual(try daemon.stats().lastValue.updates, 1, "the first message after the reload is cached")
        let late = try clients.subscriber(daemon.xpub, prefixes: ["state.lamp"])
        XCTAssertEqual(try late.receive(1), [frames("state.lamp", "2")])

        try reload("[limits]\nmax_topics = 100\n", cacheOn: false)
        try send("3", expectingIn: 3)
        XCTAssertEqual(try daemon.stats().lastValue.updates, 1, "nothing cached once the cache is off")
        XCTAssertEqual(try late.receive(1), [frames("state.lamp", "3")], "and the message is forwarded")
    }

    /// `[last_value] on_subscribe = false`: a new subscriber gets no value when it subscribes
    /// (snapshots still serve them), and a reload turns it back on. Told by order: a value sent
    /// on subscribe would come before the live message published after the subscription.
    func testOnSubscribeFalseSendsNoValueToANewSubscriber() throws {
        let off = "[last_value]\nprefixes = [\"state.\"]\non_subscribe = false\n"
        let daemon = try Daemon(configuration: off)
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("state.lamp", "cached"))
        try Wait.until("the value is cached") { try daemon.stats().lastValue.updates == 1 }
        XCTAssertEqual(try daemon.stats().lastValue.onSubscribe, false)
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["state."])
        try daemon.waitForSubscriptions(1)
        try push.send(frames: frames("state.lamp", "live"))
        XCTAssertEqual(try subscriber.receive(1), [frames("state.lamp", "live")], "no value on subscribe")
        XCTAssertEqual(try daemon.stats().lastValue.hits + daemon.stats().lastValue.misses, 0)

        try off.replacingOccurrences(of: "false", with: "true").write(
            to: daemon.configURL, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        try Wait.until("the reload turned on_subscribe on") { try daemon.stats().lastValue.onSubscribe }
        let late = try clients.subscriber(daemon.xpub, prefixes: ["state."])
        XCTAssertEqual(try late.receive(1), [frames("state.lamp", "live")], "the value on subscribe again")
    }

    func testAPrefixOverSeveralCachedTopicsGetsTheNewestOfThem() throws {
        let daemon = try Daemon(arguments: ["--last-value", "sensor."])
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for (topic, value) in [("sensor.a", "1"), ("sensor.b", "2"), ("sensor.c", "3"), ("sensor.a", "4")] {
            try push.send(frames: frames(topic, value))
        }
        try Wait.until("four updates cached") { try daemon.stats().lastValue.updates == 4 }
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["sensor."])
        XCTAssertEqual(try subscriber.receive(1), [frames("sensor.a", "4")], "the most recently updated topic")
        try subscriber.assertNothing(within: 200)
        let nothingCached = try clients.subscriber(daemon.xpub, prefixes: ["sensor.z"])
        try nothingCached.assertNothing(within: 200)
        // Counted once the broker has read the new subscription, which nothing above waits for.
        try Wait.until("one miss is counted") { try daemon.stats().lastValue.misses == 1 }
        // A subscription with no value does not divert the next data message to itself.
        let other = try clients.subscriber(daemon.xpub, prefixes: ["sensor.z"])
        try daemon.waitForSubscriptions(3)
        try push.send(frames: frames("sensor.zeta", "live"))
        XCTAssertEqual(try nothingCached.receive(1), [frames("sensor.zeta", "live")])
        XCTAssertEqual(try other.receive(1), [frames("sensor.zeta", "live")])
    }

    func testAnEmptyPayloadDeletesAndTheBoundsHoldUnderAFlood() throws {
        let daemon = try Daemon(
            configuration: "[last_value]\nprefixes = [\"t.\"]\nmax_entries = 100\nmax_bytes = 4000\n")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("t.gone", "value"))
        try push.send(frames: [Array("t.gone".utf8), []])
        try Wait.until("the deletion is counted") { try daemon.stats().lastValue.deletions == 1 }
        XCTAssertEqual(try daemon.stats().lastValue.entries, 0)

        for i in 0..<5_000 { try push.send(frames: frames("t.\(i)", String(repeating: "v", count: 20))) }
        try Wait.until("5,001 updates seen") { try daemon.stats().lastValue.updates == 5_001 }
        let stats = try daemon.stats().lastValue
        XCTAssertLessThanOrEqual(stats.entries, 100)
        XCTAssertLessThanOrEqual(stats.bytes, 4_000)
        XCTAssertGreaterThan(stats.evictions, 4_800)
        // What is left is the newest.
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["t.4999"])
        XCTAssertEqual(try subscriber.receive(1).first?.first, Array("t.4999".utf8))
    }

    /// A message larger than the cache's max_bytes is not cached (it would evict every other
    /// value, then itself), and the older value of its topic goes: it is stale.
    func testAMessageLargerThanTheCacheLeavesTheOtherValuesAlone() throws {
        let daemon = try Daemon(
            configuration: "[last_value]\nprefixes = [\"t.\"]\nmax_entries = 100\nmax_bytes = 4000\n")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for name in ["a", "b", "c"] { try push.send(frames: frames("t.\(name)", "small")) }
        try Wait.until("3 values cached") { try daemon.stats().lastValue.entries == 3 }
        try push.send(frames: [
            Array("t.a".utf8), [UInt8](repeating: 120, count: 2_000), [UInt8](repeating: 121, count: 2_500),
        ])
        try Wait.until("the large message is seen, and t.a's old value gone") {
            try daemon.stats().lastValue.entries == 2
        }
        let stats = try daemon.stats().lastValue
        XCTAssertEqual(stats.evictions, 0, "nothing evicted for it")
        // Counted and logged as what it is: it was counted as a deletion, and nothing said why
        // t.a had no value (a walkthrough).
        XCTAssertEqual(stats.tooLarge, 1)
        XCTAssertEqual(stats.deletions, 0)
        try Wait.until("the log says why") { daemon.log.contains("is larger than max_bytes (4000)") }
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["t.b", "t.a"])
        XCTAssertEqual(try subscriber.receive(1), [frames("t.b", "small")], "t.b kept; t.a has no value now")
        try subscriber.assertNothing(within: 300)
    }

    /// Each frame counts against max_bytes with its 4-byte length, as the cache holds it: a
    /// message of thousands of empty frames is not cached as if it were its topic alone.
    func testAMessageOfManyEmptyFramesCountsWhatItHolds() throws {
        let daemon = try Daemon(
            configuration: "[last_value]\nprefixes = [\"t.\"]\nmax_entries = 100\nmax_bytes = 4000\n")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for name in ["a", "b", "c"] { try push.send(frames: frames("t.\(name)", "small")) }
        // 2,000 empty frames: 8 KB held, over max_bytes.
        try push.send(frames: [Array("t.many".utf8)] + Array(repeating: [], count: 2_000))
        try push.send(frames: frames("t.d", "small"))
        // t.d's value on subscribing: everything before it was seen.
        let probe = try clients.subscriber(daemon.xpub, prefixes: ["t.d"])
        XCTAssertEqual(try probe.receive(1), [frames("t.d", "small")])
        let many = try clients.subscriber(daemon.xpub, prefixes: ["t.many"])
        try daemon.waitForSubscriptions(2)
        try many.assertNothing(within: 300)
        let stats = try daemon.stats().lastValue
        XCTAssertEqual(stats.entries, 4, "t.a to t.d; t.many not cached")
        XCTAssertEqual(stats.updates, 4)
        XCTAssertLessThanOrEqual(stats.bytes, 4_000)
        XCTAssertEqual(stats.evictions, 0, "nothing evicted for it")
    }

    /// The Clone pattern through `zpub sub --snapshot` while a producer keeps publishing: every
    /// topic's values, snapshot then live, must follow each other without gap or duplicate.
    func testSnapshotThenLiveStreamHasNoGapAndNoDuplicate() throws {
        let daemon = try Daemon(arguments: ["--last-value", "s."])
        let topics = 10
        // Publishes until the subscriber has what it needs: the snapshot is taken mid-stream.
        let producer = BackgroundProducer(endpoint: daemon.pull) { i in [frames("s.k\(i % topics)", "\(i)")] }
        try Wait.until("every topic is cached") { try daemon.stats().lastValue.entries == topics }
        let received = 1_200
        let run = try Run.program(
            Binaries.zpub,
            [
                "sub", "--snapshot", "--endpoint", daemon.xpub, "--control", daemon.control, "--count", "\(received)",
                "s.",
            ],
            timeout: 30)
        XCTAssertTrue(producer.stopWhileRunning(), "the producer was still publishing")
        XCTAssertEqual(run.status, 0, run.stderr)
        var lastPerTopic: [String: Int] = [:]
        var snapshotTopics = 0
        for line in run.stdout.split(separator: "\n") {
            let parts = line.split(separator: "\t")
            guard parts.count == 2, let value = Int(parts[1]) else { return XCTFail("bad line \(line)") }
            let topic = String(parts[0])
            if let previous = lastPerTopic[topic] {
                XCTAssertEqual(value, previous + topics, "\(topic): after \(previous) came \(value)")
            } else {
                snapshotTopics += 1
            }
            lastPerTopic[topic] = value
        }
        XCTAssertEqual(snapshotTopics, topics, "the snapshot holds every topic")
        XCTAssertEqual(run.stdout.split(separator: "\n").count, received)
        XCTAssertEqual(try daemon.stats().lastValue.snapshots, 1)
    }

    func testSnapshotWithoutTheMarkerSubscriptionIsAnErrorNotAHang() throws {
        let daemon = try Daemon(arguments: ["--last-value", "s."])
        let started = Date()
        let raw = try XCTUnwrap(try daemon.request("SNAPSHOT nobodysubscribed s.", timeout: 10_000))
        let reply = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any])
        XCTAssertEqual((reply["error"] as? [String: Any])?["code"] as? String, "snapshot_timeout")
        XCTAssertLessThan(Date().timeIntervalSince(started), 8)
        XCTAssertEqual(
            ((try daemon.json("SNAPSHOT bad/token"))["error"] as? [String: Any])?["code"] as? String, "bad_argument")
    }
}

/// A flag the test sets and another thread checks.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// A flag one thread sets and a test waits for.
final class ConditionBox: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func set() { semaphore.signal() }
    func wait(seconds: Double) -> Bool { semaphore.wait(timeout: .now() + seconds) == .success }
}
