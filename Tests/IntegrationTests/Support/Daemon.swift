import Foundation
import XCTest
import ZPubCore
import ZeroMQ

/// A real zpubd process for one test: its own temporary directory, ipc endpoints inside it (no
/// port clashes between tests), its log captured to a file, and a control client.
/// Killed with SIGKILL if a test leaves it running.
final class Daemon {
    let directory: URL
    let endpoints: [BrokerSocketRole: String]
    let process = Process()
    let logURL: URL
    let configURL: URL
    private let context: Context

    /// The endpoints a test client connects to.
    var pull: String { endpoints[.pull]! }
    var xsub: String { endpoints[.xsub]! }
    var xpub: String { endpoints[.xpub]! }
    var control: String { endpoints[.control]! }

    /// Starts zpubd with ipc endpoints in a fresh directory, plus `configuration` written to a
    /// file (passed with --config) and `arguments`; waits until the control socket answers.
    init(
        configuration: String? = nil, arguments: [String] = [], environment: [String: String] = [:],
        endpoints custom: [BrokerSocketRole: String] = [:], rolesFromFile: Set<BrokerSocketRole> = [],
        waitUntilReady: Bool = true, launcher: [String] = []
    ) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpubd-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var endpoints: [BrokerSocketRole: String] = [:]
        for role in BrokerSocketRole.allCases {
            endpoints[role] = custom[role] ?? "ipc://\(directory.path)/\(role.rawValue).sock"
        }
        self.endpoints = endpoints
        logURL = directory.appendingPathComponent("zpubd.log")
        configURL = directory.appendingPathComponent("zpubd.conf")
        context = try Context()

