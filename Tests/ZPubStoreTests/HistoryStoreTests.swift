import XCTest
import ZPubCore

@testable import ZPubStore

extension HistoryStore {
    /// The messages as the writer hands them over (`EncodedMessage`), from frames.
    fileprivate func append(_ messages: [StoredMessage], assignedThrough: UInt64, nowMilliseconds: UInt64) throws {
        try append(
            messages.map(EncodedMessage.init), assignedThrough: assignedThrough, nowMilliseconds: nowMilliseconds)
    }
}

/// The history store on a real SQLite file in a temporary directory (and in memory): what it
/// keeps, in what order, within which bounds, across a reopen, and how it refuses a bad file.
final class HistoryStoreTests: XCTestCase {
    private var directory = ""
    private let roomy = HistoryStore.Bounds(maxMessages: 1_000, maxBytes: 1 << 20, maxAgeMilliseconds: 0)

    override func setUpWithError() throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("zpub-store-\(UUID().uuidString)")
            .path
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func message(_ sequence: UInt64, _ topic: String, _ payload: String, at milliseconds: UInt64 = 1_000)
        -> StoredMessage
    {
        StoredMessage(
            sequence: sequence, receivedMilliseconds: milliseconds,
            frames: [Array(topic.utf8), Array(payload.utf8), []],
            prefix: String(topic.prefix(2)))
    }

    /// What the writer reads out of a queue record is the message `FrameCodec` would encode,
    /// for every shape of message, and a damaged record is refused, not half read.
    func testAnEncodedMessageReadsItsFramesWhereTheyLie() throws {
        let shapes: [[[UInt8]]] = [
            [Array("a.x".utf8)], [Array("a.x".utf8), []], [Array("a.topic".utf8), Array("payload".utf8), [0, 1, 2]],
            [Array("a.".utf8), [UInt8](repeating: 7, count: 70_000)],
        ]
        for frames in shapes {
            let stored = StoredMessage(sequence: 9, receivedMilliseconds: 5, frames: frames, prefix: "a.")
            // Behind a record header, as in the queue: the slice does not start at 0.
            let record = [UInt8](repeating: 0xEE, count: 19) + FrameCodec.encode(frames)
            let encoded = try XCTUnwrap(
                EncodedMessage(sequence: 9, receivedMilliseconds: 5, prefixLength: 2, encodedFrames: record[19...]))
            XCTAssertEqual(Array(encoded.encodedFrames), FrameCodec.encode(frames))
            XCTAssertEqual(Array(record[encoded.topic]), frames[0])
            XCTAssertEqual(encoded.bytes, stored.bytes)
            XCTAssertEqual(encoded.prefix, "a.")
            let fromFrames = EncodedMessage(stored)
            XCTAssertEqual(Array(fromFrames.encodedFrames), Array(encoded.encodedFrames))
            XCTAssertEqual(fromFrames.bytes, encoded.bytes)
            XCTAssertEqual(Array(fromFrames.encodedFrames[fromFrames.topic]), frames[0])
            // Every cut but those between two frames (which leave a shorter valid message).
            var boundaries: Set<Int> = []
            var end = record.count
            for frame in frames.reversed() {
                end -= 4 + frame.count
                boundaries.insert(record.count - end)
            }
            for cut in 1..<min(12, record.count - 19) where !boundaries.contains(cut) {
                XCTAssertNil(
                    EncodedMessage(
                        sequence: 9, receivedMilliseconds: 5, prefixLength: 2,
                        encodedFrames: record[19..<(record.count - cut)]),
                    "\(frames.count) frames, \(cut) bytes short")
            }
        }
        // A prefix longer than the topic, and no frames at all.
        let short = FrameCodec.encode([Array("a".utf8)])
        XCTAssertNil(EncodedMessage(sequence: 1, receivedMilliseconds: 1, prefixLength: 2, encodedFrames: short[...]))
        XCTAssertNil(EncodedMessage(sequence: 1, receivedMilliseconds: 1, prefixLength: 0, encodedFrames: []))
    }

