import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// Network faults between the broker and a subscriber: a partition and packet loss.
///
/// Each test builds its own little network: two network namespaces joined by a veth pair
/// (10.251.77.1/30 for the broker, .2 for the subscriber), which exist only inside those
/// namespaces; nothing else is ever addressed. zpubd runs in one namespace with its XPUB on the
/// veth address (control, pull and xsub on ipc endpoints in a temporary directory, which work
/// across namespaces: they are files), a pyzmq subscriber in the other, and the producer in the
/// test itself pushes through the ipc pull endpoint. Faults are nftables rules in those
/// namespaces' input hooks (`tc netem` is not available here). Figures go to standard output
/// as `figure: ...` lines; docs/reliability.md records them.
final class NetworkFaultTests: XCTestCase {
    private var lab: NetworkLab?
    private var directory: URL!
    private var broker: NamespacedBroker?
    private var subscriber: NamespacedSubscriber?
    private var clients: Clients?

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "network namespaces and nftables rules need root")
        guard let ip = NetworkLab.tool("ip"), let nft = NetworkLab.tool("nft") else {
            throw XCTSkip("`ip` (iproute2) or `nft` (nftables) is missing; `make test` installs them")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-netfault-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        NetworkLab.removeStale(ip: ip)
        lab = try NetworkLab(ip: ip, nft: nft)
    }

    override func tearDown() {
        subscriber?.stop()
        subscriber = nil
        broker?.stop()
        broker = nil
        clients = nil
        lab?.remove()
        lab = nil
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    // MARK: The faults

    /// The broker's own ZMTP heartbeats notice a subscriber it can no longer reach: its peer and
    /// its subscription are gone within the heartbeat interval plus timeout.
    func testBrokerDropsAPartitionedSubscriberWithinTheHeartbeatTimeout() throws {
        let (lab, broker, subscriber, _) = try startBrokerAndSubscriber(heartbeat: Self.shortHeartbeat)
        let partitioned = try lab.partition()
        let detected = try waitUntilBrokerForgetsTheSubscriber(broker, since: partitioned)
        let bound = Self.shortHeartbeat.detectionBound
        print(
            String(
                format: "figure: partition detected by the broker in %.2f s (heartbeat %d/%d ms, bound %.2f s)",
                detected, Self.shortHeartbeat.interval, Self.shortHeartbeat.timeout, bound))
        if let noticed = subscriber.firstEvent("disconnected", after: partitioned) {
            print(String(format: "figure: partition detected by the subscriber in %.2f s", noticed - partitioned))
        }
        XCTAssertLessThanOrEqual(detected, bound, "the broker took longer than its heartbeat allows")
    }

    /// Once the link heals, the subscriber reconnects by itself, its subscription is back in the
    /// broker's table and messages flow to it again.
    func testTrafficResumesWhenThePartitionHeals() throws {
        let (lab, broker, subscriber, push) = try startBrokerAndSubscriber(heartbeat: Self.shortHeartbeat)
        let partitioned = try lab.partition()
        _ = try waitUntilBrokerForgetsTheSubscriber(broker, since: partitioned)
        // A partition of 3 s: long enough for the subscriber's reconnect attempts to be cycling.
        let remaining = 3 - (monotonicSeconds() - partitioned)
        if remaining > 0 { usleep(UInt32(remaining * 1e6)) }

        let healed = try lab.heal()
        try Wait.until("the subscriber is connected and subscribed again\n\(subscriber.output)", timeout: 15) {
            let stats = try broker.stats()
            return stats.peers[.xpub] == 1 && stats.subscriptions.total == 1
        }
        let resubscribed = monotonicSeconds() - healed
        let arrived = try pushUntilReceived(push, subscriber, topic: "net.after")
        print(
            String(
                format: "figure: after healing, subscription back in %.2f s, first message delivered in %.2f s",
                resubscribed, arrived - healed))
        XCTAssertEqual(try broker.subscriptions().subscriptions.map(\.prefix), ["net."])
    }

    /// Random loss on the link (20% of the packets from broker to subscriber) costs time, not
    /// messages: TCP retransmits, and a heartbeat timeout longer than TCP's retransmission
    /// back-off keeps the connection, so every message arrives, in order, exactly once.
    func testMessagesSurvivePacketLossWithoutGaps() throws {
        let heartbeat = Self.lossTolerantHeartbeat
        let (lab, broker, subscriber, push) = try startBrokerAndSubscriber(heartbeat: heartbeat)
        let lossPercent = 20
        // `make soak` (ZPUB_SOAK=1): 30 s of traffic instead of 4.
        let count = ProcessInfo.processInfo.environment["ZPUB_SOAK"] != nil ? 3_000 : 400
        try lab.dropIncomingAtSubscriber(percent: lossPercent)

        let started = monotonicSeconds()
        for i in 0..<count {
            try push.send(frames: frames("net.seq", "\(i)"))
            usleep(10_000)  // about 100 messages a second: moderate, far from any HWM
        }
        let sent = monotonicSeconds()
        // Done when all have arrived, or as soon as the connection has been dropped (then some are
        // lost). A stall longer than interval + timeout ends in that drop, so twice that is enough.
        let bound = 2 * heartbeat.detectionWithoutSlack
        try Wait.until("all \(count) messages arrive\n\(subscriber.output.suffix(2_000))", timeout: bound) {
            subscriber.messages(topic: "net.seq").count >= count || !subscriber.events("disconnected").isEmpty
        }
        XCTAssertEqual(subscriber.events("disconnected").count, 0, "the lossy link was dropped:\n\(subscriber.output)")
        let received = subscriber.messages(topic: "net.seq")
        let finished = received.last?.time ?? monotonicSeconds()
        let (packets, dropped) = try lab.lossCounters()

        XCTAssertEqual(received.map(\.payload), (0..<count).map(String.init), "gaps, duplicates or reordering")
        XCTAssertEqual(try broker.stats().subscriptions.subscribeEvents, 1, "the subscriber had to subscribe again")
        XCTAssertGreaterThan(dropped, 0, "the nftables rule dropped nothing")

        let stall = zip(received, received.dropFirst()).map { $1.time - $0.time }.max() ?? 0
        print(
            String(
                format: "figure: %d%% loss: %d of %d packets to the subscriber dropped; %d/%d messages delivered "
                    + "in order, sent in %.2f s, all arrived %.2f s after the first send; longest stall %.2f s",
                lossPercent, dropped, packets, received.count, count, sent - started, finished - started, stall))
    }

    // MARK: Setup

    /// Heartbeats for the partition: short, so that a dead peer is found quickly.
    private static let shortHeartbeat = Heartbeat(interval: 300, timeout: 1_000)
    /// Heartbeats for the lossy link. TCP retransmits a lost segment after 0.2 s and doubles the
    /// wait each time (tries at 0.2, 0.6, 1.4, 3.0, 6.2 s), and everything behind that segment
    /// waits too: a segment lost three times in a row (0.8% of all segments at 20% loss) holds
    /// the stream up for 1.4 s, which a 1 s heartbeat timeout takes for a dead peer. 7 s
    /// outlasts five losses in a row.
    private static let lossTolerantHeartbeat = Heartbeat(interval: 1_000, timeout: 7_000)

    /// zpubd in the broker namespace, a subscriber to "net." in the other, a producer here; returns
    /// once a message has gone all the way through.
    private func startBrokerAndSubscriber(heartbeat: Heartbeat) throws -> (
        NetworkLab, NamespacedBroker, NamespacedSubscriber, Socket
    ) {
        let lab = try XCTUnwrap(lab)
        let broker = try NamespacedBroker(lab: lab, directory: directory, heartbeat: heartbeat)
        self.broker = broker
        let subscriber = try NamespacedSubscriber(
            lab: lab, directory: directory, endpoint: broker.xpub, prefix: "net.", heartbeat: heartbeat)
        self.subscriber = subscriber
        try Wait.until("the subscriber connects and subscribes\n\(subscriber.output)\n\(broker.log)", timeout: 15) {
            let stats = try broker.stats()
            return stats.peers[.xpub] == 1 && stats.subscriptions.total == 1
        }
        let clients = try Clients()
        self.clients = clients
        let push = try clients.socket(.push, connect: broker.pull)
        _ = try pushUntilReceived(push, subscriber, topic: "net.hello")
        return (lab, broker, subscriber, push)
    }

    /// Seconds from `start` until STATS shows no XPUB peer and no subscription (10 s at most).
    private func waitUntilBrokerForgetsTheSubscriber(_ broker: NamespacedBroker, since start: Double) throws
        -> Double
    {
        try Wait.until("the broker drops the partitioned subscriber\n\(broker.log)", timeout: 10) {
            let stats = try broker.stats()
            return stats.peers[.xpub] == 0 && stats.subscriptions.total == 0
        }
        return monotonicSeconds() - start
    }

    /// Pushes a message on `topic` every 100 ms until the subscriber prints one (10 s at most);
    /// returns when it arrived (the subscriber's monotonic clock, the same as ours).
    private func pushUntilReceived(_ push: Socket, _ subscriber: NamespacedSubscriber, topic: String) throws
        -> Double
    {
        var sent = 0
        try Wait.until("a message on \(topic) arrives\n\(subscriber.output)", timeout: 10) {
            if let first = subscriber.messages(topic: topic).first { return first.time > 0 }
            try push.send(frames: frames(topic, "\(sent)"))
            sent += 1
            usleep(80_000)
            return false
        }
        return subscriber.messages(topic: topic).first?.time ?? monotonicSeconds()
    }
}

