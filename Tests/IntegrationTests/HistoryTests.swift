import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// Message history against the real zpubd: kept with sequence numbers, across a SIGKILL and a
/// restart, within its bounds, read with `zpub history` and HISTORY (docs/history.md).
final class HistoryTests: XCTestCase {
    private var stateDirectory: URL!

    override func setUpWithError() throws {
        stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-state-\(UUID().uuidString.prefix(8))")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: stateDirectory)
    }

    private func zpub(_ arguments: [String]) throws -> Run {
        try Run.program(Binaries.zpub, arguments, timeout: 60)
    }

    /// `zpub history --json` as (seq, frames) pairs.
    private func history(_ daemon: Daemon, _ arguments: [String] = []) throws -> [(seq: UInt64, frames: [String])] {
        let run = try zpub(["history", "--json", "-c", daemon.control] + arguments)
        XCTAssertEqual(run.status, 0, run.stderr)
        return try run.stdout.split(separator: "\n").map { line in
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let seq = try XCTUnwrap(object["seq"] as? NSNumber).uint64Value
            let topic = try XCTUnwrap(object["topic"] as? String)
            // The test's payloads are text or numbers: one frame is "text" or "json" (a number),
            // several are "frames".
            let payload = try XCTUnwrap(
                object["payload"] as? [String] ?? (object["payload"] as? String).map { [$0] }
                    ?? (object["payload"] as? NSNumber).map { [$0.stringValue] }, String(line))
            return (seq, [topic] + payload)
        }
    }

    /// SIGKILL once the store has synced after everything handled so far: what the durability
    /// promise covers (docs/history.md), with nothing left to chance in between.
    private func killAfterTheNextSync(_ daemon: Daemon) throws {
        let handled = UInt64(Date().timeIntervalSince1970 * 1_000)
        try Wait.until("the store synced after what was handled", timeout: 30) {
            (try daemon.stats().history?.lastSyncMilliseconds ?? 0) > handled
        }
        daemon.signal(SIGKILL)
        XCTAssertNotNil(daemon.waitForExit())
    }

    func testEveryMessageSurvivesASIGKILLInOrderAndSequencesContinue() throws {
        let arguments = ["--history", "orders.", "--state-dir", stateDirectory.path]
        // Sent while the writer is held, some 7 MB of records: more than it takes in one
        // transaction (4 MiB), so its batches end before sequences already assigned, which the
        // store must still take, and the batch that ends there must not claim them.
        let perProducer = 15_000
        let padding = String(repeating: "x", count: 200)
        let stallMilliseconds = 10_000
        do {
            let daemon = try Daemon(
                arguments: arguments,
                environment: [
                    "ZPUBD_TEST_HOOKS": "1", "ZPUBD_TEST_STALL": "history",
                    "ZPUBD_TEST_STALL_MS": "\(stallMilliseconds)",
                ])
            let clients = try Clients()
            let producers = [
                try clients.socket(.push, connect: daemon.pull), try clients.socket(.push, connect: daemon.pull),
            ]
            daemon.signal(SIGUSR2)
            try Wait.until("the writer is held") { daemon.log.contains("test hook: stalling the history writer") }
            let held = Date()
            for i in 0..<perProducer {
                for (index, producer) in producers.enumerated() {
                    // Three frames, one of them empty: kept whole and unchanged.
                    try producer.send(frames: frames("orders.p\(index)", "\(i)\(padding)", ""))
                }
                if i % 1_000 == 0 { try producers[0].send(frames: frames("news.x", "not kept")) }
            }
            // Sent in a second or two even on a loaded machine, and forwarded into the writer's
            // queue as fast: what it finds when it looks again is more than one batch.
            XCTAssertLessThan(
                Date().timeIntervalSince(held), Double(stallMilliseconds) / 2_000,
                "everything was sent well within the writer's hold (else its batches may not be cut)")
            // Every message accounted for, then each of them written: a message the store left
            // out fails here at once, as a write failure, instead of after a timeout.
            try Wait.until("all \(2 * perProducer) messages are accounted for", timeout: 60) {
                let history = try daemon.stats().history
                return history.map { $0.written + $0.writeFailures + $0.dropped } == UInt64(2 * perProducer)
            }
            let history = try XCTUnwrap(try daemon.stats().history)
            XCTAssertEqual(history.written, UInt64(2 * perProducer), "none dropped or failed: \(history)")
            XCTAssertEqual(
                history.notKeptRanges ?? 0, 0,
                "no number is recorded as not kept: a batch cut at its limit claimed none still queued")
            try killAfterTheNextSync(daemon)
        }

        let restarted = try Daemon(arguments: arguments)
        // A SIGKILL is an unclean stop: numbers continue above the reserve the store committed
        // (the loop may have handed some out that never reached the store).
        let announced = try XCTUnwrap(
            restarted.log.firstMatch(
                of: /(\d+) messages kept, sequences continue after (\d+) \(above the last kept/),
            restarted.log)
        XCTAssertEqual(Int(announced.1), 2 * perProducer)
        let continuesAfter = try XCTUnwrap(UInt64(announced.2))
        XCTAssertGreaterThan(continuesAfter, UInt64(2 * perProducer) + (1 << 29), "half the reserve, 2^30, at least")
        let kept = try history(restarted)
        XCTAssertEqual(kept.count, 2 * perProducer)
        XCTAssertEqual(kept.map(\.seq), Array(1...UInt64(2 * perProducer)), "in receive order, none missing")
        for producer in 0..<2 {
            let mine = kept.filter { $0.frames[0] == "orders.p\(producer)" }
            XCTAssertEqual(
                mine.map { $0.frames }, (0..<perProducer).map { ["orders.p\(producer)", "\($0)\(padding)", ""] })
        }
        XCTAssertFalse(kept.contains { $0.frames[0] == "news.x" }, "only history prefixes are kept")

        let clients = try Clients()
        try clients.socket(.push, connect: restarted.pull).send(frames: frames("orders.p0", "after"))
        try Wait.until("the new message is written") { try restarted.stats().history?.written == 1 }
        let newest = try history(restarted, ["--last", "1"])
        XCTAssertEqual(newest.map(\.seq), [continuesAfter + 1], "sequences continue above the reserve")
        restarted.signal(SIGTERM)
        XCTAssertNotNil(restarted.waitForExit())
        // A clean stop gives the reserve back: the next start continues right after the last.
        let again = try Daemon(arguments: arguments)
        XCTAssertTrue(
            again.log.contains("\(2 * perProducer + 1) messages kept, sequences continue after \(continuesAfter + 1)"),
            again.log)
        XCTAssertFalse(again.log.contains("uncleanly"), again.log)
    }

    /// While a held backlog goes out at the subscribers' pace (XPUB_NODROP on), each kept
    /// message's sequence marker is paced with it: a subscriber that reads slowly gets every
    /// message followed by its marker. Refused for all when one queue was full, markers went
    /// missing (2,000-2,200 of 3,000 reached a reader beside a full one); sent lossily instead,
    /// they took the full subscriber out of XPUB_NODROP's view, and the rest of the backlog
    /// went out as if it were not there.
    func testSequenceMarkersArePacedWithTheirMessagesDuringACatchUp() throws {
        // An odd queue: libzmq frees room in steps of half of it (51), so that a message, not
        // only its marker, is sometimes the one that fills it.
        let daemon = try Daemon(
            configuration: catchUpConfiguration(sendHWM: 101) + "[history]\nprefixes = [\"m.\"]\n")
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["m.", "$zpub/seq/m."], receiveHWM: 100)
        try daemon.waitForSubscriptions(2)
        let count = 6_000
        try daemon.holdBacklog(count: count, topic: "m.x")
        // Read slower than zpubd sends, so that its queue paces the catch-up.
        var stream: [String] = []
        while let frames = try subscriber.receiveFrames(timeoutMilliseconds: 3_000) {
            stream.append(String(decoding: frames[0], as: UTF8.self))
            if stream.count % 200 == 0 { usleep(10_000) }
        }
        let messages = stream.filter { $0 == "m.x" }.count
        print("figure: \(messages) messages and \(stream.count - messages) markers of \(count) during a catch-up")
        XCTAssertEqual(messages, count, "the catch-up paced the messages")
        let unmarked = stride(from: 0, to: stream.count, by: 2).first {
            stream[$0] != "m.x" || $0 + 1 >= stream.count || stream[$0 + 1] != "$zpub/seq/m.x"
        }
        XCTAssertNil(unmarked, "not a message then its marker at \(unmarked ?? -1) of \(stream.count)")
    }

