import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// A WebSocket client that subscribes and unsubscribes in a loop cannot load the broker's
/// forwarding loop at will: the gateway allows each client a burst of changes and then a steady
/// rate (`SubscriptionChangeLimit`), refuses the rest with an error reply, and keeps the client
/// connected. docs/http.md ("Limits").
final class GatewaySubscriptionChurnTests: XCTestCase {
    /// `SubscriptionChangeLimit.perSecond` in Sources/ZPubGateway/ConnectionLimits.swift.
    private static let changesPerSecond = 20.0
    /// Set in the test's [http]; the burst is twice it (`SubscriptionChangeLimit.burst`).
    private static let maxClientPrefixes = 16
    private static var burst: Double { Double(2 * maxClientPrefixes) }

    private func script(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/\(name)").path
    }

    /// Subscription frames the broker has seen, both kinds.
    private func subscriptionEvents(_ daemon: Daemon) throws -> UInt64 {
        let subscriptions = try daemon.stats().subscriptions
        return subscriptions.subscribeEvents + subscriptions.unsubscribeEvents
    }

    /// 2,000 subscribe and unsubscribe requests sent as fast as the client can, on a prefix
    /// under the last-value cache: each accepted subscribe may cost the broker a catch-up (a
    /// SNAPSHOT, and its marker's subscribe and unsubscribe) and a subscription frame, each
    /// accepted unsubscribe a frame, and changes beyond the burst plus the rate times the time
    /// they took are refused with `too_many_changes` and counted in /metrics. After a pause the
    /// same connection subscribes and gets a message. Without the limit, every one of the 2,000
    /// reached the forwarding loop (before the gateway's linger and catch-ups); with them and
    /// no limit, one run made 485 SNAPSHOTs and 971 subscription frames of them, against 11-15
    /// and 23-31 with it (2026-12-02).
    func testAClientChangingItsSubscriptionsInALoopIsHeldToItsAllowance() throws {
        let port = try FreePort.find()
        // With the last-value cache on the churned prefix: the costly path of a subscription.
        let daemon = try Daemon(
            configuration: """
                [last_value]
                prefixes = ["churn."]
                \(httpSection(port: port, "max_client_prefixes = \(Self.maxClientPrefixes)"))
                """
        ).waitForGateway(port: port)
        let before = try subscriptionEvents(daemon)
        let snapshotsBefore = try daemon.stats().lastValue.snapshots
        let refusedName = "zpub_http_subscription_changes_refused_total"
        XCTAssertEqual(try HTTPProbe.metrics(port: port)[refusedName], 0)

        let changes = 2_000
        // Five tokens' worth: a client that slows down, as the refusal asks, not a wait on zpubd.
        let pause = 5 / Self.changesPerSecond
        let ready = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-churn-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: ready) }
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script("subscription_churn.py"), "\(port)", "churn.a", "\(changes)", "\(pause)", "after.", ready])
        try Wait.until("the client has sent its changes and subscribed again\n\(client.stdoutSoFar)", timeout: 60) {
            guard client.isRunning else { return true }
            return FileManager.default.fileExists(atPath: ready)
        }
        // The gateway's SUB sends its frames in order: once the broker holds "after.", every
        // change before it has been counted.
        do {
            try Wait.until("the broker holds the client's last subscription") {
                try daemon.subscriptions().subscriptions.contains { $0.prefix == "after." }
            }
        } catch {
            // Said as it is when the wait ends (a fresh run's failure, once, showed nothing of it).
            let held = (try? daemon.subscriptions().subscriptions.map(\.prefix)) ?? []
            let metrics = (try? HTTPProbe.metrics(port: port)) ?? [:]
            XCTFail(
                "the broker holds \(held); the client said \(client.stdoutSoFar) \(client.stderrSoFar); gateway: \(metrics.filter { $0.key.contains("subscri") || $0.key.contains("upstream") })\n\(daemon.log.suffix(2_000))"
            )
            throw error
        }
        let seen = Double(try subscriptionEvents(daemon) - before) - 1  // not "after." itself
        let snapshots = Double(try daemon.stats().lastValue.snapshots - snapshotsBefore)
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("after.news", "still connected"))

        let run = try client.finish(timeout: 30)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let lines = jsonLines(run.stdout)
        let churn = try XCTUnwrap(lines.first { $0["elapsed_s"] != nil }, run.stdout + run.stderr)
        let elapsed = try XCTUnwrap(churn["elapsed_s"] as? Double)
        let replies = churn["replies"] as? [String: Int] ?? [:]
        let refused = replies["error:too_many_changes"] ?? 0
        let bound = Self.burst + Self.changesPerSecond * elapsed
        print(
            "figure: \(changes) changes in \(String(format: "%.2f", elapsed)) s reached the broker as \(Int(seen)) subscription frames and \(Int(snapshots)) SNAPSHOTs (bound \(Int(bound)) changes); replies \(replies)"
        )

        XCTAssertLessThanOrEqual(
            snapshots, bound,
            "catch-ups the broker answered for \(changes) changes in \(elapsed) s: at most one per accepted change, the burst (\(Self.burst)) plus \(Self.changesPerSecond) a second; replies \(replies)"
        )
        XCTAssertLessThanOrEqual(
            seen, 3 * bound,
            "subscription frames the broker saw from \(changes) changes in \(elapsed) s: at most three per accepted change; replies \(replies)"
        )
        // The subscribes of a cached prefix did cost catch-ups: what the limit is there to bound.
        XCTAssertGreaterThanOrEqual(snapshots, 1, "the client's subscribes started catch-ups: \(replies)")
        XCTAssertGreaterThan(refused, 0, "the changes beyond the allowance were refused: \(replies)")
        XCTAssertEqual(replies.values.reduce(0, +), changes, "one reply per request: \(replies)")
        let refusal = churn["refusal"] as? [String: Any] ?? [:]
        XCTAssertEqual(refusal["prefix"] as? String, "churn.a", "\(refusal)")
        XCTAssertTrue((refusal["message"] as? String ?? "").contains("slow down"), "it says what to do: \(refusal)")
        XCTAssertEqual(try HTTPProbe.metrics(port: port)[refusedName], Double(refused), "every refusal is counted")

        // The same connection, after a pause: subscribed, and the message delivered.
        let after = (lines.first { $0["after"] != nil }?["after"] as? [String: Any])?["message"] as? [String: Any]
        XCTAssertEqual(after?["type"] as? String, "subscribed", run.stdout)
        let then = (lines.first { $0["then"] != nil }?["then"] as? [String: Any])?["message"] as? [String: Any]
        XCTAssertEqual(then?["topic"] as? String, "after.news", run.stdout)
        XCTAssertEqual(then?["payload"] as? String, "still connected", run.stdout)
    }

    /// New prefixes reach the broker within the gateway's budget (`upstream_subscriptions_per_s`,
    /// as many at once): a client that connects with 60 of them at a budget of 20 a second has
    /// 20 subscribed at once and the rest in the next two seconds, never faster, and then gets
    /// messages under the last. Without the budget all 60 reached the broker at once, and a
    /// client connecting in a loop with new prefixes changed the broker's subscriptions as fast
    /// as it could connect.
    func testNewPrefixesReachTheBrokerWithinTheGatewaysBudget() throws {
        let port = try FreePort.find()
        let rate = 20.0
        let daemon = try Daemon(
            configuration: httpSection(port: port, "upstream_subscriptions_per_s = \(Int(rate))")
        ).waitForGateway(port: port)
        let prefixes = (0..<60).map { String(format: "p.%02d.", $0) }
        let query = "?" + prefixes.map { "prefix=\($0)" }.joined(separator: "&")
        // Before the client exists: the gateway's clock starts later, so what it may have
        // subscribed by any moment is at most what this bound allows.
        let started = Date()
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script("http_clients.py"), "ws-since", "\(port)", "[]", "p.59.x", "-", query])
        var samples: [(seconds: Double, held: Int)] = []
        try Wait.until("the broker holds all 60 prefixes\n\(samples)", timeout: 30) {
            let held = try daemon.subscriptions().subscriptions.filter { $0.prefix.hasPrefix("p.") }.count
            samples.append((Date().timeIntervalSince(started), held))
            return held == prefixes.count
        }
        for sample in samples {
            XCTAssertLessThanOrEqual(
                Double(sample.held), rate + rate * sample.seconds + 1, "faster than the budget: \(samples)")
        }
        let done = try XCTUnwrap(samples.last?.seconds)
        XCTAssertGreaterThanOrEqual(done, (Double(prefixes.count) - rate) / rate, "\(samples)")
        print("figure: 60 prefixes at a budget of 20/s reached the broker in \(String(format: "%.2f", done)) s")
        let metrics = try HTTPProbe.metrics(port: port)
        XCTAssertEqual(metrics["zpub_http_upstream_waiting"], 0)
        let delayed = try XCTUnwrap(metrics["zpub_http_upstream_delayed_total"])
        XCTAssertTrue((30...40).contains(delayed), "the 40 over the burst waited: \(delayed)")

        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("p.59.x", "last"))
        let run = try client.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("\"payload\": \"last\""), run.stdout)
    }

    /// `subscribed` means the broker forwards the prefix: a page that subscribes to its job's
    /// results and then starts the job gets them, however fast they come. Here the prefix waits
    /// for the gateway's budget (`BudgetFilled`): the reply comes once it reaches the broker and
    /// the forwarding loop has applied it, the broker holds it when the client reads the reply,
    /// and a message pushed at that moment arrives. A `ping` sent right after the subscribe is
    /// answered after it: replies keep the order of their requests. Before, the gateway replied
    /// at once: the broker did not hold the prefix, and the message was lost.
    func testSubscribedComesOnceTheBrokerForwardsThePrefix() throws {
        let filled = try BudgetFilled(script: script("http_clients.py"))
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                script("http_clients.py"), "ws-requests", "\(filled.port)",
                #"[{"op":"subscribe","prefix":"job.1."},{"op":"ping"}]"#, "job.1.", filled.ready, "job.1.done",
            ])
        try filled.pushOnceTold(prefix: "job.1.", frames("job.1.done", "42"))
        let run = try client.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let replies = jsonLines(run.stdout).compactMap { $0["message"] as? [String: Any] }
        XCTAssertEqual(replies.map { $0["type"] as? String }, ["subscribed", "pong", "message"], run.stdout)
        XCTAssertEqual(replies.last?["payload"] as? Int, 42, run.stdout)
        let waited = jsonLines(run.stdout).first?["after_s"] as? Double ?? 0
        print("figure: subscribed came \(waited) s after the subscribe, behind 8 prefixes waiting at 2/s")
        try filled.assertTheyWaited()
    }

    /// The other half of the wait: with 50,000 subscription frames queued at the broker's XPUB
    /// ahead of the gateway's (some 5 µs each for the forwarding loop, which forwards messages
    /// between its slices of them), `subscribed` comes once the loop has read them all, so a
    /// message pushed when the client reads it arrives. Sent when the SUB had sent the
    /// subscription, the reply came while it was still queued, and the message went through
    /// the loop ahead of it and was lost.
    func testSubscribedWaitsForTheSubscriptionsQueuedAheadOfIt() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(configuration: httpSection(port: port)).waitForGateway(port: port)
        let result = try runBehindFlood("ws-behind-flood", daemon, port: port)
        print(
            "figure: behind 50,000 queued subscriptions, subscribed came after \(result["subscribed_after_s"] ?? "?") s"
        )
    }

    /// A prefix that holds a cached one (`job.` holds `job.cached.`) starts with a catch-up of
    /// the cached values. Its reply comes at the catch-up's reply, which the broker gives once
    /// it has the round's marker subscription, and so the prefix subscribed before it: with
    /// 50,000 subscription frames queued ahead, a message on an uncached topic under it, pushed
    /// when the client reads `subscribed`, arrives, after the cached value. Answered before the
    /// catch-up, as it was, the message went through the loop ahead of the subscription and
    /// was lost.
    func testASubscribeWithACatchUpIsAnsweredOnceTheBrokerForwardsItsPrefix() throws {
        let (daemon, port) = try daemonCachingAJobValue()
        let result = try runBehindFlood("ws-behind-flood", daemon, port: port, ["job.", "job.4.done"])
        let messages = (result["frames"] as? [[String: Any]] ?? []).compactMap { $0["message"] as? [String: Any] }
        XCTAssertEqual(
            messages.map { "\($0["type"] ?? "") \($0["prefix"] ?? $0["topic"] ?? "")" },
            ["subscribed job.", "message job.cached.a", "message job.4.done"], "\(result)")
        print(
            "figure: with a catch-up, behind 50,000 queued subscriptions, subscribed came after \(result["subscribed_after_s"] ?? "?") s"
        )
    }

    /// A prefix in a WebSocket URL gets the same `subscribed` a request would, unasked, once the
    /// broker forwards it: behind 50,000 queued subscription frames, a message pushed when the
    /// client reads it arrives. Before, a URL client had nothing to wait for but the upgrade,
    /// which comes before the gateway has even subscribed.
    func testAWebSocketURLsPrefixIsConfirmedOnceTheBrokerForwardsIt() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(configuration: httpSection(port: port)).waitForGateway(port: port)
        let result = try runBehindFlood("ws-behind-flood", daemon, port: port, ["job.6.", "job.6.done", "url"])
        let messages = (result["frames"] as? [[String: Any]] ?? []).compactMap { $0["message"] as? [String: Any] }
        XCTAssertEqual(
            messages.map { "\($0["type"] ?? "") \($0["prefix"] ?? $0["topic"] ?? "")" },
            ["subscribed job.6.", "message job.6.done"], "\(result)")
    }

    /// A URL's prefix that the client unsubscribes before it is confirmed (here it waits for the
    /// budget) gets no `subscribed` after its `unsubscribed`: that would read as the reply to a
    /// subscribe sent since. The URL's other prefix is confirmed as usual.
    func testAURLPrefixUnsubscribedBeforeItIsConfirmedIsNotConfirmed() throws {
        let filled = try BudgetFilled(script: script("http_clients.py"))
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                script("http_clients.py"), "ws-requests", "\(filled.port)",
                #"[{"op":"unsubscribe","prefix":"job.7."}]"#, "job.8.", filled.ready, "job.8.done",
                "?prefix=job.7.&prefix=job.8.",
            ])
        try filled.pushOnceTold(prefix: "job.8.", frames("job.8.done", "48"))
        let run = try client.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let replies = jsonLines(run.stdout).compactMap { $0["message"] as? [String: Any] }
        XCTAssertEqual(
            replies.map { "\($0["type"] ?? "") \($0["prefix"] ?? $0["topic"] ?? "")" },
            ["unsubscribed job.7.", "subscribed job.8.", "message job.8.done"], run.stdout)
        try filled.assertTheyWaited()
    }

    /// A subscribe whose catch-up is not answered within 10 s is answered without it, as a
    /// barrier given up on is: the log says so and /metrics counts it. Here the forwarding
    /// loop is held 25 s by a test hook and three streams' catch-ups are ahead of the client's
    /// on the gateway's one control thread, each SNAPSHOT waiting 5 s for the loop: its own
    /// would fail only after 20 s, and its reply would wait for that.
    func testASubscribeWaitsAtMostTenSecondsForItsCatchUp() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(
            configuration: "[last_value]\nprefixes = [\"state.\"]\n" + httpSection(port: port),
            environment: ["ZPUBD_TEST_HOOKS": "1", "ZPUBD_TEST_STALL_MS": "25000"]
        ).waitForGateway(port: port)
        daemon.signal(SIGUSR2)
        try Wait.until("the loop stalls") { daemon.log.contains("test hook: stalling the forwarding loop") }
        let streams = try (0..<3).map { _ in
            try RunningProgram(
                URL(fileURLWithPath: "/usr/bin/python3"),
                [script("http_clients.py"), "sse", "\(port)", "?prefix=state.", "1"])
        }
        // Open, and so attached (with their catch-ups asked) before the client's subscribe.
        for stream in streams {
            try Wait.until("a stream is open") { stream.stdoutSoFar.contains(#""status": "#) }
        }
        let ready = FileManager.default.temporaryDirectory.appendingPathComponent("zpub-ready-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: ready) }
        let asked = Date()
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                script("http_clients.py"), "ws-requests", "\(port)", #"[{"op":"subscribe","prefix":"state."}]"#,
                "state.", ready, "state.end",
            ])
        try Wait.until("the client is told subscribed", timeout: 40) { FileManager.default.fileExists(atPath: ready) }
        // Not before the 10 s, and not with its SNAPSHOT's failure, which comes 20 s after it
        // was asked (four in turn on the control thread, 5 s each) at the soonest.
        let waited = Date().timeIntervalSince(asked)
        XCTAssertGreaterThanOrEqual(waited, 10, "answered before the 10 s were up")
        XCTAssertLessThan(waited, 19, "answered by the catch-up's failure, not given up on")
        XCTAssertTrue(daemon.log.contains("subscribes waited more than 10 s for their catch-up"), daemon.log)
        // /metrics asks the broker too, which answers once the loop runs again: a second SIGUSR2
        // ends its stall. (The later streams' events are given up on too.)
        daemon.signal(SIGUSR2)
        try Wait.until("/metrics counts it", timeout: 40) {
            (try? HTTPProbe.metrics(port: port))?["zpub_http_catch_up_confirmations_given_up_total"] ?? 0 >= 1
        }
        withExtendedLifetime((client, streams)) {}
    }

    /// The same for an event stream: a stream of a prefix that holds a cached one gets its
    /// `subscribed` event at its catch-up's reply, before the values. Sent before the catch-up,
    /// as it was, a message pushed then was lost.
    func testAnEventStreamWithACatchUpGetsItsSubscribedEventOnceTheBrokerForwardsItsPrefix() throws {
        let (daemon, port) = try daemonCachingAJobValue()
        let result = try runBehindFlood("sse-behind-flood", daemon, port: port, ["job.", "job.5.done"])
        XCTAssertEqual(result["status"] as? Int, 200, "\(result)")
        let events = (result["events"] as? [[String: Any]] ?? []).map { event in
            let data = event["data"] as? [String: Any] ?? [:]
            return "\(event["event"] ?? "") \(data["topic"] ?? (data["prefixes"] as? [String])?.joined() ?? "")"
        }
        XCTAssertEqual(events, ["subscribed job.", "message job.cached.a", "message job.5.done"], "\(result)")
    }

    /// The Python `command` (`ws-behind-flood` or `sse-behind-flood`, with `arguments`) with
    /// 50,000 subscription frames queued at the broker's XPUB ahead of the gateway's: its
    /// result, once checked that the message pushed when the client was told it is subscribed
    /// arrived.
    private func runBehindFlood(
        _ command: String, _ daemon: Daemon, port: Int, _ arguments: [String] = [], file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> [String: Any] {
        let run = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script("http_clients.py"), command, "\(port)", daemon.xpub, daemon.pull, "50000"] + arguments
        ).finish(timeout: 60)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr, file: file, line: line)
        let result = try XCTUnwrap(jsonLines(run.stdout).first, run.stdout + run.stderr, file: file, line: line)
        XCTAssertEqual(
            result["received"] as? Bool, true, "the message pushed once told subscribed: \(run.stdout)", file: file,
            line: line)
        return result
    }

    /// A gateway over a cache of `job.cached.`, which holds one value.
    private func daemonCachingAJobValue() throws -> (Daemon, Int) {
        let port = try FreePort.find()
        let daemon = try Daemon(configuration: "[last_value]\nprefixes = [\"job.cached.\"]\n" + httpSection(port: port))
            .waitForGateway(port: port)
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("job.cached.a", "1"))
        try Wait.until("the broker caches job.cached.a") { try daemon.stats().lastValue.entries == 1 }
        return (daemon, port)
    }

    /// One subscribe naming a prefix under the last-value cache and one that is not: the cached
    /// one's values come after the replies, and the other goes live at once, its reply once the
    /// broker forwards it. Before, both waited for the catch-up (here behind another client's,
    /// for the budget), and the reply came at once: a message on the uncached one pushed then
    /// was lost.
    func testASubscribeOfACachedAndAnUncachedPrefixAnswersOnceBothAreForwarded() throws {
        let filled = try BudgetFilled(
            script: script("http_clients.py"), before: "[last_value]\nprefixes = [\"state.\"]\n"
        ) {
            try $0.send(frames: frames("state.a", "1"))
        }
        try Wait.until("the broker caches state.a") { try filled.daemon.stats().lastValue.entries == 1 }
        // Another client's catch-up runs while prefixes wait: the next one waits for them
        // (docs/http.md, upstream_subscriptions_per_s).
        let first = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                script("http_clients.py"), "ws-requests", "\(filled.port)", #"[{"op":"subscribe","prefix":"state."}]"#,
                "state.", filled.ready + ".first", "state.a",
            ]
        ).finish(timeout: 30)
        XCTAssertTrue(first.stdout.contains(#""topic": "state.a""#), first.stdout + first.stderr)
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                script("http_clients.py"), "ws-requests", "\(filled.port)",
                #"[{"op":"subscribe","prefixes":["state.","job.5."]}]"#, "job.5.", filled.ready, "job.5.done",
            ])
        try filled.pushOnceTold(prefix: "job.5.", frames("job.5.done", "45"))
        let run = try client.finish(timeout: 30)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let replies = jsonLines(run.stdout).compactMap { $0["message"] as? [String: Any] }
        XCTAssertEqual(
            replies.map {
                "\($0["type"] ?? "")\($0["prefix"].map { " \($0)" } ?? "")\($0["topic"].map { " \($0)" } ?? "")"
            },
            ["subscribed state.", "subscribed job.5.", "message state.a", "message job.5.done"], run.stdout)
    }

    /// A forwarding loop that does not answer (held by a test hook) holds a subscribe's
    /// reply for 5 s, not for ever: the reply then goes without the broker's confirmation, the
    /// log says so, and /metrics counts it.
    func testASubscribeIsAnsweredWithoutTheLoopAfterFiveSeconds() throws {
        let port = try FreePort.find()
        // Long enough that a loaded machine's Python start-up and the 5 s fit in it (10 s left
        // some 5); a second SIGUSR2 ends it once the test has seen what it needs.
        let stall = 40.0
        let daemon = try Daemon(
            configuration: httpSection(port: port),
            environment: ["ZPUBD_TEST_HOOKS": "1", "ZPUBD_TEST_STALL_MS": "\(Int(stall * 1_000))"]
        ).waitForGateway(port: port)
        let signalled = Date()
        daemon.signal(SIGUSR2)
        try Wait.until("the loop stalls") { daemon.log.contains("test hook: stalling the forwarding loop") }
        let asked = Date()
        let ready = FileManager.default.temporaryDirectory.appendingPathComponent("zpub-ready-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: ready) }
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                script("http_clients.py"), "ws-requests", "\(port)", #"[{"op":"subscribe","prefix":"held."}]"#,
                "held.", ready, "held.end",
            ])
        try Wait.until("the client is told subscribed", timeout: 30) { FileManager.default.fileExists(atPath: ready) }
        // The barrier was asked for after `asked`: at least the 5 s. The stall began after the
        // signal, so the loop could not answer before `signalled` + the stall.
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(asked), 5, "answered before the 5 s were up")
        XCTAssertLessThan(Date().timeIntervalSince(signalled), stall, "answered by the loop, not given up on")
        XCTAssertTrue(daemon.log.contains("has not answered a subscription barrier"), daemon.log)
        try Wait.until("/metrics counts it", timeout: 20) {
            (try? HTTPProbe.metrics(port: port))?["zpub_http_subscription_barriers_given_up_total"] == 1
        }
        daemon.signal(SIGUSR2)  // the stall ends
        try Wait.until("the loop's stall ends early\n\(daemon.log)") {
            daemon.log.contains("the forwarding loop's stall ends early")
        }
        withExtendedLifetime(client) {}
    }

    /// The same for an event stream: its `subscribed` event comes once the broker forwards its
    /// prefix (a page starts its job then), and a message pushed at that moment arrives. Before,
    /// a stream had no such event; its response's head came before the gateway had even
    /// subscribed.
    func testAnEventStreamsSubscribedEventComesOnceTheBrokerForwardsItsPrefix() throws {
        let filled = try BudgetFilled(script: script("http_clients.py"))
        let stream = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script("http_clients.py"), "sse", "\(filled.port)", "?prefix=job.2.", "1", "-", filled.ready])
        try filled.pushOnceTold(prefix: "job.2.", frames("job.2.done", "43"))
        let run = try stream.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let lines = jsonLines(run.stdout)
        XCTAssertEqual(
            (lines.first { $0["subscribed"] != nil }?["subscribed"] as? [String: Any])?["prefixes"] as? [String],
            ["job.2."], run.stdout)
        let message = lines.compactMap { $0["data"] as? [String: Any] }.first
        XCTAssertEqual(message?["topic"] as? String, "job.2.done", run.stdout)
        XCTAssertEqual(message?["payload"] as? Int, 43, run.stdout)
        try filled.assertTheyWaited()
    }

    /// A gateway whose budget (`upstream_subscriptions_per_s = 2`) is taken: a client holds
    /// 10 prefixes, 2 went to the broker at once and 8 wait for the next 4 s, so that a new
    /// prefix waits behind them.
    private final class BudgetFilled {
        let daemon: Daemon
        let port: Int
        /// Written by the client once it is told `subscribed`.
        let ready = FileManager.default.temporaryDirectory.appendingPathComponent("zpub-ready-\(UUID().uuidString)")
            .path
        private let clients: Clients
        private let push: Socket
        private let filler: RunningProgram

        /// `before`: the configuration's sections before `[http]`.
        init(script: String, before: String = "", beforeFilling: (Socket) throws -> Void = { _ in }) throws {
            port = try FreePort.find()
            daemon = try Daemon(configuration: before + httpSection(port: port, "upstream_subscriptions_per_s = 2"))
                .waitForGateway(port: port)
            clients = try Clients()
            push = try clients.socket(.push, connect: daemon.pull)
            try beforeFilling(push)
            filler = try RunningProgram(
                URL(fileURLWithPath: "/usr/bin/python3"),
                [
                    script, "ws-since", "\(port)", "[]", "fill.end", "-",
                    "?" + (0..<10).map { "prefix=fill.\($0)." }.joined(separator: "&"),
                ])
            let port = port
            try Wait.until("prefixes wait for the budget") {
                (try HTTPProbe.metrics(port: port)["zpub_http_upstream_waiting"] ?? 0) > 0
            }
        }

        deinit { try? FileManager.default.removeItem(atPath: ready) }

        /// Once the client is told: what the broker holds then must include `prefix`, and
        /// `message` is pushed at once.
        func pushOnceTold(prefix: String, _ message: [[UInt8]], file: StaticString = #filePath, line: UInt = #line)
            throws
        {
            try Wait.until("the client is told subscribed", timeout: 30) {
                FileManager.default.fileExists(atPath: self.ready)
            }
            let held = try daemon.subscriptions().subscriptions.map(\.prefix)
            try push.send(frames: message)
            XCTAssertTrue(
                held.contains(prefix), "told subscribed while the broker held only \(held)", file: file, line: line)
        }

        /// The filler's 8 and the client's prefix all waited for the budget.
        func assertTheyWaited(file: StaticString = #filePath, line: UInt = #line) throws {
            let delayed = try XCTUnwrap(HTTPProbe.metrics(port: port)["zpub_http_upstream_delayed_total"])
            XCTAssertGreaterThanOrEqual(
                delayed, 9, "the filler's 8 and the client's prefix waited", file: file, line: line)
            XCTAssertTrue(filler.isRunning, "the filler held its prefixes throughout", file: file, line: line)
        }
    }

    /// A client that reconnects in a loop with the same prefix (a page reloaded over and over)
    /// gets a fresh allowance of changes with each connection, but costs the broker one
    /// subscription, not a subscribe and an unsubscribe per connection: the gateway keeps a
    /// prefix nobody wants subscribed for `UpstreamLinger.nanoseconds` (2 s), and unsubscribes it
    /// once that is over. docs/http.md ("Limits").
    func testAClientReconnectingInALoopCostsTheBrokerOneSubscription() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(configuration: httpSection(port: port)).waitForGateway(port: port)
        let before = try daemon.stats().subscriptions
        let connections = 50
        let run = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script("reconnect_loop.py"), "\(port)", "loop.a", "\(connections)"]
        ).finish(timeout: 120)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let result = try XCTUnwrap(jsonLines(run.stdout).first, run.stdout + run.stderr)
        XCTAssertEqual(result["replies"] as? [String: Int], ["subscribed": connections], run.stdout)
        let after = try daemon.stats().subscriptions
        let subscribes = after.subscribeEvents - before.subscribeEvents
        let unsubscribes = after.unsubscribeEvents - before.unsubscribeEvents
        // A gap between two connections that outlasts the linger may cost one unsubscribe and
        // one subscribe more. The client measures each from its close to the next reply; the
        // gateway's own gap is that give or take its thread's delay, hence half the linger.
        let gaps = result["gaps_s"] as? [Double] ?? []
        let slowGaps = UInt64(gaps.filter { $0 >= 1.0 }.count)
        let gapsSeen = "\(slowGaps) gaps of 1 s or more, the longest \(String(format: "%.3f", gaps.max() ?? 0)) s"
        print(
            "figure: \(connections) connections reached the broker as \(subscribes) subscribes and \(unsubscribes) unsubscribes; \(gapsSeen)"
        )
        XCTAssertGreaterThanOrEqual(subscribes, 1, "the gateway subscribed at all")
        XCTAssertLessThanOrEqual(subscribes, 1 + slowGaps, gapsSeen)
        // The last connection's release may have lingered out already.
        XCTAssertLessThanOrEqual(unsubscribes, 1 + slowGaps, gapsSeen)
        // Nobody wants it: the broker loses the subscription once the linger is over.
        try Wait.until("the broker drops the subscription nobody wants", timeout: 15) {
            try !daemon.subscriptions().subscriptions.contains { $0.prefix == "loop.a" }
        }
    }

    /// A page that comes back for a prefix under the last-value cache gets its value again,
    /// though the prefix lingers and the broker sees no new subscription (which is what its
    /// own last value on subscribe answers): the gateway's catch-up (a SNAPSHOT) sends it. Each
    /// of three connections in turn gets the cached value, once.
    func testAReturningClientOfACachedPrefixGetsItsLastValue() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(
            configuration: "[last_value]\nprefixes = [\"state.\"]\n\(httpSection(port: port))"
        ).waitForGateway(port: port)
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("state.a", "1"))
        try Wait.until("the cache holds it") { try daemon.stats().lastValue.entries == 1 }
        let run = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"), [script("reconnect_loop.py"), "\(port)", "state.a", "3", "1"]
        ).finish(timeout: 120)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let result = try XCTUnwrap(jsonLines(run.stdout).first, run.stdout + run.stderr)
        XCTAssertEqual(result["topics"] as? [String: Int], ["state.a": 3], run.stdout)
    }

    /// The gateway's distinct prefixes, as the broker holds them (its catch-up markers aside).
    private func gatewayPrefixes(_ daemon: Daemon) throws -> Set<String> {
        Set(try daemon.subscriptions().subscriptions.map(\.prefix).filter { !$0.hasPrefix("$zpub/") })
    }

    /// The gateway holds at most `max_upstream_prefixes` distinct prefixes for its clients (and
    /// so at most that many subscriptions at the broker, lingering ones included): a WebSocket
    /// subscribe of a new one past it is answered `gateway_full` and the client stays; an event
    /// stream or WebSocket upgrade that needs a new one gets 503 `gateway_full`; a client of a
    /// prefix held already is let in; once clients let go, new prefixes come in again, taking
    /// the room of prefixes that linger. Without the cap, every prefix went to the broker until
    /// its `max_subscriptions` refused them, and clients were told "subscribed" regardless.
    func testTheGatewayHoldsAtMostMaxUpstreamPrefixes() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(configuration: httpSection(port: port, "max_upstream_prefixes = 3"))
            .waitForGateway(port: port)
        let ready = FileManager.default.temporaryDirectory.appendingPathComponent("zpub-full-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: ready) }
        let requests = ["a.", "b.", "c.", "d."].map { #"{"op":"subscribe","prefix":"\#($0)"}"# }
        let first = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script("http_clients.py"), "ws-since", "\(port)", "[\(requests.joined(separator: ","))]", "a.end", ready])
        try Wait.until("the WebSocket client's four subscribes are answered\n\(first.stdoutSoFar)") {
            FileManager.default.fileExists(atPath: ready)
        }
        try Wait.until("the broker holds a., b. and c.") { try gatewayPrefixes(daemon) == ["a.", "b.", "c."] }

        // A new prefix over HTTP: refused before a stream or an upgrade; a held one: let in.
        let refused = try HTTPProbe.request(port: port, method: "GET", "/events?prefix=e.", headers: [:])
        XCTAssertEqual(refused.status, 503, refused.text)
        XCTAssertTrue(refused.text.contains("gateway_full"), refused.text)
        XCTAssertTrue(refused.text.contains("max_upstream_prefixes (3)"), "it names the setting: \(refused.text)")
        let upgrade = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script("http_clients.py"), "ws-since", "\(port)", "[]", "-", "-", "?prefix=e."]
        ).finish(timeout: 30)
        XCTAssertEqual(jsonLines(upgrade.stdout).first?["status"] as? Int, 503, upgrade.stdout + upgrade.stderr)
        let held = try HTTPProbe.request(
            port: port, method: "GET", "/events?prefix=a.", headers: [:], readTimeout: 1_000)
        XCTAssertEqual(held.status, 200, "a prefix the gateway holds costs nothing: \(held.text)")
        XCTAssertEqual(try gatewayPrefixes(daemon), ["a.", "b.", "c."], "nothing new reached the broker")
        XCTAssertEqual(try HTTPProbe.metrics(port: port)[#"zpub_http_rejected_total{reason="gateway_full"}"#], 3)

        // The first client leaves (a message on a. ends it): its prefixes linger, and give way.
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("a.end", "bye"))
        let run = try first.finish(timeout: 30)
        let replies = jsonLines(run.stdout).compactMap { $0["message"] as? [String: Any] }
        XCTAssertEqual(
            replies.filter { $0["type"] as? String == "subscribed" }.compactMap { $0["prefix"] as? String },
            ["a.", "b.", "c."], run.stdout)
        let full = try XCTUnwrap(replies.first { $0["type"] as? String == "error" }, run.stdout)
        XCTAssertEqual(full["code"] as? String, "gateway_full", run.stdout)
        XCTAssertEqual(full["prefix"] as? String, "d.", run.stdout)
        try Wait.until("the first client's prefixes are let go") {
            try HTTPProbe.metrics(port: port)["zpub_http_clients{kind=\"websocket\"}"] == 0
        }
        let streamReady = ready + ".sse"
        defer { try? FileManager.default.removeItem(atPath: streamReady) }
        let stream = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script("http_clients.py"), "sse", "\(port)", "?prefix=e.", "1", "-", streamReady])
        try Wait.until("the event stream of e. is open\n\(stream.stdoutSoFar)") {
            FileManager.default.fileExists(atPath: streamReady)
        }
        // e. comes upstream while a., b. and c. linger: the longest lingering goes at once.
        try Wait.until("the broker holds e.") { try gatewayPrefixes(daemon).contains("e.") }
        let upstream = try gatewayPrefixes(daemon)
        XCTAssertLessThanOrEqual(upstream.count, 3, "\(upstream)")
        try push.send(frames: frames("e.x", "in"))
        let events = try stream.finish(timeout: 30)
        XCTAssertTrue(events.stdout.contains(#""status": 200"#), events.stdout + events.stderr)
        XCTAssertEqual(jsonLines(events.stdout).filter { $0["data"] != nil }.count, 1, events.stdout)
    }
}