// MARK: - The test's network

private struct Heartbeat {
    let interval: Int
    let timeout: Int

    /// How long a dead peer may go unnoticed in libzmq: the next ping leaves within one interval,
    /// the timeout runs from there.
    var detectionWithoutSlack: Double { Double(interval + timeout) / 1_000 }

    /// detectionWithoutSlack plus 1.5 s for scheduling and STATS polling on a busy machine
    /// (measured: 1.12-1.19 s against 1.3 s without slack; 1.15-1.18 s beside two busy loops).
    var detectionBound: Double { detectionWithoutSlack + 1.5 }
}

/// CLOCK_MONOTONIC in seconds: Python's time.monotonic() reads the same clock, so times printed
/// by the subscriber in the other namespace compare with ours.
private func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Two network namespaces joined by a veth pair, named after this process so that a crashed run
/// leaves nothing that a later run trips over (and a later run removes it).
/// Two network namespaces joined by a veth pair, and faults (nftables) on that link; also used
/// by PairTests.
final class NetworkLab {
    static let prefix = "zpnf-"
    static let brokerAddress = "10.251.77.1"
    static let subscriberAddress = "10.251.77.2"

    let ip: URL
    let nft: URL
    let brokerNamespace: String
    let subscriberNamespace: String
    let brokerLink: String
    let subscriberLink: String
    private var removed = false

