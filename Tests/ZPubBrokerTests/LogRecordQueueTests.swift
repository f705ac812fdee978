import Logging
import Synchronization
import XCTest

@testable import ZPubBroker

final class LogRecordQueueTests: XCTestCase {
    /// A handler whose writes block until the test opens its gate, as a write to a full pipe or
    /// a stalled journal blocks; it keeps what it was given.
    final class GatedHandler: LogHandler, @unchecked Sendable {
        let gateOpen = Atomic<Bool>(false)
        let written = Mutex<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            while !gateOpen.load(ordering: .acquiring) { usleep(1_000) }
            written.withLock { $0.append("\(event.level) \(event.message)") }
        }
    }

    /// While the writer is blocked, logging returns at once: `capacity` records wait, the rest
    /// are dropped and counted. Once the writer can write, the waiting records come out in order,
    /// followed by a warning that says how many were dropped and why.
    func testABlockedWriterNeverHoldsTheLoggerAndDropsAreReported() {
        let handler = GatedHandler()
        let queue = LogRecordQueue(capacity: 10)
        let logger = queue.logger(like: Logger(label: "test", factory: { _ in handler }))
        let start = ContinuousClock.now
        // The writer takes what waits when it wakes (up to 10 records) and blocks on the first.
        for number in 0..<25 { logger.info("record \(number)") }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(1), "logging waited for the blocked writer")
        let dropped = queue.droppedRecords
        XCTAssertTrue(
            (5...15).contains(dropped), "dropped \(dropped) of 25, with room for 10 and 0-10 in the writer's hands")
        handler.gateOpen.store(true, ordering: .releasing)
        queue.finish(waitingMilliseconds: 5_000)
        let written = handler.written.withLock { $0 }
        let records = written.filter { $0.hasPrefix("info record") }
        XCTAssertEqual(records, (0..<(25 - dropped)).map { "info record \($0)" })
        XCTAssertEqual(
            written.last,
            "warning \(dropped) log records were dropped: the log's reader (the journal, or whatever reads zpubd's stderr) did not keep up, and the forwarding loop does not wait for it"
        )
    }

    /// `finish` writes what is queued before it returns (a stopping loop's last lines), and
    /// records logged after it are not taken.
    func testFinishWritesWhatIsQueued() {
        let handler = GatedHandler()
        handler.gateOpen.store(true, ordering: .releasing)
        let queue = LogRecordQueue(capacity: 100)
        let logger = queue.logger(like: Logger(label: "test", factory: { _ in handler }))
        for number in 0..<50 { logger.notice("line \(number)") }
        queue.finish(waitingMilliseconds: 5_000)
        XCTAssertEqual(handler.written.withLock { $0 }, (0..<50).map { "notice line \($0)" })
        logger.notice("after")
        XCTAssertEqual(handler.written.withLock { $0 }.count, 50)
        XCTAssertEqual(queue.droppedRecords, 0)
    }
}
