import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// zpubd under systemd's protocols, spoken by the real libsystemd: sd_notify to a socket the
/// test listens on, socket activation through systemd-socket-activate, the journal's native
/// protocol, and the unit files checked by systemd-analyze. systemd is not PID 1 here.
final class SystemdServiceTests: XCTestCase {
    private func notifyListener() throws -> DatagramListener {
        try DatagramListener(path: NSTemporaryDirectory() + "zpubd-notify-\(UUID().uuidString.prefix(8)).sock")
    }

    func testReadyComesOnceTheSocketsAcceptConnections() throws {
        let notify = try notifyListener()
        let daemon = try Daemon(environment: ["NOTIFY_SOCKET": notify.path], waitUntilReady: false)
        let ready = try notify.waitFor("READY=1") { $0.contains("READY=1") }
        // At that instant every socket must accept: a plain unix-socket connect to each ipc
        // endpoint succeeds without any retry.
        for role in BrokerSocketRole.allCases {
            let path = String(daemon.endpoints[role]!.dropFirst("ipc://".count))
            XCTAssertTrue(UnixSocket.canConnect(path), "\(role.rawValue) did not accept right after READY=1")
        }
        XCTAssertTrue(ready.text.contains("STATUS="), ready.text)
        XCTAssertEqual(try daemon.json("PING")["pong"] as? Bool, true)
        XCTAssertEqual(notify.received.filter { $0.text.contains("READY=1") }.count, 1)
    }

    func testStatusIsKeptCurrent() throws {
        let notify = try notifyListener()
        let daemon = try Daemon(environment: ["NOTIFY_SOCKET": notify.path])
        let clients = try Clients()
        _ = try clients.subscriber(daemon.xpub, prefixes: ["a", "b"])
        try daemon.waitForSubscriptions(2)
        let push = try clients.socket(.push, connect: daemon.pull)
        for i in 0..<100 { try push.send(frames: frames("a", "\(i)")) }
        let status = try notify.waitFor("a STATUS with 2 subscriptions and 2 peers") {
            $0.hasPrefix("STATUS=running:") && $0.contains("2 subscriptions") && $0.contains("2 peers")
        }
        XCTAssertTrue(status.text.contains("msg/s in"), status.text)
    }

    func testWatchdogIsPingedByTheLoopAndStopsWhenTheLoopHangs() throws {
        // Every bound below comes from these two: the interval systemd asks for and how long the
        // test hook blocks the forwarding loop. An interval of 0.3 s left 150 ms for a ping's
        // lateness and the test thread's own (a review, 2026-12-07: a loaded machine).
        let interval = 1.0
        let stall = 4.0
        let notify = try notifyListener()
        let daemon = try Daemon(
            environment: [
                "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "\(Int(interval * 1e6))", "ZPUBD_TEST_HOOKS": "1",
                "ZPUBD_TEST_STALL_MS": "\(Int(stall * 1e3))",
            ])
        func pings() -> [Date] { notify.received.filter { $0.text == "WATCHDOG=1" }.map(\.time) }
        func gaps(_ times: [Date]) -> [Double] { zip(times.dropFirst(), times).map { $0.timeIntervalSince($1) } }

        // Gaps all shorter than the interval mean at least floor(window / interval) pings in a window.
        notify.collect(for: Int(3 * interval * 1_000))
        let before = pings()
        XCTAssertGreaterThanOrEqual(before.count, 3, "WATCHDOG_USEC asks for a ping at least every \(interval) s")
        XCTAssertLessThan(
            gaps(before).max() ?? 1, interval, "pings at half the interval, never later than the interval")

        let stalledAt = Date()
        daemon.signal(SIGUSR2)  // the test hook: the forwarding loop blocks for `stall`
        // Until two pings have come after a silence longer than the interval, however late the
        // loop starts or ends its stall on a busy machine.
        var silence = 0.0
        var resumed: [Date] = []
        let deadline = stalledAt.addingTimeInterval(stall + 10)
        while Date() < deadline {
            notify.collect(for: 50)
            let times = pings().filter { $0 >= (before.last ?? stalledAt) }
            let gapList = gaps(times)
            guard let index = gapList.indices.max(by: { gapList[$0] < gapList[$1] }), gapList[index] > interval
            else { continue }
            silence = gapList[index]
            resumed = Array(times[(index + 1)...])
            if resumed.count >= 2 { break }
        }
        XCTAssertGreaterThan(
            silence, stall - interval,
            "no ping while the loop hangs: \(pings().map { $0.timeIntervalSince(stalledAt) })")
        XCTAssertGreaterThanOrEqual(resumed.count, 2, "pings resume")
        XCTAssertLessThan(gaps(resumed).max() ?? 0, interval, "at the usual pace again")
        XCTAssertTrue(daemon.log.contains("stalling the forwarding loop"), daemon.log)
    }