        var arguments = arguments
        if let configuration {
            try configuration.write(to: configURL, atomically: true, encoding: .utf8)
            arguments += ["--config", configURL.path]
        }
        for role in BrokerSocketRole.allCases
        where !arguments.contains("--\(role.rawValue)") && !rolesFromFile.contains(role) {
            arguments += ["--\(role.rawValue)", endpoints[role]!]
        }
        try createEmptyFile(logURL.path)
        let log = try FileHandle(forWritingTo: logURL)
        // A launcher (`ip netns exec NAMESPACE`) that execs zpubd itself: the process is zpubd's.
        if let first = launcher.first {
            process.executableURL = URL(fileURLWithPath: first)
            process.arguments = Array(launcher.dropFirst()) + [Binaries.zpubd.path] + arguments
        } else {
            process.executableURL = Binaries.zpubd
            process.arguments = arguments
        }
        process.standardOutput = log
        process.standardError = log
        var processEnvironment = ProcessInfo.processInfo.environment
        processEnvironment["NOTIFY_SOCKET"] = nil
        processEnvironment["JOURNAL_STREAM"] = nil
        for (key, value) in environment { processEnvironment[key] = value }
        process.environment = processEnvironment
        FailureWatch.shared.start()
        try process.run()
        if waitUntilReady {
            try Wait.until("zpubd answers PING on \(control)\nlog:\n\(self.log)", timeout: 15) {
                guard process.isRunning else { throw DaemonExited(log: self.log) }
                return (try? request("PING", timeout: 200)) != nil
            }
        }
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            // Bounded: a zpubd that aborted under the Swift backtracer was once left a zombie that
            // Foundation never reaped, and waitUntilExit() then hung the whole test run.
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(10_000) }
        }
        context.terminate()
        // Removed once the test is over, its log printed first if the test failed (a thrown
        // error is recorded only after the test's daemons are gone).
        FailureWatch.shared.leave(directory, log: logURL, pid: process.processIdentifier)
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    // MARK: Control

    /// One control request and its raw reply; nil if no reply arrived in time.
    func request(_ frames: [[UInt8]], timeout: Int = 5_000) throws -> [UInt8]? {
        let socket = try Socket(context, type: .req)
        defer { socket.close() }
        try socket.setOption(.linger, 0)
        try socket.connect(control)
        try socket.send(frames: frames)
        return try socket.receiveFrames(timeoutMilliseconds: timeout).map { $0.first ?? [] }
    }

    func request(_ text: String, timeout: Int = 5_000) throws -> [UInt8]? {
        try request([Array(text.utf8)], timeout: timeout)
    }

    /// The reply as a JSON object; fails the test if there is none.
    func json(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let reply = try XCTUnwrap(try request(text), "no reply to \(text)", file: file, line: line)
        return try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any],
            "reply to \(text) is not a JSON object",
            file: file, line: line)
    }

    func decode<T: Decodable>(_ text: String, as type: T.Type) throws -> T {
        let reply = try XCTUnwrap(try request(text), "no reply to \(text)")
        return try JSONDecoder().decode(T.self, from: Data(reply))
    }

    func stats() throws -> StatsSnapshot { try decode("STATS", as: StatsSnapshot.self) }

    func subscriptions() throws -> SubscriptionList { try decode("SUBSCRIPTIONS", as: SubscriptionList.self) }

    /// Waits until the broker counts `total` live subscriptions.
    func waitForSubscriptions(_ total: Int, timeout: Double = 10) throws {
        try Wait.until("the broker counts \(total) subscriptions", timeout: timeout) {
            try subscriptions().total == total
        }
    }

    /// Waits until the broker holds a subscription to each of `prefixes`, whatever else it
    /// holds: after gateway clients left, their prefixes linger for 2 s (`UpstreamLinger`), so
    /// a count can be reached before a new subscriber's subscriptions arrive.
    func waitForSubscriptions(to prefixes: [String], timeout: Double = 10) throws {
        try Wait.until("the broker holds \(prefixes)", timeout: timeout) {
            let held = Set(try subscriptions().subscriptions.map(\.prefix))
            return prefixes.allSatisfy(held.contains)
        }
    }

    // MARK: Process

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Pushes `messages` from a context of its own that lingers, and returns once they are
    /// all in the broker's queue: terminating that context waits until every message has been
    /// written to the connection (the broker's receive HWM, 10,000 by default, must leave room
    /// for them). False if that took 9 s or more: the linger (10 s) may have run out.
    func pushIntoItsQueue(_ messages: [[[UInt8]]]) throws -> Bool {
        let producerContext = try Context()
        let push = try Socket(producerContext, type: .push)
        try push.setOption(.linger, 10_000)
        try push.setOption(.sendTimeout, 10_000)
        try push.connect(pull)
        for message in messages { try push.send(frames: message) }
        let flushing = Date()
        push.close()
        producerContext.terminate()
        return Date().timeIntervalSince(flushing) < 9
    }

    /// `zpub pub` fed by `yes`, sending on `topic` as fast as zpubd takes it: a stop's drain
    /// never finds it quiet. Returns once zpubd has its first thousand messages.
    func busyProducer(topic: String = "t") throws -> RunningProgram {
        let producer = try RunningProgram(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", "yes message | exec '\(Binaries.zpub.path)' pub --endpoint '\(pull)' \(topic)"])
        try Wait.until("the producer's messages arrive") { try stats().messagesIn > 1_000 }
        return producer
    }

    /// The exit status, or nil if zpubd is still running after `timeout` seconds.
    func waitForExit(timeout: Double = 15) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        return process.isRunning ? nil : process.terminationStatus
    }
}

struct DaemonExited: Error, CustomStringConvertible {
    let log: String
    var description: String { "zpubd exited early; its log:\n\(log)" }
}

/// A failed test shows what its daemons said: their directories go once the test is over,
/// after their logs are printed if it failed. A failure seen once (under load, in CI) was
/// otherwise left without zpubd's side of it.
final class FailureWatch: NSObject, XCTestObservation, @unchecked Sendable {
    static let shared = FailureWatch()
    private let lock = NSLock()
    private var failed = false
    private var observing = false
    private var left: [(directory: URL, log: URL, pid: Int32)] = []

    func leave(_ directory: URL, log: URL, pid: Int32) { lock.withLock { left.append((directory, log, pid)) } }

    func testCaseDidFinish(_ testCase: XCTestCase) {
        let (failed, left) = lock.withLock {
            defer { self.left = [] }
            return (self.failed, self.left)
        }
        for daemon in left {
            if failed {
                let text = (try? String(contentsOf: daemon.log, encoding: .utf8)) ?? ""
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(80)
                print("---- zpubd \(daemon.pid)'s log, the last \(lines.count) lines ----")
                for line in lines { print(line) }
                print("---- end of zpubd \(daemon.pid)'s log ----")
            }
            try? FileManager.default.removeItem(at: daemon.directory)
        }
    }