    init(ip: URL, nft: URL) throws {
        self.ip = ip
        self.nft = nft
        let tag = String(format: "%04x", UInt16.random(in: 0...UInt16.max))
        brokerNamespace = "\(Self.prefix)\(getpid())-\(tag)-b"
        subscriberNamespace = "\(Self.prefix)\(getpid())-\(tag)-s"
        // Interface names live inside the namespaces only (and have at most 15 bytes).
        brokerLink = "zpnf\(tag)b"
        subscriberLink = "zpnf\(tag)s"

        let created = try Self.run(ip, ["netns", "add", brokerNamespace])
        guard created.status == 0 else {
            throw XCTSkip("cannot create network namespaces here: \(created.stderr)")
        }
        do {
            try command(ip, ["netns", "add", subscriberNamespace])
            try command(
                ip,
                [
                    "-n", brokerNamespace, "link", "add", brokerLink, "type", "veth", "peer", "name", subscriberLink,
                    "netns", subscriberNamespace,
                ])
            try command(ip, ["-n", brokerNamespace, "addr", "add", "\(Self.brokerAddress)/30", "dev", brokerLink])
            try command(
                ip, ["-n", subscriberNamespace, "addr", "add", "\(Self.subscriberAddress)/30", "dev", subscriberLink])
            for (namespace, link) in [(brokerNamespace, brokerLink), (subscriberNamespace, subscriberLink)] {
                try command(ip, ["-n", namespace, "link", "set", "lo", "up"])
                try command(ip, ["-n", namespace, "link", "set", link, "up"])
            }
            let probe = try Self.run(
                ip, ["netns", "exec", subscriberNamespace, nft.path, "add", "table", "inet", "zpubprobe"])
            guard probe.status == 0 else { throw XCTSkip("nftables does not work here: \(probe.stderr)") }
            try command(ip, ["netns", "exec", subscriberNamespace, nft.path, "delete", "table", "inet", "zpubprobe"])
        } catch {
            remove()
            throw error
        }
    }

    deinit { remove() }

    /// Runs `program` inside a namespace (the argument list of `ip netns exec`).
    func exec(in namespace: String, _ program: String, _ arguments: [String]) -> (URL, [String]) {
        (ip, ["netns", "exec", namespace, program] + arguments)
    }

