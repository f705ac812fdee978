import Synchronization
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

    /// A producer thread writing records 0, 1, 2... until `stop`: each its number (4 bytes),
    /// then `number % fillerModulo` bytes of the number's low byte; a full ring is tried again.
    /// It runs until told to stop, so that a test can wait for as many restarts as it wants
    /// instead of hoping a fixed count of records brings them.
    private func startNumberedProducer(_ ring: RecordRing, fillerModulo: UInt32) -> ProducerStop {
        let stop = ProducerStop()
        Thread {
            var sequence: UInt32 = 0
            while !stop.requested.load(ordering: .relaxed) {
                ring.begin()
                ring.append(integer: sequence)
                let filler = [UInt8](
                    repeating: UInt8(truncatingIfNeeded: sequence), count: Int(sequence % fillerModulo))
                filler.withUnsafeBytes { ring.append($0) }
                if ring.commit() { sequence &+= 1 }
            }
        }.start()
        return stop
    }

    private func take(_ ring: RecordRing) -> [[UInt8]] {
        var records: [[UInt8]] = []
        ring.drain { records.append(Array($0)) }
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

    /// A limited drain takes the oldest records and leaves the rest, wherever they wrap.
    func testADrainTakesAtMostItsLimit() {
        let ring = RecordRing(capacity: 64)
        for round in 0..<6 {
            for value in 0..<5 { XCTAssertTrue(put(ring, [UInt8(round), UInt8(value), 9])) }
            var first: [[UInt8]] = []
            XCTAssertEqual(ring.drain(limit: 2) { first.append(Array($0)) }, 2)
            XCTAssertEqual(first, [[UInt8(round), 0, 9], [UInt8(round), 1, 9]])
            XCTAssertEqual(ring.usedBytes, 3 * 7)
            XCTAssertEqual(take(ring), (2..<5).map { [UInt8(round), UInt8($0), 9] })
            XCTAssertEqual(ring.drain(limit: 2) { _ in XCTFail("nothing is left") }, 0)
        }
    }

    /// A batch takes whole records up to its byte limit (one at least, whatever its size) and
    /// says whether it left any, wherever they wrap around the storage's end.
    func testABatchTakesWholeRecordsUpToItsByteLimit() {
        let ring = RecordRing(capacity: 64, restartOffset: 64)
        for round in 0..<6 {
            for value in 0..<4 { XCTAssertTrue(put(ring, [UInt8(round), UInt8(value), 9])) }
            // Each record is 4 + 3 bytes: two fill the limit exactly.
            ring.consumeBatch(byteLimit: 14) { bytes, cut in
                XCTAssertEqual(Array(bytes), [0, 0, 0, 3, UInt8(round), 0, 9, 0, 0, 0, 3, UInt8(round), 1, 9])
                XCTAssertTrue(cut)
            }
            ring.consumeBatch(byteLimit: 3) { bytes, cut in
                XCTAssertEqual(Array(bytes), [0, 0, 0, 3, UInt8(round), 2, 9], "one record, larger than the limit")
                XCTAssertTrue(cut)
            }
            ring.consumeBatch(byteLimit: 7) { bytes, cut in
                XCTAssertEqual(Array(bytes), [0, 0, 0, 3, UInt8(round), 3, 9], "exactly the limit")
                XCTAssertFalse(cut)
            }
            ring.consumeBatch { bytes, cut in
                XCTAssertEqual(bytes.count, 0)
                XCTAssertFalse(cut)
            }
        }
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
        let ring = RecordRing(capacity: 40, restartOffset: 64)
        XCTAssertEqual(ring.capacity, 64, "rounded up to a power of two (positions wrap with a mask)")
        for round in 0..<50 {
            let record = (0..<UInt8(round % 23)).map { $0 &+ UInt8(round) }
            XCTAssertTrue(put(ring, record), "round \(round)")
            XCTAssertEqual(take(ring), [record], "round \(round)")
        }
    }

    /// The fixed-size and length-prefixed appends the forwarding loop uses: in place, or
    /// through a copy when they wrap, and refused whole when they do not fit.
    func testFixedFieldsAndLengthPrefixedFramesWrapAndOverflowLikeAnyBytes() {
        let ring = RecordRing(capacity: 64, restartOffset: 64)
        for round in 0..<40 {
            let frame = (0..<UInt8(round % 13)).map { $0 &+ UInt8(round) }
            ring.begin()
            ring.append(count: 9) { fields in
                fields.storeBytes(of: UInt8(round), toByteOffset: 0, as: UInt8.self)
                fields.storeBytes(of: UInt64(round).bigEndian, toByteOffset: 1, as: UInt64.self)
            }
            frame.withUnsafeBytes { ring.appendLengthPrefixed($0) }
            XCTAssertTrue(ring.commit(), "round \(round)")
            let expected =
                [UInt8(round)] + withUnsafeBytes(of: UInt64(round).bigEndian, Array.init)
                + withUnsafeBytes(of: UInt32(frame.count).bigEndian, Array.init) + frame
            XCTAssertEqual(take(ring), [expected], "round \(round)")
        }
        ring.begin()
        Array(repeating: UInt8(7), count: 57).withUnsafeBytes { ring.appendLengthPrefixed($0) }
        XCTAssertFalse(ring.commit(), "4 + 4 + 57 bytes do not fit in 64")
        XCTAssertEqual(take(ring), [])
    }

    /// Every kind of append from every position in the ring, of every size up to and past what
    /// is left before the storage's end: the fast path ends exactly where the slow one begins
    /// (room, the storage's end, an abandoned record, appends with no record open).
    func testEveryAppendFromEveryPositionComesOutIntact() {
        let ring = RecordRing(capacity: 64, restartOffset: 64)
        var expectedRecords = 0
        for start in 0..<64 {
            for size in 0..<41 {
                // Move the ring to `start` (mod 64) with filler records (4 bytes at least each).
                while ring.published % 64 != start {
                    let needed = (start - ring.published % 64 + 64) % 64
                    XCTAssertTrue(put(ring, Array(repeating: 0xEE, count: needed >= 4 ? needed - 4 : 30)))
                    XCTAssertEqual(take(ring).count, 1)
                }

                let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ start) }
                // Ignored: no record is open.
                bytes.withUnsafeBytes { ring.append($0) }
                // Abandoned by the next begin.
                ring.begin()
                bytes.withUnsafeBytes { ring.appendLengthPrefixed($0) }
                ring.begin()
                let small = Array(bytes.prefix(size / 3))
                small.withUnsafeBytes { ring.append($0) }
                ring.append(count: 3) { $0.storeBytes(of: (UInt16(size), UInt8(start)), as: (UInt16, UInt8).self) }
                bytes.withUnsafeBytes { ring.appendLengthPrefixed($0) }
                ring.append(integer: UInt16(start))
                let fits = 4 + small.count + 3 + 4 + size + 2 <= 64
                XCTAssertEqual(ring.commit(), fits, "start \(start), size \(size)")
                bytes.withUnsafeBytes { ring.append($0) }
                XCTAssertFalse(ring.commit(), "nothing is open after a commit")
                let taken = take(ring)
                guard fits else {
                    XCTAssertEqual(taken, [], "start \(start), size \(size)")
                    continue
                }
                expectedRecords += 1
                let fields = withUnsafeBytes(of: (UInt16(size), UInt8(start))) { Array($0.prefix(3)) }
                let expected =
                    small + fields + withUnsafeBytes(of: UInt32(size).bigEndian, Array.init) + bytes
                    + withUnsafeBytes(of: UInt16(start).bigEndian, Array.init)
                XCTAssertEqual(taken, [expected], "start \(start), size \(size)")
            }
        }
        XCTAssertEqual(expectedRecords, 64 * 39, "sizes 0-38 fit, 39 and 40 do not")
    }

    /// A record that fills exactly the room left beside an unread one, from every position
    /// (its fixed fields written in place or through the copy that wraps), then nothing more
    /// fits until the consumer takes them; one byte more is refused whole.
    func testARecordFillsExactlyTheRoomLeftBesideUnreadOnes() {
        let ring = RecordRing(capacity: 64, restartOffset: 64)
        for start in 0..<64 {
            for extra in [0, 1] {
                while ring.published % 64 != start {
                    let needed = (start - ring.published % 64 + 64) % 64
                    XCTAssertTrue(put(ring, Array(repeating: 0xEE, count: needed >= 4 ? needed - 4 : 30)))
                    XCTAssertEqual(take(ring).count, 1)
                }
                let unread = [UInt8](repeating: UInt8(start), count: 20)
                XCTAssertTrue(put(ring, unread))
                // 64 - 24 bytes left: 4 (length) + 23 (fields) + 4 + 9 (a frame) fill them.
                let frame = (0..<(9 + extra)).map { UInt8(truncatingIfNeeded: $0 + start) }
                ring.begin()
                ring.append(count: 23) { fields in
                    for index in 0..<23 { fields.storeBytes(of: UInt8(index), toByteOffset: index, as: UInt8.self) }
                }
                frame.withUnsafeBytes { ring.appendLengthPrefixed($0) }
                XCTAssertEqual(ring.commit(), extra == 0, "start \(start), extra \(extra)")
                if extra == 0 {
                    XCTAssertFalse(put(ring, []), "start \(start): full, and an empty record needs 4 bytes")
                }
                let expected =
                    (0..<23).map(UInt8.init) + withUnsafeBytes(of: UInt32(frame.count).bigEndian, Array.init) + frame
                XCTAssertEqual(
                    take(ring), extra == 0 ? [unread, expected] : [unread], "start \(start), extra \(extra)")
            }
        }
    }

    /// A ring goes round all its memory; the producer goes back to the storage's start once it
    /// is past `restartOffset` and finds the ring empty, so that little traffic keeps little of
    /// the ring resident. Records waiting carry it further; once taken, it goes back.
    func testTheProducerGoesBackToTheStartWhenItFindsTheRingEmpty() {
        let ring = RecordRing(capacity: 1_024, restartOffset: 100)
        var furthest = 0
        for round in 0..<200 {
            let record = [UInt8](repeating: UInt8(truncatingIfNeeded: round), count: 60)
            XCTAssertTrue(put(ring, record))
            furthest = max(furthest, (ring.published - 1) % 1_024)
            XCTAssertEqual(take(ring), [record], "round \(round)")
        }
        XCTAssertLessThan(furthest, 100 + 64, "never past the restart offset and one record")
        XCTAssertEqual(ring.usedBytes, 0)
        // Five records waiting: the producer goes on past the offset, in order.
        let waiting = (0..<5).map { [UInt8](repeating: UInt8($0), count: 60) }
        for record in waiting { XCTAssertTrue(put(ring, record)) }
        XCTAssertGreaterThan((ring.published - 1) % 1_024, 100 + 64)
        XCTAssertEqual(take(ring), waiting)
        // Taken: the next record starts at the storage's start again, with the whole ring
        // free at once (the consumer has not yet skipped the rest of the storage).
        let large = [UInt8](repeating: 9, count: 1_000)
        XCTAssertTrue(put(ring, large))
        XCTAssertEqual(ring.usedBytes, 1_004, "the storage left unused is not counted")
        XCTAssertEqual(take(ring), [large])
        XCTAssertTrue(put(ring, [7]))
        XCTAssertEqual(ring.published % 1_024, 5, "its length and its byte, at the start")
        XCTAssertEqual(take(ring), [[7]])
        // A record larger than the ring is refused, and the ring goes on.
        XCTAssertFalse(put(ring, [UInt8](repeating: 1, count: 2_000)))
        XCTAssertTrue(put(ring, [8]))
        XCTAssertEqual(take(ring), [[8]])
    }

    /// A burst makes the ring resident far past restartOffset (the writer fell behind); the
    /// restarts of light traffic afterwards give it back, a slice each, down to the offset.
    func testRestartsGiveBackWhatABurstMadeResident() {
        let ring = RecordRing(capacity: 16 << 20, restartOffset: 256 << 10)
        let burst = [UInt8](repeating: 1, count: (64 << 10) - 4)
        for _ in 0..<192 { XCTAssertTrue(put(ring, burst)) }
        XCTAssertEqual(take(ring).count, 192)
        XCTAssertGreaterThanOrEqual(ring.residentBytes, 12 << 20, "the burst's 12 MiB")
        let small = [UInt8](repeating: 2, count: 1_000)
        let restarts = ring.restarts
        while ring.restarts < restarts + 12 {
            XCTAssertTrue(put(ring, small))
            XCTAssertEqual(take(ring), [small])
        }
        XCTAssertLessThanOrEqual(
            ring.residentBytes, (256 << 10) + RecordRing.trimSlice / 32 + (64 << 10),
            "back to the offset, the little left past it, and a record")
        XCTAssertGreaterThanOrEqual(ring.trimmedBytes, (12 << 20) - (256 << 10))
        // And the pages given back are zero-filled when the ring needs them again: records
        // written there come out intact.
        for _ in 0..<100 { XCTAssertTrue(put(ring, burst)) }
        XCTAssertEqual(take(ring), Array(repeating: burst, count: 100))
    }

    /// The consumer reads records in the ring's own memory while the producer goes on: the
    /// producer never writes into a batch until the consumer is done with it (each batch is
    /// checked twice, the second time after giving the producer time to write). It reads until
    /// the producer has gone back to the storage's start several times: a restart needs the
    /// ring empty with the producer past `restartOffset`, and batches of one size can settle
    /// into a rhythm where the ring only empties before that point (CI once saw 50,000 records
    /// and no restart), so the batches' sizes vary.
    func testABatchReadInPlaceIsNotOverwrittenWhileItIsRead() {
        let ring = RecordRing(capacity: 1_024)
        let stop = startNumberedProducer(ring, fillerModulo: 40)
        defer { stop.requested.store(true, ordering: .relaxed) }
        var expected: UInt32 = 0
        let deadline = Date().addingTimeInterval(60)
        while (expected < 50_000 || ring.restarts < 20) && Date() < deadline {
            let byteLimit = Int.random(in: 1...1_200)
            ring.consumeBatch(byteLimit: byteLimit) { bytes, cut in
                func check() -> UInt32 {
                    var next = expected
                    let whole = HistoryRecord.forEachRecord(in: bytes) { slot in
                        let body = Array(UnsafeRawBufferPointer(rebasing: bytes[slot.body]))
                        let value = body.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
                        XCTAssertEqual(value, next)
                        XCTAssertEqual(body.count, 4 + Int(value % 40))
                        XCTAssertTrue(body.dropFirst(4).allSatisfy { $0 == UInt8(truncatingIfNeeded: value) })
                        next += 1
                    }
                    XCTAssertTrue(whole)
                    return next
                }
                let next = check()
                let records = Int(next - expected)
                XCTAssertTrue(bytes.count <= byteLimit || records == 1, "within the limit, or one record")
                if cut { XCTAssertGreaterThan(records, 0, "a cut batch takes at least one record") }
                if records > 0 {
                    usleep(Bool.random() ? 200 : 20)
                    XCTAssertEqual(check(), next, "unchanged while it was read")
                }
                expected = next
            }
        }
        XCTAssertGreaterThanOrEqual(expected, 50_000)
        XCTAssertGreaterThanOrEqual(ring.restarts, 20, "the producer went back to the start while batches were read")
    }

    /// Records come out whole and in order while the producer restarts at the storage's start;
    /// a third thread reading `usedBytes` meanwhile (as STATS does) never sees it outside
    /// 0...capacity.
    func testAProducerAndAConsumerThreadLoseAndMangleNothing() {
        let ring = RecordRing(capacity: 4_096)
        let stop = startNumberedProducer(ring, fillerModulo: 50)
        defer { stop.requested.store(true, ordering: .relaxed) }
        let watch = UsedBytesWatch()
        Thread {
            while !watch.done.load(ordering: .relaxed) {
                let used = ring.usedBytes
                if used < 0 || used > ring.capacity { watch.outside.store(used, ordering: .relaxed) }
            }
        }.start()
        defer { watch.done.store(true, ordering: .relaxed) }
        var expected: UInt32 = 0
        let deadline = Date().addingTimeInterval(60)
        while (expected < 200_000 || ring.restarts < 20) && Date() < deadline {
            ring.drain(limit: .random(in: 1...64)) { record in
                let value = record.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
                XCTAssertEqual(value, expected)
                XCTAssertEqual(record.count, 4 + Int(value % 50))
                XCTAssertTrue(record.dropFirst(4).allSatisfy { $0 == UInt8(truncatingIfNeeded: value) })
                expected += 1
            }
        }
        XCTAssertGreaterThanOrEqual(expected, 200_000)
        XCTAssertGreaterThanOrEqual(ring.restarts, 20, "the producer went back to the start while the consumer read")
        XCTAssertEqual(watch.outside.load(ordering: .relaxed), 0, "usedBytes read from a third thread")
    }
}

