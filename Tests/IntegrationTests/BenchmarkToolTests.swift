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

    /// `zpub-bench cache` (`make bench-cache`) end to end, on small caches: a row per size, every
    /// measurement a number; sizes [last_value] max_entries does not allow are refused.
    func testCacheWorkMeasuresEverySize() throws {
        let run = try Run.program(
            Binaries.bench, ["cache", "--sizes", "1000", "2000", "--repetitions", "1"], timeout: 120)
        XCTAssertEqual(run.status, 0, run.stderr)
        for size in ["1000", "2000"] {
            let row = run.stdout.split(separator: "\n").first { $0.hasPrefix("| \(size) |") }
            let cells = row.map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
            XCTAssertEqual(cells.count, 11, "a row for \(size) with eleven cells:\n\(run.stdout)")
            for cell in cells.dropFirst() {
                XCTAssertNotNil(
                    Double(cell.trimmingCharacters(in: CharacterSet(charactersIn: "kM"))), "\(size): \(cell)")
            }
        }
        let refused = try Run.program(Binaries.bench, ["cache", "--sizes", "10"], timeout: 30)
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--sizes must be 1000 to 10000000"), refused.stderr)
    }
}
