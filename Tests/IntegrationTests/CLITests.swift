import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// The zpub command line tool against a real zpubd.
final class CLITests: XCTestCase {
    private func zpub(_ arguments: [String], stdin: String? = nil, timeout: Double = 20) throws -> Run {
        try Run.program(Binaries.zpub, arguments, stdin: stdin, timeout: timeout)
    }

    func testPublishAndSubscribe() throws {
        let daemon = try Daemon()
        let subscriber = try RunningProgram(
            Binaries.zpub, ["sub", "--endpoint", daemon.xpub, "--count", "3", "--json", "a.", "b."])
        try daemon.waitForSubscriptions(2)
        XCTAssertEqual(try zpub(["pub", "--endpoint", daemon.pull, "a.one", "first", "second"]).status, 0)
        // Two processes are two connections to PULL, read in no set order: the second is sent
        // once the broker has taken the first.
        try Wait.until("the broker has taken the first message") { try daemon.stats().messagesIn == 1 }
        XCTAssertEqual(try zpub(["pub", "--endpoint", daemon.pull, "b.lines"], stdin: "line 1\nline 2\n").status, 0)
        let lines = try subscriber.finish(timeout: 20).stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(
            lines,
            [
                #"{"type":"message","topic":"a.one","encoding":"frames","payload":["first","second"]}"#,
                #"{"type":"message","topic":"b.lines","encoding":"text","payload":"line 1"}"#,
                #"{"type":"message","topic":"b.lines","encoding":"text","payload":"line 2"}"#,
            ])
    }

