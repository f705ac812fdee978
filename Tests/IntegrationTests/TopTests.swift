import Foundation
import XCTest
import ZeroMQ

/// `zpub top` against a real zpubd with traffic: the live view in a real terminal (a detached
/// tmux session, read with capture-pane and driven with send-keys), and the plain lines it
/// prints when its output is not a terminal.
final class TopTests: XCTestCase {
    /// A tmux server of the test's own (its own socket name), killed at the end of the test.
    private final class Tmux {
        let socket = "zpub-test-\(UUID().uuidString.prefix(8))"
        static let path = URL(fileURLWithPath: "/usr/bin/tmux")

        @discardableResult
        func run(_ arguments: [String]) throws -> Run {
            try Run.program(Self.path, ["-L", socket, "-f", "/dev/null"] + arguments, timeout: 10)
        }

        /// Starts `command` (passed to sh -c) in a 120x30 window that stays after it exits.
        func start(_ command: String) throws {
            // Through Python's subprocess, which closes inherited descriptors: the tmux server
            // outlives its client, and Foundation's Process waits for every holder of a
            // descriptor it gave the client, so started directly it would never seem to exit.
            // The signal mask is cleared too: Foundation starts children with every signal
            // blocked, and the programs in the window would inherit that.
            let run = try Run.program(
                URL(fileURLWithPath: "/usr/bin/python3"),
                [
                    "-c",
                    "import signal, subprocess, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []);"
                        + " sys.exit(subprocess.call(sys.argv[1:]))",
                    Self.path.path,
                ]
                    + [
                        "-L", socket, "-f", "/dev/null", "start-server", ";", "set-option", "-g", "remain-on-exit",
                        "on",
                    ]
                    + [";", "new-session", "-d", "-s", "top", "-x", "120", "-y", "30", command],
                timeout: 10)
            XCTAssertEqual(run.status, 0, run.stderr)
        }

        func screen() throws -> String { try run(["capture-pane", "-p", "-t", "top"]).stdout }

        func send(_ keys: String...) throws { try run(["send-keys", "-t", "top"] + keys) }

        deinit { _ = try? run(["kill-server"]) }
    }

