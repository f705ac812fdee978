import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// How the HTTP gateway bounds what a connection may hold without being a well-behaved client:
/// the request deadline, the cap on connections that are not clients yet, and the close of a
/// client that stopped reading. Raw sockets from Python (`python/gateway_limits.py`), so that
/// the misbehaviour is exactly what the test says. docs/http.md ("Limits").
final class GatewayConnectionLimitsTests: XCTestCase {
    /// `RequestDeadline.limit` in Sources/ZPubGateway/ConnectionLimits.swift.
    private static let requestDeadline = 10.0
    /// `PlainConnections.limit`, in the same file.
    private static let plainConnectionLimit = 1_024
    /// `Goodbye.grace` (Sources/ZPubGateway/Goodbye.swift) is 1 s; a client that stopped reading
    /// must be gone well within this after the event that closes it.
    private static let closeBound = 10.0

    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-limits-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// zpubd with the gateway on a free port, once it answers /healthz (over TLS with `tls`).
    private func startDaemon(http extra: String = "", tls: Bool = false) throws -> (Daemon, Int) {
        let port = try FreePort.find()
        let daemon = try Daemon(configuration: httpSection(port: port, extra)).waitForGateway(
            port: port,
            answers: tls
                ? {
                    let run = try Run.python(
                        "gateway_credentials.py", ["https-get", "\(port)", "/healthz", self.path("server.crt")])
                    return run.status == 0 && run.stdout.contains("\"status\": 200")
                } : nil)
        return (daemon, port)
    }

    private func script(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/\(name)").path
    }

    private func python(_ name: String, _ arguments: [String]) throws -> RunningProgram {
        try RunningProgram(URL(fileURLWithPath: "/usr/bin/python3"), [script(name)] + arguments)
    }