    /// Standard input that cannot be read ends zpub pub with the reason and how many of its
    /// lines went before (each line is a message).
    func testStandardInputThatCannotBeReadIsSaidWithHowManyLinesWent() throws {
        let daemon = try Daemon()
        let run = try Run.program(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", "exec \"$0\" pub --endpoint \"$1\" t < /", Binaries.zpub.path, daemon.pull])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(
            run.stderr.contains("cannot read standard input: Is a directory (0 messages sent before)"), run.stderr)
        // Empty: nothing to send is not an error, but it is said.
        let empty = try Run.program(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", "exec \"$0\" pub --endpoint \"$1\" t < /dev/null", Binaries.zpub.path, daemon.pull])
        XCTAssertEqual(empty.status, 0, empty.stderr)
        XCTAssertTrue(empty.stderr.contains("standard input was empty: no message sent"), empty.stderr)
    }

    /// A subscription the broker refused because its table was full gets in once there is room:
    /// zpub sub sends `$zpub/retry` every 2 s, at which the broker admits what waits for that
    /// connection. Before, it never did while zpub sub stayed connected.
    func testASubscriptionRefusedForAFullTableGetsInOnceThereIsRoom() throws {
        let daemon = try Daemon(configuration: "[limits]\nmax_subscriptions = 1\n")
        let clients = try Clients()
        let occupant = try clients.subscriber(daemon.xpub, prefixes: ["held."])
        try daemon.waitForSubscriptions(1)
        let subscriber = try RunningProgram(
            Binaries.zpub, ["sub", "--endpoint", daemon.xpub, "--count", "1", "late."])
        try Wait.until("the broker refuses it") { try daemon.stats().subscriptions.refusedTableFull == 1 }
        // --ready waits for a subscription the full table refuses too: the table is blamed, not
        // the endpoint ("is --endpoint that broker's XPUB?", before 2026-12-06).
        let ready = try zpub(
            ["sub", "--endpoint", daemon.xpub, "-c", daemon.control, "--ready", "other."], timeout: 30)
        XCTAssertEqual(ready.status, 1, ready.stderr)
        XCTAssertTrue(ready.stderr.contains("--ready: the subscription table of the zpubd at"), ready.stderr)
        XCTAssertTrue(ready.stderr.contains("of max_subscriptions 1"), ready.stderr)
        XCTAssertFalse(ready.stderr.contains("XPUB?"), ready.stderr)
        // What waits is an operator's problem: `health --strict` fails on it and `subscriptions`
        // says it (only `stats` did).
        try Wait.until("the refusal waits for room") { try daemon.stats().subscriptions.waitingForRoom >= 1 }
        let health = try zpub(["health", "--strict", "-c", daemon.control])
        XCTAssertEqual(health.status, 1, health.stdout + health.stderr)
        XCTAssertTrue(
            (health.stdout + health.stderr).contains("subscription table is full"), health.stdout + health.stderr)
        let listed = try zpub(["subscriptions", "-c", daemon.control])
        XCTAssertTrue(listed.stdout.contains("the table is full (max_subscriptions 1)"), listed.stdout)
        clients.close(occupant)
        try daemon.waitForSubscriptions(to: ["late."], timeout: 15)
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("late.x", "in"))
        XCTAssertEqual(try subscriber.finish(timeout: 20).stdout, "late.x\tin\n")
        // The refusals of --ready's connection, closed, are forgotten within seconds.
        try Wait.until("nothing waits any more") { try zpub(["health", "--strict", "-c", daemon.control]).status == 0 }
    }

    /// A broker not on the default endpoints is found through the environment, as its control
    /// socket is through ZPUB_CONTROL (nats has NATS_URL): ZPUB_XPUB for sub, ZPUB_PULL for pub,
    /// ZPUB_XSUB for pub --pub; a malformed one is named by its variable.
    func testDataEndpointsFromTheEnvironment() throws {
        let daemon = try Daemon()
        let subscriber = try RunningProgram(
            Binaries.zpub, ["sub", "--count", "2", "env."], environment: ["ZPUB_XPUB": daemon.xpub])
        try daemon.waitForSubscriptions(1)
        let pushed = try Run.program(
            Binaries.zpub, ["pub", "env.push", "1"], environment: ["ZPUB_PULL": daemon.pull])
        XCTAssertEqual(pushed.status, 0, pushed.stderr)
        try Wait.until("the broker has taken the first message") { try daemon.stats().messagesIn == 1 }
        let published = try Run.program(
            Binaries.zpub, ["pub", "--pub", "env.pub", "2"], environment: ["ZPUB_XSUB": daemon.xsub])
        XCTAssertEqual(published.status, 0, published.stderr)
        XCTAssertEqual(try subscriber.finish(timeout: 20).stdout, "env.push\t1\nenv.pub\t2\n")
        let malformed = try Run.program(
            Binaries.zpub, ["sub", "--count", "1", "x"], timeout: 10, environment: ["ZPUB_XPUB": "127.0.0.1:5556"])
        XCTAssertEqual(malformed.status, 1)
        XCTAssertTrue(malformed.stderr.contains("ZPUB_XPUB \"127.0.0.1:5556\""), malformed.stderr)
        // Both brokers of a pair in one variable, as the examples take them: refused as one
        // endpoint "with white space" (an audit).
        let other = try Daemon()
        let both = try RunningProgram(
            Binaries.zpub, ["sub", "--count", "2", "two."], environment: ["ZPUB_XPUB": "\(daemon.xpub)  \(other.xpub)"])
        try daemon.waitForSubscriptions(to: ["two."])
        try other.waitForSubscriptions(to: ["two."])
        let toBoth = try Run.program(
            Binaries.zpub, ["pub", "two.a", "1"], environment: ["ZPUB_PULL": "\(daemon.pull) \(other.pull)"])
        XCTAssertEqual(toBoth.status, 0, toBoth.stderr)
        XCTAssertEqual(
            try Run.program(Binaries.zpub, ["pub", "two.b", "2"], environment: ["ZPUB_PULL": other.pull]).status, 0)
        let lines = try both.finish(timeout: 20).stdout.split(separator: "\n").sorted()
        XCTAssertEqual(lines, ["two.a\t1", "two.b\t2"])
    }

    /// With the broker's XPUB named, --ready, --snapshot and --since ask no guessed control
    /// endpoint, as `zpub pub` does not: the default one may be another broker's (a walkthrough's
    /// --ready waited 10 s for tcp://127.0.0.1:5555 and blamed it). A malformed $ZPUB_CONTROL is
    /// named as such, not as a --control never given.
    func testAskingTheControlSocketNeedsItNamedWithANamedBroker() throws {
        // $ZPUB_CONTROL set or not: it is the environment's broker's, not necessarily -e's
        // (taken, --snapshot would have read another broker's cache).
        for control in ["", "tcp://127.0.0.1:46998"] {
            for (option, extra) in [("--ready", [String]()), ("--snapshot", []), ("--since", ["0"])] {
                let run = try Run.program(
                    Binaries.zpub, ["sub", "-e", "tcp://127.0.0.1:46999", option] + extra + ["x."], timeout: 10,
                    environment: ["ZPUB_CONTROL": control])
                XCTAssertEqual(run.status, 64, "\(option): \(run.stderr)")
                XCTAssertTrue(run.stderr.contains("\(option) asks the broker's control socket"), run.stderr)
                XCTAssertTrue(run.stderr.contains("give its control endpoint with -c"), run.stderr)
            }
        }
        let fromVariable = try Run.program(
            Binaries.zpub, ["sub", "--ready", "x."], timeout: 10, environment: ["ZPUB_XPUB": "tcp://127.0.0.1:46999"])
        XCTAssertTrue(fromVariable.stderr.contains("$ZPUB_XPUB names a broker"), fromVariable.stderr)
        let malformed = try Run.program(
            Binaries.zpub, ["stats"], timeout: 10, environment: ["ZPUB_CONTROL": "127.0.0.1:46555"])
        XCTAssertEqual(malformed.status, 1, malformed.stderr)
        XCTAssertTrue(malformed.stderr.contains("$ZPUB_CONTROL \"127.0.0.1:46555\""), malformed.stderr)
        // The same malformed value given with -c is blamed on -c, whatever the environment.
        for environment in [["ZPUB_CONTROL": ""], ["ZPUB_CONTROL": "127.0.0.1:46555"]] {
            let given = try Run.program(
                Binaries.zpub, ["stats", "-c", "127.0.0.1:46555"], timeout: 10, environment: environment)
            XCTAssertEqual(given.status, 64, given.stderr)
            XCTAssertTrue(given.stderr.contains("--control \"127.0.0.1:46555\""), given.stderr)
        }
        // And from `zpub sub`, which asks it for --ready.
        for asking in [["--ready"], ["--since", "0"], ["--snapshot"]] {
            let fromSub = try Run.program(
                Binaries.zpub, ["sub"] + asking + ["x."], timeout: 10, environment: ["ZPUB_CONTROL": "127.0.0.1:46555"])
            XCTAssertEqual(fromSub.status, 64, fromSub.stderr)
            XCTAssertTrue(fromSub.stderr.contains("$ZPUB_CONTROL \"127.0.0.1:46555\""), fromSub.stderr)
        }
    }

    /// A count written onto -n (`zpub sub -n1`, as `head -n1`) is taken as `-n 1`: ArgumentParser
    /// took the next argument for the count ("The value '-e' is invalid for '-n <N>'"). After
    /// `--`, an argument is a prefix, whatever it looks like.
    func testACountWrittenOntoItsOptionIsTaken() throws {
        let daemon = try Daemon()
        let subscriber = try RunningProgram(Binaries.zpub, ["sub", "-n2", "-e", daemon.xpub, "--", "w.", "-n1"])
        try daemon.waitForSubscriptions(2)
        for topic in ["w.a", "-n1x", "w.b"] {
            XCTAssertEqual(try zpub(["pub", "-e", daemon.pull, "--", topic, "v"]).status, 0)
        }
        let run = try subscriber.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "w.a\tv\n-n1x\tv\n")
    }

    /// A frame that starts with "-" and a digit (a negative reading) is told how to send it;
    /// ArgumentParser said only "Unknown option '-5'".
    func testAPayloadThatStartsWithADashIsToldHowToSendIt() throws {
        let daemon = try Daemon()
        let refused = try zpub(["pub", "-e", daemon.pull, "weather.oslo", "-5"])
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("put -- before the topic and frames"), refused.stderr)
        let subscriber = try RunningProgram(Binaries.zpub, ["sub", "-e", daemon.xpub, "--count", "1", "weather."])
        try daemon.waitForSubscriptions(1)
        let sent = try zpub(["pub", "-e", daemon.pull, "--", "weather.oslo", "-5"])
        XCTAssertEqual(sent.status, 0, sent.stderr)
        XCTAssertEqual(try subscriber.finish(timeout: 20).stdout, "weather.oslo\t-5\n")
    }

    /// A control endpoint nobody listens on is told within --timeout: --ready waited the 6 s it
    /// allows the broker's answer (which may take zpubd's 5 s for the marker) whatever
    /// --timeout said (a walkthrough).
    func testReadyGivesUpWithinItsTimeoutWhenNothingAnswersTheControlEndpoint() throws {
        let (xpub, control) = ("tcp://127.0.0.1:\(try FreePort.find())", "tcp://127.0.0.1:\(try FreePort.find())")
        let started = Date()
        let run = try zpub(["sub", "-e", xpub, "-c", control, "--ready", "--timeout", "1000", "x"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("no reply from zpubd at \(control) within 1000 ms"), run.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "the 6 s are for a broker that answers")
    }

    /// zpub's marker subscription is 31 bytes: below that, max_subscription_length refuses it,
    /// and zpub says to raise the limit. It passed on the broker's advice to use a shorter
    /// token, which zpub offers no way to do (a walkthrough).
    func testReadyBelowTheMarkersLengthSaysToRaiseMaxSubscriptionLength() throws {
        let daemon = try Daemon(configuration: "[limits]\nmax_subscription_length = 16\n")
        let run = try zpub(["sub", "-e", daemon.xpub, "-c", daemon.control, "--ready", "x"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("raise max_subscription_length in [limits] to 31 or more"), run.stderr)
        XCTAssertFalse(run.stderr.contains("shorter token"), run.stderr)
    }

    /// `zpub sub --ready` says so once the broker forwards its subscription, so that a script
    /// can start its publisher then and lose nothing. Here the broker's forwarding loop is held
    /// for 3 s (a test hook) as the subscriber starts: "ready" comes only once the loop could
    /// have taken the subscription, and a message published then is printed.
    func testSubscribeSaysReadyOnceTheBrokerForwardsItsSubscription() throws {
        let stall = 3.0
        let daemon = try Daemon(environment: ["ZPUBD_TEST_HOOKS": "1", "ZPUBD_TEST_STALL_MS": "\(Int(stall * 1_000))"])
        let signalled = Date()
        daemon.signal(SIGUSR2)
        try Wait.until("the loop stalls") { daemon.log.contains("test hook: stalling the forwarding loop") }
        let subscriber = try RunningProgram(
            Binaries.zpub, ["sub", "--endpoint", daemon.xpub, "-c", daemon.control, "--ready", "--count", "1", "jobs."])
        try Wait.until("zpub sub says it is ready\n\(subscriber.stderrSoFar)", timeout: 20) {
            subscriber.stderrSoFar.contains("zpub: ready")
        }
        // The stall began after the signal: the loop cannot have answered before it ended.
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(signalled), stall, "ready before the loop took anything")
        XCTAssertEqual(try zpub(["pub", "--endpoint", daemon.pull, "jobs.1", "done"]).status, 0)
        let run = try subscriber.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "jobs.1\tdone\n")
        XCTAssertTrue(run.stderr.contains("zpub: ready\n"), run.stderr)
    }

    func testPublishThroughXSUB() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["x"])
        try daemon.waitForSubscriptions(1)
        // --settle is how long it may wait for the broker's subscription that covers the topic:
        // it sends once that has come, not after the whole wait.
        let started = Date()
        let sent = try zpub(
            ["pub", "--pub", "--endpoint", daemon.xsub, "--settle", "30000", "x.1", "payload"], timeout: 60)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 25, "sent when the subscription came")
        XCTAssertEqual(sent.stderr, "")
        XCTAssertEqual(try subscriber.receive(1), [frames("x.1", "payload")])
        // A topic no subscriber wants: sent after the wait, and said.
        let unwanted = try zpub(["pub", "--pub", "--endpoint", daemon.xsub, "--settle", "200", "y.1", "payload"])
        XCTAssertEqual(unwanted.status, 0, unwanted.stderr)
        XCTAssertTrue(unwanted.stderr.contains("no subscription covering 'y.1'"), unwanted.stderr)
    }

    /// `zpub pub` publishes what it reads byte for byte: lines of standard input (a 0xff byte
    /// and a NUL within one, "\r\n" ends one as "\n" does), and a whole file with --file (its
    /// newlines kept). Standard input went through `readLine`, which decoded it as UTF-8: 0xff
    /// arrived as EF BF BD, and zpub exited 0.
    func testPublishSendsBinaryLinesAndFilesByteForByte() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["bin."])
        try daemon.waitForSubscriptions(1)
        let shell = URL(fileURLWithPath: "/bin/sh")
        let piped = try Run.program(
            shell,
            [
                "-c", #"printf 'a\377\000b\nc\r\nlast' | "$0" pub --endpoint "$1" bin.lines"#, Binaries.zpub.path,
                daemon.pull,
            ])
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertEqual(
            try subscriber.receive(3),
            [
                [Array("bin.lines".utf8), [0x61, 0xff, 0x00, 0x62]], [Array("bin.lines".utf8), [0x63]],
                [Array("bin.lines".utf8), Array("last".utf8)],
            ])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("zpub-file-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        let content: [UInt8] = [0x00, 0x0a, 0xff, 0x0d, 0x0a] + Array(repeating: 0x41, count: 100_000)
        try Data(content).write(to: file)
        let whole = try zpub(["pub", "--endpoint", daemon.pull, "--file", file.path, "bin.file"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertEqual(try subscriber.receive(1), [[Array("bin.file".utf8), content]])
        // Larger than the broker takes (its max_message_size, which --max-size stands for):
        // refused by zpub, not sent to be dropped with the connection.
        let large = try zpub(["pub", "--endpoint", daemon.pull, "--max-size", "1000", "--file", file.path, "bin.file"])
        XCTAssertEqual(large.status, 1, large.stderr)
        XCTAssertTrue(large.stderr.contains("larger than --max-size (1000)"), large.stderr)
        // A file that cannot be read is a wrong command line (64, as --prefixes-from's), told
        // before any connection: with no broker there, it was told as the broker missing.
        let nowhere = "ipc://\(NSTemporaryDirectory())/zpub-nobody-\(getpid()).sock"
        for endpoint in [daemon.pull, nowhere] {
            let missing = try zpub(["pub", "--endpoint", endpoint, "--file", "/nonexistent/x", "bin.file"])
            XCTAssertEqual(missing.status, 64, missing.stderr)
            XCTAssertTrue(missing.stderr.contains("--file: cannot read /nonexistent/x"), missing.stderr)
            XCTAssertFalse(missing.stderr.contains("zpubd"), missing.stderr)
        }
        let directory = try zpub(["pub", "--endpoint", daemon.pull, "--file", NSTemporaryDirectory(), "bin.file"])
        XCTAssertEqual(directory.status, 64, directory.stderr)
        XCTAssertTrue(directory.stderr.contains("is a directory"), directory.stderr)
    }

    /// `zpub pub` does not exit 0 when the broker took none of its last messages before it
    /// left: they wait in its socket while it lingers (--timeout) and are dropped after. A
    /// walkthrough (2026-12-06) piped 14,500 lines to a paused broker: 267 lost, exit 0. What
    /// fits in the kernel's buffers towards a paused broker is not lost (it is read on RESUME),
    /// and not reported.
    func testPublishSaysWhenItsLastMessagesWereNotTaken() throws {
        let daemon = try Daemon(configuration: "[sockets]\nreceive_hwm = 10\n")
        XCTAssertEqual(try daemon.json("PAUSE")["forwarding"] as? String, "paused")
        // 200 lines of 16 KiB: 3.2 MB, where the unix socket's buffers (~200 KiB) and the
        // broker's queue of 10 hold a few dozen; zpub's own queue (1,000) takes the rest.
        let line = String(repeating: "z", count: 16_384) + "\n"
        let many = try zpub(
            ["pub", "--endpoint", daemon.pull, "--timeout", "500", "held.many"],
            stdin: String(repeating: line, count: 200))
        XCTAssertEqual(many.status, 1, many.stderr)
        XCTAssertTrue(
            many.stderr.contains("did not take all of the last messages within --timeout (500 ms)"), many.stderr)
        // A few lines fit in the buffers: exit 0, and they come on RESUME.
        let few = try zpub(
            ["pub", "--endpoint", daemon.pull, "--timeout", "500", "held.few"], stdin: "1\n2\n3\n")
        XCTAssertEqual(few.status, 0, few.stderr)
        XCTAssertEqual(try daemon.json("RESUME")["forwarding"] as? String, "running")
        // The error was true: some of the 200 never came; all of the 3 did.
        try Wait.until("the broker has taken what reached it") {
            guard let topics = try daemon.json("TOPICS")["topics"] as? [[String: Any]] else { return false }
            let counts = Dictionary(
                topics.map { ($0["topic"] as? String ?? "", $0["messages"] as? Int ?? 0) }, uniquingKeysWith: +)
            guard counts["held.few"] == 3, let many = counts["held.many"] else { return false }
            XCTAssertLessThan(many, 200)
            return true
        }
    }

    /// `zpub pub` does not exit 0 when its connection to the broker is lost while its last
    /// messages wait to go: libzmq drops what was queued for a lost connection, and the linger
    /// then ends at once, so the --timeout check above did not see it (exit 0 before). Here the
    /// broker is paused, so most of the 200 lines wait in zpub, and killed once zpub has read
    /// them all.
    func testPublishSaysWhenItsConnectionWasLostWithMessagesQueued() throws {
        let daemon = try Daemon(configuration: "[sockets]\nreceive_hwm = 10\n")
        XCTAssertEqual(try daemon.json("PAUSE")["forwarding"] as? String, "paused")
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("zpub-lines-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: input) }
        let line = String(repeating: "z", count: 16_384) + "\n"
        try String(repeating: line, count: 200).write(to: input, atomically: true, encoding: .utf8)
        let publisher = try RunningProgram(
            URL(fileURLWithPath: "/bin/sh"),
            [
                "-c",
                "exec '\(Binaries.zpub.path)' pub --endpoint '\(daemon.pull)' --timeout 30000 held < '\(input.path)'",
            ])
        // Its input read to the end, and its main thread waiting in a poll with a timeout:
        // every line is handed over, and it lingers (--timeout). (Killed while lines were still
        // to be sent, zpubd would leave them waiting for a connection, up to --timeout.)
        let process = "/proc/\(publisher.processIdentifier)"
        try Wait.until("zpub has read its input and lingers") {
            let info = try? String(contentsOfFile: "\(process)/fdinfo/0", encoding: .utf8)
            let call = (try? String(contentsOfFile: "\(process)/syscall", encoding: .utf8))?.split(separator: " ") ?? []
            let inPollWithTimeout = call.count > 3 && call[0] == Self.pollSyscall && call[3] != "0x0"
            return info?.contains("pos:\t\(200 * line.utf8.count)\n") == true && inPollWithTimeout
        }
        XCTAssertTrue(publisher.isRunning, "zpub left before the broker was gone: this shows nothing")
        daemon.signal(SIGKILL)
        let run = try publisher.finish(timeout: 20)
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(
            run.stderr.contains(
                "lost the connection to zpubd at \(daemon.pull) while the last messages waited to go out"),
            run.stderr)
        XCTAssertTrue(run.stderr.contains("Send the last ones again once zpubd is back"), run.stderr)
    }

    /// With --pub, a connection lost while sending is an error at the end: a publisher drops
    /// what it sends while no connection is up (a PUSH waits for one instead).
    func testPublishingThroughXSUBAcrossARestartExitsOne() throws {
        let first = try Daemon()
        // Someone who wants t: the broker subscribes its XSUB's publishers to it.
        let clients = try Clients()
        let subscriber = try clients.subscriber(first.xpub, prefixes: ["t"])
        try first.waitForSubscriptions(1)
        let go = first.directory.appendingPathComponent("go").path
        let publisher = try slowPipe(until: go, into: ["--pub", "--endpoint", first.xsub])
        try Wait.until("the first line is in") { try first.stats().messagesIn == 1 }
        first.signal(SIGTERM)
        XCTAssertEqual(first.waitForExit(), 0)
        let second = try Daemon(endpoints: [.xsub: first.xsub])
        FileManager.default.createFile(atPath: go, contents: nil)
        let run = try publisher.finish(timeout: 20)
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(
            run.stderr.contains("a publisher (--pub) drops what it sends while no connection is up"), run.stderr)
        _ = (second, subscriber)
    }

    /// `zpub pub ARGUMENTS t` fed the line "first", then "second" once the file `go` exists
    /// (removed first, if there).
    private func slowPipe(until go: String, into arguments: [String]) throws -> RunningProgram {
        try? FileManager.default.removeItem(atPath: go)
        let quoted = arguments.map { "'\($0)'" }.joined(separator: " ")
        return try RunningProgram(
            URL(fileURLWithPath: "/bin/sh"),
            [
                "-c",
                "(echo first; while [ ! -e '\(go)' ]; do sleep 0.02; done; echo second) | exec '\(Binaries.zpub.path)' pub \(quoted) t",
            ])
    }

    /// The system call `zmq_poll` waits in, as /proc/PID/syscall numbers it: poll on x86-64;
    /// aarch64 has only ppoll (whose timeout is a pointer, never 0x0 either).
    #if arch(x86_64)
        static let pollSyscall = "7"
    #else
        static let pollSyscall = "73"
    #endif

    /// A connection lost while `zpub pub` reads a slow pipe is told at once, and sending goes
    /// on when zpubd is back (exit 0: most often nothing was queued, and zpub cannot tell); one
    /// that does not come back ends it with that said. Before, the first was silent, and the
    /// second said "could not reach zpubd ... is it running? (start it with `zpubd` ...)" of
    /// a broker it had sent to.
    func testPublishTellsALostConnectionAndSendsOnWhenZpubdIsBack() throws {
        let first = try Daemon()
        let go = first.directory.appendingPathComponent("go").path
        let back = try slowPipe(until: go, into: ["--endpoint", first.pull, "--timeout", "10000"])
        try Wait.until("the first line is in") { try first.stats().messagesIn == 1 }
        first.signal(SIGTERM)
        XCTAssertEqual(first.waitForExit(), 0)
        let second = try Daemon(endpoints: [.pull: first.pull])
        FileManager.default.createFile(atPath: go, contents: nil)
        let sentOn = try back.finish(timeout: 20)
        XCTAssertEqual(sentOn.status, 0, sentOn.stderr)
        XCTAssertTrue(
            sentOn.stderr.contains("lost the connection to zpubd at \(first.pull) after 1 message (zpubd stopped"),
            sentOn.stderr)
        try Wait.until("the second line reached the new zpubd") { try second.stats().messagesIn == 1 }

        let gone = try slowPipe(until: go, into: ["--endpoint", first.pull, "--timeout", "1000"])
        try Wait.until("the first line is in") { try second.stats().messagesIn == 2 }
        second.signal(SIGKILL)
        _ = second.waitForExit()
        FileManager.default.createFile(atPath: go, contents: nil)
        let givenUp = try gone.finish(timeout: 20)
        XCTAssertEqual(givenUp.status, 1, givenUp.stderr)
        // Usually the send waits for a connection that does not come back; if zpub's I/O
        // thread had not yet seen the kill, the line went to the dead connection's queue, and
        // the loss shows at the end.
        XCTAssertTrue(
            givenUp.stderr.contains(
                "lost the connection to zpubd at \(first.pull) after 1 message, and it did not come back within --timeout (1000 ms)"
            )
                || givenUp.stderr.contains(
                    "lost the connection to zpubd at \(first.pull) while the last messages waited to go out"),
            givenUp.stderr)
    }

    /// One broker given twice is a wrong command line: `sub -c A -c A --since 0` followed "2
    /// brokers" and waited for ever for the active one among them (an audit); `-e` likewise,
    /// also when written two ways.
    func testOneBrokerGivenTwiceIsRefused() throws {
        let port = try FreePort.find()
        for arguments in [
            [
                "sub", "-e", "tcp://127.0.0.1:\(port)", "-c", "tcp://127.0.0.1:1", "-c", "tcp://127.0.0.1:1", "--since",
                "0",
            ],
            ["sub", "-e", "tcp://127.0.0.1:\(port)", "-e", "tcp://localhost:\(port)", "x."],
            ["pub", "-e", "ipc:///tmp/zpub-twice.sock", "-e", "ipc:///tmp/./zpub-twice.sock", "t", "x"],
        ] {
            let run = try zpub(arguments)
            XCTAssertEqual(run.status, 64, "\(arguments): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("is given twice"), run.stderr)
        }
    }

    /// An argument that is not UTF-8 is refused, not repaired: Swift turns its bytes into U+FFFD,
    /// and `zpub pub $'caf\\xe9' x` published "caf\u{FFFD}" and `zpub sub $'\\xff'` subscribed
    /// to EF BF BD, exit 0 (a walkthrough, 2026-12-06).
    func testArgumentsThatAreNotUTF8AreRefused() throws {
        let daemon = try Daemon()
        let shell = URL(fileURLWithPath: "/bin/sh")
        for command in [#""$0" pub -e "$1" "$(printf 'caf\351')" x"#, #""$0" sub -e "$1" -n 1 "$(printf '\377')""#] {
            let run = try Run.program(shell, ["-c", command, Binaries.zpub.path, daemon.xpub], timeout: 20)
            XCTAssertEqual(run.status, 64, run.stderr)
            XCTAssertTrue(run.stderr.contains("is not UTF-8 text"), run.stderr)
        }
        let run = try Run.program(
            shell, ["-c", #""$0" pub -e "$1" "$(printf 'caf\303\251')" x"#, Binaries.zpub.path, daemon.pull])
        XCTAssertEqual(run.status, 0, "UTF-8 is taken: \(run.stderr)")
        try Wait.until("the broker has taken it") { try daemon.stats().messagesIn == 1 }
        XCTAssertEqual(try daemon.subscriptions().total, 0, "the refused sub subscribed nothing")
    }

    /// `zpub sub` subscribes to every prefix it is given, however many: subscriptions are
    /// messages its SUB sends, and past libzmq's send queue (1,000, and as many on the broker's
    /// side) they were dropped in silence: 3,000 prefixes, 2,000 subscribed, nothing said (a
    /// walkthrough, 2026-12-06).
    func testSubscribeSendsEveryPrefixHoweverMany() throws {
        let daemon = try Daemon()
        let prefixes = (1...3_000).map { "many\($0)." }
        let subscriber = try RunningProgram(
            Binaries.zpub, ["sub", "--endpoint", daemon.xpub, "--count", "1"] + prefixes)
        try daemon.waitForSubscriptions(3_000, timeout: 30)
        XCTAssertEqual(try zpub(["pub", "--endpoint", daemon.pull, "many3000.x", "last"]).status, 0)
        let run = try subscriber.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "many3000.x\tlast\n")
    }

    /// Prefixes by the thousand come from a file: as arguments, ArgumentParser takes time
    /// quadratic in their number (8,000 took 2.9 s in a release build).
    func testSubscribeReadsPrefixesFromAFile() throws {
        let daemon = try Daemon()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("zpub-prefixes-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        // CRLF line ends too (a file from Windows).
        try ((1...10_000).map { "file\($0)." }.joined(separator: "\r\n") + "\n\n").write(
            to: file, atomically: true, encoding: .utf8)
        let subscriber = try RunningProgram(
            Binaries.zpub, ["sub", "--endpoint", daemon.xpub, "--count", "1", "--prefixes-from", file.path, "arg."])
        try daemon.waitForSubscriptions(10_001, timeout: 30)
        XCTAssertEqual(try zpub(["pub", "--endpoint", daemon.pull, "file10000.x", "last"]).status, 0)
        let run = try subscriber.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "file10000.x\tlast\n")

        let empty = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-no-prefixes-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: empty) }
        try "\n".write(to: empty, atomically: true, encoding: .utf8)
        let refused = try zpub(["sub", "--endpoint", daemon.xpub, "--prefixes-from", empty.path])
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("holds no prefix"), refused.stderr)
        let missing = try zpub(["sub", "--endpoint", daemon.xpub, "--prefixes-from", empty.path + ".missing"])
        XCTAssertTrue(missing.stderr.contains("cannot read"), missing.stderr)
        let directory = try zpub(["sub", "--endpoint", daemon.xpub, "--prefixes-from", NSTemporaryDirectory()])
        XCTAssertTrue(directory.stderr.contains("is a directory"), directory.stderr)
    }

    /// `zpub pub` asks the broker's control endpoint for its max_message_size and refuses a
    /// larger frame: a PUSH has no reply and libzmq says to neither side why it closed the
    /// connection, so a broker configured below zpub's 16 MiB took the frame's connection down
    /// and the message with it, and zpub exited 0 (zpubd logged nothing either).
    func testPublishRefusesAFrameLargerThanTheBrokerTakes() throws {
        let daemon = try Daemon(configuration: "[sockets]\nmax_message_size = 1024\n")
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["big."])
        try daemon.waitForSubscriptions(1)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zpub-big-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let largest = directory.appendingPathComponent("1024")
        let over = directory.appendingPathComponent("1025")
        try Data(repeating: 0x41, count: 1024).write(to: largest)
        try Data(repeating: 0x42, count: 1025).write(to: over)

        let refused = try zpub(["pub", "-e", daemon.pull, "-c", daemon.control, "--file", over.path, "big.over"])
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(
            refused.stderr.contains("larger than zpubd's max_message_size (1024, asked of \(daemon.control))"),
            refused.stderr)
        // The broker's own limit is inclusive: its largest frame goes through.
        let taken = try zpub(["pub", "-e", daemon.pull, "-c", daemon.control, "--file", largest.path, "big.largest"])
        XCTAssertEqual(taken.status, 0, taken.stderr)
        XCTAssertEqual(try subscriber.receive(1), [[Array("big.largest".utf8), Array(repeating: 0x41, count: 1024)]])
        // Found through the environment as the producers' endpoint is.
        let fromEnvironment = try Run.program(
            Binaries.zpub, ["pub", "--file", over.path, "big.over"],
            environment: ["ZPUB_PULL": daemon.pull, "ZPUB_CONTROL": daemon.control])
        XCTAssertEqual(fromEnvironment.status, 1, fromEnvironment.stderr)
        XCTAssertTrue(fromEnvironment.stderr.contains("zpubd's max_message_size (1024"), fromEnvironment.stderr)
        // With -e, $ZPUB_CONTROL is not asked: it is the environment's broker's, which need
        // not be the one -e names (as `zpub sub` does not take it for --snapshot).
        let elsewhere = try Run.program(
            Binaries.zpub, ["pub", "-e", daemon.pull, "big.elsewhere", "small"],
            environment: ["ZPUB_CONTROL": "ipc://\(directory.path)/another-broker.sock"])
        XCTAssertEqual(elsewhere.status, 0, elsewhere.stderr)
        XCTAssertEqual(elsewhere.stderr, "", "nothing asked of $ZPUB_CONTROL")
        XCTAssertEqual(try subscriber.receive(1), [frames("big.elsewhere", "small")])
        // A control endpoint named that does not answer: said, and the publish goes on.
        let nowhere = "ipc://\(directory.path)/no-control.sock"
        let unasked = try zpub(["pub", "-e", daemon.pull, "-c", nowhere, "big.unasked", "small"])
        XCTAssertEqual(unasked.status, 0, unasked.stderr)
        XCTAssertTrue(unasked.stderr.contains("could not ask zpubd for its max_message_size"), unasked.stderr)
        XCTAssertEqual(try subscriber.receive(1), [frames("big.unasked", "small")])
        // Neither a refused frame nor a dropped connection reached the broker.
        XCTAssertEqual(try daemon.stats().messagesIn, 3)
    }

    /// `zpub pub --pub` does not lose lines piped faster than the broker reads them: its PUB
    /// waits for room (XPUB_NODROP) instead of dropping, as it did (37,802 of 300,000 in one
    /// run, exit 0). Every line is counted in by the broker.
    func testPublishingThroughXSUBLosesNothingWhenPipedFast() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        // A subscriber of p., so that the broker subscribes upstream and zpub's PUB sends.
        _ = try clients.subscriber(daemon.xpub, prefixes: ["p."])
        try daemon.waitForSubscriptions(1)
        let count = 300_000
        let piped = try Run.program(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", #"seq 1 "$2" | "$0" pub --pub --endpoint "$1" p.seq"#, Binaries.zpub.path, daemon.xsub, "\(count)"],
            timeout: 120)
        XCTAssertEqual(piped.status, 0, piped.stderr)
        try Wait.until("the broker counts every line in", timeout: 30) {
            try daemon.stats().sockets[.xsub]?.messagesIn == UInt64(count)
        }
    }

    /// A broker that takes no more messages (paused, with every queue on the way full) is
    /// reported as such, with how many went before, not as "is it running?".
    func testABrokerThatTakesNoMoreIsNotReportedAsGone() throws {
        let daemon = try Daemon()
        XCTAssertEqual(try zpub(["pause", "--control", daemon.control]).status, 0)
        let piped = try Run.program(
            URL(fileURLWithPath: "/bin/sh"),
            [
                "-c",
                #"yes "$(head -c 1000 /dev/zero | tr '\0' x)" | head -n 100000 | "$0" pub --timeout 1000 --endpoint "$1" q.x"#,
                Binaries.zpub.path, daemon.pull,
            ], timeout: 120)
        XCTAssertEqual(piped.status, 1, piped.stderr)
        XCTAssertTrue(piped.stderr.contains("took no message for 1000 ms"), piped.stderr)
        XCTAssertTrue(piped.stderr.contains("paused"), piped.stderr)
        XCTAssertFalse(piped.stderr.contains("is it running"), piped.stderr)
    }

    /// While producers are held at start (`start_hold_ms`), STATS and `zpub stats` say so and
    /// for how much longer: before, both showed a zpubd forwarding, with nothing forwarded.
    func testStatsShowTheStartHold() throws {
        let daemon = try Daemon(configuration: "[daemon]\nstart_hold_ms = 60000\n")
        let left = try XCTUnwrap(try daemon.stats().startHoldLeftMilliseconds, "no start_hold_left_ms in the hold")
        XCTAssertTrue((1...60_000).contains(left), "\(left)")
        let stats = try zpub(["stats", "--control", daemon.control])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        XCTAssertNotNil(
            stats.stdout.range(
                of: #"starting +producers are read in \d+ ms \(start_hold_ms\)"#, options: .regularExpression),
            stats.stdout)
    }

    func testInspectionCommands() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        _ = try clients.subscriber(daemon.xpub, prefixes: ["prices."])
        try daemon.waitForSubscriptions(1)
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("prices.eur", "1.08"))
        // Held at start, it went out as a backlog does, which ends 100 ms later.
        try Wait.until("one message counted, the start's backlog out") {
            let stats = try daemon.stats()
            return stats.messagesIn == 1 && stats.catchUp == nil
        }
        let control = ["--control", daemon.control]

        let stats = try zpub(["stats"] + control)
        XCTAssertEqual(stats.status, 0, stats.stderr)
        XCTAssertTrue(stats.stdout.contains("forwarding running"), stats.stdout)
        XCTAssertNotNil(stats.stdout.range(of: #"pull\s+1\s+0"#, options: .regularExpression), stats.stdout)
        XCTAssertFalse(stats.stdout.contains("dropped"), "no log line without drops: \(stats.stdout)")
        XCTAssertFalse(
            stats.stdout.contains("taken as counts"), "no connections line unless it happened: \(stats.stdout)")
        // A message was forwarded: the start's hold is over.
        XCTAssertFalse(stats.stdout.contains("start_hold_ms"), stats.stdout)
        XCTAssertNil(try daemon.stats().startHoldLeftMilliseconds)

        let json = try zpub(["stats", "--json"] + control)
        let decoded = try JSONDecoder().decode(StatsSnapshot.self, from: Data(json.stdout.utf8))
        XCTAssertEqual(decoded.messagesIn, 1)

        let health = try zpub(["health"] + control)
        XCTAssertEqual(health.status, 0)
        XCTAssertTrue(health.stdout.hasPrefix("ok:"), health.stdout)

        let subscriptions = try zpub(["subscriptions"] + control)
        XCTAssertNotNil(
            subscriptions.stdout.range(of: #"prices\.\s+1"#, options: .regularExpression), subscriptions.stdout)

        let topics = try zpub(["topics", "prices"] + control)
        XCTAssertNotNil(topics.stdout.range(of: #"prices\.eur\s+1\s+"#, options: .regularExpression), topics.stdout)

        XCTAssertTrue(try zpub(["ping"] + control).stdout.hasPrefix("PONG"))
        let pingJSON = try zpub(["ping", "--json"] + control).stdout
        let ping = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(pingJSON.utf8)) as? [String: Any], pingJSON)
        XCTAssertEqual(ping["pong"] as? Bool, true)
        XCTAssertNotNil(ping["round_trip_ms"] as? Double, "the round trip, as the text says it: \(pingJSON)")
        // $ZPUB_CONTROL instead of --control (the packaged service's socket is not the default).
        let fromEnvironment = try Run.program(Binaries.zpub, ["ping"], environment: ["ZPUB_CONTROL": daemon.control])
        XCTAssertTrue(fromEnvironment.stdout.hasPrefix("PONG"), fromEnvironment.stderr)
        XCTAssertEqual(try zpub(["pause"] + control).stdout, "forwarding paused\n")
        let paused = try zpub(["health"] + control)
        XCTAssertEqual(paused.status, 1, "paused is not ok")
        XCTAssertTrue(paused.stdout.contains("zpub resume -c \(daemon.control) starts forwarding again"), paused.stdout)
        XCTAssertEqual(try zpub(["resume"] + control).stdout, "forwarding running\n")
        let config = try zpub(["config"] + control)
        XCTAssertTrue(config.stdout.contains(daemon.xpub), config.stdout)
    }

    func testNoBrokerIsReportedQuicklyNotWaitedFor() throws {
        let directory = NSTemporaryDirectory()
        let nowhere = "ipc://\(directory)/zpub-nobody-\(getpid()).sock"
        for arguments in [
            ["stats", "--control", nowhere, "--timeout", "300"], ["health", "--control", nowhere, "--timeout", "300"],
            ["pub", "--endpoint", nowhere, "--timeout", "300", "t", "m"],
            // PUB drops what it sends while unconnected: this exited 0, the message gone.
            ["pub", "--pub", "--endpoint", nowhere, "--timeout", "300", "t", "m"],
            ["sub", "--endpoint", nowhere, "--timeout", "300", "t"],
        ] {
            let run = try zpub(arguments, timeout: 10)
            XCTAssertEqual(run.status, 1, arguments.joined(separator: " "))
            XCTAssertTrue(run.stderr.hasPrefix("zpub: "), run.stderr)
            XCTAssertTrue(run.stderr.contains(nowhere), run.stderr)
        }
        // A monitor parsing `health --json` reads a status even when nothing answers: it read
        // an empty standard output.
        let json = try zpub(["health", "--json", "--control", nowhere, "--timeout", "300"], timeout: 10)
        XCTAssertEqual(json.status, 1, json.stderr)
        let health = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(health?["status"] as? String, "no_answer", json.stdout)
        XCTAssertTrue((health?["error"] as? String ?? "").contains(nowhere), json.stdout)
        XCTAssertTrue(json.stderr.contains(nowhere), json.stderr)
        // An ipc control socket that is not there is said to be missing (libzmq retries it in
        // silence), at once: not after the timeout (20 s here, of which the test allows half).
        let started = Date()
        let stats = try zpub(["stats", "--control", nowhere, "--timeout", "20000"], timeout: 30)
        XCTAssertEqual(stats.status, 1)
        XCTAssertTrue(stats.stderr.contains("no socket file at"), stats.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "the timeout was waited")
        // Nor a tcp port nobody listens on (the connection refused): the timeout is not waited,
        // as redis-cli does not wait. 20 s of which the test allows half, again.
        let closed = "tcp://127.0.0.1:\(try FreePort.find())"
        for command in ["stats", "health", "ping"] {
            let refusedStart = Date()
            let refused = try zpub([command, "--control", closed, "--timeout", "20000"], timeout: 30)
            XCTAssertEqual(refused.status, 1, refused.stderr)
            XCTAssertTrue(refused.stderr.contains("\(closed): the connection failed"), refused.stderr)
            XCTAssertLessThan(Date().timeIntervalSince(refusedStart), 10, "\(command): the timeout was waited")
        }
    }

    /// `zpub reload` waits up to 65 s for a reload, but not for a broker it cannot reach: with
    /// no --timeout, a TCP endpoint nobody listens on is told as soon as by every other command
    /// (at once, the connection refused; it was after their 3 s before).
    func testReloadTellsAnUnreachableBrokerAsSoonAsTheOtherCommands() throws {
        let port = try FreePort.find()
        let started = Date()
        let run = try zpub(["reload", "--control", "tcp://127.0.0.1:\(port)"], timeout: 90)
        XCTAssertEqual(run.status, 1, run.stdout + run.stderr)
        XCTAssertTrue(
            run.stderr.contains("no reply from zpubd at tcp://127.0.0.1:\(port): the connection failed"),
            run.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 30, "not the reload's 65 s")
    }

    /// ZeroMQ retries an absent broker in silence; `zpub sub` says that it has no connection yet
    /// (so a wrong endpoint does not look like a quiet topic), keeps trying, and says when it
    /// has one.
    func testASubscriberSaysWhileItHasNoConnectionAndWhenItHasOne() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-late-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let xpub = "ipc://\(directory.path)/xpub.sock"
        let subscriber = try RunningProgram(Binaries.zpub, ["sub", "-e", xpub, "--count", "1", "late."])
        try Wait.until("zpub sub says it has no connection", timeout: 20) {
            subscriber.stderrSoFar.contains("no connection to \(xpub) for 3 s; still trying. Is zpubd running there?")
        }
        XCTAssertTrue(subscriber.isRunning, "it keeps trying")

        let daemon = try Daemon(endpoints: [.xpub: xpub])
        try daemon.waitForSubscriptions(1)
        let clients = try Clients()
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("late.news", "here"))
        let run = try subscriber.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "late.news\there\n")
        XCTAssertTrue(run.stderr.hasSuffix("zpub: connected to \(xpub)\n"), run.stderr)
    }

    /// A mistyped endpoint is named with the option it came from and a hint, as zpubd names one
    /// in its configuration, rather than libzmq's bare "Invalid argument".
    /// A mistyped command gets the command meant, as a mistyped option does (ArgumentParser
    /// said only "Unexpected argument 'stat'").
    func testAMistypedCommandGetsTheCommandMeant() throws {
        for (word, meant) in [
            ("stat", "stats"), ("subscribe", "sub"), ("publish", "pub"), ("histroy", "history"),
            ("subs", "subscriptions"), ("subscription", "subscriptions"),
        ] {
            let run = try zpub([word, "x"], timeout: 10)
            XCTAssertEqual(run.status, 64, word)
            XCTAssertTrue(run.stderr.contains("unknown command '\(word)'; did you mean '\(meant)'?"), run.stderr)
        }
        let unknown = try zpub(["frobnicate"], timeout: 10)
        XCTAssertEqual(unknown.status, 64)
        XCTAssertTrue(unknown.stderr.contains("unknown command 'frobnicate' (zpub --help lists them)"), unknown.stderr)
        XCTAssertEqual(try zpub(["help", "stats"], timeout: 10).status, 0)
        // Help for a command zpub does not have printed the general help and exited 0.
        let helpUnknown = try zpub(["help", "stat"], timeout: 10)
        XCTAssertEqual(helpUnknown.status, 64)
        XCTAssertTrue(helpUnknown.stderr.contains("did you mean 'stats'?"), helpUnknown.stderr)
        XCTAssertEqual(try zpub(["help"], timeout: 10).status, 0)
    }

    func testAMistypedEndpointGetsAHint() throws {
        for (arguments, option, hint) in [
            (["pub", "--endpoint", "tcp//127.0.0.1:5557", "t", "m"], "--endpoint", "write transport://address"),
            (["sub", "--endpoint", "tcp://127.0.0.1", "t"], "--endpoint", "needs a port"),
            (["stats", "--control", "udp://127.0.0.1:5555"], "--control", "unknown transport"),
            // host:port alone: the fix, with the port given.
            (
                ["pub", "--endpoint", "127.0.0.1:5557", "t", "m"], "--endpoint",
                "write transport://address: tcp://127.0.0.1:5557"
            ),
            (["ping", "-c", "tcp://127.0.0.1:99999"], "--control", "not a number from 0 to 65535"),
            (["sub", "-c", "foo", "--since", "0", "t"], "--control", "not an endpoint"),
            // It waited for a broker that cannot be there.
            (
                ["sub", "--endpoint", "inproc://xpub", "t"], "--endpoint",
                "inproc reaches only sockets inside one process"
            ),
            (["stats", "--control", "inproc://control"], "--control", "use its tcp or ipc endpoint"),
        ] {
            let run = try zpub(arguments, timeout: 10)
            // A wrong command line, as zpub(1) says (it was 1: a broker that did not answer).
            XCTAssertEqual(run.status, 64, arguments.joined(separator: " "))
            XCTAssertTrue(run.stderr.contains("\(option) \"\(arguments[2])\""), run.stderr)
            XCTAssertTrue(run.stderr.contains(hint), run.stderr)
        }
    }

    /// Out-of-range milliseconds are refused up front (status 64, the option named), not
    /// trapped on in the arithmetic into libzmq's 32-bit options, nor taken as "wait for ever".
    func testMillisecondOptionsOutOfRangeAreRefusedWithTheirName() throws {
        for (arguments, option) in [
            (["stats", "--timeout=-1"], "--timeout"), (["stats", "--timeout", "99999999999999"], "--timeout"),
            (["pub", "--timeout", "3000000000", "t", "m"], "--timeout"),
            (["pub", "--pub", "--settle", "5000000", "t", "m"], "--settle"),
            (["sub", "--timeout=-1", "t"], "--timeout"),
            // A negative value as its own argument is the option's value, not another option
            // ("Missing value" before).
            (["sub", "--timeout", "-5", "t"], "--timeout"), (["pub", "--timeout", "-5", "t", "m"], "--timeout"),
        ] {
            let run = try zpub(arguments, timeout: 10)
            XCTAssertEqual(run.status, 64, "\(arguments): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("\(option) is "), run.stderr)
        }
    }

    /// A subscription to everything receives zpubd's own topics too (here sequence markers,
    /// which a history follower turns on): `zpub sub` does not print them unless asked.
    func testSubscribingToEverythingDoesNotPrintTheBrokersOwnTopics() throws {
        let daemon = try Daemon(configuration: "[history]\nprefixes = [\"n.\"]\n")
        let clients = try Clients()
        _ = try clients.subscriber(daemon.xpub, prefixes: ["$zpub/seq/"])
        let everything = try RunningProgram(Binaries.zpub, ["sub", "--endpoint", daemon.xpub, "--count", "2"])
        let markers = try RunningProgram(
            Binaries.zpub, ["sub", "--endpoint", daemon.xpub, "--count", "2", "$zpub/seq/"])
        try daemon.waitForSubscriptions(3)
        XCTAssertEqual(try zpub(["pub", "--endpoint", daemon.pull, "n.1", "one"]).status, 0)
        XCTAssertEqual(try zpub(["pub", "--endpoint", daemon.pull, "n.2", "two"]).status, 0)
        XCTAssertEqual(try everything.finish(timeout: 20).stdout, "n.1\tone\nn.2\ttwo\n")
        XCTAssertEqual(try markers.finish(timeout: 20).stdout, "$zpub/seq/n.1\t1\n$zpub/seq/n.2\t2\n", "asked for")
    }

    /// A catch-up that can bring nothing says why, instead of an empty answer read as "nothing
    /// was published": a prefix history does not keep (`zpub history`, `sub --since`), a broker
    /// that caches no last values (`sub --snapshot`), a --since beyond the broker's numbers.
    func testACatchUpThatCanBringNothingSaysWhy() throws {
        let daemon = try Daemon(arguments: ["--history", "orders."])
        XCTAssertEqual(try zpub(["pub", "--endpoint", daemon.pull, "orders.1", "kept"]).status, 0)
        try Wait.until("history holds it") { try daemon.stats().history?.written == 1 }
        let history = try zpub(["history", "--control", daemon.control, "weather."])
        XCTAssertEqual(history.status, 0, history.stderr)
        XCTAssertEqual(history.stdout, "")
        XCTAssertTrue(
            history.stderr.contains("history keeps nothing under weather. (it keeps orders.)"), history.stderr)
        let kept = try zpub(["history", "--control", daemon.control, "orders."])
        XCTAssertEqual(kept.stdout, "1\torders.1\tkept\n")
        XCTAssertEqual(kept.stderr, "", "nothing to say when something is kept")
        // A prefix that starts with a space is that prefix: its leading spaces were dropped,
        // and orders.1, which " orders." never matches, was printed (an audit).
        let spaced = try zpub(["history", "--control", daemon.control, " orders."])
        XCTAssertEqual(spaced.status, 0, spaced.stderr)
        XCTAssertEqual(spaced.stdout, "", spaced.stderr)
        let past = try zpub(["history", "--control", daemon.control, "--since", "999", "orders."])
        XCTAssertEqual(past.status, 0, past.stderr)
        XCTAssertEqual(past.stderr, "zpub: nothing after 999: the newest message history keeps is 1\n")
        // Evicted numbers are not told for a prefix history does not keep: they were other
        // topics' (a walkthrough).
        let bounded = try Daemon(configuration: "[history]\nprefixes = [\"orders.\"]\nmax_messages = 1\n")
        for i in 1...3 { XCTAssertEqual(try zpub(["pub", "--endpoint", bounded.pull, "orders.\(i)", "x"]).status, 0) }
        try Wait.until("two are evicted") { try bounded.stats().history?.evictions ?? 0 >= 2 }
        let other = try zpub(["history", "--control", bounded.control, "weather."])
        XCTAssertEqual(
            other.stderr,
            "zpub: history keeps nothing under weather. (it keeps orders.): add it to [history] prefixes to keep it from now on\n"
        )

        let since = try zpub([
            "sub", "--endpoint", daemon.xpub, "-c", daemon.control, "--since", "0", "--timeout", "500", "weather.",
        ])
        XCTAssertTrue(since.stderr.contains("history keeps nothing under weather."), since.stderr)
        let beyond = try zpub([
            "sub", "--endpoint", daemon.xpub, "-c", daemon.control, "--since", "999", "--timeout", "500", "orders.",
        ])
        XCTAssertTrue(
            beyond.stderr.contains("--since 999 is beyond the newest number"), beyond.stderr)
        XCTAssertFalse(beyond.stderr.contains("started again"), beyond.stderr)

        let snapshot = try zpub([
            "sub", "--endpoint", daemon.xpub, "-c", daemon.control, "--snapshot", "--timeout", "500", "state.",
        ])
        XCTAssertTrue(snapshot.stderr.contains("caches no last values"), snapshot.stderr)
    }

    /// `--since` (or `--snapshot`) with one broker's XPUB and another's control socket (the
    /// default one, say): the broker asked never sees the marker subscription. Said as such,
    /// rather than as zpubd's own advice to subscribe first, which the CLI did.
    func testACatchUpAskedOfAnotherBrokerSaysSo() throws {
        let asked = try Daemon(arguments: ["--history", "orders."])
        let other = try Daemon(arguments: ["--history", "orders."])
        let run = try zpub([
            "sub", "--endpoint", other.xpub, "-c", asked.control, "--since", "0", "--count", "1", "orders.",
        ])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(
            run.stderr.contains(
                "--since: the subscription did not reach the zpubd at \(asked.control) within 5 s (or that broker's history writer did not answer in time): is --endpoint (\(other.xpub)) that broker's XPUB?"
            ), run.stderr)
    }

    func testErrorRepliesAreShownToThePerson() throws {
        let daemon = try Daemon(configuration: "[limits]\nmax_control_request = 64\n")
        let run = try zpub(["topics", String(repeating: "x", count: 100), "--control", daemon.control])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("request_too_large"), run.stderr)
    }

    /// Something that is not zpubd answering on the control endpoint (another REP socket): the
    /// CLI answers `reply` to the one request of `arguments` and returns how the command ended.
    private func zpub(_ arguments: [String], answeredWith reply: [UInt8]) throws -> Run {
        let clients = try Clients()
        let endpoint = "ipc://\(NSTemporaryDirectory())zpub-fake-\(UUID().uuidString.prefix(8)).sock"
        let server = try Socket(clients.context, type: .rep)
        defer { server.close() }
        try server.setOption(.linger, 0)
        try server.bind(endpoint)
        let program = try RunningProgram(Binaries.zpub, arguments + ["--control", endpoint, "--timeout", "10000"])
        XCTAssertNotNil(try server.receiveFrames(timeoutMilliseconds: 10_000), "\(arguments) sent its request")
        _ = try server.send(frames: [reply])
        return try program.finish(timeout: 20)
    }

    /// A reply that is not zpubd's (garbage, empty, another shape) is refused with status 1 and
    /// says so, and an error reply's message is shown whatever its code: `zpub ping` printed
    /// PONG for any reply, `zpub config` printed any, `zpub pause` printed "forwarding ?", and
    /// an error with a code the CLI did not know became "Key 'status' not found".
    func testRepliesThatAreNotZpubdsAreRefusedAndErrorsShown() throws {
        for reply in ["hello, not json", "", #"{"pong":"yes"}"#, "[1,2,3]"] {
            for command in ["ping", "config", "pause", "health"] {
                let run = try zpub([command], answeredWith: Array(reply.utf8))
                XCTAssertEqual(run.status, 1, "\(command) <- \(reply): \(run.stdout)")
                XCTAssertTrue(run.stderr.contains("is not what zpubd sends"), "\(command) <- \(reply): \(run.stderr)")
                XCTAssertTrue(run.stderr.contains("control endpoint"), run.stderr)
            }
        }
        // What answers may be anything: its bytes are shown escaped, not sent to the terminal.
        let hostile = try zpub(["ping"], answeredWith: Array("\u{1B}[31mHELLO\u{1B}]0;pwned\u{7}".utf8))
        XCTAssertEqual(hostile.status, 1, hostile.stdout)
        XCTAssertFalse(hostile.stderr.contains("\u{1B}") || hostile.stderr.contains("\u{7}"), hostile.stderr)
        XCTAssertTrue(hostile.stderr.contains(#"\x1b[31mHELLO\x1b]0;pwned\x07"#), hostile.stderr)
        let pong = try zpub(["ping"], answeredWith: Array(#"{"pong":false}"#.utf8))
        XCTAssertEqual(pong.status, 1, pong.stdout)
        for (reply, shown) in [
            (#"{"error":{"code":"weird_code","message":"boom"}}"#, "zpubd answered with an error (weird_code): boom"),
            (#"{"error":"boom"}"#, "zpubd answered with an error: boom"),
        ] {
            for command in ["ping", "config", "pause", "resume", "health", "stats"] {
                let run = try zpub([command], answeredWith: Array(reply.utf8))
                XCTAssertEqual(run.status, 1, "\(command) <- \(reply): \(run.stdout)")
                XCTAssertEqual(run.stderr, "zpub: \(shown)\n", "\(command) <- \(reply)")
            }
        }
    }

    /// Connected but not answered in time: zpubd is there but busy (a long request ahead), and
    /// what was asked may still be done, so "is zpubd running there?" would mislead (a PAUSE
    /// reported failed took effect later). Not connected, a name that does not resolve and an
    /// ipc path that is a directory are named as such.
    func testNoReplyOnAConnectionIsToldApartFromNoConnection() throws {
        let clients = try Clients()
        let endpoint = "ipc://\(NSTemporaryDirectory())zpub-busy-\(UUID().uuidString.prefix(8)).sock"
        let server = try Socket(clients.context, type: .rep)
        defer { server.close() }
        try server.setOption(.linger, 0)
        try server.bind(endpoint)
        let program = try RunningProgram(Binaries.zpub, ["pause", "--control", endpoint, "--timeout", "300"])
        XCTAssertNotNil(try server.receiveFrames(timeoutMilliseconds: 10_000), "the request arrived; no reply is sent")
        let busy = try program.finish(timeout: 20)
        XCTAssertEqual(busy.status, 1)
        XCTAssertTrue(
            busy.stderr.contains("zpubd at \(endpoint) accepted the connection but did not answer within 300 ms"),
            busy.stderr)
        XCTAssertTrue(busy.stderr.contains("the request may still take effect"), busy.stderr)
        XCTAssertFalse(busy.stderr.contains("is zpubd running there"), busy.stderr)

        let unresolved = try zpub(["ping", "--control", "tcp://nosuchhost.invalid:47502", "--timeout", "300"])
        XCTAssertEqual(unresolved.status, 1)
        XCTAssertTrue(
            unresolved.stderr.contains("the host name nosuchhost.invalid does not resolve"), unresolved.stderr)
        let directory = NSTemporaryDirectory() + "zpub-dir-\(UUID().uuidString.prefix(8))"
        XCTAssertEqual(mkdir(directory, 0o700), 0)
        defer { rmdir(directory) }
        let notASocket = try zpub(["ping", "--control", "ipc://\(directory)", "--timeout", "300"])
        XCTAssertEqual(notASocket.status, 1)
        XCTAssertTrue(
            notASocket.stderr.contains("\(directory) is a directory, not zpubd's control socket"), notASocket.stderr)
    }

    /// `zpub pub` given the port of a service that speaks first (an SSH server here) says that
    /// no ZeroMQ handshake came, and sends it nothing. libzmq takes such a peer for a ZMTP 1.0
    /// one, and a PUSH with ZMQ_IMMEDIATE sent it the message: exit 0 (a probe: 15 runs of 15,
    /// SSH-, SMTP- and HTTP-like servers alike).
    func testPublishingToAServiceThatIsNotZeroMQFails() throws {
        let server = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                "-c",
                """
                import socket, sys, threading
                listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(8)
                print(listener.getsockname()[1], flush=True)
                def serve(connection):
                    connection.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n")
                    while True:
                        data = connection.recv(65536)
                        if not data: return
                        print("received", data.hex(), flush=True)
                while True:
                    threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
                """,
            ])
        defer { kill(server.processIdentifier, SIGKILL) }
        var port = ""
        try Wait.until("the server listens") {
            port = server.stdoutSoFar.split(separator: "\n").first.map(String.init) ?? ""
            return Int(port) != nil
        }
        let endpoint = "tcp://127.0.0.1:\(port)"
        let run = try zpub(["pub", "-e", endpoint, "--timeout", "1000", "t", "not-for-ssh"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(
            run.stderr.contains("\(endpoint) took the connection but completed no ZeroMQ handshake"), run.stderr)
        XCTAssertFalse(
            server.stdoutSoFar.contains(Hex.encode(Array("not-for-ssh".utf8))),
            "the message went out\n\(server.stdoutSoFar)")
    }

    /// pub and sub given the wrong one of zpubd's endpoints are told which one they need (ZeroMQ
    /// refuses the handshake of a socket type it does not pair with, in silence: "is that
    /// zpubd's endpoint?" was asked of zpubd's own PULL port), and a host name that does not
    /// resolve is said to, not "is it running?" (a walkthrough, 2026-12-06).
    func testPublishersAndSubscribersGivenAnotherEndpointAreToldWhichOneTheyNeed() throws {
        let daemon = try Daemon()
        let push = try zpub(["pub", "-e", daemon.xpub, "--timeout", "1000", "t", "x"])
        XCTAssertEqual(push.status, 1, push.stderr)
        XCTAssertTrue(
            push.stderr.contains("zpubd's PULL endpoint (a PUSH completes the handshake with a PULL only"), push.stderr)
        let publisher = try zpub(["pub", "--pub", "-e", daemon.pull, "--timeout", "1000", "t", "x"])
        XCTAssertEqual(publisher.status, 1, publisher.stderr)
        XCTAssertTrue(publisher.stderr.contains("zpubd's XSUB endpoint"), publisher.stderr)
        // zpub sub says it after 3 s without a connection, and tries on until --timeout.
        let subscriber = try zpub(["sub", "-e", daemon.pull, "--timeout", "4000", "t"])
        XCTAssertTrue(
            subscriber.stderr.contains("zpubd's XPUB endpoint (a SUB completes the handshake with an XPUB only"),
            subscriber.stderr)
        let unresolved = try zpub(["pub", "-e", "tcp://nosuchhost.invalid:47503", "--timeout", "500", "t", "x"])
        XCTAssertEqual(unresolved.status, 1, unresolved.stderr)
        XCTAssertTrue(
            unresolved.stderr.contains("the host name nosuchhost.invalid does not resolve"), unresolved.stderr)
    }

    /// A control command given another of zpubd's endpoints (its XPUB, which refuses a REQ in
    /// silence) says that no ZeroMQ handshake came there, not "is zpubd running there?".
    /// Topics and prefixes that are not UTF-8 are printed by their bytes, as `zpub sub` prints
    /// them (`\\xfe`): they were printed with U+FFFD in place of each, two of them alike.
    func testTopicsAndPrefixesThatAreNotUTF8ArePrintedByTheirBytes() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let subscriber = try clients.socket(.sub, connect: daemon.xpub) {
            try $0.setOption(.subscribe, bytes: [0x70, 0xFE])
        }
        try daemon.waitForSubscriptions(1)
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: [[0x71, 0xFE], Array("1".utf8)])
        try push.send(frames: [[0x71, 0xFF], Array("2".utf8)])
        try Wait.until("both topics are counted") { try daemon.stats().topics.tracked == 2 }
        let topics = try Run.program(Binaries.zpub, ["topics", "-c", daemon.control])
        XCTAssertEqual(topics.status, 0, topics.stderr)
        XCTAssertTrue(topics.stdout.contains("q\\xfe ") && topics.stdout.contains("q\\xff "), topics.stdout)
        let subscriptions = try Run.program(Binaries.zpub, ["subscriptions", "-c", daemon.control])
        XCTAssertTrue(subscriptions.stdout.contains("p\\xfe "), subscriptions.stdout)
        withExtendedLifetime(subscriber) {}
    }

    /// Output that cannot be written ends zpub with 74 and says so: `zpub stats > /dev/full`
    /// exited 0, and `zpub sub > /dev/full` ran on, losing every message (a probe).
    func testOutputThatCannotBeWrittenEndsZpubWithAnError() throws {
        let daemon = try Daemon()
        let stats = try Run.program(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", "exec \"$0\" stats -c \"$1\" > /dev/full", Binaries.zpub.path, daemon.control])
        XCTAssertEqual(stats.status, 74, stats.stderr)
        XCTAssertTrue(stats.stderr.contains("cannot write to standard output (No space left on device)"), stats.stderr)
        let subscriber = try RunningProgram(
            URL(fileURLWithPath: "/bin/sh"),
            [
                "-c", "exec \"$0\" sub -e \"$1\" full. > /dev/full", Binaries.zpub.path, daemon.xpub,
            ])
        try daemon.waitForSubscriptions(1)
        let clients = try Clients()
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("full.x", "1"))
        let run = try subscriber.finish(timeout: 30)
        XCTAssertEqual(run.status, 74, run.stderr)
        XCTAssertTrue(run.stderr.contains("what was not written is lost"), run.stderr)
    }

    func testAControlCommandGivenADataEndpointSaysSo() throws {
        let daemon = try Daemon(endpoints: [.xpub: "tcp://127.0.0.1:\(try FreePort.find())"])
        let run = try zpub(["stats", "-c", daemon.xpub, "--timeout", "500"])
        XCTAssertEqual(run.status, 1, run.stderr)
        // Or, as libzmq's timing has it, the handshake is told as failed.
        XCTAssertTrue(
            run.stderr.contains(
                "\(daemon.xpub) took the connection but completed no ZeroMQ handshake in 500 ms. Is that zpubd's control endpoint"
            ) || run.stderr.contains("the handshake with \(daemon.xpub) failed"), run.stderr)
        XCTAssertFalse(run.stderr.contains("is zpubd running there"), run.stderr)
    }

    /// The prefix argument is kept byte for byte: `zpub subscriptions " lead"` answered for
    /// "lead" (the control protocol dropped the argument's leading spaces).
    func testAPrefixArgumentKeepsItsLeadingSpaces() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        _ = try clients.subscriber(daemon.xpub, prefixes: [" lead", "lead"])
        try daemon.waitForSubscriptions(2)
        let run = try zpub(["subscriptions", "--json", "--control", daemon.control, " lead"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let list = try JSONDecoder().decode(SubscriptionList.self, from: Data(run.stdout.utf8))
        XCTAssertEqual(list.subscriptions.map(\.prefix), [" lead"], run.stdout)
    }
}
