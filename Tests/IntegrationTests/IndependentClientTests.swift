import Foundation
import XCTest

/// The same broker seen from pyzmq (Debian's python3-zmq), PHP's zmq extension, and the README's
/// examples, run unchanged except for the endpoints they read from the environment.
final class IndependentClientTests: XCTestCase {
    private func python(_ scenario: String, _ daemon: Daemon) throws {
        let run = try Run.python("pyzmq_clients.py", [scenario, daemon.pull, daemon.xsub, daemon.xpub, daemon.control])
        XCTAssertEqual(run.status, 0, "\(run.stdout)\(run.stderr)\nzpubd log:\n\(daemon.log)")
        XCTAssertTrue(run.stdout.contains("\(scenario): ok"), run.stdout)
    }

    func testPyzmqPushToSubscribers() throws { try python("push-sub", try Daemon()) }

    func testPyzmqPublisherIntoXSUB() throws { try python("pub-xsub", try Daemon()) }

    func testPyzmqControlClient() throws { try python("control", try Daemon()) }

    /// 300 pyzmq SUBs that connect, subscribe, unsubscribe and close at once leave no
    /// subscription counted (2-7 were, for good, when a closed connection's records went at its
    /// close while libzmq still held its frames).
    func testPyzmqSubscribersThatComeAndGoLeaveNothingCounted() throws {
        try python("subscribe-unsubscribe-close", try Daemon())
    }

    func testPyzmqReload() throws { try python("reload", try Daemon(configuration: "[limits]\nmax_topics = 77\n")) }

    private var examples: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("examples")
    }

    /// Starts `subscriber`, waits until the broker counts its subscription, runs `producer`, and
    /// returns what the subscriber printed.
    private func exampleRun(
        daemon: Daemon, subscriber: (URL, [String]), producer: (URL, [String])
    ) throws -> (Run, Run) {
        let environment = ["ZPUB_PULL": daemon.pull, "ZPUB_XPUB": daemon.xpub, "ZPUB": Binaries.zpub.path]
        let running = try RunningProgram(subscriber.0, subscriber.1, environment: environment)
        try daemon.waitForSubscriptions(1)
        let producerRun = try Run.program(producer.0, producer.1, timeout: 30, environment: environment)
        return (try running.finish(timeout: 30), producerRun)
    }

    func testPythonExamples() throws {
        let daemon = try Daemon()
        let python = URL(fileURLWithPath: "/usr/bin/python3")
        let (subscriber, producer) = try exampleRun(
            daemon: daemon,
            subscriber: (python, [examples.appendingPathComponent("python/subscriber.py").path, "5"]),
            producer: (python, [examples.appendingPathComponent("python/producer.py").path, "5"]))
        XCTAssertEqual(producer.status, 0, producer.stderr)
        XCTAssertEqual(subscriber.status, 0, subscriber.stderr)
        XCTAssertEqual(
            subscriber.stdout.split(separator: "\n"), (0..<5).map { "weather.paris \($0) {\"celsius\": 12}"[...] })
    }

    func testPHPExamples() throws {
        let php = URL(fileURLWithPath: "/usr/bin/php")
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: php.path), "php-cli is not installed (make test installs it)")
        let daemon = try Daemon()
        let (subscriber, producer) = try exampleRun(
            daemon: daemon,
            subscriber: (php, [examples.appendingPathComponent("php/subscriber.php").path, "5"]),
            producer: (php, [examples.appendingPathComponent("php/producer.php").path, "5"]))
        XCTAssertEqual(producer.status, 0, producer.stdout + producer.stderr)
        XCTAssertEqual(subscriber.status, 0, subscriber.stdout + subscriber.stderr)
        XCTAssertEqual(
            subscriber.stdout.split(separator: "\n"), (0..<5).map { "weather.paris \($0) {\"celsius\": 12}"[...] })
    }

    func testShellExample() throws {
        let daemon = try Daemon()
        let run = try Run.program(
            URL(fileURLWithPath: "/bin/sh"), [examples.appendingPathComponent("shell/pubsub.sh").path],
            environment: [
                "ZPUB_PULL": daemon.pull, "ZPUB_XPUB": daemon.xpub, "ZPUB_CONTROL": daemon.control,
                "ZPUB": Binaries.zpub.path,
            ])
        XCTAssertEqual(run.status, 0, run.stderr)
        // Two `zpub pub` processes are two connections to PULL: nothing orders them.
        XCTAssertEqual(
            run.stdout.split(separator: "\n").sorted(), ["weather.lyon\t13C", "weather.paris\t12C\tsunny"], run.stdout)
    }
}
