import Foundation
import XCTest
import ZeroMQ

/// Multicast fan-out (PGM over UDP, `epgm://`): zpubd's XPUB on a multicast group beside its TCP
/// endpoint, real pyzmq subscribers on the group, all inside a network namespace whose loopback
/// carries multicast (so the host's network is left alone). The producer and the control socket
/// are ipc endpoints, reachable from the test's own namespace.
final class MulticastTests: XCTestCase {
    private static let ip = URL(fileURLWithPath: "/usr/sbin/ip")
    private static let group = "epgm://127.0.0.1;239.192.1.3:5597"

    private var namespace: String?

    override func setUpWithError() throws {
        try XCTSkipUnless(Context.hasCapability("pgm"), "this libzmq has no PGM")
        try XCTSkipUnless(geteuid() == 0, "a network namespace needs root")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.ip.path), "iproute2 is not installed")
        let name = "zpmc-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        let created = try Run.program(Self.ip, ["netns", "add", name])
        guard created.status == 0 else { throw XCTSkip("cannot create a network namespace: \(created.stderr)") }
        namespace = name
        for arguments in [
            ["link", "set", "lo", "up"], ["link", "set", "lo", "multicast", "on"],
            ["route", "add", "239.0.0.0/8", "dev", "lo"],
        ] {
            let run = try Run.program(Self.ip, ["-n", name] + arguments)
            XCTAssertEqual(run.status, 0, "ip \(arguments.joined(separator: " ")): \(run.stderr)")
        }
    }

    override func tearDown() {
        guard let namespace else { return }
        if let pids = try? Run.program(Self.ip, ["netns", "pids", namespace]) {
            for pid in pids.stdout.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
        }
        _ = try? Run.program(Self.ip, ["netns", "delete", namespace])
    }

    /// Two subscribers on the group get every message under their prefix, in order, and nothing
    /// else (they filter locally); the broker does not see them (no subscription crosses PGM) and
    /// CONFIG shows the group among the bound endpoints.
    func testSubscribersOnAMulticastGroupGetEveryMessageTheyFilterFor() throws {
        let namespace = try XCTUnwrap(namespace)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-mc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let pull = "ipc://\(directory.path)/pull"
        let control = "ipc://\(directory.path)/control"
        let broker = try RunningProgram(
            Self.ip,
            [
                "netns", "exec", namespace, Binaries.zpubd.path, "--pull", pull, "--xsub",
                "ipc://\(directory.path)/xsub",
                "--control", control, "--xpub", "tcp://127.0.0.1:5596", "--xpub", Self.group,
            ])
        let clients = try Clients()
        // A fresh REQ per request: one that timed out cannot send again.
        func ask(_ text: String) throws -> [String: Any]? {
            let requester = try clients.socket(.req, connect: control)
            defer { clients.close(requester) }
            try requester.send(text: text)
            guard let reply = try requester.receiveFrames(timeoutMilliseconds: 2_000)?.first else { return nil }
            return try JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any]
        }
        try Wait.until("zpubd answers in its namespace", timeout: 15) {
            guard broker.isRunning else {
                let exited = try broker.finish()
                throw XCTSkip("zpubd exited: \(exited.stdout)\(exited.stderr)")
            }
            return (try? ask("PING")) != nil
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("python/multicast_subscriber.py")
        let count = 50
        let subscribers = try (0..<2).map { index in
            let ready = directory.appendingPathComponent("ready-\(index)").path
            let program = try RunningProgram(
                Self.ip,
                [
                    "netns", "exec", namespace, "/usr/bin/python3", script.path, Self.group, "mc.", "\(count)", ready,
                ])
            return (program, ready)
        }
        let push = try clients.socket(.push, connect: pull)
        // A PGM receiver gets what is sent after it has joined: probe until both have.
        try Wait.until("both subscribers have joined the group", timeout: 20) {
            try push.send(frames: frames("mc.probe", "?"))
            return subscribers.allSatisfy { FileManager.default.fileExists(atPath: $0.1) }
        }
        for i in 0..<count {
            try push.send(frames: frames("mc.data", "\(i)"))
            try push.send(frames: frames("other.data", "not for them"))
        }
        for (program, _) in subscribers {
            let run = try program.finish(timeout: 30)
            XCTAssertEqual(run.status, 0, run.stderr)
            // OpenPGM writes its own warnings ("Warn: Interface lo reports as a loopback device.").
            let lines = run.stdout.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("Warn: ") }
            XCTAssertEqual(
                lines, (0..<count).map { "mc.data \($0)" },
                "every message under mc., in order, nothing else")
        }
        let subscriptions = try XCTUnwrap(try ask("SUBSCRIPTIONS"))
        XCTAssertEqual(subscriptions["total"] as? Int, 0, "PGM receivers send no subscriptions")
        let bound = try XCTUnwrap((try ask("CONFIG"))?["bound"] as? [String: [String]])
        XCTAssertEqual(bound["xpub"], ["tcp://127.0.0.1:5596", Self.group])
    }
}