    /// Observes from the first daemon on (registered once).
    func start() {
        let first = lock.withLock {
            defer { observing = true }
            return !observing
        }
        if first { XCTestObservationCenter.shared.addTestObserver(self) }
    }

    func testCaseWillStart(_ testCase: XCTestCase) { lock.withLock { failed = false } }

    func testCase(
        _ testCase: XCTestCase, didFailWithDescription description: String, inFile filePath: String?,
        atLine lineNumber: Int
    ) {
        lock.withLock { failed = true }
    }
}

/// Where the binaries under test are: next to the test bundle in the build folder.
enum Binaries {
    static var directory: URL {
        if let override = ProcessInfo.processInfo.environment["ZPUB_BIN_DIR"] {
            return URL(fileURLWithPath: override)
        }
        var url = Bundle.main.bundleURL
        if url.pathExtension == "xctest" { url = url.deletingLastPathComponent() }
        if !FileManager.default.fileExists(atPath: url.appendingPathComponent("zpubd").path) {
            url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        }
        return url
    }

    static var zpubd: URL { directory.appendingPathComponent("zpubd") }
    static var zpub: URL { directory.appendingPathComponent("zpub") }
    static var bench: URL { directory.appendingPathComponent("zpub-bench") }
}

/// Polling with a deadline: tests never wait forever, and never assert on speed.
enum Wait {
    static func until(
        _ what: @autoclosure () -> String, timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line,
        _ condition: () throws -> Bool
    ) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(20_000)
        }
        if try condition() { return }
        throw TimedOut(what: what())
    }
}

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting until \(what)" }
}

/// Runs a program to completion with a deadline; returns its exit status and output.
struct Run {
    let status: Int32
    let stdout: String
    let stderr: String

    static func program(
        _ executable: URL, _ arguments: [String], stdin: String? = nil, timeout: Double = 30,
        environment: [String: String] = [:]
    ) throws -> Run {
        try RunningProgram(executable, arguments, stdin: stdin, environment: environment).finish(timeout: timeout)
    }

    /// Runs one of the test's pyzmq scripts with Debian's python3.
    static func python(_ script: String, _ arguments: [String], timeout: Double = 60) throws -> Run {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("python/\(script)").path
        return try program(URL(fileURLWithPath: "/usr/bin/python3"), [path] + arguments, timeout: timeout)
    }
}

/// A program started in the background (a subscriber, say) and collected later.
final class RunningProgram {
    private let process = Process()
    private let directory: URL
    private let description: String

    init(_ executable: URL, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws {
        description = "\(executable.lastPathComponent) \(arguments.joined(separator: " "))"
        process.executableURL = executable
        process.arguments = arguments
        var processEnvironment = ProcessInfo.processInfo.environment
        for (key, value) in environment { processEnvironment[key] = value }
        process.environment = processEnvironment
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-run-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in ["out", "err"] {
            try createEmptyFile(directory.appendingPathComponent(name).path)
        }
        process.standardOutput = try FileHandle(forWritingTo: directory.appendingPathComponent("out"))
        process.standardError = try FileHandle(forWritingTo: directory.appendingPathComponent("err"))
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Self.waitForExit(process)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Waits for a killed program for up to 10 s: bounded, as in `Daemon.deinit`, because an
    /// unreaped child would otherwise hang the whole test run in `waitUntilExit()`.
    private static func waitForExit(_ process: Process) {
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
    }

    var processIdentifier: Int32 { process.processIdentifier }

    var isRunning: Bool { process.isRunning }

    /// What the program has written to stderr so far.
    var stderrSoFar: String {
        (try? String(contentsOf: directory.appendingPathComponent("err"), encoding: .utf8)) ?? ""
    }

    /// What the program has written to stdout so far.
    var stdoutSoFar: String {
        (try? String(contentsOf: directory.appendingPathComponent("out"), encoding: .utf8)) ?? ""
    }

    /// Waits for the exit (killing the program after `timeout` seconds, which throws).
    func finish(timeout: Double = 30) throws -> Run {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Self.waitForExit(process)
            throw TimedOut(what: "\(description) exits")
        }
        return Run(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: directory.appendingPathComponent("out"), encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: directory.appendingPathComponent("err"), encoding: .utf8)) ?? "")
    }
}

/// Creates an empty file (or empties one), or throws naming it: a test that cannot write its own
/// files should say so there, not fail later on a file that is missing.
func createEmptyFile(_ path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: nil) else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
    }
}
