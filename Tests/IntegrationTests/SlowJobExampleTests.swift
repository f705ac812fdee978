import Foundation
import XCTest

/// The motivating case, examples/slow-job: a slow job PUSHes results through zpubd to a
/// web-facing subscriber, which answers HTTP requests at once the whole time, with the results
/// so far, never waiting for the job.
final class SlowJobExampleTests: XCTestCase {
    private static let python = URL(fileURLWithPath: "/usr/bin/python3")
    private static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("examples/slow-job")

    /// A TCP port nobody listens on now (the kernel's choice).
    private func freePort() throws -> Int {
        let run = try Run.program(
            Self.python,
            ["-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"])
        return try XCTUnwrap(Int(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// The web tier's answer: the results so far, or nil if it does not answer within 2 s.
    private func results(_ port: Int) throws -> [[String: Any]]? {
        let get = try Run.program(
            Self.python,
            [
                "-c",
                "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())",
                "http://127.0.0.1:\(port)/",
            ], timeout: 10)
        guard get.status == 0 else { return nil }
        let reply = try JSONSerialization.jsonObject(with: Data(get.stdout.utf8)) as? [String: Any]
        return reply?["results"] as? [[String: Any]]
    }

    func testTheWebTierAnswersWhileTheSlowJobWorks() throws {
        let daemon = try Daemon()
        let environment = ["ZPUB_PULL": daemon.pull, "ZPUB_XPUB": daemon.xpub]
        let port = try freePort()
        let web = try RunningProgram(
            Self.python, [Self.examples.appendingPathComponent("web.py").path, "\(port)"], environment: environment)
        try daemon.waitForSubscriptions(1)
        var seen: [Int] = []
        try Wait.until("the web tier answers") {
            guard let results = try results(port) else { return false }
            seen.append(results.count)
            return true
        }
        XCTAssertEqual(seen, [0], "answered before any result, not waiting for one")

        // Three results, half a second apart: the web tier answers between them.
        let job = try RunningProgram(
            Self.python, [Self.examples.appendingPathComponent("job.py").path, "3", "0.5"], environment: environment)
        try Wait.until("all three results reach the web tier; answers seen: \(seen)", timeout: 20) {
            let results = try XCTUnwrap(try results(port), "the web tier stopped answering")
            if seen.last != results.count { seen.append(results.count) }
            return results.count == 3
        }
        XCTAssertTrue(seen.contains { $0 > 0 && $0 < 3 }, "it answered while the job was still working: \(seen)")
        let finished = try job.finish(timeout: 20)
        XCTAssertEqual(finished.status, 0, finished.stderr)
        XCTAssertEqual(finished.stdout.split(separator: "\n").count, 3, finished.stdout)

        let final = try XCTUnwrap(try results(port))
        XCTAssertEqual(final.compactMap { $0["step"] as? Int }, [1, 2, 3])
        XCTAssertEqual(final.compactMap { $0["of"] as? Int }, [3, 3, 3])
        withExtendedLifetime(web) {}  // it runs until here, and is killed then
    }
}