/// Tells a numbered producer thread to stop.
private final class ProducerStop: Sendable {
    let requested = Atomic<Bool>(false)
}

/// What a thread reading `usedBytes` beside the producer and consumer saw out of range.
private final class UsedBytesWatch: Sendable {
    let done = Atomic<Bool>(false)
    let outside = Atomic<Int>(0)
}

/// Which history prefix keeps a topic: the first that matches, by its length (the prefix is
/// then the topic's first bytes); short prefixes compared byte by byte, long ones with memcmp.
final class HistoryPrefixesTests: XCTestCase {
    private func match(_ prefixes: [String], _ topic: String) -> Int? {
        var matcher = HistoryPrefixes(prefixes)
        return Array(topic.utf8).withUnsafeBytes { matcher.matchLength($0) }
    }

    func testTheFirstMatchingPrefixGivesItsLength() {
        XCTAssertEqual(match(["orders.", "t"], "orders.42"), 7)
        XCTAssertEqual(match(["orders.", "t"], "t.x"), 1)
        XCTAssertNil(match(["orders.", "t"], "order"), "shorter than the prefix")
        XCTAssertNil(match(["orders.", "t"], "news"))
        XCTAssertEqual(match(["", "t"], "anything"), 0, "the empty prefix keeps everything")
        XCTAssertNil(match([], "t"))
        XCTAssertFalse(HistoryPrefixes([]).isEnabled)
    }