    // MARK: Faults (nftables in the subscriber's namespace)

    /// Cuts the link: every packet arriving over it is dropped, at the subscriber and at the
    /// broker. Dropping on arrival (the input hook) rather than on departure is what a dead cable
    /// or router looks like: the sending kernel believes the packet left. (A drop in the output
    /// hook is reported to the sender's own TCP stack, which then retries its connect at once
    /// when the rule goes, and a reconnection looks faster than any real network would allow.)
    /// Returns when both rules are in force.
    func partition() throws -> Double {
        for (namespace, link) in [(subscriberNamespace, subscriberLink), (brokerNamespace, brokerLink)] {
            try nftables(
                in: namespace,
                """
                table inet zpubfault {
                    chain input { type filter hook input priority 0; policy accept; iifname "\(link)" drop; }
                }
                """)
        }
        return monotonicSeconds()
    }

    /// Drops `percent`% of the packets arriving at the subscriber (the broker-to-subscriber
    /// direction), counting all of them and the dropped ones.
    func dropIncomingAtSubscriber(percent: Int) throws {
        try nftables(
            in: subscriberNamespace,
            """
            table inet zpubfault {
                chain input {
                    type filter hook input priority 0; policy accept;
                    iifname "\(subscriberLink)" counter
                    iifname "\(subscriberLink)" numgen random mod 100 < \(percent) counter drop
                }
            }
            """)
    }

    /// (packets that reached the rule, packets dropped) under dropIncomingAtSubscriber.
    func lossCounters() throws -> (Int, Int) {
        let listed = try Self.run(
            ip, ["netns", "exec", subscriberNamespace, nft.path, "list", "table", "inet", "zpubfault"])
        let counts = listed.stdout.split(separator: "\n").compactMap { line -> Int? in
            let words = line.split(separator: " ")
            guard let index = words.firstIndex(of: "packets"), index + 1 < words.count else { return nil }
            return Int(words[index + 1])
        }
        guard counts.count == 2 else { throw TimedOut(what: "reading the nftables counters:\n\(listed.stdout)") }
        return (counts[0], counts[1])
    }

    /// Removes the faults; returns when the link is whole again.
    func heal() throws -> Double {
        for namespace in [brokerNamespace, subscriberNamespace] {
            try command(ip, ["netns", "exec", namespace, nft.path, "delete", "table", "inet", "zpubfault"])
        }
        return monotonicSeconds()
    }

    private func nftables(in namespace: String, _ script: String) throws {
        let run = try RunningProgram(ip, ["netns", "exec", namespace, nft.path, "-f", "-"], stdin: script)
            .finish(timeout: 10)
        guard run.status == 0 else { throw TimedOut(what: "nft accepts the rules:\n\(script)\n\(run.stderr)") }
    }

    // MARK: Cleanup

    /// Kills whatever still runs in the namespaces (only this test's processes can be there)
    /// and deletes them, which deletes the veth pair too.
    func remove() {
        guard !removed else { return }
        removed = true
        for namespace in [subscriberNamespace, brokerNamespace] {
            Self.delete(namespace, ip: ip)
        }
    }

    private static func delete(_ namespace: String, ip: URL) {
        if let pids = try? run(ip, ["netns", "pids", namespace]), pids.status == 0 {
            for pid in pids.stdout.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
        }
        _ = try? run(ip, ["netns", "delete", namespace])
    }

