import XCTest
import ZPubCore

/// The byte ring between the forwarding loop and the history writer: records whole or not at
/// all, wrapping around, and intact when two threads use it at once.
final class RecordRingTests: XCTestCase {
    private func put(_ ring: RecordRing, _ parts: [UInt8]...) -> Bool {
        ring.begin()
        for part in parts { part.withUnsafeBytes { ring.append($0) } }
        return ring.commit()
    }

    private func take(_ ring: RecordRing) -> [[UInt8]] {
        var records: [[UInt8]] = []
        ring.drain { records.append($0) }
        return records
    }

    func testRecordsComeOutWholeAndInOrder() {
        let ring = RecordRing(capacity: 64)
        XCTAssertTrue(put(ring, [1, 2], [3]))
        XCTAssertTrue(put(ring, []))
        XCTAssertEqual(ring.usedBytes, 4 + 3 + 4)
        XCTAssertEqual(take(ring), [[1, 2, 3], []])
        XCTAssertEqual(ring.usedBytes, 0)
        XCTAssertEqual(take(ring), [])
    }

    func testARecordIsInvisibleUntilCommitted() {
        let ring = RecordRing(capacity: 64)
        ring.begin()
        [UInt8]([9, 9]).withUnsafeBytes { ring.append($0) }
        XCTAssertEqual(take(ring), [], "not committed yet")
        XCTAssertTrue(ring.commit())
        XCTAssertEqual(take(ring), [[9, 9]])
    }

    func testARecordThatDoesNotFitIsDroppedWholeAndTheRestStays() {
        let ring = RecordRing(capacity: 32)
        XCTAssertTrue(put(ring, Array(repeating: 1, count: 20)))  // 24 of 32 bytes
        XCTAssertFalse(put(ring, Array(repeating: 2, count: 5)), "4 + 5 bytes do not fit in the 8 left")
        XCTAssertTrue(put(ring, [3, 3, 3, 3]), "4 + 4 bytes do")
        XCTAssertEqual(take(ring), [Array(repeating: 1, count: 20), [3, 3, 3, 3]])
        XCTAssertFalse(put(ring, Array(repeating: 4, count: 29)), "larger than the ring")
    }

    func testRecordsWrapAroundTheEnd() {
        let ring = RecordRing(capacity: 40)
        XCTAssertEqual(ring.capacity, 64, "rounded up to a power of two (positions wrap with a mask)")
        for round in 0..<50 {
            let record = (0..<UInt8(round % 23)).map { $0 &+ UInt8(round) }
            XCTAssertTrue(put(ring, record), "round \(round)")
            XCTAssertEqual(take(ring), [record], "round \(round)")
        }
    }

    func testAProducerAndAConsumerThreadLoseAndMangleNothing() {
        let ring = RecordRing(capacity: 4_096)
        let count = 200_000
        let producer = Thread {
            var sequence: UInt32 = 0
            while sequence < count {
                ring.begin()
                ring.append(integer: sequence)
                let filler = [UInt8](repeating: UInt8(truncatingIfNeeded: sequence), count: Int(sequence % 50))
                filler.withUnsafeBytes { ring.append($0) }
                if ring.commit() { sequence += 1 }  // full: try again
            }
        }
        producer.start()
        var expected: UInt32 = 0
        let deadline = Date().addingTimeInterval(60)
        while expected < count && Date() < deadline {
            ring.drain { record in
                let value = record.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
                XCTAssertEqual(value, expected)
                XCTAssertEqual(record.count, 4 + Int(value % 50))
                XCTAssertTrue(record.dropFirst(4).allSatisfy { $0 == UInt8(truncatingIfNeeded: value) })
                expected += 1
            }
        }
        XCTAssertEqual(expected, UInt32(count))
    }
}