    private func readyFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("zpub-ready-\(UUID().uuidString)").path
    }

    // MARK: The request deadline

    /// A connection that sends nothing, or half a request line, is answered 408 and closed at
    /// the deadline; a kept-alive connection idle after its response is closed without a word;
    /// an event stream and a WebSocket opened at the same time outlive the deadline.
    func testConnectionsWithoutAWholeRequestAreClosedAtTheDeadlineAndStreamsAreNot() throws {
        let (daemon, port) = try startDaemon()
        let sseReady = readyFile()
        let sse = try python("http_clients.py", ["sse", "\(port)", "?prefix=late.", "1", "-", sseReady])
        let webSocketReady = readyFile()
        let webSocket = try python("http_clients.py", ["ws-sub", "\(port)", #"["late."]"#, "1", webSocketReady])
        try Wait.until("both streams are open") {
            FileManager.default.fileExists(atPath: sseReady) && FileManager.default.fileExists(atPath: webSocketReady)
        }
        let idle = try python("gateway_limits.py", ["idle", "\(port)"]).finish(timeout: 90)
        XCTAssertEqual(idle.status, 0, idle.stderr)
        let results = try XCTUnwrap(jsonLines(idle.stdout).first, idle.stdout + idle.stderr)
        let bounds = (Self.requestDeadline - 1)...(Self.requestDeadline + 5)
        for name in ["silent", "half_request_line"] {
            let connection = results[name] as? [String: Any] ?? [:]
            XCTAssertEqual(connection["ending"] as? String, "eof", "\(name) was closed: \(connection)")
            XCTAssertTrue(
                bounds.contains(connection["after_s"] as? Double ?? -1), "\(name) at the deadline: \(connection)")
            let received = connection["received"] as? String ?? ""
            XCTAssertTrue(received.hasPrefix("HTTP/1.1 408 "), "\(name) was told why: \(connection)")
            XCTAssertTrue(received.contains("\"request_timeout\""), "\(name): \(connection)")
        }
        let keptAlive = results["kept_alive"] as? [String: Any] ?? [:]
        XCTAssertEqual(keptAlive["first_response"] as? String, "HTTP/1.1 200 OK", "\(keptAlive)")
        XCTAssertEqual(keptAlive["ending"] as? String, "eof", "an idle kept-alive connection is closed: \(keptAlive)")
        XCTAssertTrue(bounds.contains(keptAlive["after_s"] as? Double ?? -1), "at the deadline: \(keptAlive)")
        XCTAssertEqual(keptAlive["received"] as? String, "", "without an unasked-for response: \(keptAlive)")

        // Past the deadline, both streams are still there and still deliver.
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("late.news", "still here"))
        for (name, stream) in [("SSE", sse), ("WebSocket", webSocket)] {
            let run = try stream.finish(timeout: 20)
            XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
            XCTAssertTrue(run.stdout.contains("still here"), "the \(name) stream outlived the deadline: \(run.stdout)")
        }
    }

    /// A request the decoder cannot read gets one 400 that says so, and the connection is closed
    /// at once. It was left open after NIO's 400 (which said Connection: close) until the request
    /// deadline wrote a 408 after it, 10 s later.
    func testAnUnreadableRequestGetsOne400AndIsClosedAtOnce() throws {
        let (daemon, port) = try startDaemon()
        defer { withExtendedLifetime(daemon) {} }
        let run = try python("gateway_limits.py", ["unreadable", "\(port)"]).finish(timeout: 60)
        XCTAssertEqual(run.status, 0, run.stderr)
        let results = try XCTUnwrap(jsonLines(run.stdout).first, run.stdout + run.stderr)
        XCTAssertEqual(results.count, 6, "\(results)")
        for (name, value) in results {
            let connection = value as? [String: Any] ?? [:]
            let received = connection["received"] as? String ?? ""
            XCTAssertTrue(received.hasPrefix("HTTP/1.1 400 "), "\(name): \(connection)")
            XCTAssertTrue(received.contains("\"bad_request\"") && received.contains("not valid HTTP"), "\(name)")
            // In the request's terms, not the parser's ("paused (swift-http-parser error)").
            XCTAssertFalse(received.contains("parser error"), "\(name): \(received)")
            if name == "http_2_preface" { XCTAssertTrue(received.contains("HTTP/2 preface"), received) }
            let statusLines = received.split(separator: "\n").filter { $0.hasPrefix("HTTP/1.1 ") }
            XCTAssertEqual(statusLines.count, 1, "one response: \(name): \(received)")
            XCTAssertEqual(connection["ending"] as? String, "eof", "\(name) is closed: \(connection)")
            // At once: well before the request deadline.
            XCTAssertLessThan(
                connection["after_s"] as? Double ?? 99, Self.requestDeadline / 2, "\(name): \(connection)")
        }
    }

    /// A self-signed certificate for 127.0.0.1 in server.crt and server.key.
    private func makeCertificate() throws {
        let openssl = URL(fileURLWithPath: "/usr/bin/openssl")
        let made = try Run.program(
            openssl,
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-subj", "/CN=zpub test", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", path("server.key"),
                "-out", path("server.crt"),
            ])
        XCTAssertEqual(made.status, 0, made.stderr)
    }

    /// Over TLS the deadline covers the handshake: a connection that sends no ClientHello, or
    /// part of one, is closed too.
    func testATLSConnectionWithoutAHandshakeIsClosedAtTheDeadline() throws {
        try makeCertificate()
        let (daemon, port) = try startDaemon(
            http: """
                tls_certificate_file = "\(path("server.crt"))"
                tls_key_file = "\(path("server.key"))"
                """, tls: true)
        defer { withExtendedLifetime(daemon) {} }
        let idle = try python("gateway_limits.py", ["idle", "\(port)", "tls"]).finish(timeout: 90)
        XCTAssertEqual(idle.status, 0, idle.stderr)
        let results = try XCTUnwrap(jsonLines(idle.stdout).first, idle.stdout + idle.stderr)
        for name in ["silent", "partial_client_hello"] {
            let connection = results[name] as? [String: Any] ?? [:]
            XCTAssertNotEqual(connection["ending"] as? String, "open", "\(name) was closed: \(connection)")
            let after = connection["after_s"] as? Double ?? -1
            XCTAssertTrue(
                ((Self.requestDeadline - 1)...(Self.requestDeadline + 5)).contains(after),
                "\(name) at the deadline: \(connection)")
        }
    }

    /// Plain HTTP sent to the TLS listener gets a 400 that says the port speaks HTTPS (it was
    /// closed without a word: curl's "empty reply"), and HTTPS goes on working.
    func testPlainHTTPOnTheTLSPortIsToldToUseHTTPS() throws {
        try makeCertificate()
        let (daemon, port) = try startDaemon(
            http: """
                tls_certificate_file = "\(path("server.crt"))"
                tls_key_file = "\(path("server.key"))"
                """, tls: true)
        defer { withExtendedLifetime(daemon) {} }
        let plain = try HTTPProbe.get(port: port, "/healthz")
        XCTAssertEqual(plain.status, 400, plain.text)
        XCTAssertEqual((plain.json["error"] as? [String: Any])?["code"] as? String, "https_required", plain.text)
        let secure = try Run.python("gateway_credentials.py", ["https-get", "\(port)", "/healthz", path("server.crt")])
        XCTAssertTrue(secure.stdout.contains("\"status\": 200"), secure.stdout + secure.stderr)
    }

    // MARK: The cap on connections that are not clients

    /// One host opening idle connections by the thousand gets a 503 past the cap, instead of
    /// using up zpubd's descriptors; clients' streams do not count against it, and once the
    /// crowd is gone the gateway answers again.
    func testTooManyConnectionsWithoutARequestAreRefused() throws {
        let (daemon, port) = try startDaemon()
        let sseReady = readyFile()
        let sse = try python("http_clients.py", ["sse", "\(port)", "?prefix=crowd.", "1", "-", sseReady])
        try Wait.until("the stream is open") { FileManager.default.fileExists(atPath: sseReady) }

        let run = try python("gateway_limits.py", ["crowd", "\(port)", "\(Self.plainConnectionLimit)"])
            .finish(timeout: 90)
        XCTAssertEqual(run.status, 0, run.stderr)
        let crowd = try XCTUnwrap(jsonLines(run.stdout).first, run.stdout + run.stderr)
        XCTAssertEqual(crowd["opened"] as? Int, Self.plainConnectionLimit)
        XCTAssertEqual(
            crowd["answered_or_closed"] as? Int, 0, "up to the cap, connections are kept (the stream is not counted)")
        let extra = crowd["extra"] as? String ?? ""
        XCTAssertTrue(extra.hasPrefix("HTTP/1.1 503 "), "the one past the cap is refused: \(crowd)")
        XCTAssertTrue(extra.contains("\"too_many_connections\""), "\(crowd)")
        XCTAssertEqual(crowd["extra_ending"] as? String, "eof", "and hung up on: \(crowd)")

        try Wait.until("the gateway answers again once the crowd is gone", timeout: 10) {
            (try? HTTPProbe.get(port: port, "/healthz").status) == 200
        }
        XCTAssertTrue(daemon.log.contains("refusing new connections"), daemon.log)
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("crowd.news", "served throughout"))
        let stream = try sse.finish(timeout: 20)
        XCTAssertTrue(stream.stdout.contains("served throughout"), stream.stdout + stream.stderr)
    }

    // MARK: max_clients

    /// WebSocket upgrades that arrive together (each request whole but its last byte, then every
    /// last byte at once) get max_clients 101s, and the rest 503: the place is taken when the
    /// upgrade is accepted. It was taken when the session started, after the 101 went out, and
    /// 100 such upgrades all got 101 against max_clients = 20. Once they leave, their places
    /// are free again.
    func testUpgradesArrivingTogetherGetNoMoreThanMaxClients() throws {
        let maxClients = 20
        let upgrades = 100
        let (daemon, port) = try startDaemon(http: "max_clients = \(maxClients)")
        defer { withExtendedLifetime(daemon) {} }
        let go = readyFile()
        defer { try? FileManager.default.removeItem(atPath: go) }
        let crowd = try python("gateway_limits.py", ["upgrade-crowd", "\(port)", "\(upgrades)", go])
        try Wait.until("every upgrade is answered", timeout: 60) {
            !jsonLines(crowd.stdoutSoFar).isEmpty || !crowd.isRunning
        }
        let answered = try XCTUnwrap(jsonLines(crowd.stdoutSoFar).first, crowd.stdoutSoFar + crowd.stderrSoFar)
        XCTAssertEqual(
            answered["statuses"] as? [String: Int], ["101": maxClients, "503": upgrades - maxClients], "\(answered)")
        XCTAssertEqual(answered["codes"] as? [String: Int], ["too_many_clients": upgrades - maxClients])
        try Wait.until("the upgraded clients' sessions have started") {
            try HTTPProbe.metrics(port: port)["zpub_http_clients{kind=\"websocket\"}"] == Double(maxClients)
        }

        try createEmptyFile(go)
        let run = try crowd.finish(timeout: 30)
        XCTAssertEqual(run.status, 0, run.stderr)
        try Wait.until("the clients are gone") {
            try HTTPProbe.metrics(port: port)["zpub_http_clients{kind=\"websocket\"}"] == 0
        }
        // Every place taken by an upgrade was given back: as many may connect again.
        let again = try python("gateway_limits.py", ["upgrade-crowd", "\(port)", "\(maxClients)", go]).finish(
            timeout: 60)
        XCTAssertEqual(again.status, 0, again.stderr)
        let second = try XCTUnwrap(jsonLines(again.stdout).first, again.stdout + again.stderr)
        XCTAssertEqual(second["statuses"] as? [String: Int], ["101": maxClients], "\(second)")
    }

    // MARK: Closing a client that stopped reading

    /// A WebSocket and an event stream whose reader stopped reading (its buffers full, the
    /// gateway's writes waiting) are closed when their JWT expires, within a bound: the close
    /// frame or last event can never be written, and waiting for it held the connection, its
    /// max_clients slot and the expired token's stream for ever.
    func testClientsThatStopReadingAreClosedAtTheirTokensExpiry() throws {
        let secret = path("jwt.secret")
        try "0123456789abcdef0123456789abcdef-test-secret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        // A queue large enough that the stalled readers are not dropped as too slow first.
        let (daemon, port) = try startDaemon(
            http: """
                jwt_secret_file = "\(secret)"
                client_queue = 100000
                """)
        // exp in whole seconds: 8 to 9 s from now, time enough to connect and fill the buffers.
        let minted = try Run.python(
            "gateway_credentials.py", ["jwt", "HS256", secret, "alice", "9", #"["a."]"#, "[]"])
        XCTAssertEqual(minted.status, 0, minted.stderr)
        let token = minted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let go = readyFile()
        defer { try? FileManager.default.removeItem(atPath: go) }
        var readers: [(String, RunningProgram)] = []
        for (kind, target) in [
            ("ws", "/ws?prefix=a.&access_token=\(token)"), ("sse", "/events?prefix=a.&access_token=\(token)"),
        ] {
            let ready = readyFile()
            readers.append(
                (kind, try python("gateway_limits.py", ["stalled", "\(port)", target, kind, ready, go, "60"])))
            try Wait.until("the \(kind) reader is connected") { FileManager.default.fileExists(atPath: ready) }
        }
        try Wait.until("the gateway has both clients and subscribes for them") {
            let samples = try HTTPProbe.metrics(port: port)
            let subscribed = try daemon.subscriptions().subscriptions.contains { $0.prefix == "a." }
            return subscribed && samples["zpub_http_clients{kind=\"websocket\"}"] == 1
                && samples["zpub_http_clients{kind=\"sse\"}"] == 1
        }

        // Far more than the readers' socket buffers and NIO's write buffer (64 KiB) hold.
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        let count = 3_000
        let payload = String(repeating: "x", count: 1_000)
        for index in 0..<count { try push.send(frames: frames("a.load", "\(index) \(payload)")) }
        try Wait.until("the gateway has every message", timeout: 30) {
            try HTTPProbe.metrics(port: port)["zpub_http_messages_in_total"] ?? 0 >= Double(count)
        }
        let written = try HTTPProbe.metrics(port: port)
        for kind in ["websocket", "sse"] {
            let out = written["zpub_http_messages_out_total{kind=\"\(kind)\"}"] ?? 0
            XCTAssertLessThan(out, Double(count), "the \(kind) reader's buffers are full: the gateway's writes wait")
        }

        try Wait.until("both tokens expire", timeout: 30) {
            try HTTPProbe.metrics(port: port)["zpub_http_clients_dropped_total{reason=\"token_expired\"}"] == 2
        }
        var open: [String: Double] = [:]
        let closed: Void? = try? Wait.until("the clients are closed", timeout: Self.closeBound) {
            let samples = try HTTPProbe.metrics(port: port)
            open = samples.filter { $0.key.hasPrefix("zpub_http_clients{") && $0.value > 0 }
            return open.isEmpty
        }
        XCTAssertNotNil(
            closed, "within \(Self.closeBound) s of their token's expiry, though they read nothing; still open: \(open)"
        )

        try createEmptyFile(go)
        for (kind, reader) in readers {
            let run = try reader.finish(timeout: 60)
            XCTAssertEqual(run.status, 0, "\(kind): \(run.stderr)")
            let ending = jsonLines(run.stdout).first ?? [:]
            XCTAssertNotEqual(ending["ending"] as? String, "open", "\(kind): the connection was closed: \(ending)")
        }
    }

    // MARK: A client that sends requests and reads no reply

    /// The largest TCP buffer Linux may autotune a socket to: `net.ipv4.tcp_rmem` or
    /// `tcp_wmem` (`min default max`), the last field, in bytes.
    private func tcpBufferMax(_ name: String) throws -> Int {
        let text = try String(contentsOfFile: "/proc/sys/net/ipv4/\(name)", encoding: .utf8)
        return try XCTUnwrap(text.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) }, text)
    }

    /// A line of /proc/PID/status in KiB: `VmRSS` (resident now) or `VmHWM` (the peak).
    private func statusKiB(_ pid: Int32, _ key: String) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("\(key):") }, status)
        return try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]), String(line))
    }

    /// A WebSocket client that sends requests as fast as it can (pings, `{"op":"ping"}`: each
    /// answered, none a subscription change) and never reads: the gateway stops reading from it
    /// once a write buffer's worth of replies waits (`BackPressureHandler`), so the client is
    /// held to what the sockets' buffers take, zpubd's memory stays put, the other clients are
    /// served, and the ping timer closes it (it sends nothing the gateway reads any more).
    /// Without that, the gateway read every request and kept each reply in its memory: the
    /// client sent all it liked (the cap here), and zpubd grew by some 4 bytes per byte sent.
    func testAWebSocketClientThatNeverReadsItsRepliesIsNoLongerRead() throws {
        let pingInterval = 3
        let (daemon, port) = try startDaemon(http: "ping_interval = \(pingInterval)")
        let pid = daemon.process.processIdentifier
        // What the client can send once the gateway stops reading: what the server's receive
        // buffer holds (autotuned up to tcp_rmem's max), plus the requests whose replies fill
        // the server's send buffer (up to tcp_wmem's max; a request is at most 1.12 times the
        // size of its reply, counted twice), plus 4 MiB for the rest: the client's own buffers
        // (128 KiB and 8 KiB, set by the script), NIO's 64 KiB write buffer and the replies to
        // one last read (4 reads of 64 KiB at most).
        let bound = try tcpBufferMax("tcp_rmem") + 2 * tcpBufferMax("tcp_wmem") + (4 << 20)
        let cap = bound + (16 << 20)
        // NIO keeps 64 KiB of replies and those to one read (some 300 KiB) for this client;
        // the rest is room for the allocator and the well-behaved client.
        let memoryBoundKiB = 16 << 10
        let before = try statusKiB(pid, "VmRSS")

        let stopped = readyFile()
        let go = readyFile()
        defer { for file in [stopped, go] { try? FileManager.default.removeItem(atPath: file) } }
        let flood = try python("gateway_limits.py", ["ws-flood", "\(port)", "\(cap)", stopped, go])
        try Wait.until("the flooding client stops sending (blocked, or at its cap)", timeout: 300) {
            FileManager.default.fileExists(atPath: stopped) || !flood.isRunning
        }

        // Another client, meanwhile, is served as usual.
        let ready = readyFile()
        let good = try python("http_clients.py", ["ws-sub", "\(port)", #"["good."]"#, "1", ready])
        try Wait.until("the well-behaved client is subscribed") {
            FileManager.default.fileExists(atPath: ready) || !good.isRunning
        }
        // The gateway acknowledges a subscription before its SUB's reaches the broker: a
        // message sent earlier is not for it (failed 1 run in 3 on a loaded machine).
        try Wait.until("the gateway's subscription reaches the broker") {
            try daemon.subscriptions().subscriptions.contains { $0.prefix == "good." }
        }
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("good.news", "served while the other floods"))
        let served: Run
        do {
            served = try good.finish(timeout: 60)
        } catch {
            // Seen once in a fresh-clone run, not reproduced since (16 runs, 8 of them under two
            // `yes`, with and without the wait above): what each side saw, for the next time.
            let metrics = (try? HTTPProbe.metrics(port: port))?.filter { $0.key.hasPrefix("zpub_http") } ?? [:]
            let subscriptions = (try? daemon.subscriptions().subscriptions.map(\.prefix)) ?? []
            let forwarded = (try? daemon.stats().messagesOut).map { "\($0)" } ?? "?"
            return XCTFail(
                """
                the well-behaved client got nothing within 60 s (\(error))
                its output: \(good.stdoutSoFar)\(good.stderrSoFar)
                broker: subscriptions \(subscriptions), messages out \(forwarded); gateway: \(metrics)
                \(daemon.log.suffix(4_000))
                """)
        }
        XCTAssertEqual(served.status, 0, served.stderr)
        XCTAssertTrue(served.stdout.contains("served while the other floods"), served.stdout + served.stderr)

        // It sends nothing the gateway reads: the ping timer closes it (1001, unresponsive).
        var clientSamples: [String: Double] = [:]
        let closed: Void? = try? Wait.until("the gateway closes the flooding client as unresponsive", timeout: 300) {
            // A /metrics read that fails on a loaded machine is asked again.
            guard let samples = try? HTTPProbe.metrics(port: port) else { return false }
            clientSamples = samples.filter { $0.key.hasPrefix("zpub_http_clients") }
            return samples["zpub_http_clients_dropped_total{reason=\"unresponsive\"}"] == 1
                && samples["zpub_http_clients{kind=\"websocket\"}"] == 0
        }
        try createEmptyFile(go)
        let run = try flood.finish(timeout: 60)
        XCTAssertEqual(run.status, 0, run.stderr)
        let result = try XCTUnwrap(jsonLines(run.stdout).first, run.stdout + run.stderr)
        XCTAssertEqual(result["status_line"] as? String, "HTTP/1.1 101 Switching Protocols", "\(result)")
        let sent = try XCTUnwrap(result["sent"] as? Int, "\(result)")
        let grown = try statusKiB(pid, "VmHWM") - before
        XCTAssertLessThanOrEqual(
            sent, bound, "the gateway kept reading from a client that reads nothing: it sent \(sent) bytes of requests")
        XCTAssertEqual(result["cap_reached"] as? Bool, false, "\(result)")
        XCTAssertLessThan(
            grown, memoryBoundKiB, "zpubd's peak memory grew by \(grown) KiB for \(sent) bytes of requests")
        XCTAssertNotNil(closed, "a client the gateway no longer reads is closed by the ping timer: \(clientSamples)")
        print(
            "figure: a WebSocket client reading nothing sent \(sent) bytes of requests (bound \(bound)) before the gateway stopped reading it; zpubd's peak grew by \(grown) KiB; closed by the server as the client saw it: \(result["hung_up"] ?? "?")"
        )
    }

    // MARK: What crowds cost the broker

    /// The requests the gateway put to the broker's control API for `command`
    /// (`zpub_http_control_requests_total`; reading /metrics asks for one STATS itself).
    private func controlRequests(_ port: Int, _ command: String) throws -> Double {
        try HTTPProbe.metrics(port: port)["zpub_http_control_requests_total{command=\"\(command)\"}"] ?? 0
    }

    /// zpubd with history on `busy.` and `count` messages kept there, of `size` bytes each.
    private func startDaemonWithHistory(count: Int, size: Int) throws -> (Daemon, Int) {
        let (daemon, port) = try startDaemon(http: "[history]\nprefixes = [\"busy.\"]")
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        let payload = String(repeating: "x", count: size)
        // In batches the history writer keeps up with (its queue drops what overflows).
        for batch in stride(from: 0, to: count, by: 2_000) {
            for index in batch..<min(batch + 2_000, count) {
                try push.send(frames: frames("busy.x", "\(index) \(payload)"))
            }
            try Wait.until("history keeps the batch", timeout: 30) {
                try daemon.stats().history?.written == UInt64(min(batch + 2_000, count))
            }
        }
        return (daemon, port)
    }

    /// A client that reconnects with `Last-Event-ID` and leaves at once stops its catch-up: no
    /// HISTORY page is asked for it after it left. The catch-up went on paging (here 30 pages
    /// per client) for nobody, on the history writer and the control thread, and a loop of such
    /// reconnections kept the broker busy at will.
    func testAClientThatLeavesDuringItsCatchUpStopsIt() throws {
        let (daemon, port) = try startDaemonWithHistory(count: 30_000, size: 10)
        defer { withExtendedLifetime(daemon) {} }
        let before = try controlRequests(port, "HISTORY")
        let clients = 3
        let run = try python(
            "gateway_limits.py", ["resume-crowd", "\(port)", "/events?prefix=busy.", "h0", "\(clients)"]
        )
        .finish(timeout: 60)
        XCTAssertEqual(run.status, 0, run.stderr)
        let crowd = try XCTUnwrap(jsonLines(run.stdout).first, run.stdout + run.stderr)
        XCTAssertEqual(crowd["heads"] as? Int, clients, "\(crowd)")
        try Wait.until("the clients are gone") {
            try HTTPProbe.metrics(port: port)["zpub_http_clients{kind=\"sse\"}"] == 0
        }
        // At most the page each one's REPLAY reply may have asked for before its leave was seen.
        let pages = try controlRequests(port, "HISTORY") - before
        XCTAssertLessThanOrEqual(pages, Double(clients), "HISTORY pages asked for clients that had left")
        print("figure: \(clients) clients that left during their catch-up cost \(Int(pages)) HISTORY pages")
    }

    /// Many clients reconnecting with `Last-Event-ID` at once (a restart, a flapping proxy) take
    /// turns to ask the broker, a few at a time: /healthz answers 200 throughout, and nothing is
    /// refused as busy. Each catch-up asked at once, so 300 of them filled the control queue
    /// (256) that /healthz, /stats and /metrics need too.
    func testACrowdOfReconnectingClientsLeavesHealthzUp() throws {
        let (daemon, port) = try startDaemonWithHistory(count: 2_000, size: 2_000)
        defer { withExtendedLifetime(daemon) {} }
        let before = try HTTPProbe.metrics(port: port)
        let run = try python("gateway_limits.py", ["resume-crowd", "\(port)", "/events?prefix=busy.", "h0", "300"])
            .finish(timeout: 120)
        XCTAssertEqual(run.status, 0, run.stderr)
        let crowd = try XCTUnwrap(jsonLines(run.stdout).first, run.stdout + run.stderr)
        XCTAssertEqual(crowd["heads"] as? Int, 300, "\(crowd)")
        let healthz = crowd["healthz"] as? [String: Int] ?? [:]
        XCTAssertEqual(Array(healthz.keys), ["HTTP/1.1 200 OK"], "/healthz during the crowd: \(healthz)")
        let after = try HTTPProbe.metrics(port: port)
        let busy = "zpub_http_rejected_total{reason=\"busy\"}"
        XCTAssertEqual(after[busy], before[busy], "control requests refused as busy")
        let replays =
            (after["zpub_http_control_requests_total{command=\"REPLAY\"}"] ?? 0)
            - (before["zpub_http_control_requests_total{command=\"REPLAY\"}"] ?? 0)
        print(
            "figure: 300 clients reconnecting at once and leaving: \(Int(replays)) REPLAY requests, /healthz \(healthz)"
        )
    }

    /// The status feed asks the broker once per tick, whatever the number of its clients: 20
    /// status pages for about 4 s cost about 4 STATS, not 80, and every page gets the events.
    /// With no status page open, nothing is asked.
    func testStatusPagesShareOnePoll() throws {
        let (daemon, port) = try startDaemon()
        defer { withExtendedLifetime(daemon) {} }
        let before = try HTTPProbe.metrics(port: port)
        let seconds = 4.0
        let run = try python("gateway_limits.py", ["status-crowd", "\(port)", "20", "\(seconds)"]).finish(timeout: 60)
        XCTAssertEqual(run.status, 0, run.stderr)
        let pages = try XCTUnwrap(jsonLines(run.stdout).first?["clients"] as? [[String: Int]], run.stdout + run.stderr)
        XCTAssertEqual(pages.count, 20)
        for page in pages {
            XCTAssertGreaterThanOrEqual(page["stats"] ?? 0, 3, "every page gets STATS every second: \(page)")
            XCTAssertGreaterThanOrEqual(page["topics"] ?? 0, 1, "\(page)")
            XCTAssertGreaterThanOrEqual(page["subscriptions"] ?? 0, 1, "\(page)")
        }
        // Each /metrics read asks STATS too: counted, so that a slow machine's extra polls
        // here do not count as the feed's.
        var metricsReads = 0
        try Wait.until("the pages are gone") {
            metricsReads += 1
            return try HTTPProbe.metrics(port: port)["zpub_http_clients{kind=\"status\"}"] == 0
        }
        let after = try HTTPProbe.metrics(port: port)
        metricsReads += 1
        func delta(_ command: String) -> Double {
            let name = "zpub_http_control_requests_total{command=\"\(command)\"}"
            return (after[name] ?? 0) - (before[name] ?? 0)
        }
        // One tick a second while the pages were open: some 5, the pages taking a moment to
        // connect; twice that and more, for a loaded machine, is still far below the 20 a
        // second that polling per page costs (80 and more).
        XCTAssertLessThanOrEqual(
            delta("STATS") - Double(metricsReads), 2 * seconds + 4, "STATS per tick, not per page")
        XCTAssertLessThanOrEqual(delta("TOPICS"), 4, "TOPICS every 5 s, not per page (20 per poll)")
        XCTAssertLessThanOrEqual(delta("SUBSCRIPTIONS"), 4, "SUBSCRIPTIONS every 5 s, not per page (20 per poll)")
        print(
            "figure: 20 status pages for \(Int(seconds)) s cost \(Int(delta("STATS"))) STATS, \(Int(delta("TOPICS"))) TOPICS"
        )

        Thread.sleep(forTimeInterval: 2.5)
        let idle = try HTTPProbe.metrics(port: port)
        let stats = "zpub_http_control_requests_total{command=\"STATS\"}"
        XCTAssertEqual((idle[stats] ?? 0) - (after[stats] ?? 0), 1, "with no page open, only this /metrics read asks")
    }
}
