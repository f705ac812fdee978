import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// The gateway's JWT credentials and TLS with independent clients: tokens signed by PyJWT and
/// by the PHP example, keys and certificates made by openssl, HTTPS and WSS through Python's ssl,
/// PHP's curl, pyzmq and headless Chromium. docs/http.md ("JWT credentials", "TLS").
final class GatewayCredentialsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-credentials-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func openssl(_ arguments: [String]) throws {
        let run = try Run.program(URL(fileURLWithPath: "/usr/bin/openssl"), arguments)
        XCTAssertEqual(run.status, 0, "openssl \(arguments.joined(separator: " ")): \(run.stderr)")
    }

    /// A self-signed certificate for 127.0.0.1 and its key, as NAME.crt and NAME.key; returns
    /// the SHA-256 of the certificate's DER, as Python's ssl reports it.
    private func makeCertificate(_ name: String) throws -> String {
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=zpub test \(name)", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", path("\(name).key"),
            "-out", path("\(name).crt"),
        ])
        try openssl(["x509", "-in", path("\(name).crt"), "-outform", "DER", "-out", path("\(name).der")])
        let digest = try Run.program(
            URL(fileURLWithPath: "/usr/bin/openssl"), ["dgst", "-sha256", "-r", path("\(name).der")])
        return String(digest.stdout.prefix(64))
    }

    private func writeSecret() throws -> String {
        let file = path("jwt.secret")
        try "0123456789abcdef0123456789abcdef-test-secret\n".write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    /// A token signed by PyJWT (an independent implementation).
    private func token(
        _ alg: String = "HS256", key: String, subject: String = "alice", expiresIn: String = "600",
        subscribe: [String] = ["a."], publish: [String] = ["a.out."]
    ) throws -> String {
        func list(_ prefixes: [String]) -> String { "[" + prefixes.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
        let run = try Run.python(
            "gateway_credentials.py", ["jwt", alg, key, subject, expiresIn, list(subscribe), list(publish)])
        XCTAssertEqual(run.status, 0, run.stderr)
        return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func gatewayDaemon(_ http: String, port: Int, tls: Bool = false) throws -> Daemon {
        try Daemon(configuration: httpSection(port: port, http)).waitForGateway(
            port: port, answers: tls ? { (try? self.httpsGet(port, "/healthz"))?["status"] as? Int == 200 } : nil)
    }

    /// GET over TLS with Python's ssl, checking the certificate against every test certificate.
    private func httpsGet(_ port: Int, _ target: String, token: String? = nil) throws -> [String: Any] {
        let run = try Run.python(
            "gateway_credentials.py", ["https-get", "\(port)", target, path("ca.pem")] + (token.map { [$0] } ?? []))
        guard run.status == 0,
            let reply = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        else { throw TimedOut(what: "an HTTPS reply to \(target): \(run.stderr)") }
        return reply
    }

    private func refusal(_ response: HTTPProbe.Response) -> (Int, String?) {
        (response.status, (response.json["error"] as? [String: Any])?["code"] as? String)
    }

    private func sse(_ port: Int, _ target: String, headers: [String: String] = [:]) throws -> HTTPProbe.Response {
        try HTTPProbe.request(port: port, method: "GET", target, headers: headers, readTimeout: 500)
    }

    // MARK: JWT

    /// A JWT grants exactly its claims, on SSE, WebSocket and POST /publish; an expired, forged or
    /// missing one is refused with its own code; static tokens keep working.
    func testAJWTGrantsItsClaimsAndNothingElse() throws {
        let secret = try writeSecret()
        let port = try FreePort.find()
        let daemon = try gatewayDaemon(
            """
            jwt_secret_file = "\(secret)"
            tokens = ["ops.=static-token-1"]
            publish_prefixes = ["jobs."]
            """, port: port)
        let alice = try token(key: secret)
        let expired = try token(key: secret, expiresIn: "-60")
        try "another-secret-another-secret-another".write(
            toFile: path("other.secret"), atomically: true, encoding: .utf8)
        let forged = try token(key: path("other.secret"))

        XCTAssertEqual(try sse(port, "/events?prefix=a.&access_token=\(alice)").status, 200)
        XCTAssertEqual(refusal(try sse(port, "/events?prefix=b.&access_token=\(alice)")).1, "not_in_token")
        XCTAssertEqual(refusal(try sse(port, "/events?prefix=b.&access_token=\(alice)")).0, 403)
        XCTAssertEqual(refusal(try sse(port, "/events?prefix=&access_token=\(alice)")).0, 403, "everything > a.")
        XCTAssertEqual(
            refusal(try sse(port, "/events?prefix=a.", headers: ["Authorization": "Bearer \(expired)"])).1,
            "token_expired")
        XCTAssertEqual(refusal(try sse(port, "/events?prefix=a.&access_token=\(forged)")).1, "bad_token")
        let garbage = try sse(port, "/events?prefix=a.&access_token=garbage")
        XCTAssertEqual(refusal(garbage).1, "bad_token")
        // With static tokens beside the keys, a mistyped one is not told as a JWT problem alone.
        XCTAssertTrue(
            ((garbage.json["error"] as? [String: Any])?["message"] as? String ?? "").contains(
                "none of this gateway's static tokens, nor a JWT"), garbage.text)
        XCTAssertEqual(
            refusal(try sse(port, "/events?prefix=news.")).0, 401, "with JWT keys, anonymous clients are refused")
        XCTAssertEqual(try sse(port, "/events?prefix=ops.&access_token=static-token-1").status, 200)

        // POST /publish: under the publish claim only (publish_prefixes is for static tokens).
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["a.out.", "jobs."])
        // Not a count: the SSE clients' prefixes above may still linger in the gateway.
        try daemon.waitForSubscriptions(to: ["a.out.", "jobs."])
        func post(_ topic: String, token: String?) throws -> (Int, String?) {
            refusal(
                try HTTPProbe.request(
                    port: port, method: "POST", "/publish",
                    headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:],
                    body: Array(#"{"topic":"\#(topic)","payload":"from \#(topic)"}"#.utf8)))
        }
        XCTAssertEqual(try post("a.out.1", token: alice).0, 200)
        XCTAssertEqual(try post("jobs.1", token: alice).1, "not_in_token")
        XCTAssertEqual(try post("jobs.1", token: nil).0, 401)
        // No token at all decides it from the head: refused before the body is asked for.
        let expecting = try HTTPProbe.request(
            port: port, method: "POST", "/publish", headers: ["Expect": "100-continue"],
            body: Array(#"{"topic":"jobs.1","payload":1}"#.utf8))
        XCTAssertEqual(refusal(expecting).0, 401, expecting.text)
        XCTAssertEqual(try post("a.out.2", token: expired).1, "token_expired")
        let message = try XCTUnwrap(try subscriber.receiveFrames(timeoutMilliseconds: 5_000))
        XCTAssertEqual(message.map { String(decoding: $0, as: UTF8.self) }, ["a.out.1", "from a.out.1"])
        XCTAssertNil(try subscriber.receiveFrames(timeoutMilliseconds: 300), "nothing refused was published")

        // WebSocket: the token in a request; b. is refused on the socket, a. delivered.
        let ready = path("ws.ready")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("python/http_clients.py").path
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script, "ws-sub", "\(port)", #"["a.", "b."]"#, "1", ready, "-", alice])
        try Wait.until("the WebSocket client's requests are answered") {
            FileManager.default.fileExists(atPath: ready)
        }
        // Acknowledged by the gateway before its subscription reaches the broker.
        try daemon.waitForSubscriptions(to: ["a."])
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("a.x", "for alice"))
        let run = try client.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = jsonLines(run.stdout)
        let acks = lines.compactMap { $0["ack"] as? [String: Any] }
        XCTAssertEqual(acks.first { $0["prefix"] as? String == "a." }?["type"] as? String, "subscribed", run.stdout)
        XCTAssertEqual(acks.first { $0["prefix"] as? String == "b." }?["code"] as? String, "not_in_token", run.stdout)
        XCTAssertEqual((lines.last?["message"] as? [String: Any])?["topic"] as? String, "a.x", run.stdout)
    }

    /// The clients of one user (a JWT's `sub`) hold at most `max_user_prefixes` distinct
    /// prefixes over all their connections: a new one past it is refused 429 `user_full`, on
    /// an event stream and a WebSocket upgrade alike; a prefix the user holds already, or
    /// another user's client, is let in; once the user's stream ends, there is room again.
    /// Without it one user could take the whole of `max_upstream_prefixes`, 64 prefixes a
    /// connection.
    func testOneUsersClientsHoldAtMostMaxUserPrefixes() throws {
        let secret = try writeSecret()
        let port = try FreePort.find()
        let daemon = try gatewayDaemon(
            """
            jwt_secret_file = "\(secret)"
            max_user_prefixes = 2
            """, port: port)
        let alice = try token(key: secret)
        let bob = try token(key: secret, subject: "bob")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("python/http_clients.py").path
        let ready = path("alice.ready")
        let stream = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script, "sse", "\(port)", "?prefix=a.1&prefix=a.2&access_token=\(alice)", "1", "-", ready])
        try Wait.until("alice's event stream is open\n\(stream.stdoutSoFar)") {
            FileManager.default.fileExists(atPath: ready)
        }

        let refused = try sse(port, "/events?prefix=a.3&access_token=\(alice)")
        XCTAssertEqual(refusal(refused).0, 429, refused.text)
        XCTAssertEqual(refusal(refused).1, "user_full", refused.text)
        XCTAssertTrue(
            refused.text.contains("alice hold max_user_prefixes (2)"), "it names the setting: \(refused.text)")
        let upgrade = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script, "ws-since", "\(port)", "[]", "-", "-", "?prefix=a.3&access_token=\(alice)"]
        ).finish(timeout: 30)
        XCTAssertEqual(jsonLines(upgrade.stdout).first?["status"] as? Int, 429, upgrade.stdout + upgrade.stderr)
        XCTAssertEqual(
            try sse(port, "/events?prefix=a.1&access_token=\(alice)").status, 200, "a prefix alice holds already")
        XCTAssertEqual(try sse(port, "/events?prefix=a.3&access_token=\(bob)").status, 200, "bob has room of his own")
        XCTAssertEqual(try HTTPProbe.metrics(port: port)[#"zpub_http_rejected_total{reason="user_full"}"#], 2)

        // Alice's stream ends (after one message): her prefixes are hers no longer.
        let clients = try Clients()
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("a.1", "bye"))
        let run = try stream.finish(timeout: 30)
        XCTAssertEqual(jsonLines(run.stdout).filter { $0["data"] != nil }.count, 1, run.stdout + run.stderr)
        try Wait.until("alice's prefixes are let go") {
            try HTTPProbe.metrics(port: port)["zpub_http_clients{kind=\"sse\"}"] == 0
        }
        XCTAssertEqual(try sse(port, "/events?prefix=a.3&prefix=a.4&access_token=\(alice)").status, 200)
    }

    /// A WebSocket whose JWT expires is closed at its exp (4401), unless it sent a fresh token.
    func testAWebSocketIsClosedWhenItsTokenExpiresUnlessRefreshed() throws {
        let secret = try writeSecret()
        let port = try FreePort.find()
        let daemon = try gatewayDaemon("jwt_secret_file = \"\(secret)\"", port: port)
        // The short token last, and long enough (5-6 s: exp is whole seconds) for both clients
        // to start, subscribe and show in the status feed before it expires on a loaded machine.
        let fresh = try token(key: secret, expiresIn: "120")
        let short = try token(key: secret, expiresIn: "6")
        let shortClaims = try XCTUnwrap(Self.claims(of: short))
        let expires = try XCTUnwrap(shortClaims["exp"] as? Double)

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("python/gateway_credentials.py").path
        func client(_ refresh: String, _ ready: String) throws -> RunningProgram {
            try RunningProgram(
                URL(fileURLWithPath: "/usr/bin/python3"), [script, "ws-expiry", "\(port)", short, refresh, ready])
        }
        let expiring = try client("-", path("expiring.ready"))
        let refreshed = try client(fresh, path("refreshed.ready"))
        // An SSE stream of the short token, read by curl: ended by the gateway as HTTP ends a
        // chunked body (curl exited 18, "transfer closed with outstanding read data", before
        // the last chunk was sent).
        let stream = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/curl"),
            ["-sN", "--max-time", "60", "http://127.0.0.1:\(port)/events?prefix=a.&access_token=\(short)"])
        try Wait.until("both clients are subscribed (and one refreshed)") {
            FileManager.default.fileExists(atPath: path("expiring.ready"))
                && FileManager.default.fileExists(atPath: path("refreshed.ready"))
        }
        // The status page's feed names the user, counts its clients and the distinct prefixes
        // they hold (all three hold a.: one).
        try Wait.until("the status feed shows alice with three clients holding one prefix") {
            let feed = try HTTPProbe.request(
                port: port, method: "GET", "/status/events", headers: [:], readTimeout: 1_500)
            return feed.text.contains(#""users":[{"clients":3,"prefixes":1,"sub":"alice"}]"#)
                || feed.text.contains(#""users":[{"sub":"alice","clients":3,"prefixes":1}]"#)
        }
        let closed = try expiring.finish(timeout: 30)
        let closedAt = Date().timeIntervalSince1970
        XCTAssertEqual(closed.status, 0, closed.stderr)
        let close = try XCTUnwrap(jsonLines(closed.stdout).last, closed.stdout)
        XCTAssertEqual(close["close"] as? Int, 4401, closed.stdout)
        XCTAssertTrue((close["reason"] as? String ?? "").contains("expired"), closed.stdout)
        XCTAssertGreaterThanOrEqual(closedAt, expires, "not closed before its exp")
        let streamed = try stream.finish(timeout: 30)
        XCTAssertEqual(streamed.status, 0, "curl: \(streamed.stderr)\n\(streamed.stdout)")
        XCTAssertTrue(streamed.stdout.contains("event: error"), streamed.stdout)
        XCTAssertTrue(streamed.stdout.contains("token_expired"), streamed.stdout)

        // The refreshed client outlives the first token and still receives.
        try Wait.until("the first token has expired", timeout: 30) { Date().timeIntervalSince1970 > expires + 0.5 }
        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("a.after", "still here"))
        let stayed = try refreshed.finish(timeout: 20)
        let lines = jsonLines(stayed.stdout)
        XCTAssertTrue(lines.contains { $0["type"] as? String == "refreshed" }, stayed.stdout)
        XCTAssertEqual(lines.last?["topic"] as? String, "a.after", stayed.stdout + stayed.stderr)
        XCTAssertTrue(daemon.log.contains("expired"), daemon.log)
    }

    /// A fresh token sent right behind a subscribe that waits for the broker (here for the
    /// budget, `upstream_subscriptions_per_s`, behind 18 prefixes at 2 a second) is taken when
    /// the old one expires: the client gets `refreshed`, is not closed, and gets its `subscribed`
    /// once the prefix is forwarded. Before, the refresh waited behind the subscribe, and the
    /// client was closed with 4401 at its exp.
    func testARefreshWaitingBehindASubscribeIsTakenBeforeTheTokenExpires() throws {
        let secret = try writeSecret()
        let port = try FreePort.find()
        let daemon = try gatewayDaemon(
            "jwt_secret_file = \"\(secret)\"\nupstream_subscriptions_per_s = 2", port: port)
        let fill = (0..<20).map { "fill.\($0)." }
        let fillerToken = try token(key: secret, subject: "filler", subscribe: ["fill."])
        let filler = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                    "python/http_clients.py"
                ).path, "ws-since", "\(port)", "[]", "fill.end", "-",
                "?" + fill.map { "prefix=\($0)" }.joined(separator: "&") + "&access_token=\(fillerToken)",
            ])
        defer { withExtendedLifetime(filler) {} }
        try Wait.until("prefixes wait for the budget") {
            (try HTTPProbe.metrics(port: port)["zpub_http_upstream_waiting"] ?? 0) >= 10
        }
        let fresh = try token(key: secret, expiresIn: "120")
        let short = try token(key: secret, expiresIn: "3")
        let expires = try XCTUnwrap(Self.claims(of: short)?["exp"] as? Double)
        let run = try Run.python(
            "gateway_credentials.py", ["ws-refresh-behind", "\(port)", short, fresh, "a."], timeout: 30)
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = jsonLines(run.stdout)
        XCTAssertEqual(
            lines.map { "\($0["type"] ?? "close \($0["close"] ?? "")")" }, ["refreshed", "subscribed"], run.stdout)
        XCTAssertGreaterThan(Date().timeIntervalSince1970, expires, "the subscribe waited past the first token's exp")
        _ = daemon
    }

    private static func claims(of token: String) -> [String: Any]? {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// EdDSA and RS256 public keys made by openssl; a reload swaps the key, and a bad key file
    /// is refused with the old one kept.
    func testEdDSAAndRS256KeysAndTheirReload() throws {
        try openssl(["genpkey", "-algorithm", "ed25519", "-out", path("ed.key")])
        try openssl(["pkey", "-in", path("ed.key"), "-pubout", "-out", path("ed.pub")])
        try openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path("rsa.key")])
        try openssl(["pkey", "-in", path("rsa.key"), "-pubout", "-out", path("rsa.pub")])
        let port = try FreePort.find()
        let daemon = try gatewayDaemon("jwt_public_key_file = \"\(path("ed.pub"))\"", port: port)
        let edToken = try token("EdDSA", key: path("ed.key"))
        let rsaToken = try token("RS256", key: path("rsa.key"))
        XCTAssertEqual(try sse(port, "/events?prefix=a.&access_token=\(edToken)").status, 200)
        let wrongKind = try sse(port, "/events?prefix=a.&access_token=\(rsaToken)")
        XCTAssertEqual(refusal(wrongKind).1, "bad_token")
        XCTAssertTrue(wrongKind.text.contains("RS256"), wrongKind.text)

        func reload(_ keyFile: String, expect marker: String) throws {
            let before = daemon.log.components(separatedBy: marker).count
            try "[http]\nenabled = true\nlisten = \"127.0.0.1:\(port)\"\njwt_public_key_file = \"\(keyFile)\"\n"
                .write(to: daemon.configURL, atomically: true, encoding: .utf8)
            daemon.signal(SIGHUP)
            try Wait.until("the log says \(marker)\n\(daemon.log)") {
                daemon.log.components(separatedBy: marker).count > before
            }
        }
        try reload(path("rsa.pub"), expect: "configuration reloaded")
        XCTAssertEqual(try sse(port, "/events?prefix=a.&access_token=\(rsaToken)").status, 200)
        XCTAssertEqual(refusal(try sse(port, "/events?prefix=a.&access_token=\(edToken)")).1, "bad_token")

        try reload(path("missing.pub"), expect: "reload refused")
        XCTAssertTrue(daemon.log.contains(path("missing.pub")), daemon.log)
        XCTAssertEqual(try sse(port, "/events?prefix=a.&access_token=\(rsaToken)").status, 200, "the old key stays")
    }

    // MARK: TLS

    /// The web app's side in PHP: a token issued by the PHP example, a publish through PHP's curl
    /// over HTTPS; a pyzmq SUB and a browser (headless Chromium, over WSS) both receive it.
    func testAPHPCurlPublishWithAJWTReachesPyzmqAndABrowserOverTLS() throws {
        guard FileManager.default.fileExists(atPath: "/usr/bin/php") else {
            throw XCTSkip("php-cli is not installed (make test-deps installs it)")
        }
        _ = try makeCertificate("server")
        try FileManager.default.copyItem(atPath: path("server.crt"), toPath: path("ca.pem"))
        let secret = try writeSecret()
        let port = try FreePort.find()
        let daemon = try gatewayDaemon(
            """
            jwt_secret_file = "\(secret)"
            tls_certificate_file = "\(path("server.crt"))"
            tls_key_file = "\(path("server.key"))"
            """, port: port, tls: true)
        XCTAssertTrue(daemon.log.contains("https://127.0.0.1:\(port)"), daemon.log)
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/php")
        func issue(_ user: String, subscribe: String, publish: String) throws -> String {
            let run = try Run.program(
                URL(fileURLWithPath: "/usr/bin/php"),
                [examples.appendingPathComponent("issue_token.php").path, secret, user, "600", subscribe, publish])
            XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
            return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let browserToken = try issue("browser-1", subscribe: #"["demo."]"#, publish: "[]")
        let jobToken = try issue("job-7", subscribe: "[]", publish: #"["demo."]"#)

        let ready = path("zmq.ready")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("python/gateway_credentials.py").path
        let pyzmq = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"), [script, "zmq-sub", daemon.xpub, "demo.", "1", ready])
        try daemon.waitForSubscriptions(1)

        let chromium = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                    .appendingPathComponent("python/headless_chromium.py").path,
                "https://127.0.0.1:\(port)/watch?prefix=demo.&access_token=\(browserToken)", "60",
                path("watch-tls.png"),
                #"JSON.stringify([...document.querySelectorAll("li")].map(l => l.textContent))"#,
                #"document.querySelectorAll("li").length >= 1"#,
            ], environment: ["ZPUB_CHROMIUM_FLAGS": "--ignore-certificate-errors"])
        // Publish until the browser shows a message (it subscribes at its own pace).
        var published = 0
        try Wait.until("the browser shows a message published from PHP", timeout: 90) {
            if chromium.isRunning {
                let php = try Run.program(
                    URL(fileURLWithPath: "/usr/bin/php"),
                    [examples.appendingPathComponent("http_publish_curl.php").path, "demo.php", "hello from php"],
                    environment: [
                        "ZPUB_HTTP": "https://127.0.0.1:\(port)", "ZPUB_TOKEN": jobToken,
                        "ZPUB_CA_FILE": path("ca.pem"),
                    ])
                XCTAssertEqual(php.status, 0, php.stdout + php.stderr)
                XCTAssertEqual(php.stdout.trimmingCharacters(in: .whitespacesAndNewlines), #"{"published":1}"#)
                published += 1
                usleep(200_000)
            }
            return !chromium.isRunning
        }
        let shown = try chromium.finish(timeout: 10)
        XCTAssertEqual(shown.status, 0, shown.stderr)
        let value = try XCTUnwrap(jsonLines(shown.stdout).first?["value"] as? String, shown.stdout)
        XCTAssertTrue(value.contains("demo.php") && value.contains("hello from php"), value)
        let received = try pyzmq.finish(timeout: 20)
        XCTAssertEqual(received.status, 0, received.stderr)
        XCTAssertEqual(
            received.stdout.trimmingCharacters(in: .whitespacesAndNewlines), #"["demo.php", "hello from php"]"#)
        XCTAssertGreaterThan(published, 0)
    }

    /// Over TLS a connection the gateway ends is closed once its goodbye is written, whether
    /// or not the client answers with a close_notify of its own (Python's ssl does not). NIO
    /// SSL waited 5 s for one: the connection kept its max_clients slot meanwhile, and zpubd's
    /// stop logged it as "still connected" after waiting 3 s for it (a walkthrough, 2026-12-07).
    func testATLSClientThatSendsNoCloseNotifyIsLetGoAtItsGoodbye() throws {
        _ = try makeCertificate("server")
        try FileManager.default.copyItem(atPath: path("server.crt"), toPath: path("ca.pem"))
        let port = try FreePort.find()
        let daemon = try gatewayDaemon(
            """
            tls_certificate_file = "\(path("server.crt"))"
            tls_key_file = "\(path("server.key"))"
            """, port: port, tls: true)
        let ready = path("sse.ready")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("python/gateway_credentials.py").path
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"), [script, "sse-hold", "\(port)", path("ca.pem"), "a.", ready])
        try Wait.until("the stream is open\n\(client.stderrSoFar)") { FileManager.default.fileExists(atPath: ready) }
        daemon.signal(SIGTERM)
        XCTAssertNotNil(daemon.waitForExit(timeout: 30), daemon.log)
        try Wait.until("the client saw its goodbye and the end\n\(client.stderrSoFar)") {
            client.stdoutSoFar.contains(#""eof": true"#)
        }
        XCTAssertTrue(client.stdoutSoFar.contains(#""goodbye": true"#), client.stdoutSoFar)
        XCTAssertTrue(
            daemon.log.contains("http gateway: 1 client sent what the broker forwarded and a goodbye (stopping)"),
            daemon.log)
        XCTAssertFalse(daemon.log.contains("still connected are closed now"), daemon.log)
        XCTAssertTrue(client.isRunning, "it never closed its side")
    }

    /// A certificate swapped by SIGHUP is served to the next client, while a WebSocket opened
    /// over the old one keeps receiving; a key that does not fit is refused, the old pair stays.
    func testACertificateSwappedBySIGHUPIsServedToTheNextClientWhileAWebSocketKeepsReceiving() throws {
        let first = try makeCertificate("first")
        let second = try makeCertificate("second")
        let ca =
            try String(contentsOfFile: path("first.crt"), encoding: .utf8)
            + String(contentsOfFile: path("second.crt"), encoding: .utf8)
        try ca.write(toFile: path("ca.pem"), atomically: true, encoding: .utf8)
        func install(_ certificate: String, _ key: String) throws {
            for (from, to) in [(certificate, "server.crt"), (key, "server.key")] {
                try? FileManager.default.removeItem(atPath: path(to))
                try FileManager.default.copyItem(atPath: path(from), toPath: path(to))
            }
        }
        try install("first.crt", "first.key")
        let port = try FreePort.find()
        let daemon = try gatewayDaemon(
            """
            tls_certificate_file = "\(path("server.crt"))"
            tls_key_file = "\(path("server.key"))"
            """, port: port, tls: true)
        XCTAssertEqual(try httpsGet(port, "/healthz")["cert_sha256"] as? String, first)

        let ready = path("wss.ready")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("python/gateway_credentials.py").path
        let client = try RunningProgram(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [script, "wss-sub", "\(port)", path("ca.pem"), "live.", "1", ready])
        try Wait.until("the WSS client is subscribed") { FileManager.default.fileExists(atPath: ready) }

        func reload(expect marker: String) throws {
            let before = daemon.log.components(separatedBy: marker).count
            daemon.signal(SIGHUP)
            try Wait.until("the log says \(marker)\n\(daemon.log)") {
                daemon.log.components(separatedBy: marker).count > before
            }
        }
        try install("second.crt", "second.key")
        try reload(expect: "configuration reloaded")
        XCTAssertEqual(try httpsGet(port, "/healthz")["cert_sha256"] as? String, second, "the next client")

        try install("first.crt", "second.key")
        try reload(expect: "reload refused")
        XCTAssertTrue(daemon.log.contains("does not fit"), daemon.log)
        XCTAssertEqual(try httpsGet(port, "/healthz")["cert_sha256"] as? String, second, "the old pair stays")

        let clients = try Clients()
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("live.1", "after two reloads"))
        let run = try client.finish(timeout: 20)
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = jsonLines(run.stdout)
        XCTAssertEqual(lines.first?["cert_sha256"] as? String, first, "opened over the first certificate")
        XCTAssertEqual(lines.last?["topic"] as? String, "live.1", run.stdout)
    }
}