    /// A state directory deleted under zpubd is said in its log: SQLite writes on into the
    /// deleted file, lost when zpubd stops, and the next start numbers from 1 again. It was
    /// silent, HEALTH ok (a probe: 290,000 messages lost, numbers given again).
    func testAHistoryFileDeletedWhileZpubdRunsIsSaid() throws {
        let daemon = try Daemon(arguments: ["--history", "h.", "--state-dir", stateDirectory.path])
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("h.x", "1"))
        try Wait.until("it is written") { try daemon.stats().history?.written == 1 }
        try FileManager.default.removeItem(at: stateDirectory)
        try push.send(frames: frames("h.x", "2"))
        try Wait.until("the log says so\n\(daemon.log)", timeout: 30) {
            daemon.log.contains("was deleted while zpubd runs")
        }
        XCTAssertEqual(daemon.log.components(separatedBy: "was deleted while zpubd runs").count, 2, "once")
        // HEALTH says it too: still ok (it forwards), with the problem; --strict fails on it.
        // Waited for: the writer logs it, then publishes its stats at the end of its turn
        // (asked in between, under load, HEALTH had no problem yet: a fresh-clone run).
        try Wait.until("HEALTH tells of it") {
            try daemon.decode("HEALTH", as: HealthReport.self).problems?.map(\.kind) == [.historyFileGone]
        }
        XCTAssertEqual(try daemon.decode("HEALTH", as: HealthReport.self).status, .ok)
        let plain = try zpub(["health", "-c", daemon.control])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertTrue(plain.stdout.contains("problem (history_file_gone): history's file"), plain.stdout)
        XCTAssertEqual(try zpub(["health", "--strict", "-c", daemon.control]).status, 1)
    }

    /// A start that fails after the store is open (a port in use) numbers nothing, and gives
    /// back the sequences it reserved at open: kept, the next start told them as a zpubd's that
    /// stopped uncleanly, and clients were told 2^30 numbers were `unclean_stop` (a probe).
    func testAStartThatCannotBindGivesItsReserveBack() throws {
        let arguments = ["--history", "h.", "--state-dir", stateDirectory.path]
        let first = try Daemon(arguments: arguments)
        let clients = try Clients()
        try clients.socket(.push, connect: first.pull).send(frames: frames("h.x", "1"))
        try Wait.until("it is written") { try first.stats().history?.written == 1 }
        first.signal(SIGTERM)
        XCTAssertEqual(first.waitForExit(), 0)
        let squatter = try clients.socket(.pull, bind: "tcp://127.0.0.1:*")
        let failed = try Run.program(
            Binaries.zpubd,
            arguments + [
                "--pull", squatter.lastEndpoint, "--control", "inproc://c", "--xsub", "inproc://x", "--xpub",
                "inproc://p",
            ])
        XCTAssertEqual(failed.status, 1, failed.stderr)
        XCTAssertTrue(failed.stderr.contains("sequences continue after 1"), failed.stderr)
        let again = try Daemon(arguments: arguments)
        XCTAssertTrue(again.log.contains("1 message kept, sequences continue after 1"), again.log)
        XCTAssertFalse(again.log.contains("uncleanly"), again.log)
        withExtendedLifetime(clients) {}
    }

    /// The loop hands a number out (here as a sequence marker) before the writer commits it,
    /// and numbers only up to the reserve the store has committed. With a reserve of 1,000 a
    /// steady producer outruns the writer's commits (one per 100 ms) at once: the loop stops
    /// keeping at the reserve until the next commit renews it, and a SIGKILL in the middle of
    /// that never lets a restart give a number a subscriber has already seen.
    func testAKillMidStreamNeverGivesANumberTwice() throws {
        // No send HWM, and none on the subscriber: the newest markers, the ones that tell, are
        // not dropped while the test sends.
        let configuration = "[sockets]\nsend_hwm = 0\n[history]\nprefixes = [\"r.\"]\nsequence_reserve = 1000\n"
        let arguments = ["--state-dir", stateDirectory.path]
        var highestSeen: UInt64 = 0
        do {
            let daemon = try Daemon(configuration: configuration, arguments: arguments)
            let clients = try Clients()
            let markers = try clients.subscriber(daemon.xpub, prefixes: ["$zpub/seq/r."], receiveHWM: 0)
            try daemon.waitForSubscriptions(1)
            let push = try clients.socket(.push, connect: daemon.pull)
            func readMarkers() throws {
                while let frames = try markers.receiveFrames(timeoutMilliseconds: 0) {
                    let sequence = try XCTUnwrap(UInt64(String(decoding: frames[1], as: UTF8.self)))
                    highestSeen = max(highestSeen, sequence)
                }
            }
            let ceilingReached = "history keeps nothing for now"
            let deadline = Date().addingTimeInterval(60)
            var sent = 0
            // Until the loop has stopped at the reserve and gone on past a renewed one.
            while !(daemon.log.contains(ceilingReached) && highestSeen > 2_000) && Date() < deadline {
                for _ in 0..<1_000 { try push.send(frames: frames("r.x", "\(sent)")) }
                sent += 1_000
                try readMarkers()
            }
            XCTAssertTrue(daemon.log.contains(ceilingReached), "the loop reached the reserve: \(daemon.log)")
            // Killed while the producer still sends (the loop numbers as far as the reserve lets it).
            for _ in 0..<5_000 { try push.send(frames: frames("r.x", "\(sent)")) }
            daemon.signal(SIGKILL)
            XCTAssertNotNil(daemon.waitForExit())
            try readMarkers()
            while let frames = try markers.receiveFrames(timeoutMilliseconds: 500) {
                highestSeen = max(highestSeen, try XCTUnwrap(UInt64(String(decoding: frames[1], as: UTF8.self))))
            }
            XCTAssertGreaterThan(highestSeen, 2_000, "numbered beyond the first reserve: renewed as it went")
        }
        let restarted = try Daemon(configuration: configuration, arguments: arguments)
        let clients = try Clients()
        try clients.socket(.push, connect: restarted.pull).send(frames: frames("r.x", "after"))
        try Wait.until("the new message is written") { try restarted.stats().history?.written == 1 }
        let newest = try XCTUnwrap(try history(restarted, ["--last", "1"]).first)
        XCTAssertGreaterThan(newest.seq, highestSeen, "a number handed out before the kill is not given again")
    }

    /// `zpub sub --since` while a producer keeps publishing: the replay ends and the live stream
    /// begins mid-stream, and every message arrives exactly once, in order. Topics outside the
    /// history prefixes under the same subscription come live only.
    func testSubSinceJoinsTheLiveStreamWithNoGapAndNoDuplicate() throws {
        let daemon = try Daemon(arguments: ["--history", "h.k"])
        let producer = BackgroundProducer(endpoint: daemon.pull) { i in
            i % 10 == 0 ? [frames("h.k", "\(i)"), frames("h.live", "\(i)")] : [frames("h.k", "\(i)")]
        }
        // More than one page (1,000) to replay, so the rest is read with HISTORY ... until.
        try Wait.until("history holds 1,500 messages") { (try daemon.stats().history?.messages ?? 0) >= 1_500 }
        let kept = try XCTUnwrap(try daemon.stats().history?.messages)
        let wanted = kept + 1_000
        let run = try Run.program(
            Binaries.zpub,
            [
                "sub", "--since", "0", "--endpoint", daemon.xpub, "--control", daemon.control, "--count", "\(wanted)",
                "h.",
            ],
            timeout: 60)
        XCTAssertTrue(producer.stopWhileRunning(), "the producer was still publishing")
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        XCTAssertEqual(lines.count, wanted)
        let keptValues = lines.filter { $0.first == "h.k" }.compactMap { Int($0[1]) }
        XCTAssertEqual(keptValues, Array(0..<keptValues.count), "every kept message once, in order, from the first")
        XCTAssertGreaterThan(keptValues.count, kept, "it went on live past the replay")
        let liveOnly = lines.filter { $0.first == "h.live" }.compactMap { Int($0[1]) }
        XCTAssertEqual(liveOnly, liveOnly.sorted(), "the live-only topic in order")
        XCTAssertEqual(Set(liveOnly).count, liveOnly.count, "and never twice")
    }

    /// `zpub sub --since` following one broker prints each kept message's `seq` with --json,
    /// and when the broker comes back after a restart, resumes after the last one it printed:
    /// messages kept while it could not reach the broker (here a run whose XPUB was elsewhere)
    /// are printed once, in order, before the live ones. It used to go on with the live stream
    /// alone, and they were never printed.
    func testSubSinceResumesAfterTheBrokerComesBack() throws {
        let missed = try FollowerThatMissedARun(stateDirectory: stateDirectory)
        let (follower, printed) = (missed.follower, missed.printed)
        // Back where the follower can reach it, publishing at once: the first live messages
        // come with the connection, and must not be printed before 3 and 4 (printed first,
        // they moved the resume's position past them).
        let daemon = try Daemon(arguments: missed.arguments, endpoints: missed.reachable)
        let producer = BackgroundProducer(endpoint: daemon.pull) { i in [frames("h.x", "\(i + 5)")] }
        try Wait.until("the follower prints what was kept meanwhile and more\n\(follower.stderrSoFar)") {
            printed().count >= 100
        }
        XCTAssertTrue(producer.stopWhileRunning())
        // HISTORY answers once everything forwarded before it is written (STATS may lag).
        let last = try daemon.decode("HISTORY last 1 h.", as: HistoryReply.self).lastSequence
        try Wait.until("the follower prints every one\n\(follower.stderrSoFar)") { printed().count >= Int(last) }
        XCTAssertEqual(printed().map(\.payload), Array(1...Int(last)), follower.stderrSoFar)
        XCTAssertEqual(printed().map(\.seq), Array(1...last).map { Optional($0) }, follower.stdoutSoFar)
        XCTAssertTrue(follower.stderrSoFar.contains("connected again; resuming after 2"), follower.stderrSoFar)
    }

    /// `zpub sub --since` following one broker holds the live messages that come after a
    /// reconnection until its resume has replayed what was kept meanwhile, also when that
    /// resume fails and is tried again: here the restarted broker refuses the resume's marker
    /// (`max_subscription_length` below its length) until a RELOAD lifts the limit, while
    /// messages 5 to 20 come live between the tries. Printed as they came, they moved the
    /// resume's position past 3 and 4, kept while the follower could not reach the broker,
    /// which were then never printed.
    func testSubSinceHoldsLiveMessagesUntilAResumeThatFailedAtFirstSucceeds() throws {
        let missed = try FollowerThatMissedARun(stateDirectory: stateDirectory)
        let follower = missed.follower
        func printed() -> [Int] { missed.printed().map(\.payload) }
        // Reachable again, refusing the resume's marker ($zpub/snapshot/ and a token, over 20
        // bytes; h. and its sequence markers fit) until the RELOAD below.
        let daemon = try Daemon(
            configuration: "[limits]\nmax_subscription_length = 20\n", arguments: missed.arguments,
            endpoints: missed.reachable)
        func refusals() -> Int { follower.stderrSoFar.components(separatedBy: "cannot resume from").count - 1 }
        try Wait.until("the follower's resume is refused\n\(follower.stderrSoFar)", timeout: 30) { refusals() >= 1 }
        try missed.publish(daemon, 5...20)
        // Two more tries (half a second apart): the messages have been read in between.
        let tries = refusals()
        try Wait.until("the follower tries twice more\n\(follower.stderrSoFar)", timeout: 30) {
            refusals() >= tries + 2
        }
        XCTAssertEqual(printed(), [1, 2], "live messages wait for the resume: \(follower.stdoutSoFar)")
        try "".write(to: daemon.configURL, atomically: true, encoding: .utf8)
        XCTAssertTrue(String(decoding: try XCTUnwrap(try daemon.request("RELOAD")), as: UTF8.self).contains("reloaded"))
        try Wait.until("the follower prints every one\n\(follower.stderrSoFar)") { printed().count >= 20 }
        XCTAssertEqual(printed(), Array(1...20), follower.stderrSoFar)
    }

    /// A reload's prefixes are kept from then on, and STATS shows them: it showed those of the
    /// start for as long as zpubd ran.
    /// `zpub history` of a prefix whose first word is "until" reads it: HISTORY takes a word
    /// "until" for its bound, so the command puts a bound that changes nothing before it.
    func testZpubHistoryReadsAPrefixNamedUntil() throws {
        let daemon = try Daemon(configuration: "[history]\nprefixes = [\"until\"]\n")
        let clients = try Clients()
        try clients.socket(.push, connect: daemon.pull).send(frames: [Array("until.x".utf8), Array("kept".utf8)])
        try Wait.until("history holds it") { try daemon.stats().history?.messages == 1 }
        for arguments in [["--since", "0"], ["--last", "5"]] {
            let run = try Run.program(Binaries.zpub, ["history", "-c", daemon.control] + arguments + ["until"])
            XCTAssertEqual(run.status, 0, "\(arguments): \(run.stderr)")
            XCTAssertTrue(run.stdout.contains("kept"), "\(arguments): \(run.stdout)")
        }
    }

    /// `zpub sub --since` prints a replay page by page as it reads it, and holds no more than a
    /// page or so: held whole, a probe's replay of a million messages took it to 700 MB before
    /// it printed the first. Here 16,000 messages of 4 KB (64 MB).
    func testZpubSubSinceHoldsAPageOfTheReplayNotAllOfIt() throws {
        let daemon = try Daemon(configuration: "[history]\nprefixes = [\"h.\"]\n")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        let payload = [UInt8](repeating: 0x61, count: 4_000)
        for _ in 0..<16_000 { try push.send(frames: [Array("h.x".utf8), payload]) }
        try Wait.until("history holds them", timeout: 60) { try daemon.stats().history?.messages == 16_000 }
        // The largest resident size of the child, as the kernel accounts it once it has exited.
        let measure = """
            import resource, subprocess, sys
            run = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
            print(run.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, run.stderr.decode())
            """
        let run = try Run.program(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                "-c", measure, Binaries.zpub.path, "sub", "--since", "0", "--count", "16000", "--json", "-e",
                daemon.xpub, "-c", daemon.control, "h.",
            ], timeout: 150)
        let fields = run.stdout.split(separator: " ", maxSplits: 2)
        XCTAssertEqual(fields.first, "0", run.stdout + run.stderr)
        let kilobytes = try XCTUnwrap(fields.dropFirst().first.flatMap { Int($0) }, run.stdout + run.stderr)
        print("figure: zpub sub --since 0 over 16,000 kept messages of 4 KB: \(kilobytes / 1_024) MiB at most")
        XCTAssertLessThan(kilobytes, 110 * 1_024, "zpub held \(kilobytes / 1_024) MiB")
    }

    func testAReloadsHistoryPrefixesAreKeptAndShown() throws {
        let daemon = try Daemon(configuration: "[history]\nprefixes = [\"a.\"]\n")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("b.x", "not kept yet"))
        try push.send(frames: frames("a.x", "kept"))
        try Wait.until("a.x is kept") { try daemon.stats().history?.written == 1 }
        XCTAssertEqual(try daemon.stats().history?.prefixes, ["a."])
        try "[history]\nprefixes = [\"a.\", \"b.\"]\n".write(to: daemon.configURL, atomically: true, encoding: .utf8)
        XCTAssertTrue(String(decoding: try XCTUnwrap(try daemon.request("RELOAD")), as: UTF8.self).contains("reloaded"))
        try Wait.until("STATS shows the reloaded prefixes") { try daemon.stats().history?.prefixes == ["a.", "b."] }
        try push.send(frames: frames("b.x", "kept now"))
        try Wait.until("b.x is kept") { try daemon.stats().history?.written == 2 }
    }

    /// A reload cannot start history: prefixes given to a zpubd started without it are not in
    /// force, and everything says so. Before, only the log did: `zpub reload` exited 0, and
    /// CONFIG showed the prefixes as if they were kept.
    func testAReloadThatNamesHistoryPrefixesWithoutHistoryExitsTwoAndSaysRestart() throws {
        let daemon = try Daemon(configuration: "[limits]\nmax_topics = 77\n")
        try "[limits]\nmax_topics = 78\n[history]\nprefixes = [\"a.\"]\n".write(
            to: daemon.configURL, atomically: true, encoding: .utf8)
        let run = try Run.program(Binaries.zpub, ["reload", "-c", daemon.control, "--timeout", "30000"], timeout: 60)
        XCTAssertEqual(run.status, 2, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("nothing is kept until a restart"), run.stdout + run.stderr)
        XCTAssertEqual(try daemon.stats().topics.limit, 78, "the rest of the file is in force")
        let config = try XCTUnwrap(try daemon.json("CONFIG")["configuration"] as? [String: Any])
        XCTAssertEqual(config["history_prefixes"] as? [String], [], "CONFIG shows what is in force")
        let reply = String(decoding: try XCTUnwrap(try daemon.request("HISTORY last 1")), as: UTF8.self)
        XCTAssertTrue(reply.contains("restart zpubd"), reply)
    }

    /// A state directory with nothing to keep there (no history, no last-value prefixes) is
    /// not taken in silence: persistence was wanted, and none happens.
    func testAStateDirectoryWithNothingToKeepIsWarnedAbout() throws {
        let daemon = try Daemon(arguments: ["--state-dir", stateDirectory.path])
        try Wait.until("the warning is logged") { daemon.log.contains("keeps nothing: name [history] prefixes") }
        let kept = try Daemon(arguments: ["--state-dir", stateDirectory.path + "-kept", "--history", "h."])
        defer { try? FileManager.default.removeItem(atPath: stateDirectory.path + "-kept") }
        try Wait.until("it runs") { try kept.stats().history != nil }
        XCTAssertFalse(kept.log.contains("keeps nothing"), kept.log)
    }

    func testSubSinceStartsAfterTheGivenSequence() throws {
        let daemon = try Daemon(arguments: ["--history", "h."])
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for i in 1...5 { try push.send(frames: frames("h.x", "\(i)")) }
        try Wait.until("all 5 are kept") { try daemon.stats().history?.messages == 5 }
        let run = try Run.program(
            Binaries.zpub,
            ["sub", "--since", "3", "--endpoint", daemon.xpub, "--control", daemon.control, "--count", "2", "h."],
            timeout: 30)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "h.x\t4\nh.x\t5\n")
    }

    /// A plain SUB client (pyzmq) that also subscribes to `$zpub/seq/<prefix>` learns the
    /// sequence of every kept message it receives, the same one history has; a plain
    /// subscriber sees no markers.
    func testSequenceMarkersNumberEveryKeptMessageForASubscriberThatAsks() throws {
        let daemon = try Daemon(arguments: ["--history", "h.kept"])
        let clients = try Clients()
        let plain = try clients.subscriber(daemon.xpub, prefixes: ["h."])
        let ready = daemon.directory.appendingPathComponent("markers.ready").path
        let client = try RunningProgram(python: "sequence_markers.py", [daemon.xpub, "h.", "12", ready])
        try Wait.until("the marker client subscribed") { FileManager.default.fileExists(atPath: ready) }
        try daemon.waitForSubscriptions(3)
        let push = try clients.socket(.push, connect: daemon.pull)
        for i in 0..<10 {
            try push.send(frames: frames("h.kept", "\(i)"))
            if i % 5 == 4 { try push.send(frames: frames("h.live", "\(i)")) }
        }
        let run = try client.finish(timeout: 30)
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let kept = lines.filter { $0.contains(" h.kept ") }
        XCTAssertEqual(kept, (0..<10).map { "\($0 + 1) h.kept \($0)" }, "each kept message with its sequence")
        XCTAssertEqual(lines.filter { $0.hasPrefix("- ") }, ["- h.live 4", "- h.live 9"], "the rest without")
        XCTAssertEqual(try history(daemon).map(\.seq), Array(1...10), "the same sequences as history")
        let received = try plain.receive(12)
        XCTAssertFalse(received.contains { $0[0].starts(with: Array("$zpub/".utf8)) }, "no markers unasked")
    }

    /// A topic both kept and cached, with a state directory: every message is in history (the
    /// last value's record, persisted through the same queue, must not displace the message's),
    /// and the last value survives a restart.
    func testATopicBothKeptAndCachedIsKeptWholeAndItsLastValuePersists() throws {
        let arguments = ["--history", "state.", "--last-value", "state.", "--state-dir", stateDirectory.path]
        do {
            let daemon = try Daemon(arguments: arguments)
            let clients = try Clients()
            let push = try clients.socket(.push, connect: daemon.pull)
            for number in 1...50 { try push.send(frames: frames("state.lamp", "\(number)")) }
            try Wait.until("history has written all 50") { try daemon.stats().history?.written == 50 }
            let history = try XCTUnwrap(try daemon.stats().history)
            XCTAssertEqual(history.messages, 50)
            XCTAssertEqual(history.dropped, 0, "none lost to the last value's record")
            let kept = try daemon.decode("HISTORY since 0 state.", as: HistoryReply.self).messages
            XCTAssertEqual(kept.compactMap(\.messageFrames), (1...50).map { frames("state.lamp", "\($0)") })
            XCTAssertEqual(kept.compactMap(\.seq), Array(1...50))
            try killAfterTheNextSync(daemon)
        }
        let restarted = try Daemon(arguments: arguments)
        XCTAssertTrue(restarted.log.contains("1 restored"), restarted.log)
        XCTAssertEqual(try restarted.stats().history?.messages, 50)
        let clients = try Clients()
        let late = try clients.subscriber(restarted.xpub, prefixes: ["state.lamp"])
        XCTAssertEqual(try late.receive(1), [frames("state.lamp", "50")], "the last value, restored")
    }

    /// With a state directory the last-value cache survives a SIGKILL: a subscriber after the
    /// restart gets the current state, and SNAPSHOT lists it, deletions included.
    func testTheLastValueCacheSurvivesASIGKILL() throws {
        let arguments = ["--last-value", "state.", "--state-dir", stateDirectory.path]
        do {
            let daemon = try Daemon(arguments: arguments)
            let clients = try Clients()
            let push = try clients.socket(.push, connect: daemon.pull)
            try push.send(frames: frames("state.lamp", "off"))
            try push.send(frames: frames("state.door", "open"))
            try push.send(frames: frames("state.lamp", "on", "since 12:00"))
            try push.send(frames: frames("state.fan", "fast"))
            try push.send(frames: frames("state.fan", ""))  // a deletion
            try push.send(frames: frames("news.x", "not cached"))
            try Wait.until("the cache holds lamp and door") { try daemon.stats().lastValue.entries == 2 }
            try killAfterTheNextSync(daemon)
        }
        let restarted = try Daemon(arguments: arguments)
        XCTAssertTrue(restarted.log.contains("last values persist in"), restarted.log)
        XCTAssertTrue(restarted.log.contains("2 restored"), restarted.log)
        XCTAssertEqual(try restarted.stats().lastValue.entries, 2)
        let clients = try Clients()
        let late = try clients.subscriber(restarted.xpub, prefixes: ["state.lamp"])
        XCTAssertEqual(try late.receive(1), [frames("state.lamp", "on", "since 12:00")], "the whole last message")
        // A marker subscription first, as SNAPSHOT asks.
        let snapshotClient = try clients.subscriber(restarted.xpub, prefixes: ["state.", "$zpub/snapshot/t1"])
        defer { snapshotClient.close() }
        try restarted.waitForSubscriptions(3)
        let snapshot = try restarted.decode("SNAPSHOT t1 state.", as: SnapshotReply.self)
        XCTAssertEqual(
            snapshot.entries.compactMap(\.messageFrames),
            [frames("state.door", "open"), frames("state.lamp", "on", "since 12:00")])
        let historyOff = try restarted.json("HISTORY since 0")["error"] as? [String: Any]
        XCTAssertEqual(historyOff?["code"] as? String, "history_off", "last values alone do not turn history on")
        // Started without --config: a reload cannot name prefixes, and the advice does not
        // say to (it did, and `zpub reload` was then refused: an audit).
        let advice = historyOff?["message"] as? String ?? ""
        XCTAssertTrue(advice.contains("started without --config"), advice)
        XCTAssertFalse(advice.contains("and reload"), advice)
        // New updates continue above the restored sequences.
        try clients.socket(.push, connect: restarted.pull).send(frames: frames("state.door", "closed"))
        try Wait.until("the update is cached") {
            try restarted.stats().lastValue.updates == 1
        }
        let after = try restarted.decode("SNAPSHOT t1 state.", as: SnapshotReply.self)
        XCTAssertEqual(after.entries.last?.messageFrames, frames("state.door", "closed"))
        XCTAssertGreaterThan(after.entries.last?.sequence ?? 0, snapshot.sequence)
    }

    /// The persisted last values are the cache's: one that expired (`max_age_s`) is deleted
    /// from the table too. It stayed there and came back at the next start, served again once
    /// max_age_s was taken out (a walkthrough, 2026-12-07). And one that expired while zpubd
    /// was down is not restored (it was, and told as restored, to be expired at once).
    func testALastValueThatExpiredIsNotRestored() throws {
        let arguments = ["--last-value", "state.", "--state-dir", stateDirectory.path]
        let expiring = "[last_value]\nmax_age_s = 1\n"
        do {
            let daemon = try Daemon(configuration: expiring, arguments: arguments)
            let clients = try Clients()
            let push = try clients.socket(.push, connect: daemon.pull)
            try push.send(frames: frames("state.old", "stale"))
            try Wait.until("the value is cached") { try daemon.stats().lastValue.updates == 1 }
            try Wait.until("and has expired", timeout: 30) { try daemon.stats().lastValue.entries == 0 }
            try killAfterTheNextSync(daemon)
        }
        do {
            let restarted = try Daemon(arguments: arguments)
            XCTAssertTrue(restarted.log.contains("0 restored"), restarted.log)
            XCTAssertEqual(try restarted.stats().lastValue.entries, 0)
            let clients = try Clients()
            let push = try clients.socket(.push, connect: restarted.pull)
            try push.send(frames: frames("state.new", "fresh"))
            try Wait.until("the value is cached") { try restarted.stats().lastValue.entries == 1 }
            try killAfterTheNextSync(restarted)
        }
        // Stored more than a second ago by now: expired under max_age_s = 1 at the start.
        let stored = Date()
        try Wait.until("a second has passed", timeout: 30) { Date().timeIntervalSince(stored) > 1.1 }
        let expired = try Daemon(configuration: expiring, arguments: arguments)
        XCTAssertTrue(expired.log.contains("0 restored"), expired.log)
        XCTAssertEqual(try expired.stats().lastValue.entries, 0)
    }

    /// examples/python/resuming_subscriber.py, an independent client (pyzmq), misses nothing
    /// across its own restarts: what was published while it was away comes first, exactly
    /// once, then live messages.
    func testThePythonResumingSubscriberExampleMissesNothingAcrossItsRestarts() throws {
        try resumingSubscriberMissesNothing(
            interpreter: Self.python, example: "python/resuming_subscriber.py")
    }

    /// The same with examples/php/resuming_subscriber.php (PHP's PECL zmq extension).
    func testThePHPResumingSubscriberExampleMissesNothingAcrossItsRestarts() throws {
        let php = try Self.installedPHP()
        try resumingSubscriberMissesNothing(interpreter: php, example: "php/resuming_subscriber.php")
    }

    /// A REPLAY under a prefix history keeps nothing of says so (`warning`), and the example
    /// prints it: a typo ("oders.") was an empty replay, and the client believed it could resume.
    func testAReplayUnderAPrefixHistoryDoesNotKeepCarriesAWarning() throws {
        let daemon = try Daemon(arguments: ["--history", "orders."])
        try "0".write(to: Self.positionFile(of: daemon), atomically: true, encoding: .utf8)
        let client = try Self.runExample(
            Self.python, "python/resuming_subscriber.py", count: 1, against: daemon, prefix: "oders.")
        try Wait.until("the example prints zpubd's warning") {
            client.stderrSoFar.contains(
                #"zpubd: history keeps nothing under "oders." (it keeps orders.): nothing under it is replayed"#)
        }
        // Where history keeps the prefix, no warning: the example goes on to the live stream.
        try publishAndWaitUntilKept(frames("orders.1", "one"), to: daemon)
        let kept = try Self.runExample(Self.python, "python/resuming_subscriber.py", count: 1, against: daemon)
        let result = try kept.finish(timeout: 30)
        XCTAssertEqual(result.stdout, "orders.1 one\n", result.stderr)
        XCTAssertFalse(result.stderr.contains("warning") || result.stderr.contains("keeps nothing"), result.stderr)
    }

    private static let python = URL(fileURLWithPath: "/usr/bin/python3")

    /// PHP's command line, or a skip where it is not installed (`make test` installs it).
    private static func installedPHP() throws -> URL {
        let php = URL(fileURLWithPath: "/usr/bin/php")
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: php.path), "php-cli is not installed (make test installs it)")
        return php
    }

    /// Where the resuming examples keep their position, in `daemon`'s directory.
    private static func positionFile(of daemon: Daemon) -> URL {
        daemon.directory.appendingPathComponent("position")
    }

    /// One of the resuming examples (`name` under examples/), started against `daemon`,
    /// handling `count` messages under `prefix`.
    private static func runExample(
        _ interpreter: URL, _ name: String, count: Int, against daemon: Daemon, prefix: String = "orders."
    ) throws -> RunningProgram {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/" + name)
        return try RunningProgram(
            interpreter, [example.path, "\(count)"],
            environment: [
                "ZPUB_XPUB": daemon.xpub, "ZPUB_CONTROL": daemon.control, "ZPUB_PREFIX": prefix,
                "ZPUB_POSITION_FILE": positionFile(of: daemon).path,
            ])
    }

    /// TCP endpoints for a daemon and the one started after it: a client connected to the
    /// first reconnects to the second (ipc ones are in each daemon's own directory).
    private static func tcpEndpointsThatOutliveADaemon() throws -> [BrokerSocketRole: String] {
        [
            .xpub: "tcp://127.0.0.1:\(try FreePort.find())", .control: "tcp://127.0.0.1:\(try FreePort.find())",
            .pull: "tcp://127.0.0.1:\(try FreePort.find())",
        ]
    }

    private func publishAndWaitUntilKept(_ message: [[UInt8]], to daemon: Daemon) throws {
        let clients = try Clients()
        try clients.socket(.push, connect: daemon.pull).send(frames: message)
        try Wait.until("the message is kept") { try daemon.stats().history?.written == 1 }
    }

    /// examples/python/resuming_subscriber.py misses nothing across zpubd's restart either:
    /// what zpubd held for it at the stop went with the connection (a walkthrough: 1,680 of a
    /// slow consumer's messages, never replayed, as the example replayed only at its own start).
    func testThePythonResumingSubscriberExampleMissesNothingAcrossABrokerRestart() throws {
        try resumingSubscriberMissesNothingAcrossABrokerRestart(
            interpreter: Self.python, example: "python/resuming_subscriber.py")
    }

    func testThePHPResumingSubscriberExampleMissesNothingAcrossABrokerRestart() throws {
        let php = try Self.installedPHP()
        try resumingSubscriberMissesNothingAcrossABrokerRestart(
            interpreter: php, example: "php/resuming_subscriber.php")
    }

    /// The example is stopped (SIGSTOP) while 20 MB are published to it; zpubd's queue for it
    /// holds what the kernel's buffers cannot, and `linger_ms = 0` drops that at the stop, as
    /// `linger_ms` drops a slow subscriber's backlog. zpubd starts again on the same endpoints
    /// and state directory, and the example, let go, must print every message once, in order.
    private func resumingSubscriberMissesNothingAcrossABrokerRestart(interpreter: URL, example name: String) throws {
        let endpoints = try Self.tcpEndpointsThatOutliveADaemon()
        let configuration = "[sockets]\nsend_hwm = 0\nlinger_ms = 0\n"
        let arguments = ["--history", "orders.", "--state-dir", stateDirectory.path]
        var daemon = try Daemon(configuration: configuration, arguments: arguments, endpoints: endpoints)
        let total = 8_000
        let padding = String(repeating: "x", count: 2_500)
        let client = try Self.runExample(interpreter, name, count: total, against: daemon)
        try daemon.waitForSubscriptions(2)  // its prefix and its sequence markers
        kill(client.processIdentifier, SIGSTOP)
        defer { kill(client.processIdentifier, SIGCONT) }
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for n in 1...total { try push.send(frames: frames("orders.\(n)", "\(n) \(padding)")) }
        try Wait.until("every message is kept and forwarded", timeout: 60) {
            let stats = try daemon.stats()
            return stats.history?.written == UInt64(total) && stats.sockets[.xpub]?.messagesOut ?? 0 >= UInt64(total)
        }
        clients.close(push)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, daemon.log)
        daemon = try Daemon(configuration: configuration, arguments: arguments, endpoints: endpoints)
        kill(client.processIdentifier, SIGCONT)
        let result = try client.finish(timeout: 120)
        XCTAssertEqual(result.status, 0, result.stderr)
        let numbers = result.stdout.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        XCTAssertEqual(numbers.count, total, result.stderr)
        XCTAssertEqual(numbers, (1...total).map { "orders.\($0)" }, "every message once, in order")
    }

    /// Across a restart of a zpubd without a state directory, whose numbering starts again:
    /// the examples replay all it keeps, and take its new numbers as new (they skipped every
    /// one up to their old position, a review found).
    func testTheResumingSubscriberExamplesFollowANumberingThatStartedAgain() throws {
        try resumingSubscriberFollowsANumberingThatStartedAgain(
            interpreter: Self.python, example: "python/resuming_subscriber.py")
        try resumingSubscriberFollowsANumberingThatStartedAgain(
            interpreter: try Self.installedPHP(), example: "php/resuming_subscriber.php")
    }

    private func resumingSubscriberFollowsANumberingThatStartedAgain(interpreter: URL, example name: String) throws {
        let endpoints = try Self.tcpEndpointsThatOutliveADaemon()
        var daemon = try Daemon(arguments: ["--history", "orders."], endpoints: endpoints)
        let client = try Self.runExample(interpreter, name, count: 8, against: daemon)
        try daemon.waitForSubscriptions(2)
        do {
            let clients = try Clients()
            let push = try clients.socket(.push, connect: daemon.pull)
            for n in 1...5 { try push.send(frames: frames("orders.\(n)", "\(n)")) }
            try Wait.until("the example handled 5") { client.stdoutSoFar.split(separator: "\n").count == 5 }
        }
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, daemon.log)
        daemon = try Daemon(arguments: ["--history", "orders."], endpoints: endpoints)
        try Wait.until("the example has replayed from the new numbering's start", timeout: 30) {
            client.stderrSoFar.contains("numbering started again")
                && client.stderrSoFar.contains("replayed 0 kept message(s) after 0")
        }
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for n in 6...8 { try push.send(frames: frames("orders.\(n)", "\(n)")) }
        let result = try client.finish(timeout: 30)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, (1...8).map { "orders.\($0) \($0)\n" }.joined(), result.stderr)
    }

    private func resumingSubscriberMissesNothing(interpreter: URL, example name: String) throws {
        let daemon = try Daemon(arguments: ["--history", "orders."])
        let position = Self.positionFile(of: daemon).path
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        func run(_ count: Int, publishing numbers: ClosedRange<Int>?) throws -> [String] {
            let before = try daemon.subscriptions().total
            let client = try Self.runExample(interpreter, name, count: count, against: daemon)
            if let numbers {
                try daemon.waitForSubscriptions(before + 2)  // its prefix and its sequence markers
                for n in numbers { try push.send(frames: frames("orders.\(n)", "order \(n)")) }
            }
            let result = try client.finish(timeout: 30)
            XCTAssertEqual(result.status, 0, result.stderr)
            try daemon.waitForSubscriptions(before)
            return result.stdout.split(separator: "\n").map(String.init)
        }
        XCTAssertEqual(try run(5, publishing: 1...5), (1...5).map { "orders.\($0) order \($0)" })
        XCTAssertEqual(try String(contentsOfFile: position, encoding: .utf8), "5")
        for n in 6...15 { try push.send(frames: frames("orders.\(n)", "order \(n)")) }  // nobody listening
        try Wait.until("history has all 15") { try daemon.stats().history?.messages == 15 }
        XCTAssertEqual(try run(10, publishing: nil), (6...15).map { "orders.\($0) order \($0)" }, "the missed ones")
        XCTAssertEqual(try run(3, publishing: 16...18), (16...18).map { "orders.\($0) order \($0)" }, "then live")
        XCTAssertEqual(try String(contentsOfFile: position, encoding: .utf8), "18")
    }

    /// At a few messages a second the writer gathers what arrives for 100 ms before it commits
    /// (`HistoryWriter.commitMilliseconds`), where it committed at every look at its queue
    /// (every 20 ms), each commit writing whole pages for a message or two.
    func testTheWriterGathersSlowTrafficIntoFewCommits() throws {
        let daemon = try Daemon(arguments: ["--history", "slow.", "--state-dir", stateDirectory.path])
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        let before = try XCTUnwrap(try daemon.stats().history)
        let count = 40
        let started = Date()
        for i in 0..<count {
            try push.send(frames: frames("slow.t", "\(i)"))
            Thread.sleep(forTimeInterval: 0.01)  // the traffic's pace, not a wait for a condition
        }
        try Wait.until("all \(count) are written") { try daemon.stats().history?.written == UInt64(count) }
        let elapsed = Date().timeIntervalSince(started)
        let commits = try XCTUnwrap(try XCTUnwrap(try daemon.stats().history).commits) - (before.commits ?? 0)
        // At most one commit per 100 ms and one per sync (each second), plus the first and the
        // last; committing at each look would have made some 20 of them.
        XCTAssertLessThanOrEqual(commits, UInt64(elapsed * 11) + 2, "\(commits) commits in \(elapsed) s")
        XCTAssertGreaterThan(commits, 0)
    }

    /// `max_age_s` holds with no traffic after the messages it evicts: bounds were applied only
    /// when a batch was written, so the last messages before a quiet spell stayed for ever.
    func testMessagesOlderThanMaxAgeGoWithNoFurtherTraffic() throws {
        let daemon = try Daemon(configuration: "[history]\nprefixes = [\"t.\"]\nmax_age_s = 1")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for i in 1...3 { try push.send(frames: frames("t.x", "\(i)")) }
        try Wait.until("all 3 are written") { try daemon.stats().history?.written == 3 }
        try Wait.until("all 3 evicted by age, with nothing sent since", timeout: 30) {
            let history = try daemon.stats().history
            return history?.messages == 0 && history?.evictions == 3
        }
        let reply = try daemon.decode("HISTORY since 0 t.", as: HistoryReply.self)
        XCTAssertEqual(reply.messages, [])
        XCTAssertEqual(reply.firstSequence, 0, "none kept")
        // zpub said "printing from 0", and STATS "sequences 0-3" (a walkthrough, 2026-12-07).
        let run = try zpub(["history", "-c", daemon.control, "t."])
        XCTAssertEqual(run.stdout, "")
        XCTAssertTrue(
            run.stderr.contains("messages 1 to 3 are no longer kept (history's bounds); none is kept now"), run.stderr)
        let stats = try zpub(["stats", "-c", daemon.control])
        XCTAssertTrue(stats.stdout.contains("0 messages kept (0 B), the last numbered 3,"), stats.stdout)
    }

    /// A reply holds at most 4 MiB of frames (`HistoryReply.pageBytes`): large messages come
    /// a few per page, and `zpub history` reads them all.
    func testLargeMessagesArePagedByTheirBytesAndNoneIsLost() throws {
        let daemon = try Daemon(arguments: ["--history", "big."])
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for i in 0..<10 {
            try push.send(frames: [Array("big.x".utf8), [UInt8](repeating: UInt8(48 + i), count: 1_000_000)])
        }
        try Wait.until("all 10 are written") { try daemon.stats().history?.written == 10 }
        let first = try daemon.decode("HISTORY since 0 big.", as: HistoryReply.self)
        XCTAssertEqual(first.messages.map(\.sequence), [1, 2, 3, 4], "4 of 1,000,005 bytes in 4 MiB")
        XCTAssertTrue(first.more)
        let newest = try daemon.decode("HISTORY last 10 big.", as: HistoryReply.self)
        XCTAssertEqual(newest.messages.map(\.sequence), [7, 8, 9, 10], "the newest that fit")
        XCTAssertTrue(newest.more)
        let lastRun = try zpub(["history", "-c", daemon.control, "--last", "10", "big."])
        XCTAssertEqual(lastRun.stdout.split(separator: "\n").count, 4)
        XCTAssertTrue(lastRun.stderr.contains("only the newest 4 fit in one reply"), lastRun.stderr)
        let run = try zpub(["history", "-c", daemon.control, "big."])
        let lines = run.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 10, run.stderr)
        XCTAssertEqual(
            lines.map { $0.prefix(9) }, (0..<10).map { "\($0 + 1)\tbig.x\t\($0)" }.map { Substring($0.prefix(9)) })
    }

    func testBoundsEvictTheOldestAndAnOlderPositionReportsAGap() throws {
        let daemon = try Daemon(configuration: "[history]\nprefixes = [\"t.\"]\nmax_messages = 5")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for i in 1...12 { try push.send(frames: frames("t.x", "\(i)")) }
        try Wait.until("all 12 are handled") {
            let history = try daemon.stats().history
            return history?.lastSequence == 12 && history?.messages == 5
        }
        let stats = try XCTUnwrap(try daemon.stats().history)
        XCTAssertEqual(stats.evictions, 7)
        XCTAssertEqual(stats.firstSequence, 8)
        XCTAssertFalse(stats.persistent, "no state directory: in memory")

        let reply = try daemon.decode("HISTORY since 2 t.", as: HistoryReply.self)
        XCTAssertEqual(reply.gap, HistoryReply.Gap(from: 3, to: 7))
        XCTAssertEqual(reply.messages.map(\.sequence), [8, 9, 10, 11, 12])
        let run = try zpub(["history", "-c", daemon.control, "--since", "2", "t."])
        XCTAssertEqual(run.stdout.split(separator: "\n").first, "8\tt.x\t8")
        XCTAssertTrue(run.stderr.contains("messages 3 to 7 are no longer kept"), run.stderr)
        let one = try zpub(["history", "-c", daemon.control, "--since", "6", "t."])
        XCTAssertTrue(
            one.stderr.contains("message 7 is no longer kept (history's bounds); printing from 8"), one.stderr)
        XCTAssertNil(try daemon.decode("HISTORY since 7 t.", as: HistoryReply.self).gap, "nothing missed after 7")
        let afterTheLargest = try daemon.decode("HISTORY since \(UInt64.max) t.", as: HistoryReply.self)
        XCTAssertEqual(afterTheLargest.messages, [])
        XCTAssertNil(afterTheLargest.gap)
        // `last`: fewer than asked for, and evicted numbers up to `until` that may have held
        // the rest, are a gap; a full reply has none.
        let newest = try daemon.decode("HISTORY last 8 t.", as: HistoryReply.self)
        XCTAssertEqual(newest.messages.map(\.sequence), [8, 9, 10, 11, 12])
        XCTAssertEqual(newest.gap, HistoryReply.Gap(from: 1, to: 7))
        let allEvicted = try daemon.decode("HISTORY last 3 until 6 t.", as: HistoryReply.self)
        XCTAssertEqual(allEvicted.messages, [])
        XCTAssertEqual(allEvicted.gap, HistoryReply.Gap(from: 1, to: 6))
        XCTAssertNil(try daemon.decode("HISTORY last 5 t.", as: HistoryReply.self).gap, "all 5 asked for are there")
        let lastRun = try zpub(["history", "-c", daemon.control, "--last", "8", "t."])
        XCTAssertEqual(lastRun.stdout.split(separator: "\n").count, 5, lastRun.stdout)
        XCTAssertTrue(
            lastRun.stderr.contains("5 of the 8 asked for are kept; numbers 1 to 7 were evicted"), lastRun.stderr)
        let printed = try zpub(["stats", "-c", daemon.control]).stdout
        XCTAssertTrue(printed.contains("history        5 messages kept"), printed)
        XCTAssertTrue(printed.contains("sequences 8-12, in memory only; 0 not kept, 7 evicted"), printed)
    }

    /// `zpub history` and `zpub sub --since` read a long history page by page; messages
    /// evicted between two pages are reported too, not only a gap before the first. The
    /// eviction is put exactly between the pages: the client's requests go through a relay in
    /// this test, which lowers `max_messages` (a reload) before it passes the second request on
    /// to the real zpubd.
    func testMessagesEvictedBetweenTwoPagesAreReported() throws {
        let (history, historyRequests) = try readThroughARelayThatEvictsBetweenPages { relay, _ in
            try RunningProgram(Binaries.zpub, ["history", "-c", relay, "g."])
        }
        XCTAssertEqual(historyRequests, ["HISTORY since 0 g.", "HISTORY since 1000 g."], "two pages")
        XCTAssertEqual(history.status, 0, history.stderr)
        let sequences = history.stdout.split(separator: "\n").compactMap { UInt64($0.split(separator: "\t")[0]) }
        XCTAssertEqual(sequences, Array(1...1_000) + Array(1_201...1_500))
        XCTAssertTrue(
            history.stderr.contains("messages 1001 to 1200 were evicted while the history was read"), history.stderr)

        let (sub, subRequests) = try readThroughARelayThatEvictsBetweenPages { relay, daemon in
            try RunningProgram(
                Binaries.zpub, ["sub", "-e", daemon.xpub, "-c", relay, "--since", "0", "--count", "1300", "g."])
        }
        XCTAssertEqual(subRequests.count, 2, "\(subRequests)")
        XCTAssertTrue(subRequests[0].hasPrefix("REPLAY "), "\(subRequests)")
        XCTAssertTrue(subRequests[1].hasPrefix("HISTORY since 1000 until 1500 g."), "\(subRequests)")
        XCTAssertEqual(sub.status, 0, sub.stderr)
        XCTAssertEqual(
            sub.stdout.split(separator: "\n").map { String($0) },
            (Array(1...1_000) + Array(1_201...1_500)).map { "g.x\t\($0)" })
        XCTAssertTrue(sub.stderr.contains("messages 1001 to 1200 are no longer kept"), sub.stderr)
    }

    /// Keeps 1,500 messages in a fresh zpubd, starts `client` with a relay's endpoint as its
    /// control endpoint, and passes its requests on; before the second that reads history
    /// (REPLAY or HISTORY), all but the newest 300 are evicted. Returns the client's run and
    /// the requests it made that read history (a follower's HEALTH checks are passed on, not
    /// counted).
    private func readThroughARelayThatEvictsBetweenPages(
        _ client: (_ relay: String, _ daemon: Daemon) throws -> RunningProgram
    ) throws -> (Run, [String]) {
        let daemon = try Daemon(configuration: "[history]\nprefixes = [\"g.\"]\nmax_messages = 2000\n")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for i in 1...1_500 { try push.send(frames: frames("g.x", "\(i)")) }
        try Wait.until("all 1,500 are kept") { try daemon.stats().history?.messages == 1_500 }

        let relayEndpoint = "ipc://\(daemon.directory.path)/relay.sock"
        let relay = try Socket(clients.context, type: .rep)
        defer { relay.close() }
        try relay.setOption(.linger, 0)
        try relay.bind(relayEndpoint)
        let program = try client(relayEndpoint, daemon)
        var requests: [String] = []
        let deadline = Date().addingTimeInterval(60)
        while program.isRunning && Date() < deadline {
            guard let request = try relay.receiveFrames(timeoutMilliseconds: 100) else { continue }
            let text = String(decoding: request[0], as: UTF8.self)
            let readsHistory = text.hasPrefix("HISTORY ") || text.hasPrefix("REPLAY ")
            if readsHistory { requests.append(text) }
            if readsHistory && requests.count == 2 {
                // Between the pages: 1,001-1,200 go (the newest 300 stay).
                try "[history]\nprefixes = [\"g.\"]\nmax_messages = 300\n".write(
                    to: daemon.configURL, atomically: true, encoding: .utf8)
                daemon.signal(SIGHUP)
                try Wait.until("the reload evicted all but 300") { try daemon.stats().history?.messages == 300 }
            }
            let reply = try XCTUnwrap(try daemon.request(request), "zpubd answers \(text)")
            _ = try relay.send(frames: [reply])
        }
        return (try program.finish(timeout: 10), requests)
    }

    func testAPlainREQClientReadsHistoryAndErrorsAreReplies() throws {
        let daemon = try Daemon(arguments: ["--history", "h."])
        let clients = try Clients()
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("h.one", "1"))
        try Wait.until("the message is kept") { try daemon.stats().history?.messages == 1 }
        let run = try Run.python("history_client.py", [daemon.control, "HISTORY since 0 h."])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "1 h.one ['1']\n")
        XCTAssertEqual(
            try daemon.json("HISTORY sometime")["error"].flatMap { ($0 as? [String: Any])?["code"] as? String },
            "bad_argument")

        let without = try Daemon()
        let error = try without.json("HISTORY since 0")["error"] as? [String: Any]
        XCTAssertEqual(error?["code"] as? String, "history_off")
    }

    /// A tmpfs of `size` on the state directory, unmounted when the test ends; skips the test
    /// where it cannot be mounted (not root, no permission).
    private func mountSmallDiskOnStateDirectory(size: String) throws {
        try XCTSkipUnless(geteuid() == 0, "mounting a small tmpfs needs root")
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        let mount = try Run.program(
            URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", stateDirectory.path])
        guard mount.status == 0 else { throw XCTSkip("cannot mount a tmpfs here: \(mount.stderr)") }
        let path = stateDirectory.path
        addTeardownBlock { _ = try? Run.program(URL(fileURLWithPath: "/bin/umount"), ["-l", path]) }
    }

    /// History on a tiny tmpfs: the disk fills, history counts what it could not keep, and
    /// forwarding does not notice.
    func testAFullDiskKeepsForwardingAndCountsWhatHistoryCouldNotKeep() throws {
        try mountSmallDiskOnStateDirectory(size: "256k")

        let daemon = try Daemon(arguments: ["--history", "f.", "--state-dir", stateDirectory.path])
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["f."])
        try daemon.waitForSubscriptions(1)
        let push = try clients.socket(.push, connect: daemon.pull)
        let count = 2_000
        let payload = String(repeating: "x", count: 1_024)  // 2 MB in all, eight times the disk
        var received = 0
        for i in 0..<count {
            try push.send(frames: frames("f.\(i % 7)", "\(i)", payload))
            // Read as we go, so the subscriber's own queue never drops.
            while let _ = try subscriber.receiveFrames(timeoutMilliseconds: 0) { received += 1 }
        }
        while received < count {
            guard try subscriber.receiveFrames(timeoutMilliseconds: 10_000) != nil else { break }
            received += 1
        }
        XCTAssertEqual(received, count, "forwarding delivered every message")
        try Wait.until("history accounts for every message: written, or counted as not kept", timeout: 30) {
            let history = try daemon.stats().history
            return history.map { $0.written + $0.writeFailures + $0.dropped } == UInt64(count)
        }
        let history = try XCTUnwrap(try daemon.stats().history)
        XCTAssertGreaterThan(history.writeFailures, 0, "the disk was full")
        XCTAssertLessThan(history.written, UInt64(count))
        XCTAssertTrue(daemon.log.contains("history could not store"), daemon.log)
        XCTAssertNotNil(try daemon.request("HISTORY last 1 f."), "HISTORY still answers")
        XCTAssertTrue(daemon.process.isRunning)
    }

    /// On a full disk the loop numbers only within the reserve on disk (a crash would
    /// otherwise give numbers again): it stops at it, history keeps nothing while forwarding
    /// goes on, and the reserve grows only as far as the writer manages to record it. Once
    /// the disk has room, history keeps messages again; after a SIGKILL the reserve recorded
    /// in the file covers every number a subscriber saw, and the restart numbers above them.
    func testOnAFullDiskNumbersStayWithinTheReserveOnDisk() throws {
        try mountSmallDiskOnStateDirectory(size: "2m")

        let daemon = try Daemon(
            configuration: "[history]\nprefixes = [\"f.\"]\nsequence_reserve = 1000\n",
            arguments: ["--state-dir", stateDirectory.path])
        let filler = stateDirectory.appendingPathComponent("filler").path
        // Fills what is left of the disk (dd stops, failing, when it is full).
        func fillTheDisk() throws {
            _ = try Run.program(URL(fileURLWithPath: "/bin/dd"), ["if=/dev/zero", "of=\(filler)", "bs=64k"])
        }
        try fillTheDisk()
        let clients = try Clients()
        // The messages and their sequence markers: what the loop numbered, as it numbered it.
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["f.", "$zpub/seq/f."], receiveHWM: 0)
        try daemon.waitForSubscriptions(2)
        var received = 0
        var highestMarker: UInt64 = 0
        /// Reads until nothing arrives for `quietMilliseconds`; with `count`, waits (30 s at
        /// most) until that many messages have arrived instead.
        func drain(until count: Int? = nil, quietMilliseconds: Int = 0) throws {
            let deadline = Date().addingTimeInterval(30)
            while true {
                if let count, received >= count || Date() >= deadline { break }
                guard
                    let message = try subscriber.receiveFrames(
                        timeoutMilliseconds: count == nil ? quietMilliseconds : 100)
                else {
                    if count == nil { break } else { continue }
                }
                if message[0].starts(with: Array("$zpub/".utf8)) {
                    let sequence = try XCTUnwrap(UInt64(String(decoding: message[1], as: UTF8.self)))
                    XCTAssertGreaterThan(sequence, highestMarker, "markers only go up")
                    highestMarker = sequence
                } else {
                    received += 1
                }
            }
            if let count { XCTAssertGreaterThanOrEqual(received, count, "every message forwarded") }
        }
        let push = try clients.socket(.push, connect: daemon.pull)
        let payload = String(repeating: "x", count: 200)
        var sent = 0
        func send(_ count: Int) throws {
            for _ in 0..<count { try push.send(frames: frames("f.x", "\(sent)", payload)) }
            sent += count
        }
        let ceilingReached = "history keeps nothing for now"
        let deadline = Date().addingTimeInterval(60)
        while !(daemon.log.contains(ceilingReached) && daemon.log.contains("history could not store"))
            && Date() < deadline
        {
            try send(500)
            try drain()
        }
        XCTAssertTrue(daemon.log.contains(ceilingReached), "the loop reached the reserve: \(daemon.log)")
        XCTAssertTrue(daemon.log.contains("history could not store"), daemon.log)
        try send(2_000)
        try drain(until: sent)
        let stalled = try XCTUnwrap(try daemon.stats().history)
        XCTAssertGreaterThan(stalled.dropped, 0)

        try FileManager.default.removeItem(atPath: filler)
        try Wait.until("history keeps messages again", timeout: 30) {
            try send(1)
            try drain()
            return try XCTUnwrap(try daemon.stats().history).written > stalled.written
        }
        // Full again, and killed while it is.
        try fillTheDisk()
        try send(5_000)
        try drain(until: sent)
        daemon.signal(SIGKILL)
        XCTAssertNotNil(daemon.waitForExit())
        try drain(quietMilliseconds: 500)  // the markers still on their way
        try FileManager.default.removeItem(atPath: filler)
        // Read with Python's sqlite3 (zpubd holds the file exclusively while it runs).
        let reserve = try Run.program(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                "-c",
                "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT value FROM meta WHERE key = 'reserved_through'\").fetchone()[0])",
                stateDirectory.appendingPathComponent("history.sqlite3").path,
            ])
        XCTAssertEqual(reserve.status, 0, reserve.stderr)
        let recorded = try XCTUnwrap(
            UInt64(reserve.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), reserve.stdout)
        XCTAssertGreaterThanOrEqual(recorded, highestMarker, "every number handed out is within the reserve on disk")

        let restarted = try Daemon(
            configuration: "[history]\nprefixes = [\"f.\"]\nsequence_reserve = 1000\n",
            arguments: ["--state-dir", stateDirectory.path])
        try clients.socket(.push, connect: restarted.pull).send(frames: frames("f.x", "after"))
        try Wait.until("the new message is written") { try restarted.stats().history?.written == 1 }
        let newest = try XCTUnwrap(try history(restarted, ["--last", "1"]).first)
        XCTAssertGreaterThan(newest.seq, highestMarker, "a number handed out before the kill is not given again")
    }

    /// Every kept message after `since` under `prefix`, page by page, and the ranges told as
    /// not kept (each number once), with the HISTORY requests any REQ client sends.
    private func readAll(_ daemon: Daemon, since: UInt64 = 0, prefix: String) throws
        -> (sequences: [UInt64], notKept: [HistoryReply.NotKept])
    {
        var sequences: [UInt64] = []
        var report = NotKeptReport()
        var notKept: [HistoryReply.NotKept] = []
        var after = since
        while true {
            let page = try daemon.decode("HISTORY since \(after) \(prefix)", as: HistoryReply.self)
            sequences += page.messages.map(\.sequence)
            notKept += report.untold(page.notKept)
            guard page.more, let last = page.messages.last?.sequence else { break }
            after = last
        }
        return (sequences, notKept)
    }

    /// A run killed before it kept anything: its reserve lies below the next run's first
    /// message, and is told as not kept (`unclean_stop`), before and after that message, never
    /// as a gap "no longer kept (history's bounds)": nothing was evicted.
    func testADeadRunsReserveBelowTheFirstKeptMessageIsNotKeptNotEvicted() throws {
        let arguments = ["--history", "u.", "--state-dir", stateDirectory.path]
        do {
            let daemon = try Daemon(arguments: arguments)
            daemon.signal(SIGKILL)
            XCTAssertNotNil(daemon.waitForExit())
        }
        let restarted = try Daemon(arguments: arguments)
        let before = try restarted.decode("HISTORY since 0 u.", as: HistoryReply.self)
        XCTAssertNil(before.gap)
        XCTAssertEqual(before.notKept?.map(\.reason), [.uncleanStop])
        XCTAssertEqual(before.notKept?.map(\.from), [1])
        let clients = try Clients()
        try clients.socket(.push, connect: restarted.pull).send(frames: frames("u.x", "first"))
        try Wait.until("the message is written") { try restarted.stats().history?.written == 1 }
        let after = try restarted.decode("HISTORY since 0 u.", as: HistoryReply.self)
        let first = try XCTUnwrap(after.messages.first?.sequence)
        XCTAssertNil(after.gap, "nothing was evicted")
        XCTAssertEqual(after.notKept, [HistoryReply.NotKept(from: 1, to: first - 1, reason: .uncleanStop)])
        let run = try zpub(["history", "-c", restarted.control, "--since", "0", "u."])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("zpubd that stopped uncleanly"), run.stderr)
        XCTAssertFalse(run.stderr.contains("history's bounds"), run.stderr)
    }

    /// `zpub sub --since` after an unclean stop tells the dead run's reserve once: the first
    /// live message is numbered above it, a jump the follower resumes across, and the replay
    /// of that resume holds the same range. Until 2026-12-05 it was told again there.
    func testSubSinceTellsADeadRunsReserveOnce() throws {
        let arguments = ["--history", "r.", "--state-dir", stateDirectory.path]
        do {
            let daemon = try Daemon(arguments: arguments)
            let clients = try Clients()
            let push = try clients.socket(.push, connect: daemon.pull)
            for number in 1...3 { try push.send(frames: frames("r.x", "\(number)")) }
            try Wait.until("the three are written") { try daemon.stats().history?.written == 3 }
            try killAfterTheNextSync(daemon)
        }
        let restarted = try Daemon(arguments: arguments)
        let follower = try RunningProgram(
            Binaries.zpub, ["sub", "--since", "0", "-e", restarted.xpub, "-c", restarted.control, "r."])
        defer { kill(follower.processIdentifier, SIGTERM) }
        try Wait.until("the three are replayed\n\(follower.stdoutSoFar)\n\(follower.stderrSoFar)") {
            follower.stdoutSoFar.split(separator: "\n").count == 3
        }
        let clients = try Clients()
        try clients.socket(.push, connect: restarted.pull).send(frames: frames("r.x", "live"))
        try Wait.until("the live one is printed\n\(follower.stdoutSoFar)\n\(follower.stderrSoFar)") {
            follower.stdoutSoFar.contains("live")
        }
        let stderr = follower.stderrSoFar
        XCTAssertEqual(stderr.components(separatedBy: "stopped uncleanly").count, 2, "told once:\n\(stderr)")
        XCTAssertFalse(stderr.contains("numbering started again"), stderr)

        // A prefix history does not keep: said so, and the ranges, which are other topics'
        // numbers, are not told ("those under s. among them are lost" of a prefix never kept).
        let other = try RunningProgram(
            Binaries.zpub, ["sub", "--since", "0", "-e", restarted.xpub, "-c", restarted.control, "s."])
        defer { kill(other.processIdentifier, SIGTERM) }
        try Wait.until("the note\n\(other.stderrSoFar)") {
            other.stderrSoFar.contains("history keeps nothing under s.")
        }
        try clients.socket(.push, connect: restarted.pull).send(frames: frames("s.x", "live"))
        try Wait.until("the live one is printed\n\(other.stdoutSoFar)") { other.stdoutSoFar.contains("live") }
        XCTAssertFalse(other.stderrSoFar.contains("stopped uncleanly"), other.stderrSoFar)
    }

    /// The start after an unclean stop says so; a start after that run's clean stop does not
    /// again (its reserve is a recorded range by then), though nothing was numbered since.
    func testOnlyTheStartRightAfterAnUncleanStopSaysSo() throws {
        let arguments = ["--history", "w.", "--state-dir", stateDirectory.path]
        do {
            let daemon = try Daemon(arguments: arguments)
            daemon.signal(SIGKILL)
            XCTAssertNotNil(daemon.waitForExit())
        }
        do {
            let daemon = try Daemon(arguments: arguments)
            try Wait.until("the store is open\n\(daemon.log)") { daemon.log.contains("sequences continue after") }
            XCTAssertTrue(daemon.log.contains("an earlier run stopped uncleanly"), daemon.log)
            daemon.signal(SIGTERM)
            XCTAssertNotNil(daemon.waitForExit())
        }
        let daemon = try Daemon(arguments: arguments)
        try Wait.until("the store is open\n\(daemon.log)") { daemon.log.contains("sequences continue after") }
        XCTAssertFalse(daemon.log.contains("stopped uncleanly"), daemon.log)
    }

    /// Numbers handed out for messages the store could not write (its disk was full) are told
    /// to readers as not kept, exactly: with the messages read, they cover every number, and
    /// they add up to what STATS counts as lost. After a SIGKILL, the dead run's reserve is
    /// told the same way, as numbers it may have used.
    func testNumbersOfMessagesHistoryCouldNotWriteAreToldToReaders() throws {
        try mountSmallDiskOnStateDirectory(size: "2m")
        let daemon = try Daemon(arguments: ["--history", "f.", "--state-dir", stateDirectory.path])
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        let payload = String(repeating: "x", count: 200)
        var sent = 0
        func send(_ count: Int) throws {
            for _ in 0..<count { try push.send(frames: frames("f.x", "\(sent)", payload)) }
            sent += count
        }
        func accounted() throws -> HistoryStats {
            var stats: HistoryStats?
            try Wait.until("history accounts for every message: written, or counted as lost", timeout: 30) {
                stats = try daemon.stats().history
                return stats.map { $0.written + $0.writeFailures + $0.dropped } == UInt64(sent)
            }
            return try XCTUnwrap(stats)
        }
        try send(100)
        _ = try accounted()
        let filler = stateDirectory.appendingPathComponent("filler").path
        _ = try Run.program(URL(fileURLWithPath: "/bin/dd"), ["if=/dev/zero", "of=\(filler)", "bs=64k"])
        try Wait.until("a write fails on the full disk", timeout: 60) {
            try send(200)
            return try accounted().writeFailures > 0
        }
        // HEALTH: still ok (it forwards), and says what history cannot do.
        try Wait.until("HEALTH tells of it") {
            try daemon.decode("HEALTH", as: HealthReport.self).problems?.map(\.kind) == [.historyNotStoring]
        }
        XCTAssertEqual(try daemon.decode("HEALTH", as: HealthReport.self).status, .ok)
        // Meanwhile a reader after the last message stored is told of the numbers lost since
        // (the store cannot record them yet): it was told nothing, and printed nothing.
        let stored = try XCTUnwrap(try daemon.stats().history?.lastSequence)
        let outage = try daemon.decode("HISTORY since \(stored) f.", as: HistoryReply.self)
        XCTAssertTrue(outage.messages.isEmpty)
        XCTAssertEqual(outage.notKept?.map(\.reason), [.dropped], "\(outage)")
        XCTAssertEqual(outage.notKept?.first?.from, stored + 1)
        let told = try zpub(["history", "--since", "\(stored)", "-c", daemon.control, "f."])
        XCTAssertEqual(told.status, 0, told.stderr)
        XCTAssertTrue(told.stderr.contains("\(stored + 1)"), told.stderr)
        // Recording those numbers is a write that succeeds on the full disk: it must not end
        // the problem while no message can be stored (it did, and the log said "stores again").
        XCTAssertEqual(
            try daemon.decode("HEALTH", as: HealthReport.self).problems?.map(\.kind), [.historyNotStoring])
        XCTAssertFalse(daemon.log.contains("history stores messages again"), daemon.log)
        try FileManager.default.removeItem(atPath: filler)
        try Wait.until("history keeps messages again", timeout: 30) {
            let before = try accounted().written
            try send(10)
            return try accounted().written > before
        }
        XCTAssertNil(try daemon.decode("HEALTH", as: HealthReport.self).problems, "a write succeeded")
        let stats = try accounted()
        XCTAssertGreaterThan(stats.writeFailures, 0)
        XCTAssertGreaterThan(stats.notKeptRanges ?? 0, 0, "STATS counts the ranges")

        let (sequences, notKept) = try readAll(daemon, prefix: "f.")
        XCTAssertFalse(notKept.isEmpty, "the lost messages are told")
        XCTAssertTrue(notKept.allSatisfy { $0.reason == .dropped }, "\(notKept)")
        let lost = notKept.reduce(UInt64(0)) { $0 + $1.to - $1.from + 1 }
        XCTAssertEqual(lost, stats.writeFailures + stats.dropped, "each lost message told once, and no other")
        var covered = Set(sequences)
        for range in notKept {
            for sequence in range.from...range.to {
                XCTAssertTrue(covered.insert(sequence).inserted, "\(sequence) is both kept and told as not kept")
            }
        }
        XCTAssertEqual(covered, Set(1...UInt64(sent)), "every number handed out is either read or told")
        let run = try zpub(["history", "-c", daemon.control, "f."])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(
            run.stderr.contains("[history] prefixes (those under f. among them"),
            run.stderr)

        // Killed once everything is written and synced: the dead run's reserve is told.
        try killAfterTheNextSync(daemon)
        let restarted = try Daemon(arguments: ["--history", "f.", "--state-dir", stateDirectory.path])
        // Told at once, not only once this run keeps a message: a reader who resumes before
        // that learns that the dead run may have numbered (and delivered live) messages it
        // lost.
        let atStart = try readAll(restarted, since: UInt64(sent), prefix: "f.")
        XCTAssertEqual(atStart.sequences, [])
        XCTAssertEqual(atStart.notKept.map(\.from), [UInt64(sent) + 1], "\(atStart.notKept)")
        XCTAssertEqual(atStart.notKept.map(\.reason), [.uncleanStop])
        try clients.socket(.push, connect: restarted.pull).send(frames: frames("f.x", "after"))
        try Wait.until("the new message is written") { try restarted.stats().history?.written == 1 }
        let after = try readAll(restarted, since: UInt64(sent), prefix: "f.")
        let newest = try XCTUnwrap(after.sequences.first)
        XCTAssertEqual(after.sequences, [newest])
        XCTAssertEqual(
            after.notKept, [HistoryReply.NotKept(from: UInt64(sent) + 1, to: newest - 1, reason: .uncleanStop)])
        XCTAssertEqual(atStart.notKept, after.notKept, "the same range before and after")
    }

    func testADamagedStoreIsRefusedWithItsNameAndNeverWiped() throws {
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        let file = stateDirectory.appendingPathComponent("history.sqlite3")
        let garbage = Data(repeating: 0x5A, count: 16_384)
        try garbage.write(to: file)
        let daemon = try Daemon(
            arguments: ["--history", "h.", "--state-dir", stateDirectory.path], waitUntilReady: false)
        XCTAssertEqual(daemon.waitForExit(), 74, daemon.log)
        XCTAssertTrue(daemon.log.contains(file.path), daemon.log)
        XCTAssertTrue(daemon.log.contains("move it aside"), daemon.log)
        XCTAssertEqual(try Data(contentsOf: file), garbage)
    }

    /// Damage inside the blocks of messages (most of the file's pages, which the open does not
    /// read) is found after the start by reading the blocks back, before any reader asks for
    /// them: the log names the first, HEALTH says so (status still ok: it forwards), the
    /// blocks around it are served and the damaged ones refused. Before, zpubd said nothing
    /// until a reader met the damage, and only to that reader.
    func testDamageInsideTheStoredBlocksIsFoundAfterTheStartBeforeAnyReaderMeetsIt() throws {
        let arguments = ["--history", "h.", "--state-dir", stateDirectory.path]
        let payload = String(repeating: "d", count: 1_000)
        do {
            let daemon = try Daemon(arguments: arguments)
            let clients = try Clients()
            let push = try clients.socket(.push, connect: daemon.pull)
            for i in 0..<1_500 { try push.send(frames: frames("h.x", "\(i) \(payload)")) }
            try Wait.until("all 1,500 are stored", timeout: 60) { try daemon.stats().history?.written == 1_500 }
            daemon.signal(SIGTERM)
            XCTAssertEqual(daemon.waitForExit(), 0, daemon.log)
        }
        let file = stateDirectory.appendingPathComponent("history.sqlite3").path
        let damage = try Run.python("damage_history.py", [file])
        XCTAssertEqual(damage.status, 0, damage.stderr)
        let damaged = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(damage.stdout.utf8)) as? [String: Any], damage.stdout)
        let blocks = try XCTUnwrap(damaged["blocks"] as? [NSNumber]).map(\.uint64Value)
        let truncated = try XCTUnwrap(damaged["truncated"] as? NSNumber).uint64Value
        let zeroed = try XCTUnwrap(damaged["zeroed"] as? NSNumber).uint64Value

        let httpPort = try FreePort.find()
        let daemon = try Daemon(arguments: arguments + ["--http", "127.0.0.1:\(httpPort)"]).waitForGateway(
            port: httpPort)
        try Wait.until("HEALTH tells of the damage\n\(daemon.log)", timeout: 30) {
            try daemon.decode("HEALTH", as: HealthReport.self).problems?.map(\.kind) == [.historyDamaged]
        }
        // A browser resuming into a damaged block is told, and stays for the live messages: it
        // was sent away with resume_again, and EventSource came back with the same id for ever.
        let resume = try Run.python("http_clients.py", ["sse", "\(httpPort)", "?prefix=h.", "1", "h\(truncated - 1)"])
        let told = resume.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.first { $0["event"] as? String == "error" }
        XCTAssertEqual((told?["data"] as? [String: Any])?["code"] as? String, "replay_failed", resume.stdout)
        let health = try daemon.decode("HEALTH", as: HealthReport.self)
        XCTAssertEqual(health.status, .ok)
        XCTAssertTrue(health.problems?.first?.message.contains(file) == true, "\(health)")
        try Wait.until("the log sums the check up\n\(daemon.log)") { daemon.log.contains("history read back ") }
        XCTAssertTrue(
            daemon.log.contains("history's file \(file) is damaged: the block of messages from \(truncated)"),
            daemon.log)
        XCTAssertTrue(daemon.log.contains("read back \(blocks.count) blocks of \(file)"), daemon.log)
        XCTAssertTrue(daemon.log.contains(": 2 damaged"), daemon.log)
        // Each damaged block is refused, and named by its range; the ones before and after are
        // served. (A page of the cut block's first messages, which are whole, is served.)
        for block in [truncated, zeroed] {
            let next = try XCTUnwrap(blocks.first { $0 > block })
            let refused = try daemon.json("HISTORY since \(block - 1) until \(next - 1) h.")["error"] as? [String: Any]
            XCTAssertEqual(refused?["code"] as? String, "history_read_failed", "the block from \(block)")
            let range = refused?["damaged"] as? [String: Any]
            XCTAssertEqual((range?["from"] as? NSNumber)?.uint64Value, block, "\(refused ?? [:])")
            XCTAssertEqual((range?["to"] as? NSNumber)?.uint64Value, next - 1, "\(refused ?? [:])")
        }
        // zpub history reads around them: every other message, each damaged range said, exit 1.
        // It failed whole at the first page that met one (stop 65's list).
        let read = try zpub(["history", "-c", daemon.control, "h."])
        XCTAssertEqual(read.status, 1, read.stderr)
        let printed = read.stdout.split(separator: "\n").compactMap { UInt64($0.prefix { $0 != "\t" }) }
        var unreadable = Set<UInt64>()
        for block in [truncated, zeroed] {
            let next = try XCTUnwrap(blocks.first { $0 > block })
            unreadable.formUnion(block..<next)
            XCTAssertTrue(read.stderr.contains("messages \(block) to \(next - 1) could not be read"), read.stderr)
        }
        XCTAssertEqual(printed.count, 1_500 - unreadable.count, read.stderr)
        XCTAssertEqual(printed, Array(blocks[0]..<blocks[0] + 1_500).filter { !unreadable.contains($0) })
        XCTAssertTrue(read.stderr.contains("2 blocks of zpubd's history could not be read"), read.stderr)
        func page(_ request: String) throws -> HistoryReply {
            let reply = try XCTUnwrap(try daemon.request(request), "no reply to \(request)")
            do {
                return try JSONDecoder().decode(HistoryReply.self, from: Data(reply))
            } catch {
                XCTFail("\(request) (blocks \(blocks)): \(String(decoding: reply, as: UTF8.self))\n\(daemon.log)")
                throw error
            }
        }
        let first = try page("HISTORY since 0 until \(blocks[1] - 1) h.")
        XCTAssertEqual(first.messages.map(\.sequence), Array(blocks[0]..<blocks[1]))
        // A page that starts where a block does reads that block, not the damaged one before
        // it (it did, and failed).
        let third = try page("HISTORY since \(blocks[2] - 1) until \(blocks[3] - 1) h.")
        XCTAssertEqual(third.messages.map(\.sequence), Array(blocks[2]..<blocks[3]))
        // Forwarding goes on.
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["h."])
        try daemon.waitForSubscriptions(1)
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("h.x", "after"))
        XCTAssertEqual(try subscriber.receive(1), [frames("h.x", "after")])
    }
}

