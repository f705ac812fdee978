import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// CURVE, the ZAP handler's allow lists, and the control socket's guard rails, against the
/// real daemon.
final class SecurityTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-keys-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// `zpub keygen` into the test directory; returns the key pair it wrote.
    private func keygen(_ name: String) throws -> CurveKeyPair {
        let base = directory.appendingPathComponent(name).path
        let run = try Run.program(Binaries.zpub, ["keygen", base])
        XCTAssertEqual(run.status, 0, run.stderr)
        let secret = try String(contentsOfFile: base + ".secret", encoding: .utf8)
        let key = try XCTUnwrap(secret.split(separator: "\n").last.flatMap { CurveKey(z85: $0) })
        return try CurveKeyPair(secretKey: key)
    }

    /// The secret key only its owner can read; the public key anyone (a client run by another
    /// user than the `sudo zpub keygen` that made the server's pair passes it as --server-key).
    func testKeygenWritesASecretKeyOnlyItsOwnerCanReadAndAPublicKeyAnyoneCan() throws {
        let pair = try keygen("server")
        for (suffix, mode) in [(".public", 0o644), (".secret", 0o600)] {
            let attributes = try FileManager.default.attributesOfItem(
                atPath: directory.appendingPathComponent("server" + suffix).path)
            XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, mode, suffix)
        }
        let publicText = try String(contentsOf: directory.appendingPathComponent("server.public"), encoding: .utf8)
        XCTAssertTrue(publicText.contains(pair.publicKey.z85))
        let again = try Run.program(Binaries.zpub, ["keygen", directory.appendingPathComponent("server").path])
        XCTAssertEqual(again.status, 1, "never overwrites a key without --force")
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)
        // A directory is no base name: it wrote the hidden files .public and .secret in it.
        let intoDirectory = try Run.program(Binaries.zpub, ["keygen", directory.path + "/"])
        XCTAssertEqual(intoDirectory.status, 64, intoDirectory.stderr)
        XCTAssertTrue(intoDirectory.stderr.contains("names a directory"), intoDirectory.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent(".secret").path))
    }

    private func curveDaemon(allowedKeys: [CurveKey]?, extra: String = "") throws -> (Daemon, CurveKeyPair) {
        let server = try keygen("server")
        var configuration = "[security]\nserver_secret_key_file = \"\(directory.path)/server.secret\"\n"
        for role in ["pull", "xpub", "control"] {
            configuration += "[security.\(role)]\ncurve = true\n"
            if let allowedKeys {
                let file = directory.appendingPathComponent("allowed-\(role)")
                try allowedKeys.map(\.z85).joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
                configuration += "allowed_keys = \"\(file.path)\"\n"
            }
        }
        return (try Daemon(configuration: configuration + extra, waitUntilReady: false), server)
    }

    private func curveSocket(
        _ clients: Clients, _ type: SocketType, _ endpoint: String, server: CurveKey, client: CurveKeyPair
    ) throws -> Socket {
        try clients.socket(type, connect: endpoint) { try $0.makeCurveClient(serverKey: server, keyPair: client) }
    }

    func testCurveClientsWithAnAllowedKeyGetInAndOthersAreDeniedAndCounted() throws {
        let allowed = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let (daemon, server) = try curveDaemon(allowedKeys: [allowed.publicKey])
        let clients = try Clients()
        let control = try curveSocket(clients, .req, daemon.control, server: server.publicKey, client: allowed)
        try Wait.until("the CURVE control socket answers") {
            try control.send(text: "PING")
            return try control.receiveFrames(timeoutMilliseconds: 2_000) == [Array(#"{"pong":true}"#.utf8)]
        }
        let subscriber = try curveSocket(clients, .sub, daemon.xpub, server: server.publicKey, client: allowed)
        try subscriber.setOption(.subscribe, bytes: [])
        let intruder = try curveSocket(clients, .sub, daemon.xpub, server: server.publicKey, client: stranger)
        try intruder.setOption(.subscribe, bytes: [])
        let plain = try clients.subscriber(daemon.xpub, prefixes: [""])  // no CURVE at all
        try daemon.waitForCurveSubscriptions(1, control: control)

        let push = try curveSocket(clients, .push, daemon.pull, server: server.publicKey, client: allowed)
        try push.send(frames: frames("secret.topic", "for members"))
        XCTAssertEqual(try subscriber.receive(1), [frames("secret.topic", "for members")])
        try intruder.assertNothing(within: 300)
        try plain.assertNothing(within: 50)

        // The intruder's and the plain client's handshakes fail in libzmq's own time: wait for both.
        var stats: StatsSnapshot?
        try Wait.until("the intruder is denied and the plain client fails its handshake: \(String(describing: stats))")
        {
            try control.send(text: "STATS")
            let reply = try XCTUnwrap(try control.receiveFrames(timeoutMilliseconds: 2_000))
            stats = try JSONDecoder().decode(StatsSnapshot.self, from: Data(reply[0]))
            return stats?.security.deniedBySocket["xpub"] ?? 0 >= 1 && stats?.handshakeFailures ?? 0 >= 1
        }
        XCTAssertEqual(Set(stats?.security.curve ?? []), ["pull", "xpub", "control"])
        XCTAssertTrue(daemon.log.contains("denied a connection to xpub: public key not allowed"), daemon.log)
        // The XPUB endpoint is ipc: libzmq names a local peer by its credentials (host, then the
        // peer's uid, gid and pid; SO_PEERCRED), here those of this very process.
        let denial = daemon.log.split(separator: "\n").first {
            $0.contains("denied a connection to xpub: public key not allowed")
        }
        XCTAssertTrue(denial?.contains(" peer=localhost:\(getuid()):\(getgid()):\(getpid()) ") ?? false, daemon.log)
        XCTAssertFalse(daemon.log.contains(server.secretKey.z85), "the secret key never reaches a log")
        try control.send(text: "CONFIG")
        let config = String(
            decoding: try XCTUnwrap(try control.receiveFrames(timeoutMilliseconds: 2_000))[0], as: UTF8.self)
        XCTAssertFalse(config.contains(server.secretKey.z85), "nor a CONFIG reply")
        XCTAssertTrue(config.contains("server.secret"), "the path is shown")
    }

    func testTheCLIUsesKeysForEveryCommand() throws {
        let (daemon, server) = try curveDaemon(allowedKeys: nil)
        let keys = ["--server-key", directory.appendingPathComponent("server.public").path]
        try Wait.until("the CURVE daemon answers zpub ping") {
            try Run.program(Binaries.zpub, ["ping", "-c", daemon.control, "--timeout", "500"] + keys).status == 0
        }
        let subscriber = try RunningProgram(Binaries.zpub, ["sub", "-e", daemon.xpub, "-n", "1"] + keys + ["k"])
        let stats = try Run.program(Binaries.zpub, ["stats", "--json", "-c", daemon.control] + keys)
        XCTAssertEqual(stats.status, 0, stats.stderr)
        try Wait.until("the CLI subscriber is counted") {
            let run = try Run.program(Binaries.zpub, ["subscriptions", "--json", "-c", daemon.control] + keys)
            return run.stdout.contains(#""total":1"#)
        }
        XCTAssertEqual(try Run.program(Binaries.zpub, ["pub", "-e", daemon.pull, "k", "v"] + keys).status, 0)
        XCTAssertEqual(try subscriber.finish(timeout: 10).stdout, "k\tv\n")
        let without = try Run.program(Binaries.zpub, ["ping", "-c", daemon.control, "--timeout", "500"])
        XCTAssertEqual(without.status, 1, "a client without CURVE gets no answer")
        _ = server
    }

    /// A refused or failed handshake is named by the CLI instead of waited on: libzmq 4.3.4 never
    /// retries a refused one, so a subscriber would otherwise wait in silence forever.
    func testTheCLINamesARefusedOrFailedHandshake() throws {
        let member = try keygen("member")
        let (daemon, _) = try curveDaemon(allowedKeys: [member.publicKey])
        let serverKey = ["--server-key", directory.appendingPathComponent("server.public").path]
        try Wait.until("the CURVE daemon answers a member's zpub ping") {
            let keys = serverKey + ["--client-key", directory.appendingPathComponent("member.secret").path]
            return try Run.program(Binaries.zpub, ["ping", "-c", daemon.control, "--timeout", "500"] + keys).status == 0
        }
        // A key not in allowed_keys (zpub makes a fresh pair without --client-key): told, and the
        // subscriber ends long before its --timeout.
        let stranger = try Run.program(
            Binaries.zpub, ["sub", "-e", daemon.xpub, "--timeout", "60000", "t"] + serverKey, timeout: 30)
        XCTAssertEqual(stranger.status, 1)
        XCTAssertTrue(
            stranger.stderr.contains(
                "zpubd at \(daemon.xpub) refused this client: its allowed_keys or allowed_addresses do not admit"),
            stranger.stderr)
        XCTAssertTrue(stranger.stderr.contains("giving up"), stranger.stderr)
        XCTAssertFalse(stranger.stderr.contains("no message within"), stranger.stderr)

        let plain = try Run.program(Binaries.zpub, ["sub", "-e", daemon.xpub, "--timeout", "60000", "t"], timeout: 30)
        XCTAssertEqual(plain.status, 1)
        XCTAssertTrue(plain.stderr.contains("it requires CURVE on this socket; give --server-key"), plain.stderr)
        XCTAssertFalse(plain.stderr.contains("no message within"), plain.stderr)

        // Another server's key: the broker hangs up on a HELLO it cannot open, and libzmq retries,
        // so the subscriber says so and goes on until its --timeout.
        _ = try keygen("other")
        let otherKey = ["--server-key", directory.appendingPathComponent("other.public").path]
        let wrong = try Run.program(
            Binaries.zpub, ["sub", "-e", daemon.xpub, "--timeout", "3000", "t"] + otherKey, timeout: 30)
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(
            wrong.stderr.contains("closed the connection during the CURVE handshake"), wrong.stderr)
        XCTAssertTrue(wrong.stderr.contains("is --server-key this broker's public key"), wrong.stderr)

        // A publisher and a control request say why they got nowhere.
        let publisher = try Run.program(
            Binaries.zpub, ["pub", "-e", daemon.pull, "--timeout", "1000", "t", "m"] + serverKey, timeout: 30)
        XCTAssertEqual(publisher.status, 1)
        XCTAssertTrue(publisher.stderr.contains("refused this client"), publisher.stderr)
        // A control request ends as soon as libzmq gives the connection up, long before its
        // --timeout (the run's own limit is half of it).
        let stats = try Run.program(Binaries.zpub, ["stats", "-c", daemon.control, "--timeout", "60000"], timeout: 30)
        XCTAssertEqual(stats.status, 1)
        XCTAssertTrue(stats.stderr.contains("it requires CURVE on this socket"), stats.stderr)
        XCTAssertFalse(stats.stderr.contains("within 60000 ms"), stats.stderr)
    }

    /// `zpub sub --since` asks the control socket which broker is active, and waits for one
    /// to come. A CURVE control socket asked without --server-key refuses every time: that is
    /// told at once. The follower waited out its --timeout and asked whether the broker, which
    /// had answered, was running.
    func testAFollowerRefusedByACurveControlSocketIsToldAtOnce() throws {
        _ = try keygen("server")
        let daemon = try Daemon(
            configuration:
                "[security]\nserver_secret_key_file = \"\(directory.path)/server.secret\"\n[security.control]\ncurve = true\n",
            waitUntilReady: false)
        // Started before the broker binds, the follower waits for it (a refused connection is
        // not final), then meets its refusal.
        let follower = try Run.program(
            Binaries.zpub, ["sub", "--since", "0", "-e", daemon.xpub, "-c", daemon.control, "--timeout", "60000", "t"],
            timeout: 30)
        XCTAssertEqual(follower.status, 1, follower.stderr)
        XCTAssertTrue(follower.stderr.contains("it requires CURVE on this socket; give --server-key"), follower.stderr)
        XCTAssertFalse(follower.stderr.contains("is it running"), follower.stderr)
    }

    func testAddressAllowListsApplyPerSocket() throws {
        // The PULL listens on every address (on 127.0.0.1 alone, a list without loopback is
        // refused at start: no client could connect), and loopback clients are refused.
        let pullPort = try FreePort.find()
        let pull = "tcp://127.0.0.1:\(pullPort)"
        let daemon = try Daemon(
            configuration:
                "[security.pull]\nallowed_addresses = [\"10.0.0.0/8\"]\n[security.xpub]\nallowed_addresses = [\"127.0.0.0/8\"]\n",
            endpoints: [.pull: "tcp://*:\(pullPort)", .xpub: "tcp://127.0.0.1:\(try FreePort.find())"])
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: [""])
        try daemon.waitForSubscriptions(1)
        let push = try clients.socket(.push, connect: pull)
        _ = try push.send(frames: frames("from", "loopback"), dontWait: true)
        try subscriber.assertNothing(within: 500)
        try Wait.until("the denial is counted") { try daemon.stats().security.deniedBySocket["pull"] ?? 0 >= 1 }
        XCTAssertTrue(daemon.log.contains("denied a connection to pull: address not allowed"), daemon.log)
        XCTAssertTrue(daemon.log.contains("peer=127.0.0.1"), daemon.log)
        // Without CURVE only the address can be at fault: zpub says so, not "give --client-key".
        let refused = try Run.program(
            Binaries.zpub, ["pub", "-e", pull, "--timeout", "1000", "t", "m"], timeout: 30)
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(
            refused.stderr.contains("its allowed_addresses do not admit this client's address"), refused.stderr)
        XCTAssertFalse(refused.stderr.contains("--client-key"), refused.stderr)
        // On a loopback address alone, such a list admits nobody: refused before binding,
        // with the line and the address to add.
        let configuration = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-loopback-refused-\(UUID().uuidString).toml")
        defer { try? FileManager.default.removeItem(at: configuration) }
        try
            "[endpoints]\npull = [\"tcp://127.0.0.1:\(pullPort)\"]\n[security.pull]\nallowed_addresses = [\"10.0.0.0/8\"]\n"
            .write(to: configuration, atomically: true, encoding: .utf8)
        let check = try Run.program(Binaries.zpubd, ["--config", configuration.path, "--check-config"], timeout: 30)
        XCTAssertEqual(check.status, 1, check.stdout + check.stderr)
        XCTAssertTrue(check.stderr.contains(":4:"), check.stderr)
        XCTAssertTrue(check.stderr.contains("refuses every client of tcp://127.0.0.1:\(pullPort)"), check.stderr)
        XCTAssertTrue(check.stderr.contains("Add \"127.0.0.1\" to allowed_addresses"), check.stderr)
    }

    /// ZMTP/1.0 peers skip the handshake; without ZAP, libzmq would hand their raw bytes to the
    /// broker as messages. With zpubd's ZAP domains they are refused.
    func testLegacyZMTP1GarbageIsNotForwarded() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(endpoints: [.pull: "tcp://127.0.0.1:\(port)"])
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: [""])
        try daemon.waitForSubscriptions(1)
        // A ZMTP/1.0 greeting (length 1, flags 0: an empty identity), then a 16-byte "message".
        // RawTCP.send returns once zpubd has closed each connection, i.e. has read the bytes.
        XCTAssertTrue(try RawTCP.send([0x01, 0x00] + [0x11, 0x00] + Array("raw bytes inside".utf8), port: port))
        XCTAssertTrue(try RawTCP.send(Array("GET / HTTP/1.1\r\nHost: zpub\r\n\r\n".utf8), port: port))
        XCTAssertEqual(try daemon.stats().messagesIn, 0)
        // A real message after them: it must be the first and only one the subscriber gets (had
        // the garbage become a message, it would come first, the broker forwarding in order).
        let push = try clients.socket(.push, connect: "tcp://127.0.0.1:\(port)")
        try push.send(frames: frames("real", "message"))
        XCTAssertEqual(try subscriber.receive(1), [frames("real", "message")])
        XCTAssertEqual(try daemon.stats().messagesIn, 1)
    }

    func testTheControlSocketIsNeverOpenToTheNetworkWithoutCurve() throws {
        let run = try Run.program(Binaries.zpubd, ["--control", "tcp://0.0.0.0:5999"])
        XCTAssertEqual(run.status, 78)
        XCTAssertTrue(
            run.stderr.contains("refusing to bind the control socket to tcp://0.0.0.0:5999 without CURVE"), run.stderr)
        XCTAssertTrue(run.stderr.contains("[security.control]"), run.stderr)
    }

    func testAnIPCControlSocketGetsMode0660() throws {
        let daemon = try Daemon()
        let path = String(daemon.control.dropFirst("ipc://".count))
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o660)
    }

    func testUnencryptedNetworkEndpointsAreWarnedAbout() throws {
        let daemon = try Daemon(endpoints: [.xpub: "tcp://0.0.0.0:\(try FreePort.find())"])
        XCTAssertTrue(daemon.log.contains("listens on tcp://0.0.0.0"), daemon.log)
        XCTAssertTrue(daemon.log.contains("without encryption"), daemon.log)
    }

    func testAllowedKeysAreReloadedOnSIGHUP() throws {
        let first = try CurveKeyPair.generate()
        let second = try CurveKeyPair.generate()
        let (daemon, server) = try curveDaemon(allowedKeys: [first.publicKey])
        let clients = try Clients()
        func answers(_ pair: CurveKeyPair) throws -> Bool {
            let socket = try curveSocket(clients, .req, daemon.control, server: server.publicKey, client: pair)
            defer { clients.close(socket) }
            try socket.send(text: "PING")
            return try socket.receiveFrames(timeoutMilliseconds: 1_000) != nil
        }
        try Wait.until("the first key is let in") { try answers(first) }
        XCTAssertFalse(try answers(second))
        try second.publicKey.z85.write(
            to: directory.appendingPathComponent("allowed-control"), atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        try Wait.until("the second key is let in after the reload") { try answers(second) }
        XCTAssertFalse(try answers(first))
    }

    /// A key taken out of allowed_keys ends the connections made with it: ZAP checks a
    /// connection at its handshake only, so the reload binds the socket's endpoints again, and
    /// its clients reconnect and are checked anew. Before, the subscriber with the revoked key
    /// kept receiving for as long as it stayed connected, while the log said the key was out.
    func testAKeyTakenOutOfAllowedKeysEndsTheConnectionsMadeWithIt() throws {
        let (kept, revoked) = (try CurveKeyPair.generate(), try CurveKeyPair.generate())
        let (daemon, server) = try curveDaemon(allowedKeys: [kept.publicKey, revoked.publicKey])
        let clients = try Clients()
        let control = try curveSocket(clients, .req, daemon.control, server: server.publicKey, client: kept)
        let stays = try curveSocket(clients, .sub, daemon.xpub, server: server.publicKey, client: kept)
        let goes = try curveSocket(clients, .sub, daemon.xpub, server: server.publicKey, client: revoked)
        for socket in [stays, goes] { try socket.setOption(.subscribe, bytes: []) }
        try daemon.waitForCurveSubscriptions(2, control: control)
        let push = try curveSocket(clients, .push, daemon.pull, server: server.publicKey, client: kept)
        try push.send(frames: frames("t", "before"))
        XCTAssertEqual(try goes.receive(1), [frames("t", "before")])
        XCTAssertEqual(try stays.receive(1), [frames("t", "before")])

        try kept.publicKey.z85.write(
            to: directory.appendingPathComponent("allowed-xpub"), atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        try Wait.until("the reload is applied") { daemon.log.contains("configuration reloaded") }
        XCTAssertTrue(
            daemon.log.contains("the allow lists of xpub no longer let in every client they did"), daemon.log)
        try sendUntilReceived(by: stays, from: push, "the subscriber with the kept key is back")
        try goes.assertNothing(within: 500)
        try Wait.until("its reconnections are refused") {
            try control.send(text: "STATS")
            guard let reply = try control.receiveFrames(timeoutMilliseconds: 2_000) else { return false }
            let stats = try JSONDecoder().decode(StatsSnapshot.self, from: Data(reply[0]))
            return stats.security.deniedBySocket["xpub"] ?? 0 >= 1
        }
        XCTAssertFalse(daemon.log.contains("allow lists of pull"), "pull's lists are as they were")
    }

    /// The same for an address taken out of allowed_addresses.
    func testAnAddressTakenOutOfAllowedAddressesEndsTheConnectionsFromIt() throws {
        let port = try FreePort.find()
        let daemon = try Daemon(
            configuration: "[security.xpub]\nallowed_addresses = [\"127.0.0.1\"]\n",
            endpoints: [.xpub: "tcp://0.0.0.0:\(port)"])
        let clients = try Clients()
        let subscriber = try clients.subscriber("tcp://127.0.0.1:\(port)", prefixes: [""])
        try daemon.waitForSubscriptions(1)
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("t", "before"))
        XCTAssertEqual(try subscriber.receive(1), [frames("t", "before")])
        try "[security.xpub]\nallowed_addresses = [\"10.0.0.0/8\"]\n".write(
            to: daemon.configURL, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        try Wait.until("the subscriber's reconnection is refused") {
            try daemon.stats().security.deniedBySocket["xpub"] ?? 0 >= 1
        }
        try push.send(frames: frames("t", "after"))
        try subscriber.assertNothing(within: 500)
        try daemon.waitForSubscriptions(0)
    }

    /// libzmq copies a socket's options into an endpoint when it is bound: CURVE switched on by
    /// a reload binds the socket's endpoints again, or they would stay open to plain clients
    /// (they did). The plain subscriber connected before is dropped and cannot come back; a
    /// CURVE one gets in.
    func testCURVESwitchedOnByAReloadShutsOutPlainClients() throws {
        let server = try keygen("server")
        let keyLine = "[security]\nserver_secret_key_file = \"\(directory.path)/server.secret\"\n"
        let daemon = try Daemon(configuration: keyLine)
        let clients = try Clients()
        let plain = try clients.subscriber(daemon.xpub, prefixes: [""])
        try daemon.waitForSubscriptions(1)
        let push = try clients.socket(.push, connect: daemon.pull)
        try push.send(frames: frames("t", "before"))
        XCTAssertEqual(try plain.receive(1), [frames("t", "before")])

        try (keyLine + "[security.xpub]\ncurve = true\n").write(
            to: daemon.configURL, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        try Wait.until("the reload is applied") { daemon.log.contains("configuration reloaded") }
        XCTAssertTrue(daemon.log.contains("CURVE changed on xpub"), daemon.log)
        let member = try curveSocket(
            clients, .sub, daemon.xpub, server: server.publicKey, client: try CurveKeyPair.generate())
        try member.setOption(.subscribe, bytes: [])
        try sendUntilReceived(by: member, from: push, "the CURVE subscriber gets a message")
        try plain.assertNothing(within: 300)
        XCTAssertEqual(try daemon.stats().security.curve, ["xpub"])
    }

    /// A RELOAD that switches CURVE on for the control socket it came through is answered
    /// before that socket's endpoints are bound again, which ends its connection: the admin
    /// hears the outcome (it timed out before). Then plain requests go unanswered, and a CURVE
    /// client with an allowed key is served.
    func testARELOADThatSwitchesCURVEOnForItsOwnControlSocketIsAnsweredFirst() throws {
        let server = try keygen("server")
        let admin = try CurveKeyPair.generate()
        let allowed = directory.appendingPathComponent("allowed-control")
        try admin.publicKey.z85.write(to: allowed, atomically: true, encoding: .utf8)
        let keyLine = "[security]\nserver_secret_key_file = \"\(directory.path)/server.secret\"\n"
        let daemon = try Daemon(configuration: keyLine)
        let clients = try Clients()
        let plain = try clients.socket(.req, connect: daemon.control)
        try plain.send(text: "PING")
        XCTAssertEqual(try plain.receiveFrames(timeoutMilliseconds: 10_000), [Array(#"{"pong":true}"#.utf8)])

        try (keyLine + "[security.control]\ncurve = true\nallowed_keys = \"\(allowed.path)\"\n").write(
            to: daemon.configURL, atomically: true, encoding: .utf8)
        try plain.send(text: "RELOAD")
        let reply = try XCTUnwrap(
            try plain.receiveFrames(timeoutMilliseconds: 30_000), "RELOAD is answered on the connection it came through"
        )
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(reply.joined())) as? [String: Any])
        XCTAssertEqual(json["reloaded"] as? Bool, true, "\(json)")
        XCTAssertEqual((json["problems"] as? [Any])?.count, 0, "\(json)")
        XCTAssertTrue(daemon.log.contains("CURVE changed on control"), daemon.log)
        // The reload's line says the control endpoints change once that reply is sent, rather
        // than listing them as if they stayed as they were.
        let reloaded = daemon.log.split(separator: "\n").first { $0.contains("configuration reloaded from") }
        XCTAssertTrue(reloaded?.contains("control_after_reply=") == true, daemon.log)

        let curve = try curveSocket(clients, .req, daemon.control, server: server.publicKey, client: admin)
        try curve.send(text: "PING")
        XCTAssertEqual(
            try curve.receiveFrames(timeoutMilliseconds: 10_000), [Array(#"{"pong":true}"#.utf8)],
            "a CURVE admin is served once the endpoint is bound again")
        let late = try clients.socket(.req, connect: daemon.control)
        try late.send(text: "PING")
        XCTAssertNil(try late.receiveFrames(timeoutMilliseconds: 1_000), "a plain request is not served any more")
    }

    /// The packaged service runs as a DynamicUser=, which cannot read a key only root may read:
    /// systemd passes it in (LoadCredential=) under $CREDENTIALS_DIRECTORY, and the
    /// configuration names it credential:NAME. Outside systemd that is refused with the reason.
    func testAKeyPassedAsASystemdCredentialIsRead() throws {
        let server = try keygen("server")
        let credentials = directory.appendingPathComponent("credentials")
        try FileManager.default.createDirectory(at: credentials, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: directory.appendingPathComponent("server.secret"),
            to: credentials.appendingPathComponent("server.secret"))
        let configuration =
            "[security]\nserver_secret_key_file = \"credential:server.secret\"\n[security.xpub]\ncurve = true\n"
        let daemon = try Daemon(configuration: configuration, environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        let clients = try Clients()
        let member = try curveSocket(
            clients, .sub, daemon.xpub, server: server.publicKey, client: try CurveKeyPair.generate())
        try member.setOption(.subscribe, bytes: [])
        try daemon.waitForSubscriptions(1)
        try clients.socket(.push, connect: daemon.pull).send(frames: frames("t", "through a credential"))
        XCTAssertEqual(try member.receive(1), [frames("t", "through a credential")])

        let file = directory.appendingPathComponent("credential.conf")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        let outside = try Run.program(Binaries.zpubd, ["--config", file.path, "--check-config"])
        XCTAssertEqual(outside.status, 1)
        XCTAssertTrue(outside.stderr.contains("LoadCredential=server.secret:"), outside.stderr)
        // The same reason for a list of allowed keys and the pair's peer key, not "does not
        // exist; create it".
        try """
        [security]
        server_secret_key_file = "\(directory.appendingPathComponent("server.secret").path)"
        [security.xpub]
        curve = true
        allowed_keys = "credential:clients.public"
        [ha]
        role = "primary"
        bind = "tcp://127.0.0.1:\(try FreePort.find())"
        peer = "tcp://127.0.0.1:\(try FreePort.find())"
        peer_public_key_file = "credential:peer.public"
        """.write(to: file, atomically: true, encoding: .utf8)
        let lists = try Run.program(Binaries.zpubd, ["--config", file.path, "--check-config"])
        XCTAssertEqual(lists.status, 1)
        XCTAssertTrue(lists.stderr.contains("LoadCredential=clients.public:"), lists.stderr)
        XCTAssertTrue(lists.stderr.contains("LoadCredential=peer.public:"), lists.stderr)
        XCTAssertFalse(lists.stderr.contains("does not exist"), lists.stderr)
        // Under systemd with other credentials passed (server.secret), but not these two.
        let others = try Run.program(
            Binaries.zpubd, ["--config", file.path, "--check-config"],
            environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        XCTAssertEqual(others.status, 1)
        for name in ["clients.public", "peer.public"] {
            XCTAssertTrue(
                others.stderr.contains("systemd passed no credential \(name) (it is not in $CREDENTIALS_DIRECTORY)"),
                others.stderr)
        }
        XCTAssertFalse(others.stderr.contains("does not exist"), others.stderr)
    }

    func testAMissingOrBadKeyFileIsRefusedAtStart() throws {
        let run = try Run.program(
            Binaries.zpubd,
            [
                "--check-config", "--config",
                try writeConfig(
                    "[security]\nserver_secret_key_file = \"/nonexistent/k\"\n[security.pull]\ncurve = true\n"),
            ])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("cannot read server_secret_key_file /nonexistent/k"), run.stderr)

        let noKey = try Run.program(Binaries.zpubd, ["--config", try writeConfig("[security.xpub]\ncurve = true\n")])
        XCTAssertEqual(noKey.status, 78)
        XCTAssertTrue(noKey.stderr.contains("no server_secret_key_file"), noKey.stderr)
    }

    /// zpub keygen's two files look alike; its header says which is which, so one given for
    /// the other is refused, naming the file to use. Both were once taken without a word (a
    /// public key as the server's secret, a secret key as --server-key); a key file without the
    /// header is still taken as it is.
    func testAKeyFileOfTheWrongKindIsRefusedNamingTheRightOne() throws {
        let server = try keygen("server")
        let (publicFile, secretFile) = ("\(directory.path)/server.public", "\(directory.path)/server.secret")
        let check = try Run.program(
            Binaries.zpubd,
            [
                "--check-config", "--config",
                try writeConfig(
                    "[security]\nserver_secret_key_file = \"\(publicFile)\"\n[security.pull]\ncurve = true\nallowed_keys = \"\(secretFile)\"\n"
                ),
            ])
        XCTAssertEqual(check.status, 1, check.stdout)
        XCTAssertTrue(
            check.stderr.contains(
                "server_secret_key_file \(publicFile) holds a CURVE public key (its first line says so), not a secret one: use \(secretFile)"
            ), check.stderr)
        XCTAssertTrue(check.stderr.contains("\(secretFile) holds a CURVE secret key"), check.stderr)

        for (flag, file, right) in [("--server-key", secretFile, publicFile), ("--client-key", publicFile, secretFile)]
        {
            let other = flag == "--server-key" ? ["--client-key", secretFile] : ["--server-key", publicFile]
            let ping = try Run.program(
                Binaries.zpub, ["ping", "-c", "ipc://\(directory.path)/none", "--timeout", "200", flag, file] + other)
            // A wrong command line, told before anything connects (64; it was 1, at the connect).
            XCTAssertEqual(ping.status, 64, ping.stdout)
            XCTAssertTrue(ping.stderr.contains("\(flag) \(file) holds a CURVE"), ping.stderr)
            XCTAssertTrue(ping.stderr.contains("use \(right)"), ping.stderr)
        }

        // Without the header (written by hand, or by another tool): taken as it is.
        let bare = directory.appendingPathComponent("bare.secret")
        try "\(server.secretKey.z85)\n".write(to: bare, atomically: true, encoding: .utf8)
        chmod(bare.path, 0o600)
        let plain = try Run.program(
            Binaries.zpubd,
            [
                "--check-config", "--config",
                try writeConfig(
                    "[security]\nserver_secret_key_file = \"\(bare.path)\"\n[security.pull]\ncurve = true\n"),
            ])
        XCTAssertEqual(plain.status, 0, plain.stderr)
    }

    /// Sends "after N" on topic t until `subscriber` receives one: a subscriber that is
    /// reconnecting, or whose subscription is on its way.
    private func sendUntilReceived(by subscriber: Socket, from push: Socket, _ what: String) throws {
        var number = 0
        try Wait.until(what) {
            number += 1
            try push.send(frames: frames("t", "after \(number)"))
            return try subscriber.receiveFrames(timeoutMilliseconds: 100) != nil
        }
    }

    private func writeConfig(_ text: String) throws -> String {
        let url = directory.appendingPathComponent("zpubd-\(UUID().uuidString.prefix(6)).conf")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}

extension Daemon {
    /// Like waitForSubscriptions, through a control socket that needs CURVE.
    func waitForCurveSubscriptions(_ total: Int, control: Socket) throws {
        try Wait.until("the broker counts \(total) subscriptions") {
            try control.send(text: "SUBSCRIPTIONS")
            guard let reply = try control.receiveFrames(timeoutMilliseconds: 2_000) else { return false }
            return try JSONDecoder().decode(SubscriptionList.self, from: Data(reply[0])).total == total
        }
    }
}