    /// `RawBytes.copy`'s short moves: every size around their boundaries, exactly the bytes
    /// asked for, the neighbours untouched.
    func testRawBytesCopyMovesExactlyTheBytesAskedFor() {
        for count in 0..<70 {
            let source = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
            var target = [UInt8](repeating: 0xAA, count: count + 16)
            target.withUnsafeMutableBytes { target in
                source.withUnsafeBytes { RawBytes.copy(target.baseAddress! + 8, from: $0) }
            }
            XCTAssertEqual(Array(target[8..<(8 + count)]), source, "\(count) bytes")
            XCTAssertEqual(Array(target[..<8]) + Array(target[(8 + count)...]), Array(repeating: 0xAA, count: 16))
        }
    }

    /// `RawBytes.equal` at every size its ways of comparing cover (byte loop, 4- and 8-byte
    /// loads, memcmp past 16 bytes): equal runs are equal, and one byte changed anywhere makes
    /// them differ.
    func testRawBytesEqualSeesADifferenceAtEveryPosition() {
        for count in 0...80 {
            let a = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            // A separate copy, with bytes of its own around it: a load at a wrong offset or past
            // `count` would read different bytes on the two sides.
            let b = [0x11] + a + [0x22]
            let equal = a.withUnsafeBytes { first in
                b.withUnsafeBytes { second in
                    RawBytes.equal(first.baseAddress ?? second.baseAddress!, second.baseAddress! + 1, count: count)
                }
            }
            XCTAssertTrue(equal, "\(count) equal bytes")
            for position in 0..<count {
                var changed = b
                changed[position + 1] ^= 0x40
                let differs = a.withUnsafeBytes { first in
                    changed.withUnsafeBytes { RawBytes.equal(first.baseAddress!, $0.baseAddress! + 1, count: count) }
                }
                XCTAssertFalse(differs, "\(count) bytes, byte \(position) differs")
            }
        }
    }

    func testLongPrefixesAreComparedWholly() {
        let long = "telemetry.region.eu-west.rack-12."
        XCTAssertEqual(match([long], long + "node-3"), long.utf8.count)
        XCTAssertNil(match([long], String(long.dropLast()) + "!node-3"), "differs in its last byte")
        XCTAssertNil(match([long], "X" + long.dropFirst()), "differs in its first byte")
        XCTAssertEqual(match(["a", long], long), long.utf8.count)
    }
}