/// A `zpub sub --since 0 --json` follower of `h.` on one broker (ipc endpoints of its own, a
/// state directory kept across runs) that printed 1 and 2; the broker then ran once where the
/// follower could not reach it (its XPUB and control elsewhere) and kept 3 and 4, which come to
/// the follower only by a resume from the run a test starts next, at `reachable`.
private final class FollowerThatMissedARun {
    let arguments: [String]
    let reachable: [BrokerSocketRole: String]
    let follower: RunningProgram
    private let clients: Clients
    private let sockets: URL

    init(stateDirectory: URL) throws {
        // Short ipc paths of their own (the state directory may be long).
        sockets = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-follow-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: sockets, withIntermediateDirectories: true)
        let sockets = self.sockets
        func endpoint(_ name: String) -> String { "ipc://\(sockets.path)/\(name).sock" }
        arguments = ["--history", "h.", "--state-dir", stateDirectory.path]
        reachable = [.pull: endpoint("pull"), .xpub: endpoint("xpub"), .control: endpoint("control")]
        clients = try Clients()
        var daemon = try Daemon(arguments: arguments, endpoints: reachable)
        follower = try RunningProgram(
            Binaries.zpub, ["sub", "--since", "0", "--json", "-e", daemon.xpub, "-c", daemon.control, "h."])
        try publish(daemon, 1...2)
        try Wait.until("the follower prints 1 and 2\n\(follower.stdoutSoFar)") { printed().count == 2 }
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(), 0)
        daemon = try Daemon(
            arguments: arguments,
            endpoints: [.pull: endpoint("pull"), .xpub: endpoint("elsewhere"), .control: endpoint("other-control")])
        try publish(daemon, 3...4)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(), 0)
    }

    deinit {
        kill(follower.processIdentifier, SIGTERM)
        try? FileManager.default.removeItem(at: sockets)
    }

    /// Publishes `h.x` messages with these numbers, and waits until `daemon` has kept them.
    func publish(_ daemon: Daemon, _ numbers: ClosedRange<Int>) throws {
        let push = try clients.socket(.push, connect: daemon.pull)
        defer { push.close() }
        for i in numbers { try push.send(frames: frames("h.x", "\(i)")) }
        try Wait.until("\(numbers) are kept") {
            try daemon.stats().history?.lastSequence == UInt64(numbers.upperBound)
        }
    }

    /// What the follower has printed: each message's number and its `seq`.
    func printed() -> [(payload: Int, seq: UInt64?)] { printedNumbers(follower.stdoutSoFar) }
}