    /// While systemd reads nothing (PID 1 busy), its notify socket fills at
    /// `net.unix.max_dgram_qlen` datagrams and sd_notify waits for room: forwarding must not
    /// wait with it. Before `NotifyRelay`, the loop sent its pings itself and stopped forwarding
    /// at the queue's eleventh datagram.
    func testForwardingGoesOnWhileSystemdReadsNothing() throws {
        let interval = 0.04  // WATCHDOG_USEC: the loop asks for a ping every 20 ms
        let queueLength =
            (try? String(contentsOfFile: "/proc/sys/net/unix/max_dgram_qlen", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 512
        var notify: DatagramListener? = try notifyListener()  // never read: a PID 1 that is busy
        let daemon = try Daemon(
            configuration: "", environment: ["NOTIFY_SOCKET": notify!.path, "WATCHDOG_USEC": "\(Int(interval * 1e6))"])
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["t."])
        try daemon.waitForSubscriptions(1)
        let push = try clients.socket(.push, connect: daemon.pull)
        // The queue is full once that many pings have been sent; four times that, and at least
        // 3 s, leaves no doubt on a slow machine (the loop pings at least every 20 ms while
        // it runs). What is sent in the window's last second must still arrive.
        let window = max(3.0, 4 * Double(queueLength + 1) * interval / 2)
        let start = Date()
        var sent = 0
        while Date().timeIntervalSince(start) < window {
            try push.send(frames: frames("t.\(sent)", "x"))
            sent += 1
            usleep(20_000)
        }
        let late = "t.\(sent - 1)"
        try Wait.until("the last message, sent \(window) s after the first, arrives", timeout: 10) {
            while let message = try subscriber.receiveFrames(timeoutMilliseconds: 100) {
                if String(decoding: message[0], as: UTF8.self) == late { return true }
            }
            return false
        }
        XCTAssertEqual(try daemon.json("PING")["pong"] as? Bool, true, "the control socket answers too")
        // A reload and the stop announce themselves (RELOADING=1, READY=1, STOPPING=1) from
        // zpubd's main thread: they must not wait for systemd either. The stop's bound: the
        // drain (no producer sending: 100 ms of quiet), the linger, and the relay's 1 s.
        XCTAssertEqual(try daemon.json("RELOAD")["reloaded"] as? Bool, true, daemon.log)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 15), 0, "the stop waited for systemd: \(daemon.log)")
        notify = nil
    }

    /// Reload and stop are announced; the stop asks systemd for the time it may take (the
    /// drain, the linger and 10 s) with the settings in force, here those of the reload.
    func testReloadAndStopAreAnnounced() throws {
        let notify = try notifyListener()
        let daemon = try Daemon(configuration: "", environment: ["NOTIFY_SOCKET": notify.path])
        _ = try notify.waitFor("READY=1") { $0.contains("READY=1") }
        try "[daemon]\nshutdown_drain_ms = 4500\n[sockets]\nlinger_ms = 700\n".write(
            to: daemon.configURL, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        let reloading = try notify.waitFor("RELOADING=1") { $0.contains("RELOADING=1") }
        XCTAssertNotNil(reloading.text.range(of: #"MONOTONIC_USEC=\d+"#, options: .regularExpression), reloading.text)
        let readyAgain = try notify.waitFor("READY=1 after the reload", after: reloading.time) {
            $0.contains("READY=1") && !$0.contains("RELOADING")
        }
        XCTAssertGreaterThanOrEqual(readyAgain.time, reloading.time)
        XCTAssertEqual(notify.received.filter { $0.text.contains("READY=1") }.count, 2)
        daemon.signal(SIGTERM)
        let stopping = try notify.waitFor("STOPPING=1") { $0.contains("STOPPING=1") }
        XCTAssertTrue(
            stopping.text.split(separator: "\n").contains("EXTEND_TIMEOUT_USEC=\((4_500 + 700 + 15_000) * 1_000)"),
            stopping.text)
        XCTAssertEqual(daemon.waitForExit(), 0)
    }

    func testSocketActivationHandsRealListeningSocketsToZpubd() throws {
        let activate = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: activate.path), "systemd-socket-activate is missing")
        let ports = try (0..<3).map { _ in try FreePort.find() }
        let control = NSTemporaryDirectory() + "zpubd-activated-\(UUID().uuidString.prefix(8)).sock"
        defer { unlink(control) }
        let program = try RunningProgram(
            activate,
            [
                "-l", "127.0.0.1:\(ports[0])", "-l", "127.0.0.1:\(ports[1])", "-l", "127.0.0.1:\(ports[2])", "-l",
                control,
                "--fdname=pull:xsub:xpub:control", Binaries.zpubd.path,
                // Endpoints that must not be used: the passed sockets replace them.
                "--pull", "tcp://127.0.0.1:1", "--xpub", "tcp://127.0.0.1:2", "--xsub", "tcp://127.0.0.1:3",
                "--control", "tcp://127.0.0.1:4",
            ])
        // The control socket's file is systemd's, with the socket unit's SocketMode=: zpubd
        // leaves its mode alone (it set control_ipc_mode, 0660, and under the unit's
        // DynamicUser= warned at every start that it could not).
        try Wait.until("systemd-socket-activate listens") { FileManager.default.fileExists(atPath: control) }
        let modeBefore = try XCTUnwrap(
            try FileManager.default.attributesOfItem(atPath: control)[.posixPermissions] as? Int)
        let clients = try Clients()
        // The first connection makes systemd-socket-activate start zpubd.
        let request = try clients.socket(.req, connect: "ipc://\(control)")
        try request.send(text: "CONFIG")
        let reply = try XCTUnwrap(
            try request.receiveFrames(timeoutMilliseconds: 15_000), "no reply through the passed socket")
        let bound = try XCTUnwrap(
            (try JSONSerialization.jsonObject(with: Data(reply[0])) as? [String: Any])?["bound"] as? [String: [String]])
        XCTAssertEqual(bound["pull"], ["tcp://127.0.0.1:\(ports[0])"])
        XCTAssertEqual(bound["xsub"], ["tcp://127.0.0.1:\(ports[1])"])
        XCTAssertEqual(bound["xpub"], ["tcp://127.0.0.1:\(ports[2])"])
        XCTAssertEqual(bound["control"], ["ipc://\(control)"])
        XCTAssertNotEqual(modeBefore, 0o660, "the test needs a mode zpubd would change")
        XCTAssertEqual(
            try FileManager.default.attributesOfItem(atPath: control)[.posixPermissions] as? Int, modeBefore)

        let subscriber = try clients.subscriber("tcp://127.0.0.1:\(ports[2])", prefixes: ["act"])
        let statsRequest = try clients.socket(.req, connect: "ipc://\(control)")
        try Wait.until("the subscription reaches zpubd") {
            try statsRequest.send(text: "SUBSCRIPTIONS")
            let reply = try XCTUnwrap(try statsRequest.receiveFrames(timeoutMilliseconds: 2_000))
            return try JSONDecoder().decode(SubscriptionList.self, from: Data(reply[0])).total == 1
        }
        let push = try clients.socket(.push, connect: "tcp://127.0.0.1:\(ports[0])")
        try push.send(frames: frames("activated", "through systemd's sockets"))
        XCTAssertEqual(try subscriber.receive(1), [frames("activated", "through systemd's sockets")])
        program.signal(SIGTERM)
        let run = try program.finish(timeout: 15)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("adopting a listening socket passed by systemd"), run.stderr)
        XCTAssertFalse(run.stderr.contains("systemd passed no socket named"), "every role passed: \(run.stderr)")
    }

    /// Socket-activated, a gateway that cannot listen (zpubd-activated.service has no network;
    /// here its port is taken) stops zpubd with status 78, which the unit does not restart,
    /// and says why and what to run instead. It exited 1, and systemd restarted it every second
    /// until its start limit.
    func testASocketActivatedGatewayThatCannotListenIsAConfigurationError() throws {
        let activate = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: activate.path), "systemd-socket-activate is missing")
        let context = try Context()
        defer { context.terminate() }
        let squatter = try Socket(context, type: .pull)
        defer { squatter.close() }
        try squatter.setOption(.linger, 0)
        try squatter.bind("tcp://127.0.0.1:*")
        let taken = squatter.lastEndpoint.replacingOccurrences(of: "tcp://", with: "")
        let control = NSTemporaryDirectory() + "zpubd-activated-\(UUID().uuidString.prefix(8)).sock"
        defer { unlink(control) }
        let ports = try (0..<3).map { _ in try FreePort.find() }
        let program = try RunningProgram(
            activate,
            [
                "-l", control, "--fdname=control", Binaries.zpubd.path, "--http", taken,
                "--pull", "tcp://127.0.0.1:\(ports[0])", "--xsub", "tcp://127.0.0.1:\(ports[1])",
                "--xpub", "tcp://127.0.0.1:\(ports[2])",
            ])
        let clients = try Clients()
        // The first connection makes systemd-socket-activate start zpubd.
        let request = try clients.socket(.req, connect: "ipc://\(control)")
        try request.send(text: "PING")
        let run = try program.finish(timeout: 20)
        XCTAssertEqual(run.status, 78, run.stderr)
        XCTAssertTrue(run.stderr.contains("socket activation"), run.stderr + run.stdout)
        XCTAssertTrue(run.stderr.contains("zpubd.service"), run.stderr)
        // Only the control socket passed: the roles bound from the configuration are said,
        // since under the unit no client would reach them.
        for role in ["pull", "xsub", "xpub"] {
            XCTAssertTrue(
                run.stderr.contains("systemd passed no socket named \(role) (it passed control)"), run.stderr)
        }
    }

    /// Socket-activated, a reload that turns the gateway on is refused (the configuration in
    /// force stays): accepted, it said the gateway would start at the next restart, where it
    /// could never listen, and that start exited 78.
    func testASocketActivatedReloadThatTurnsTheGatewayOnIsRefused() throws {
        let activate = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: activate.path), "systemd-socket-activate is missing")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zpubd-act-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("zpubd.conf")
        let ports = try (0..<4).map { _ in try FreePort.find() }
        try """
        [endpoints]
        pull = ["tcp://127.0.0.1:\(ports[0])"]
        xsub = ["tcp://127.0.0.1:\(ports[1])"]
        xpub = ["tcp://127.0.0.1:\(ports[2])"]
        """.write(to: config, atomically: true, encoding: .utf8)
        let control = directory.appendingPathComponent("control.sock").path
        let program = try RunningProgram(
            activate, ["-l", control, "--fdname=control", Binaries.zpubd.path, "--config", config.path])
        let clients = try Clients()
        let request = try clients.socket(.req, connect: "ipc://\(control)")
        try request.send(text: "PING")
        XCTAssertNotNil(try request.receiveFrames(timeoutMilliseconds: 15_000), program.stderrSoFar)
        try
            (String(contentsOf: config, encoding: .utf8)
            + "\n[http]\nenabled = true\nlisten = \"127.0.0.1:\(ports[3])\"\n")
            .write(to: config, atomically: true, encoding: .utf8)
        program.signal(SIGHUP)
        try Wait.until("the reload is refused\n\(program.stderrSoFar)") {
            program.stderrSoFar.contains("reload refused")
        }
        XCTAssertTrue(program.stderrSoFar.contains("socket-activated"), program.stderrSoFar)
        XCTAssertFalse(program.stderrSoFar.contains("the gateway starts at the next restart"), program.stderrSoFar)
        program.signal(SIGTERM)
        XCTAssertEqual(try program.finish(timeout: 15).status, 0)
    }

    /// zpubd logs through sd_journal_sendv when its stderr is the journal; the test plays
    /// journald on the native socket and reads the fields, as `journalctl -p` and field
    /// matches would.
    func testLogsGoToTheJournalWithPriorityAndFields() throws {
        let socketPath = "/run/systemd/journal/socket"
        try XCTSkipIf(FileManager.default.fileExists(atPath: socketPath), "a real journald is running here")
        try XCTSkipUnless(getuid() == 0, "playing journald needs root (/run/systemd/journal)")
        try FileManager.default.createDirectory(atPath: "/run/systemd/journal", withIntermediateDirectories: true)
        let journal = try DatagramListener(path: socketPath)

        let context = try Context()
        defer { context.terminate() }
        let squatter = try Socket(context, type: .pull)
        defer { squatter.close() }
        try squatter.setOption(.linger, 0)
        try squatter.bind("tcp://127.0.0.1:*")
        let taken = squatter.lastEndpoint

        // stderr is a file; JOURNAL_STREAM names its device and inode, as systemd would.
        let stderrPath = NSTemporaryDirectory() + "zpubd-journal-\(UUID().uuidString.prefix(8)).log"
        try createEmptyFile(stderrPath)
        defer { unlink(stderrPath) }
        var status = stat()
        XCTAssertEqual(stat(stderrPath, &status), 0)
        let process = Process()
        process.executableURL = Binaries.zpubd
        process.arguments = [
            "--pull", taken, "--xpub", "inproc://x", "--xsub", "inproc://s", "--control", "inproc://c",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["JOURNAL_STREAM"] = "\(status.st_dev):\(status.st_ino)"
        process.environment = environment
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 1)

        let record = try journal.waitFor("the bind failure record") { $0.contains("cannot bind the pull socket") }
        let fields = Dictionary(
            record.text.split(separator: "\n").compactMap { line -> (String, String)? in
                guard let equals = line.firstIndex(of: "=") else { return nil }
                return (String(line[..<equals]), String(line[line.index(after: equals)...]))
            }, uniquingKeysWith: { first, _ in first })
        XCTAssertEqual(fields["PRIORITY"], "2", "critical")
        XCTAssertEqual(fields["SYSLOG_IDENTIFIER"], "zpubd")
        XCTAssertEqual(fields["ENDPOINT"], taken)
        let stderrText = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        XCTAssertFalse(stderrText.contains("cannot bind"), "journal records are not duplicated on stderr")
    }

    // MARK: Unit files

    private var unitDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("systemd")
    }

    /// The units with ExecStart and ExecReload pointing at the binaries under test (verify
    /// checks they exist).
    private func installedUnits() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpubd-units-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        for unit in Self.units {
            let text = try String(contentsOf: unitDirectory.appendingPathComponent(unit), encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/zpubd", with: Binaries.zpubd.path)
                .replacingOccurrences(of: "/usr/local/bin/zpub ", with: Binaries.zpub.path + " ")
            try text.write(to: directory.appendingPathComponent(unit), atomically: true, encoding: .utf8)
        }
        return directory
    }

    private static let units = [
        "zpubd.service", "zpubd-activated.service", "zpubd.socket", "zpubd-pull.socket", "zpubd-xsub.socket",
        "zpubd-xpub.socket",
    ]

    /// What systemd passes zpubd-activated.service: every descriptor of the socket units in
    /// its Sockets=, each named by its unit's FileDescriptorName=, which names all of one
    /// unit's descriptors alike (systemd.socket(5)). One unit with four Listen lines and four
    /// names passed "control" four times, and zpubd took all four for its control socket (an
    /// audit): each socket unit has one Listen line and its own name, and the four names are
    /// zpubd's four roles.
    func testTheSocketUnitsPassEachOfTheFourSocketsUnderItsOwnName() throws {
        func lines(_ unit: String, _ key: String) throws -> [String] {
            try String(contentsOf: unitDirectory.appendingPathComponent(unit), encoding: .utf8)
                .split(separator: "\n").filter { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        let sockets = try lines("zpubd-activated.service", "Sockets").flatMap {
            $0.split(separator: " ").map(String.init)
        }
        XCTAssertEqual(Set(sockets), Set(Self.units.filter { $0.hasSuffix(".socket") }))
        var passed: [String] = []
        for unit in sockets {
            let listens = try lines(unit, "ListenStream")
            let names = try lines(unit, "FileDescriptorName")
            XCTAssertEqual(listens.count, 1, unit)
            XCTAssertEqual(names.count, 1, unit)
            XCTAssertEqual(try lines(unit, "Service"), ["zpubd-activated.service"], unit)
            passed += names
        }
        XCTAssertEqual(passed.sorted(), BrokerSocketRole.allCases.map(\.rawValue).sorted())
        // Enabling and starting zpubd.socket brings the other three.
        let others = sockets.filter { $0 != "zpubd.socket" }.sorted()
        XCTAssertEqual(
            try lines("zpubd.socket", "Also").flatMap { $0.split(separator: " ").map(String.init) }.sorted(), others)
        XCTAssertEqual(
            try lines("zpubd.socket", "Wants").flatMap { $0.split(separator: " ").map(String.init) }.sorted(), others)
    }

    func testUnitFilesPassSystemdAnalyzeVerifyWithoutAWord() throws {
        let directory = try installedUnits()
        for unit in Self.units {
            let run = try Run.program(
                URL(fileURLWithPath: "/usr/bin/systemd-analyze"),
                ["verify", directory.appendingPathComponent(unit).path])
            XCTAssertEqual(run.status, 0, unit)
            XCTAssertEqual(run.stderr + run.stdout, "", "systemd-analyze verify \(unit) must print nothing")
        }
    }

    func testHardeningScores() throws {
        let directory = try installedUnits()
        for (unit, limit) in [("zpubd.service", 1.2), ("zpubd-activated.service", 0.5)] {
            let run = try Run.program(
                URL(fileURLWithPath: "/usr/bin/systemd-analyze"),
                ["security", "--offline=true", "--no-pager", directory.appendingPathComponent(unit).path])
            let line = try XCTUnwrap(run.stdout.split(separator: "\n").last { $0.contains("Overall exposure level") })
            let score = try XCTUnwrap(
                line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }, String(line))
            XCTAssertLessThanOrEqual(score, limit, "\(unit): \(line)")
        }
    }
}

extension RunningProgram {
    /// Sends a signal to the program.
    func signal(_ signal: Int32) { kill(processIdentifier, signal) }
}

enum UnixSocket {
    /// Whether a stream connect to a unix socket path succeeds right now.
    static func canConnect(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in path.utf8.enumerated() { buffer[i] = byte }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
