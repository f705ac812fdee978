import XCTest
import ZPubCore

@testable import ZPubBroker

/// The hand-off from the forwarding loop to the history writer, on one thread: what a batch
/// claims as numbered, and the reserve's ceiling. (The two threads together are tested end to
/// end in IntegrationTests/HistoryTests.)
final class HistoryQueueTests: XCTestCase {
    private func keep(_ queue: HistoryQueue, _ sequences: ClosedRange<UInt64>) {
        for sequence in sequences {
            Array("h.topic".utf8).withUnsafeBytes { topic in
                queue.begin(sequence: sequence, milliseconds: 1_000, prefixLength: 2, topic: topic)
            }
            Array("payload \(sequence)".utf8).withUnsafeBytes { queue.appendFrame($0) }
            queue.commit(sequence: sequence)
        }
    }

    /// A batch cut by its limit leaves numbered records for the next one, so it claims no
    /// number: a reply's last_seq would otherwise run ahead of the store, and a passive pair
    /// member would mirror past messages it never stored. The batch that takes the rest claims
    /// every number assigned before it was taken. The limit is in bytes, and cuts between
    /// records.
    func testABatchCutByItsLimitClaimsNoNumber() {
        let queue = HistoryQueue(capacityBytes: 1 << 20)
        keep(queue, 1...5)
        // Each record is the same size here ("payload 1" to "payload 5").
        let recordBytes = queue.published / 5
        queue.withTaken(byteLimit: 3 * recordBytes + recordBytes / 2) { records, lastValues, assignedThrough, cut in
            XCTAssertEqual(Self.sequences(in: records), [1, 2, 3], "whole records, within the limit")
            XCTAssertTrue(lastValues.isEmpty)
            XCTAssertEqual(assignedThrough, 0, "two numbered records are still queued")
            XCTAssertTrue(cut)
        }
        queue.withTaken(byteLimit: 3 * recordBytes) { records, _, assignedThrough, cut in
            XCTAssertEqual(Self.sequences(in: records), [4, 5])
            XCTAssertEqual(assignedThrough, 5)
            XCTAssertFalse(cut)
        }
        XCTAssertEqual(queue.assignedThrough, 5)
    }

    /// A record larger than the limit is taken alone: the limit never stalls the queue.
    func testARecordLargerThanTheLimitIsTakenAlone() {
        let queue = HistoryQueue(capacityBytes: 1 << 20)
        keep(queue, 1...2)
        queue.withTaken(byteLimit: 10) { records, _, assignedThrough, cut in
            XCTAssertEqual(Self.sequences(in: records), [1])
            XCTAssertEqual(assignedThrough, 0)
            XCTAssertTrue(cut)
        }
        queue.withTaken(byteLimit: 10) { records, _, assignedThrough, cut in
            XCTAssertEqual(Self.sequences(in: records), [2])
            XCTAssertEqual(assignedThrough, 2)
            XCTAssertFalse(cut)
        }
    }

    private static func sequences(in records: UnsafeRawBufferPointer) -> [UInt64] {
        var sequences: [UInt64] = []
        let whole = HistoryRecord.forEachRecord(in: records) { slot in
            sequences.append(HistoryRecord.Message(slot, in: records)?.sequence ?? 0)
        }
        XCTAssertTrue(whole, "records are taken whole")
        return sequences
    }

    /// The loop numbers nothing above the store's committed reserve; each refusal counts as a
    /// message history dropped.
    func testTheCeilingRefusesNumbersAboveItAndCountsThem() {
        let queue = HistoryQueue(capacityBytes: 1 << 20)
        XCTAssertTrue(queue.mayNumber(.max), "no ceiling until the writer sets one")
        queue.setCeiling(3)
        XCTAssertTrue(queue.mayNumber(3))
        XCTAssertFalse(queue.mayNumber(4))
        XCTAssertFalse(queue.mayNumber(5))
        XCTAssertEqual(queue.depth.dropped, 2)
        queue.setCeiling(1_003)
        XCTAssertTrue(queue.mayNumber(4), "a renewed reserve lets numbering go on")
        XCTAssertEqual(queue.depth.dropped, 2)
    }

    /// A mirrored message that history does not keep still counts as numbered, so a passive
    /// pair member's store never gives its number again.
    func testAMirroredNumberNotKeptIsStillAssigned() {
        let queue = HistoryQueue(capacityBytes: 1 << 20)
        keep(queue, 1...2)
        XCTAssertTrue(queue.commitMirrored(sequence: 7, kept: false, recordBytes: 0))
        queue.withTaken(byteLimit: 1 << 20) { records, _, assignedThrough, _ in
            XCTAssertEqual(Self.sequences(in: records), [1, 2])
            XCTAssertEqual(assignedThrough, 7)
        }
    }

    /// A mirrored message without room is neither kept nor numbered nor a drop: the pair link
    /// asks for it again. One larger than the whole queue never fits: dropped and numbered,
    /// as the forwarding loop does with one of its own.
    func testAMirroredMessageWithoutRoomIsRefusedUnlessItCanNeverFit() {
        let queue = HistoryQueue(capacityBytes: 1_024)
        func mirror(_ sequence: UInt64, bytes: Int) -> Bool {
            let topic = Array("t".utf8)
            topic.withUnsafeBytes { queue.begin(sequence: sequence, milliseconds: 1, prefixLength: 1, topic: $0) }
            [UInt8](repeating: 1, count: bytes).withUnsafeBytes { queue.appendFrame($0) }
            let recordBytes = 4 + HistoryRecord.messageHeaderSize + 4 + topic.count + 4 + bytes
            return queue.commitMirrored(sequence: sequence, kept: true, recordBytes: recordBytes)
        }
        XCTAssertTrue(mirror(1, bytes: 600))
        XCTAssertFalse(mirror(2, bytes: 600), "no room beside the first")
        XCTAssertEqual(queue.depth.dropped, 0)
        queue.withTaken(byteLimit: 1 << 20) { records, _, assignedThrough, _ in
            XCTAssertEqual(Self.sequences(in: records), [1])
            XCTAssertEqual(assignedThrough, 1, "2 is not numbered")
        }
        XCTAssertTrue(mirror(2, bytes: 600), "room once the writer took the first")
        queue.withTaken(byteLimit: 1 << 20) { _, _, _, _ in }
        XCTAssertTrue(mirror(3, bytes: 2_000), "larger than the queue: never fits")
        XCTAssertEqual(queue.depth.dropped, 1)
        queue.withTaken(byteLimit: 1 << 20) { records, _, assignedThrough, _ in
            XCTAssertEqual(records.count, 0)
            XCTAssertEqual(assignedThrough, 3)
        }
    }
}