    /// Topics are bytes: a prefix with a NUL in it is stored and read back whole, so the
    /// per-prefix counts keep their keys across a reopen.
    func testAPrefixWithANulByteKeepsItsCountsAcrossAReopen() throws {
        let prefix = "\u{0}a"
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try store.append(
                [message(1, "\u{0}a.x", "one"), message(2, "\u{0}a.y", "two")], assignedThrough: 2,
                nowMilliseconds: 1_000)
            XCTAssertEqual(store.perPrefix, [prefix: HistoryStore.PrefixCounts(messages: 2, bytes: 14)])
        }
        let reopened = try HistoryStore(directory: directory, bounds: roomy)
        XCTAssertEqual(reopened.perPrefix, [prefix: HistoryStore.PrefixCounts(messages: 2, bytes: 14)])
        XCTAssertEqual(try reopened.messages(after: 0, prefix: [], limit: 10).map(\.prefix), [prefix, prefix])
    }

    func testMessagesComeBackWholeInOrderAndSurviveAReopen() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            try store.append(
                [message(1, "a.x", "one"), message(2, "b.y", "two"), message(3, "a.z", "three")], assignedThrough: 3,
                nowMilliseconds: 1_000)
            XCTAssertEqual(store.messageCount, 3)
        }
        let reopened = try HistoryStore(directory: directory, bounds: roomy)
        XCTAssertEqual(reopened.lastSequence, 3)
        XCTAssertEqual(reopened.firstSequence, 1)
        XCTAssertEqual(reopened.perPrefix["a."], HistoryStore.PrefixCounts(messages: 2, bytes: 14))
        let all = try reopened.messages(after: 0, prefix: [], limit: 10)
        XCTAssertEqual(all, [message(1, "a.x", "one"), message(2, "b.y", "two"), message(3, "a.z", "three")])
        XCTAssertEqual(try reopened.messages(after: 1, prefix: Array("a.".utf8), limit: 10).map(\.sequence), [3])
        XCTAssertEqual(try reopened.messages(after: 0, prefix: [], limit: 2, newest: true).map(\.sequence), [2, 3])
        XCTAssertEqual(try reopened.messages(after: 0, through: 2, prefix: [], limit: 10).map(\.sequence), [1, 2])
    }

    func testSequencesOfDroppedMessagesAreNeverReused() throws {
        do {
            let store = try HistoryStore(directory: directory, bounds: roomy)
            // 2..5 were dropped before the store: the store still remembers 5 was assigned.
            try store.append([message(1, "a.x", "one")], assignedThrough: 5, nowMilliseconds: 1_000)
        }
        XCTAssertEqual(try HistoryStore(directory: directory, bounds: roomy).lastSequence, 5)
    }

    func testTheOldestGoFirstByCountBytesAndAge() throws {
        let store = try HistoryStore(
            directory: nil, bounds: HistoryStore.Bounds(maxMessages: 3, maxBytes: 1 << 20, maxAgeMilliseconds: 0))
        try store.append((1...5).map { message($0, "a.x", "p\($0)") }, assignedThrough: 5, nowMilliseconds: 1_000)
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10).map(\.sequence), [3, 4, 5])
        XCTAssertEqual(store.evictions, 2)
        XCTAssertEqual(store.firstSequence, 3)

        store.bounds = HistoryStore.Bounds(maxMessages: 100, maxBytes: 12, maxAgeMilliseconds: 0)
        try store.applyBounds(nowMilliseconds: 1_000)
        // Each message is 3 + 2 bytes: 12 bytes hold two.
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10).map(\.sequence), [4, 5])
        XCTAssertEqual(store.byteCount, 10)

        store.bounds = HistoryStore.Bounds(maxMessages: 100, maxBytes: 1 << 20, maxAgeMilliseconds: 500)
        try store.append([message(6, "a.x", "new", at: 2_000)], assignedThrough: 6, nowMilliseconds: 2_000)
        XCTAssertEqual(try store.messages(after: 0, prefix: [], limit: 10).map(\.sequence), [6], "older than 500 ms")
        XCTAssertEqual(store.messageCount, 1)
    }

    func testADamagedFileIsRefusedWithItsNameAndLeftInPlace() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/" + HistoryStore.fileName
        let garbage = Data(repeating: 0x41, count: 8_192)
        try garbage.write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try HistoryStore(directory: directory, bounds: roomy)) { error in
            let error = error as! HistoryStoreError
            XCTAssertEqual(error.exitStatus, 74)
            XCTAssertTrue(error.description.contains(file), error.description)
            XCTAssertTrue(error.description.contains("move it aside"), error.description)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file)), garbage, "never wiped")
    }

    func testASecondStoreOnTheSameDirectoryIsRefused() throws {
        let first = try HistoryStore(directory: directory, bounds: roomy)
        try first.append([message(1, "a.x", "one")], assignedThrough: 1, nowMilliseconds: 1_000)
        XCTAssertThrowsError(try HistoryStore(directory: directory, bounds: roomy)) { error in
            let error = error as! HistoryStoreError
            XCTAssertEqual(error.exitStatus, 74)
            XCTAssertTrue(error.description.contains("in use by another process"), error.description)
        }
    }

    func testADirectoryThatCannotBeMadeIsRefused() throws {
        // A directory under a regular file cannot be made, even by root.
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/plain-file"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try HistoryStore(directory: file + "/state", bounds: roomy)) { error in
            let error = error as! HistoryStoreError
            XCTAssertEqual(error.exitStatus, 73)
            XCTAssertTrue(error.description.contains(file + "/state"), error.description)
        }
        XCTAssertThrowsError(try HistoryStore(directory: file, bounds: roomy)) { error in
            XCTAssertTrue((error as! HistoryStoreError).description.contains("is not a directory"))
        }
    }
}