    override func setUpWithError() throws {
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: Tmux.path.path), "tmux is not installed (make test installs it)")
    }

    /// Messages on two topics, of which one is subscribed ("weather.") and one is not.
    private final class Traffic {
        let clients: Clients
        let push: Socket

        init(_ daemon: Daemon) throws {
            clients = try Clients()
            _ = try clients.subscriber(daemon.xpub, prefixes: ["weather."])
            try daemon.waitForSubscriptions(1)
            push = try clients.socket(.push, connect: daemon.pull)
            // zpubd reads producers only once `start_hold_ms` has passed: a view started before
            // would show a first interval without traffic.
            try Wait.until("zpubd forwards") {
                try send()
                return try daemon.stats().messagesOut > 0
            }
        }

        /// Pushes five messages on each topic.
        func send() throws {
            for index in 0..<5 {
                try push.send(frames: frames("weather.paris", "\(index)C"))
                try push.send(frames: frames("news.today", "headline \(index)"))
            }
        }
    }

    private func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// More topics than the window has rows for: the live view says how many it does not show.
    /// The rows were cut to the window, and the "... and N more topics" line with them (an
    /// audit).
    func testTheLiveViewSaysWhenTopicsDoNotFit() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for index in 0..<40 { XCTAssertTrue(try push.send(frames: frames("t.\(index)", "x"))) }
        try Wait.until("the broker has taken the 40") { try daemon.stats().messagesIn == 40 }
        let tmux = Tmux()
        try tmux.start(
            "\(shellQuoted(Binaries.zpub.path)) top --interval 300 -c \(shellQuoted(daemon.control)); sleep 30")
        var screen = ""
        try Wait.until("the view says what it leaves out; the screen:\n\(screen)", timeout: 20) {
            screen = try tmux.screen()
            return screen.range(of: #"\.\.\. and [0-9]+ more topics"#, options: .regularExpression) != nil
        }
        XCTAssertTrue(screen.contains("sorted by rate"), "the footer is still there:\n\(screen)")
        try tmux.send("q")
    }

    func testLiveViewShowsRatesAndTopicsSortsOnAKeyAndQuitsOnQ() throws {
        let daemon = try Daemon()
        let traffic = try Traffic(daemon)
        let tmux = Tmux()
        // The shell reports the exit status on the screen once zpub top has left it.
        try tmux.start(
            "\(shellQuoted(Binaries.zpub.path)) top --interval 300 -c \(shellQuoted(daemon.control)); echo \"status $?\"; sleep 30"
        )

        // Rates need two readings with traffic between them: keep pushing until they show.
        var screen = ""
        try Wait.until("zpub top shows non-zero rates and both topics; the screen:\n\(screen)", timeout: 20) {
            try traffic.send()
            screen = try tmux.screen()
            return screen.contains("weather.paris") && screen.contains("news.today")
                && screen.range(of: #"in\s+[0-9]*[1-9][0-9]*\.[0-9] msg/s"#, options: .regularExpression) != nil
        }
        XCTAssertTrue(screen.contains("zpub top - \(daemon.control)"), screen)
        XCTAssertTrue(screen.contains("subscriptions 1 on 1 prefixes"), screen)
        XCTAssertTrue(screen.contains("peers: pull 1"), screen)
        XCTAssertTrue(screen.contains("not forwarded: unwanted"), screen)
        XCTAssertTrue(screen.contains("refused: subscriptions 0, handshakes 0"), screen)
        XCTAssertTrue(screen.contains("sorted by rate"), screen)
        XCTAssertFalse(screen.contains("\u{1B}"), "capture-pane gives the text, not the escapes")
        // news.today is unwanted (nobody subscribes to news.): its unwanted count grows.
        XCTAssertNotNil(
            screen.range(of: #"news\.today\s+[0-9.]+\s+.+\s+[1-9][0-9]*\s+[1-9][0-9]*"#, options: .regularExpression),
            screen)

        // t sorts by topic name: news.today comes before weather.paris.
        try tmux.send("t")
        try Wait.until("the view is sorted by topic; the screen:\n\(screen)") {
            screen = try tmux.screen()
            guard screen.contains("sorted by topic"), let news = screen.range(of: "news.today"),
                let weather = screen.range(of: "weather.paris")
            else { return false }
            return news.lowerBound < weather.lowerBound
        }
        XCTAssertTrue(screen.contains("TOPIC*"), screen)

        try tmux.send("q")
        try Wait.until("zpub top exits on q; the screen:\n\(screen)") {
            screen = try tmux.screen()
            return screen.contains("status ")
        }
        XCTAssertTrue(screen.contains("status 0"), screen)
        XCTAssertFalse(screen.contains("MSG/S"), "the alternate screen is left on exit:\n\(screen)")
    }

    func testCtrlCQuitsAndRestoresTheTerminal() throws {
        let daemon = try Daemon()
        let traffic = try Traffic(daemon)
        try traffic.send()
        let tmux = Tmux()
        // After zpub top, the same shell prints its status and the terminal's settings.
        try tmux.start(
            "trap : INT; \(shellQuoted(Binaries.zpub.path)) top -c \(shellQuoted(daemon.control)); echo \"status $?\"; stty -a; sleep 30"
        )
        try Wait.until("zpub top draws its screen") { try tmux.screen().contains("weather.paris") }
        try tmux.send("C-c")
        var screen = ""
        // Wait for stty's output too (it follows the status line): both flags appear in it,
        // with or without a leading minus.
        try Wait.until("the shell reports zpub top's status and the terminal's settings; the screen:\n\(screen)") {
            screen = try tmux.screen()
            return screen.contains("status ") && screen.contains("icanon") && screen.contains("echo")
        }
        XCTAssertTrue(screen.contains("status 130"), "128 + SIGINT\n\(screen)")
        // Canonical mode and echo are back on (stty prints -icanon / -echo when they are off).
        XCTAssertNotNil(screen.range(of: #"(^|\s)icanon(\s|$)"#, options: .regularExpression), screen)
        XCTAssertNotNil(screen.range(of: #"(^|\s)echo(\s|$)"#, options: .regularExpression), screen)
    }

    func testPlainLinesWhenOutputIsNotATerminal() throws {
        let daemon = try Daemon()
        let traffic = try Traffic(daemon)
        let top = try RunningProgram(
            Binaries.zpub, ["top", "-c", daemon.control, "--interval", "300", "--iterations", "3"])
        // Traffic for as long as top runs, however late it starts on a busy machine.
        try Wait.until("zpub top exits", timeout: 20) {
            try traffic.send()
            return !top.isRunning
        }
        let run = try top.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertFalse(run.stdout.contains("\u{1B}"), "no escape sequences in plain output:\n\(run.stdout)")
        let blocks = run.stdout.components(separatedBy: "\n\n")
        XCTAssertEqual(blocks.count, 3, run.stdout)
        for block in blocks {
            XCTAssertTrue(block.hasPrefix("zpub top - \(daemon.control)"), block)
            XCTAssertNotNil(block.range(of: #"in\s+[0-9]+\.[0-9] msg/s"#, options: .regularExpression), block)
            XCTAssertNotNil(block.range(of: #"\nTOPIC\s+MSG/S\*\s+BYTES/S"#, options: .regularExpression), block)
            XCTAssertTrue(block.contains("weather.paris"), block)
        }
        XCTAssertNotNil(
            run.stdout.range(of: #"in\s+[0-9]*[1-9][0-9]*\.[0-9] msg/s"#, options: .regularExpression),
            "some interval had traffic:\n\(run.stdout)")
    }

    /// A producer's topic reaches the operator's terminal through `zpub top`: shown escaped, as
    /// `zpub topics` shows it. Printed raw, an escape sequence in a topic recoloured the screen
    /// and a newline broke its rows (found by a walkthrough, 2026-12-06).
    func testTopicsAreShownEscaped() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        // C1 controls (U+009B is a CSI to a terminal that decodes UTF-8 first, U+0085 a newline)
        // and a bidi override went out raw (an audit); the rest of such a topic stays text.
        let topics = ["esc\u{1B}[31mred", "nl\nhere", "bin\u{7F}", "c1\u{9B}31m", "nel\u{85}x", "rtl\u{202E}é"]
        for topic in topics {
            XCTAssertTrue(try push.send(frames: [Array(topic.utf8), Array("x".utf8)]))
        }
        try Wait.until("the broker has taken the messages") { try daemon.stats().messagesIn == UInt64(topics.count) }
        let run = try Run.program(Binaries.zpub, ["top", "-c", daemon.control, "-n", "1"], timeout: 20)
        let listed = try Run.program(Binaries.zpub, ["topics", "-c", daemon.control], timeout: 20)
        for output in [run, listed] {
            XCTAssertEqual(output.status, 0, output.stderr)
            for raw in ["\u{1B}", "\u{7F}", "\u{9B}", "\u{85}", "\u{202E}"] {
                XCTAssertFalse(output.stdout.contains(raw), output.stdout)
            }
            for shown in [
                #"esc\x1b[31mred"#, #"nl\nhere"#, #"bin\x7f"#, #"c1\xc2\x9b31m"#, #"nel\xc2\x85x"#,
                #"rtl\xe2\x80\xaeé"#,
            ] {
                XCTAssertTrue(output.stdout.contains(shown), "\(shown) in\n\(output.stdout)")
            }
            XCTAssertFalse(output.stdout.contains("\nhere"), "a topic's newline starts no line:\n\(output.stdout)")
        }
    }

    /// Rates are matched to the previous reading by the topic's bytes: a text topic "61ff"
    /// and the binary topic "a\xff" (hex 61ff) shared a key, and one showed the other's rate
    /// while nothing was published. `--json` gives a binary topic's bytes (`topic_hex`), as
    /// TOPICS does: two such topics printed alike (an audit).
    func testTopicsThatLookAlikeKeepTheirOwnRatesAndBytes() throws {
        let daemon = try Daemon()
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        for _ in 0..<100 { XCTAssertTrue(try push.send(frames: [Array("61ff".utf8), [0x31]])) }
        XCTAssertTrue(try push.send(frames: [[0x61, 0xFF], [0x31]]))
        XCTAssertTrue(try push.send(frames: [[0x61, 0xFE], [0x31]]))
        try Wait.until("the broker has taken them") { try daemon.stats().messagesIn == 102 }
        let run = try Run.program(
            Binaries.zpub, ["top", "-c", daemon.control, "-n", "2", "--interval", "300", "--json", "--sort", "topic"],
            timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        let last = try XCTUnwrap(run.stdout.split(separator: "\n").last)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        let rows = try XCTUnwrap(object["topics"] as? [[String: Any]])
        XCTAssertEqual(rows.compactMap { $0["topic_hex"] as? String }, ["61fe", "61ff"], "\(rows)")
        for row in rows {
            XCTAssertEqual(row["messages_per_s"] as? Double, 0, "nothing was published: \(row)")
        }
    }

    func testJSONLinesCarryTheRates() throws {
        let daemon = try Daemon()
        let traffic = try Traffic(daemon)
        let top = try RunningProgram(
            Binaries.zpub, ["top", "-c", daemon.control, "--interval", "300", "-n", "2", "--json", "--sort", "topic"])
        try Wait.until("zpub top exits", timeout: 20) {
            try traffic.send()
            return !top.isRunning
        }
        let run = try top.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, run.stdout)
        let objects = try lines.map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertTrue(objects.contains { ($0["messages_in_per_s"] as? Double ?? 0) > 0 }, run.stdout)
        let topics = try XCTUnwrap(objects.last?["topics"] as? [[String: Any]])
        XCTAssertEqual(topics.compactMap { $0["topic"] as? String }, ["news.today", "weather.paris"])
    }

    /// With history prefixes, a history line (plain) and a history object with the writer's rate
    /// (JSON); without them, neither.
    func testHistoryIsShownWhenKept() throws {
        let daemon = try Daemon(arguments: ["--history", "weather."])
        let traffic = try Traffic(daemon)
        for json in [false, true] {
            let top = try RunningProgram(
                Binaries.zpub,
                ["top", "-c", daemon.control, "--interval", "300", "-n", "3"] + (json ? ["--json"] : []))
            try Wait.until("zpub top exits", timeout: 20) {
                try traffic.send()
                return !top.isRunning
            }
            let run = try top.finish(timeout: 20)
            XCTAssertEqual(run.status, 0, run.stderr)
            if json {
                let objects = try run.stdout.split(separator: "\n").map {
                    try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
                }
                let history = try XCTUnwrap(objects.last?["history"] as? [String: Any], run.stdout)
                XCTAssertEqual(history["prefixes"] as? [String], ["weather."])
                XCTAssertGreaterThan(history["messages"] as? Int ?? 0, 0, run.stdout)
                XCTAssertTrue(
                    objects.contains { ($0["history_written_per_s"] as? Double ?? 0) > 0 },
                    "a write rate: \(run.stdout)")
            } else {
                XCTAssertNotNil(
                    run.stdout.range(
                        of:
                            #"\nhistory +[0-9.]+[kM]? msg/s written +kept [1-9][0-9]* msgs .*, seq 1-[1-9][0-9]*, .*in memory"#,
                        options: .regularExpression), run.stdout)
            }
        }
        let plain = try Daemon()
        let run = try Run.program(Binaries.zpub, ["top", "-c", plain.control, "-n", "1", "--json"], timeout: 20)
        XCTAssertFalse(run.stdout.contains("\"history\""), run.stdout)
    }

    /// -n bounds the run when the broker goes away too: a failed reading counts, and the run
    /// ends with status 1 (a monitor's `zpub top -n N --json` ran for ever).
    func testIterationsEndTheRunWhenTheBrokerIsGone() throws {
        let daemon = try Daemon()
        let top = try RunningProgram(
            Binaries.zpub,
            ["top", "-c", daemon.control, "--interval", "1000", "--timeout", "300", "-n", "4", "--json"])
        try Wait.until("the first reading is printed", timeout: 20) { top.stdoutSoFar.contains("\n") }
        daemon.signal(SIGKILL)
        _ = daemon.waitForExit()
        let run = try top.finish(timeout: 20)
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("no reply"), run.stderr)
    }

    /// Ctrl-C ends `zpub top` at once while it waits for a broker that does not answer (here
    /// stopped with SIGSTOP) instead of after --timeout (10 s here; each refresh asks twice).
    func testCtrlCEndsTheWaitForASilentBroker() throws {
        let daemon = try Daemon()
        let top = try RunningProgram(
            Binaries.zpub, ["top", "-c", daemon.control, "--interval", "200", "--timeout", "10000", "--plain"])
        try Wait.until("the first reading is printed", timeout: 20) { top.stdoutSoFar.contains("zpub top") }
        daemon.signal(SIGSTOP)
        defer { daemon.signal(SIGCONT) }
        // Until top is in its wait for the broker: in poll (its wait between refreshes sleeps
        // in nanosleep). A fixed 600 ms let a loaded machine's Ctrl-C land between refreshes,
        // where it ends top at once anyway, and the test pass without the wait (a review).
        let wchan = "/proc/\(top.processIdentifier)/wchan"
        if let first = try? String(contentsOfFile: wchan, encoding: .utf8), first != "0" {
            try Wait.until("top waits for the stopped broker", timeout: 30) {
                (try? String(contentsOfFile: wchan, encoding: .utf8))?.contains("poll") == true
            }
        } else {
            usleep(600_000)  // a kernel that does not show where a process waits
        }
        let interrupted = Date()
        top.signal(SIGINT)
        let run = try top.finish(timeout: 20)
        XCTAssertEqual(run.status, 130, run.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(interrupted), 3, "not after the 10-s timeout")
        XCTAssertFalse(run.stderr.contains("no reply"), run.stderr)
    }

    /// `zpubd & zpub top` (zpubd's manual): top may ask before the broker listens, and waits
    /// for it within --timeout, where the one-shot commands say at once that nothing listens.
    func testTopStartedBeforeItsBrokerWaitsForIt() throws {
        let control = "tcp://127.0.0.1:\(try FreePort.find())"
        let top = try RunningProgram(
            Binaries.zpub, ["top", "-c", control, "--interval", "300", "--iterations", "1", "--timeout", "60000"])
        // Refused at least once first: the port has been tried while nothing listened.
        let refused = try Run.program(Binaries.zpub, ["ping", "-c", control, "--timeout", "60000"], timeout: 30)
        XCTAssertTrue(refused.stderr.contains("the connection failed"), refused.stderr)
        XCTAssertTrue(top.isRunning, "top gave up on a broker not started yet")
        let daemon = try Daemon(endpoints: [.control: control])
        let run = try top.finish(timeout: 60)
        XCTAssertEqual(run.status, 0, run.stderr + daemon.log)
        XCTAssertTrue(run.stdout.hasPrefix("zpub top - \(control)"), run.stdout)
    }

    func testNoBrokerIsReportedNotWaitedFor() throws {
        let nowhere = "ipc://\(NSTemporaryDirectory())/zpub-top-nobody-\(getpid()).sock"
        let run = try Run.program(Binaries.zpub, ["top", "-c", nowhere, "--timeout", "300"], timeout: 10)
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.hasPrefix("zpub: no reply"), run.stderr)
    }
}
