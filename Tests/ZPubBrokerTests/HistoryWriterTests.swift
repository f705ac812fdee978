import Logging
import XCTest
import ZPubCore

@testable import ZPubBroker

/// The history writer on one thread, its store in memory: what a query is told after the loop
/// handed over messages (the thread itself is tested end to end in IntegrationTests).
final class HistoryWriterTests: XCTestCase {
    private func writer() throws -> HistoryWriter {
        var configuration = BrokerConfiguration()
        configuration.historyPrefixes = ["h."]
        configuration.historyQueueBytes = 1 << 16
        return try HistoryWriter(configuration: configuration, logger: Logger(label: "test"))
    }

    /// What the forwarding loop does with a kept message: its record (dropped, though
    /// numbered, when it does not fit in the queue).
    private func keep(_ queue: HistoryQueue, _ sequence: UInt64, bytes: Int = 8) {
        Array("h.topic".utf8).withUnsafeBytes { topic in
            queue.begin(sequence: sequence, milliseconds: 1_000, prefixLength: 2, topic: topic)
        }
        [UInt8](repeating: 7, count: bytes).withUnsafeBytes { queue.appendFrame($0) }
        queue.commit(sequence: sequence)
    }

    /// The loop drops two messages after the writer's last batch took its bound, then a
    /// REPLAY's marker numbers nothing new: nothing is left to write, and the replay must
    /// still be told that 3 and 4 are not kept.
    func testAQueryIsToldOfNumbersDroppedAfterTheLastBatch() throws {
        let writer = try writer()
        let queue = writer.handle.queue
        keep(queue, 1)
        keep(queue, 2)
        XCTAssertEqual(writer.writeBatch().bytes, queue.published, "both records, in one batch")
        keep(queue, 3, bytes: 1 << 17)  // larger than the queue
        keep(queue, 4, bytes: 1 << 17)
        XCTAssertEqual(queue.depth.dropped, 2)
        let reply = try writer.answerOnceWritten(HistoryQuery(position: .since(0), through: 4, prefix: [])).get()
        XCTAssertEqual(reply.messages.map(\.sequence), [1, 2])
        XCTAssertEqual(reply.notKept, [HistoryReply.NotKept(from: 3, to: 4, reason: .dropped)])
    }
}
