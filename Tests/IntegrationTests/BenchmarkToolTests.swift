import Foundation
import XCTest

/// `zpub-bench saturated` end to end, on small backlogs. The benchmark refuses a run that loses
/// a message, misses an end marker, or gets a queued message while its forwarder is held; so a
/// clean exit with every row means that holding and letting go work for zpubd (PAUSE and
/// RESUME), for zmq_proxy (TERMINATE, then a second call) and for the poll loop, with PUSH and
/// PUB producers and more than one subscriber.
final class BenchmarkToolTests: XCTestCase {
    func testSaturatedHoldsAndLetsGoOfEveryForwarder() throws {
        let run = try Run.program(
            Binaries.bench,
            [
                "saturated", "--repetitions", "1", "--sizes", "32", "--subscribers", "1,2", "--ingest", "push,pub",
                "--topics", "1", "--deliveries", "2000",
            ],
            timeout: 240)
        XCTAssertEqual(run.status, 0, run.stderr)
        let rows = run.stdout.split(separator: "\n").filter { $0.hasPrefix("| 32 B") }
        for workload in ["32 B x1 push", "32 B x2 push", "32 B x1 pub", "32 B x2 pub"] {
            for forwarder in ["zmq_proxy", "poll loop", "zpubd acct off", "zpubd acct on"] {
                let matching = rows.filter { $0.hasPrefix("| \(workload) | \(forwarder) |") }
                XCTAssertEqual(matching.count, 1, "one row for \(workload), \(forwarder):\n\(run.stdout)")
                // The last column counts lost deliveries.
                XCTAssertEqual(
                    matching.first?.split(separator: "|").last?.trimmingCharacters(in: .whitespaces), "0",
                    "\(workload), \(forwarder)")
            }
        }
    }
}