    /// Removes the namespaces of earlier runs whose process is gone (a crash, a killed run).
    static func removeStale(ip: URL) {
        guard let listed = try? run(ip, ["netns", "list"]) else { return }
        for line in listed.stdout.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(prefix), let pid = Int32(name.dropFirst(prefix.count).prefix { $0 != "-" }),
                pid != getpid(), kill(pid, 0) == -1, errno == ESRCH
            else { continue }
            delete(name, ip: ip)
        }
    }

    // MARK: Commands

    static func tool(_ name: String) -> URL? {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map { URL(fileURLWithPath: "\($0)/\(name)") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    private static func run(_ program: URL, _ arguments: [String]) throws -> Run {
        try Run.program(program, arguments, timeout: 10)
    }

    private func command(_ program: URL, _ arguments: [String]) throws {
        let run = try Self.run(program, arguments)
        guard run.status == 0 else {
            throw TimedOut(
                what: "\(program.lastPathComponent) \(arguments.joined(separator: " ")) succeeds: \(run.stderr)")
        }
    }
}

/// zpubd inside the broker namespace: XPUB on the veth address, the rest on ipc endpoints.
private final class NamespacedBroker {
    let xpub = "tcp://\(NetworkLab.brokerAddress):5556"
    let pull: String
    let control: String
    private let process = Process()
    private let logURL: URL
    private let context: Context

    init(lab: NetworkLab, directory: URL, heartbeat: Heartbeat) throws {
        pull = "ipc://\(directory.path)/pull.sock"
        control = "ipc://\(directory.path)/control.sock"
        logURL = directory.appendingPathComponent("zpubd.log")
        let configURL = directory.appendingPathComponent("zpubd.conf")
        try """
        [sockets]
        heartbeat_interval_ms = \(heartbeat.interval)
        heartbeat_timeout_ms = \(heartbeat.timeout)
        """.write(to: configURL, atomically: true, encoding: .utf8)
        context = try Context()

        let (ip, arguments) = lab.exec(
            in: lab.brokerNamespace, Binaries.zpubd.path,
            [
                "--config", configURL.path, "--xpub", xpub, "--pull", pull, "--control", control,
                "--xsub", "ipc://\(directory.path)/xsub.sock",
            ])
        try createEmptyFile(logURL.path)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = ip
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try Wait.until("zpubd answers PING in its namespace\n\(self.log)", timeout: 15) {
            guard process.isRunning else { throw DaemonExited(log: self.log) }
            return (try? request("PING", timeout: 200)) != nil
        }
    }

    deinit {
        stop()
        context.terminate()
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func stop() {
        // `ip netns exec` execs zpubd itself, so this is zpubd's process.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func request(_ text: String, timeout: Int = 5_000) throws -> [UInt8]? {
        let socket = try Socket(context, type: .req)
        defer { socket.close() }
        try socket.setOption(.linger, 0)
        try socket.connect(control)
        try socket.send(text: text)
        return try socket.receiveFrames(timeoutMilliseconds: timeout).map { $0.first ?? [] }
    }

    private func decode<T: Decodable>(_ text: String, as type: T.Type) throws -> T {
        let reply = try XCTUnwrap(try request(text), "no reply to \(text)\n\(log)")
        return try JSONDecoder().decode(T.self, from: Data(reply))
    }

    func stats() throws -> StatsSnapshot { try decode("STATS", as: StatsSnapshot.self) }

    func subscriptions() throws -> SubscriptionList { try decode("SUBSCRIPTIONS", as: SubscriptionList.self) }
}

/// python/netfault_subscriber.py inside the subscriber namespace; reads what it has printed so far.
private final class NamespacedSubscriber {
    struct Received {
        let time: Double
        let topic: String
        let payload: String
    }

    private let process = Process()
    private let outputURL: URL

    init(lab: NetworkLab, directory: URL, endpoint: String, prefix: String, heartbeat: Heartbeat) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("python/netfault_subscriber.py").path
        outputURL = directory.appendingPathComponent("subscriber.out")
        try createEmptyFile(outputURL.path)
        let output = try FileHandle(forWritingTo: outputURL)
        let (ip, arguments) = lab.exec(
            in: lab.subscriberNamespace, "/usr/bin/python3",
            // 60 s: the script's own bound, should the test fail to stop it.
            [script, endpoint, prefix, "\(heartbeat.interval)", "\(heartbeat.timeout)", "60"])
        process.executableURL = ip
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    deinit { stop() }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var output: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }

    /// Complete lines, split in words: "<time> <event>" or "<time> msg <topic> <payload>".
    private var lines: [[Substring]] {
        output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { $0.split(separator: " ") }
    }

    func messages(topic: String) -> [Received] {
        lines.compactMap { words in
            guard words.count >= 3, words[1] == "msg", words[2] == topic, let time = Double(words[0]) else {
                return nil
            }
            return Received(time: time, topic: topic, payload: words.count > 3 ? String(words[3]) : "")
        }
    }

    /// Times of a socket monitor event ("connected", "disconnected", ...).
    func events(_ name: String) -> [Double] {
        lines.compactMap { words in words.count == 2 && words[1] == name ? Double(words[0]) : nil }
    }

    func firstEvent(_ name: String, after time: Double) -> Double? {
        events(name).first { $0 >= time }
    }
}
