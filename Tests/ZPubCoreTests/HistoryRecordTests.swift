import XCTest
import ZPubCore

/// The one layout of a kept message, from the forwarding loop to the store: read back field by
/// field where it lies, for every shape of message, and refused whole when it is damaged.
final class HistoryRecordTests: XCTestCase {
    private let shapes: [[[UInt8]]] = [
        [Array("a.x".utf8)], [Array("a.x".utf8), []], [Array("a.topic".utf8), Array("payload".utf8), [0, 1, 2]],
        [Array("a.".utf8), [UInt8](repeating: 7, count: 70_000)],
    ]

    private func messages(in buffer: [UInt8]) -> (messages: [HistoryRecord.Message], whole: Bool) {
        buffer.withUnsafeBytes { bytes in
            var messages: [HistoryRecord.Message] = []
            let whole = HistoryRecord.forEachRecord(in: bytes) { slot in
                if let message = HistoryRecord.Message(slot, in: bytes) { messages.append(message) }
            }
            return (messages, whole)
        }
    }

    func testAMessageRecordIsReadWhereItLies() throws {
        for frames in shapes {
            // Behind another record, as in a batch: the record does not start at 0.
            let before = HistoryRecord.encodeMessage(
                sequence: 8, receivedMilliseconds: 4, prefixLength: 1, frames: [Array("b".utf8)])
            let buffer =
                before
                + HistoryRecord.encodeMessage(sequence: 9, receivedMilliseconds: 5, prefixLength: 2, frames: frames)
            let (read, whole) = messages(in: buffer)
            XCTAssertTrue(whole)
            XCTAssertEqual(read.count, 2)
            let message = try XCTUnwrap(read.last)
            XCTAssertEqual(message.sequence, 9)
            XCTAssertEqual(message.receivedMilliseconds, 5)
            XCTAssertEqual(message.bytes, frames.reduce(0) { $0 + $1.count })
            XCTAssertEqual(Array(buffer[message.topic]), frames[0])
            XCTAssertEqual(Array(buffer[message.prefix]), Array("a.".utf8))
            XCTAssertEqual(Array(buffer[message.frames]), FrameCodec.encode(frames))
            XCTAssertEqual(message.frames.upperBound, buffer.count, "the frames end the record")
            buffer.withUnsafeBytes { bytes in
                XCTAssertEqual(message.decodedFrames(in: bytes), frames)
                XCTAssertTrue(message.topicStarts(with: Array("a.".utf8), in: bytes))
                XCTAssertTrue(message.topicStarts(with: [], in: bytes))
                XCTAssertFalse(message.topicStarts(with: Array("a.xyz-longer-than-any-topic".utf8), in: bytes))
                XCTAssertFalse(message.topicStarts(with: Array("b".utf8), in: bytes))
            }
        }
    }

    /// A body cut short anywhere but between two frames (which leaves a shorter valid message)
    /// is refused; so are a prefix longer than the topic, no frames, and another kind.
    func testADamagedRecordIsRefusedNotHalfRead() {
        for frames in shapes {
            let record = HistoryRecord.encodeMessage(
                sequence: 9, receivedMilliseconds: 5, prefixLength: 2, frames: frames)
            var boundaries: Set<Int> = []
            var end = record.count
            for frame in frames.reversed() {
                end -= 4 + frame.count
                boundaries.insert(record.count - end)
            }
            record.withUnsafeBytes { bytes in
                for cut in 1..<min(12, record.count - 4 - HistoryRecord.messageHeaderSize)
                where !boundaries.contains(cut) {
                    let slot = HistoryRecord.Slot(range: 0..<(record.count - cut), kind: HistoryRecord.messageKind)
                    XCTAssertNil(HistoryRecord.Message(slot, in: bytes), "\(frames.count) frames, \(cut) bytes short")
                }
            }
        }
        let shortTopic = HistoryRecord.encodeMessage(
            sequence: 1, receivedMilliseconds: 1, prefixLength: 2, frames: [Array("a".utf8)])
        let noFrames = HistoryRecord.encodeMessage(sequence: 1, receivedMilliseconds: 1, prefixLength: 0, frames: [])
        var lastValue = HistoryRecord.encodeMessage(
            sequence: 1, receivedMilliseconds: 1, prefixLength: 0, frames: [Array("a".utf8)])
        lastValue[4] = HistoryRecord.lastValueKind
        XCTAssertEqual(messages(in: shortTopic + noFrames + lastValue).messages, [])
        XCTAssertEqual(messages(in: [0, 0, 0, 0]).messages, [], "an empty record")
        let record = HistoryRecord.encodeMessage(
            sequence: 1, receivedMilliseconds: 1, prefixLength: 1, frames: [Array("a".utf8)])
        record.withUnsafeBytes { bytes in
            let beyond = HistoryRecord.Slot(range: 0..<(record.count + 8), kind: HistoryRecord.messageKind)
            XCTAssertNil(HistoryRecord.Message(beyond, in: bytes), "a slot that is not inside the bytes")
        }
    }

    /// A batch whose last record's length runs past its end says so, after the ones before it.
    func testARecordCutOffAtTheEndOfABatchIsReported() {
        let whole = HistoryRecord.encodeMessage(
            sequence: 1, receivedMilliseconds: 1, prefixLength: 1, frames: [Array("a".utf8)])
        let (read, complete) = messages(in: whole + whole.dropLast(2) + [])
        XCTAssertEqual(read.map(\.sequence), [1])
        XCTAssertFalse(complete)
        XCTAssertFalse(messages(in: whole + [0, 0]).whole, "a length cut short")
    }
}
