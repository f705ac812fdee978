import Logging
import Synchronization
import XCTest

@testable import ZPubBroker

final class LogRecordQueueTests: XCTestCase {
    /// A handler whose writes block until the test opens its gate, as a write to a full pipe or
    /// a stalled journal blocks; it keeps what it was given.
    final class GatedHandler: LogHandler, @unchecked Sendable {
        let gateOpen = Atomic<Bool>(false)
        /// Set when the writer first calls `log`, and is held there while the gate is shut.
        let entered = Atomic<Bool>(false)
        let written = Mutex<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            entered.store(true, ordering: .releasing)
            while !gateOpen.load(ordering: .acquiring) { usleep(1_000) }
            written.withLock { $0.append("\(event.level) \(event.message)") }
        }
    }

    /// While the writer is blocked, logging returns at once: `capacity` records wait, the rest
    /// are dropped and counted. Once the writer can write, the waiting records come out in order,
    /// followed by a warning that says how many were dropped and why.
    func testABlockedWriterNeverHoldsTheLoggerAndDropsAreReported() throws {
        let handler = GatedHandler()
        let queue = LogRecordQueue(capacity: 10)
        queue.start()
        let logger = queue.logger(like: Logger(label: "test", factory: { _ in handler }))
        logger.info("record 0")
        // The writer has taken record 0 and is blocked writing it.
        let deadline = ContinuousClock.now + .seconds(10)
        while !handler.entered.load(ordering: .acquiring) {
            guard ContinuousClock.now < deadline else { return XCTFail("the writer never took record 0") }
            usleep(1_000)
        }
        let start = ContinuousClock.now
        for number in 1..<25 { logger.info("record \(number)") }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(1), "logging waited for the blocked writer")
        XCTAssertEqual(queue.droppedRecords, 14, "records 1-10 wait, 11-24 do not fit")
        handler.gateOpen.store(true, ordering: .releasing)
        queue.finish(waitingMilliseconds: 5_000)
        let written = handler.written.withLock { $0 }
        XCTAssertEqual(Array(written.dropLast()), (0...10).map { "info record \($0)" })
        XCTAssertEqual(
            written.last,
            "warning 14 log records were dropped: the log's reader (the journal, or whatever reads zpubd's stderr) did not keep up, and the forwarding loop does not wait for it; the loop's lines written just before this one may be late and carry this time"
        )
        XCTAssertEqual(queue.droppedRecords, 14, "counted from the start")
    }

    /// `finish` writes what is queued before it returns (a stopping loop's last lines), and
    /// records logged after it are not taken.
    func testFinishWritesWhatIsQueued() {
        let handler = GatedHandler()
        handler.gateOpen.store(true, ordering: .releasing)
        let queue = LogRecordQueue(capacity: 100)
        queue.start()
        let logger = queue.logger(like: Logger(label: "test", factory: { _ in handler }))
        for number in 0..<50 { logger.notice("line \(number)") }
        queue.finish(waitingMilliseconds: 5_000)
        XCTAssertEqual(handler.written.withLock { $0 }, (0..<50).map { "notice line \($0)" })
        logger.notice("after")
        XCTAssertEqual(handler.written.withLock { $0 }.count, 50)
        XCTAssertEqual(queue.droppedRecords, 0)
    }
}
