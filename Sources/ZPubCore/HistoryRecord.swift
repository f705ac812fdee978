#if canImport(Glibc)
    import Glibc
#endif

/// A kept message as bytes, one layout from end to end: the forwarding loop writes it into the
/// history queue (a `RecordRing`), the writer hands the drained bytes to the store unchanged,
/// and the store keeps thousands of them to a row. Nothing is decoded or encoded again on the
/// way, which is what makes keeping a message cheap (docs/history.md).
///
/// A record is a 4-byte big-endian length, then its body; the body's first byte is its kind.
/// - kind 0, a kept message: sequence (8 bytes), receive time in ms since the epoch (8), the
///   length of the history prefix that keeps it (2; the prefix is the topic's first bytes), then
///   each frame, topic first, as a 4-byte length and its bytes (`FrameCodec`'s layout);
/// - kind 1, a last-value update to persist: the cache's sequence (8), its time (8), then the
///   frames the same way. It travels through the queue only; the store keeps it elsewhere.
/// Integers are big-endian.
public enum HistoryRecord {
    public static let messageKind: UInt8 = 0
    public static let lastValueKind: UInt8 = 1
    /// A message record's body before its frames: kind, sequence, time, prefix length.
    public static let messageHeaderSize = 19

    /// A whole message record, its length included (tests, and the store's migration).
    public static func encodeMessage(
        sequence: UInt64, receivedMilliseconds: UInt64, prefixLength: Int, frames: [[UInt8]]
    ) -> [UInt8] {
        var body: [UInt8] = [messageKind]
        appendBigEndian(sequence, to: &body)
        appendBigEndian(receivedMilliseconds, to: &body)
        appendBigEndian(UInt16(truncatingIfNeeded: prefixLength), to: &body)
        body += FrameCodec.encode(frames)
        var record: [UInt8] = []
        record.reserveCapacity(4 + body.count)
        appendBigEndian(UInt32(body.count), to: &record)
        return record + body
    }

    public static func appendBigEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes += $0 }
    }

    /// One record in a buffer of them: where it lies (its length included) and its kind.
    public struct Slot: Equatable {
        public let range: Range<Int>
        /// Nil for an empty body.
        public let kind: UInt8?
        /// The body, after the 4-byte length.
        public var body: Range<Int> { (range.lowerBound + 4)..<range.upperBound }

        public init(range: Range<Int>, kind: UInt8?) {
            self.range = range
            self.kind = kind
        }
    }

    /// Calls `body` with each record in `bytes`, in order. False when the last one is cut short
    /// (its length runs past the end): the records before it were all visited.
    @inlinable
    public static func forEachRecord(in bytes: UnsafeRawBufferPointer, _ body: (Slot) throws -> Void) rethrows -> Bool {
        var offset = 0
        while let slot = record(in: bytes, at: offset) {
            try body(slot)
            offset = slot.range.upperBound
        }
        return offset == bytes.count
    }

    /// The record that starts at `offset`, or nil at the end of `bytes` or when the record there
    /// is cut short (its length runs past the end).
    @inlinable
    public static func record(in bytes: UnsafeRawBufferPointer, at offset: Int) -> Slot? {
        guard let base = bytes.baseAddress, offset >= 0 else { return nil }
        let end = bytes.count
        guard end &- offset >= 4 else { return nil }
        let length = Int(UInt32(bigEndian: (base + offset).loadUnaligned(as: UInt32.self)))
        guard end &- offset &- 4 >= length else { return nil }
        let kind: UInt8? = length > 0 ? base.load(fromByteOffset: offset &+ 4, as: UInt8.self) : nil
        return Slot(range: Range(uncheckedBounds: (offset, offset &+ 4 &+ length)), kind: kind)
    }

    /// A message record read where it lies: its fields, and where its parts are in the buffer.
    public struct Message: Equatable {
        public let sequence: UInt64
        public let receivedMilliseconds: UInt64
        /// The history prefix's bytes: the topic's first ones.
        public let prefix: Range<Int>
        public let topic: Range<Int>
        /// The frames, topic first, in `FrameCodec`'s layout.
        public let frames: Range<Int>
        /// The bytes of all frames, as the bounds count them (their lengths not counted).
        public let bytes: Int

        /// Nil unless `slot` is a well-formed message record: the header whole, the frames a
        /// sequence of length-prefixed ones, the first (the topic) at least as long as the prefix.
        ///
        /// Read through the raw pointer with wrapping arithmetic once the record is known to lie
        /// inside `bytes`: the checked forms cost more than the parsing (callgrind: 127
        /// instructions per 32 B message with them), and the writer parses every record.
        @inlinable
        public init?(_ slot: Slot, in bytes: UnsafeRawBufferPointer) {
            let end = slot.range.upperBound
            guard slot.kind == HistoryRecord.messageKind, slot.range.lowerBound >= 0, end <= bytes.count,
                let base = bytes.baseAddress
            else { return nil }
            let header = base + (slot.range.lowerBound &+ 4)
            let start = slot.range.lowerBound &+ 4 &+ HistoryRecord.messageHeaderSize
            // The topic, a frame that must be there, read on its own: the loop below then has
            // no first-frame case to test for every frame (callgrind: 21 instructions a frame
            // with it, the writer parsing every record).
            // Subtractions, not additions: a length near the limit must not overflow.
            guard end &- start >= 4 else { return nil }
            let topicCount = Int(UInt32(bigEndian: (base + start).loadUnaligned(as: UInt32.self)))
            let topicStart = start &+ 4
            let prefixLength = Int(UInt16(bigEndian: header.loadUnaligned(fromByteOffset: 17, as: UInt16.self)))
            guard end &- topicStart >= topicCount, topicCount >= prefixLength else { return nil }
            var total = topicCount
            var offset = topicStart &+ topicCount
            while offset < end {
                guard end &- offset >= 4 else { return nil }
                let count = Int(UInt32(bigEndian: (base + offset).loadUnaligned(as: UInt32.self)))
                offset &+= 4
                guard end &- offset >= count else { return nil }
                total &+= count
                offset &+= count
            }
            sequence = UInt64(bigEndian: header.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
            receivedMilliseconds = UInt64(bigEndian: header.loadUnaligned(fromByteOffset: 9, as: UInt64.self))
            frames = Range(uncheckedBounds: (start, end))
            topic = Range(uncheckedBounds: (topicStart, topicStart &+ topicCount))
            prefix = Range(uncheckedBounds: (topicStart, topicStart &+ prefixLength))
            self.bytes = total
        }

        /// The frames as arrays (for a reader; the store never needs them).
        public func decodedFrames(in bytes: UnsafeRawBufferPointer) -> [[UInt8]] {
            var result: [[UInt8]] = []
            var offset = frames.lowerBound
            while offset < frames.upperBound {
                let count = Int(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                result.append(Array(UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + 4 + count)])))
                offset += 4 + count
            }
            return result
        }

        /// Whether the topic starts with `wanted`.
        public func topicStarts(with wanted: [UInt8], in bytes: UnsafeRawBufferPointer) -> Bool {
            guard topic.count >= wanted.count else { return false }
            guard let base = bytes.baseAddress, !wanted.isEmpty else { return true }
            return wanted.withUnsafeBytes {
                RawBytes.equal(base + topic.lowerBound, $0.baseAddress!, count: wanted.count)
            }
        }
    }
}
