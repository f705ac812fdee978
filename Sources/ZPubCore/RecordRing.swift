import Synchronization

/// A bounded byte ring between exactly one producer thread and one consumer thread, holding
/// variable-length records: how the forwarding loop hands kept messages to the history writer
/// without allocating, locking or freeing anything per message (an allocation made on one
/// thread and freed on another contends for glibc's arena lock; under load that showed as
/// milliseconds of forwarding latency).
///
/// The producer builds a record piece by piece (`begin`, `append`..., `commit`); it becomes
/// visible to the consumer only at `commit`, and a record that does not fit is abandoned whole.
/// Each record is stored as a 4-byte length, then its bytes, wrapping around the end.
// Unchecked: the storage is shared raw memory; the producer writes only between `tail` and the
// capacity, the consumer reads only up to `head`, and the two indexes are atomics with
// release/acquire ordering, so every byte is written before the index that publishes it.
public final class RecordRing: @unchecked Sendable {
    /// A power of two (the capacity asked for, rounded up), so positions wrap with a mask.
    public let capacity: Int
    @usableFromInline let mask: Int
    @usableFromInline let storage: UnsafeMutableRawPointer
    /// Bytes ever published by the producer / consumed by the consumer (they only grow).
    @usableFromInline let head = Atomic<Int>(0)
    @usableFromInline let tail = Atomic<Int>(0)

    // Producer-only state, touched by the producer's thread alone. Unchecked: the runtime's
    // exclusivity checks on these cost more than the copying itself (callgrind: about 3,700
    // instructions per kept message with them).
    @exclusivity(unchecked) @usableFromInline var recordStart = 0
    @exclusivity(unchecked) @usableFromInline var cursor = 0
    /// Where the producer may write up to without looking at `tail` again (the consumer only
    /// ever frees space, so a stale limit is safe, just conservative).
    @exclusivity(unchecked) @usableFromInline var writableEnd = 0
    @exclusivity(unchecked) @usableFromInline var building = false
    @exclusivity(unchecked) @usableFromInline var overflowed = false

    public init(capacity: Int) {
        precondition(capacity >= 16, "a ring holds at least one small record")
        var size = 16
        while size < capacity { size <<= 1 }
        self.capacity = size
        mask = size - 1
        storage = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        writableEnd = size
    }

    deinit { storage.deallocate() }

    // MARK: Producer (inlinable: the forwarding loop calls these for every kept message)
    // Positions use wrapping arithmetic: they only grow, by less than the capacity per record,
    // so an Int never overflows in practice, and the checked forms cost a trap branch for each
    // field of each record.

    /// Starts a record (a previous one not committed is abandoned).
    @inlinable @inline(__always)
    public func begin() {
        recordStart = head.load(ordering: .relaxed)
        cursor = recordStart &+ 4
        building = true
        // Even the length does not fit while the ring is full.
        overflowed = !reserve(0)
    }

    /// Whether `count` more bytes fit after `cursor`; looks at the consumer's progress only
    /// when the cached limit says no.
    @inlinable @inline(__always)
    func reserve(_ count: Int) -> Bool {
        if cursor &+ count <= writableEnd { return true }
        writableEnd = tail.load(ordering: .acquiring) &+ capacity
        return cursor &+ count <= writableEnd
    }

    /// Appends bytes to the record being built; once it no longer fits, the rest is ignored
    /// and `commit` will refuse it.
    @inlinable @inline(__always)
    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard building, !overflowed else { return }
        guard reserve(bytes.count) else {
            overflowed = true
            return
        }
        copyIn(bytes, at: cursor)
        cursor += bytes.count
    }

    /// Appends `count` bytes that `write` stores through the pointer it is given: in place when
    /// they lie contiguous in the ring, through a temporary copy when they wrap. For fixed-size
    /// fields, which then cost one check for room instead of one each.
    @inlinable @inline(__always)
    public func append(count: Int, _ write: (UnsafeMutableRawPointer) -> Void) {
        guard building, !overflowed else { return }
        guard reserve(count) else {
            overflowed = true
            return
        }
        let offset = cursor & mask
        if offset + count <= capacity {
            write(storage + offset)
        } else {
            withUnsafeTemporaryAllocation(byteCount: count, alignment: 8) { buffer in
                write(buffer.baseAddress!)
                copyIn(UnsafeRawBufferPointer(buffer), at: cursor)
            }
        }
        cursor += count
    }

    /// Appends `bytes` as a 4-byte big-endian length and the bytes (`FrameCodec`'s layout), with
    /// one check for room.
    @inlinable @inline(__always)
    public func appendLengthPrefixed(_ bytes: UnsafeRawBufferPointer) {
        guard building, !overflowed else { return }
        guard reserve(4 &+ bytes.count) else {
            overflowed = true
            return
        }
        let length = UInt32(truncatingIfNeeded: bytes.count).bigEndian
        let offset = cursor & mask
        if offset &+ 4 <= capacity {
            storage.storeBytes(of: length, toByteOffset: offset, as: UInt32.self)
        } else {
            withUnsafeBytes(of: length) { copyIn($0, at: cursor) }
        }
        copyIn(bytes, at: cursor &+ 4)
        cursor &+= 4 &+ bytes.count
    }

    @inlinable
    public func append<T: FixedWidthInteger>(integer value: T) {
        guard building, !overflowed else { return }
        let size = MemoryLayout<T>.size
        guard reserve(size) else {
            overflowed = true
            return
        }
        let offset = cursor & mask
        if offset + size <= capacity {
            storage.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
        } else {
            withUnsafeBytes(of: value.bigEndian) { copyIn($0, at: cursor) }
        }
        cursor += size
    }

    /// Publishes the record. False when it did not fit (nothing of it is visible).
    @inlinable @inline(__always)
    @discardableResult
    public func commit() -> Bool {
        guard building else { return false }
        building = false
        guard !overflowed else { return false }
        let length = UInt32(cursor - recordStart - 4).bigEndian
        let offset = recordStart & mask
        if offset + 4 <= capacity {
            storage.storeBytes(of: length, toByteOffset: offset, as: UInt32.self)
        } else {
            withUnsafeBytes(of: length) { copyIn($0, at: recordStart) }
        }
        head.store(cursor, ordering: .releasing)
        return true
    }

    @inlinable @inline(__always)
    func copyIn(_ bytes: UnsafeRawBufferPointer, at position: Int) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        let offset = position & mask
        if offset &+ bytes.count <= capacity {
            (storage + offset).copyMemory(from: source, byteCount: bytes.count)
            return
        }
        let first = capacity - offset
        (storage + offset).copyMemory(from: source, byteCount: first)
        if first < bytes.count {
            storage.copyMemory(from: source + first, byteCount: bytes.count - first)
        }
    }

    // MARK: Consumer

    /// Bytes ever published / consumed: a consumer that has consumed up to a `published` it
    /// read earlier has seen every record committed before that read.
    public var published: Int { head.load(ordering: .acquiring) }
    public var consumed: Int { tail.load(ordering: .relaxed) }

    /// Bytes published and not yet consumed.
    public var usedBytes: Int { head.load(ordering: .acquiring) - tail.load(ordering: .relaxed) }

    /// Calls `body` with the published records, oldest first, at most `limit` of them, each its
    /// 4-byte length and then its bytes (what the history store keeps: `HistoryRecord`), and
    /// how many there are; then frees their space, whether `body` returns or throws. The bytes
    /// are the ring's own when they do not wrap around its end (the producer cannot reuse them
    /// until `body` is done: it never writes past `tail` plus the capacity), so that the writer
    /// hands them to SQLite without a copy; copied out once when they wrap.
    public func consumeBatch<Result>(
        limit: Int = .max, _ body: (UnsafeRawBufferPointer, Int) throws -> Result
    ) rethrows -> Result {
        let end = head.load(ordering: .acquiring)
        let start = tail.load(ordering: .relaxed)
        var position = start
        var count = 0
        while position < end && count < limit {
            position += 4 + length(at: position)
            count += 1
        }
        guard count > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0), 0) }
        defer { tail.store(position, ordering: .releasing) }
        let offset = start & mask
        let size = position - start
        if offset + size <= capacity {
            return try body(UnsafeRawBufferPointer(start: storage + offset, count: size), count)
        }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { copy.deallocate() }
        copyOut(into: copy, from: start)
        return try body(UnsafeRawBufferPointer(copy), count)
    }

    /// Calls `body` with each published record's bytes (its length not included), oldest
    /// first, at most `limit` of them, and frees their space. Returns how many there were.
    @discardableResult
    public func drain(limit: Int = .max, _ body: (ArraySlice<UInt8>) -> Void) -> Int {
        let (batch, count) = consumeBatch(limit: limit) { (Array($0), $1) }
        var index = 0
        while index < batch.count {
            let length =
                Int(batch[index]) << 24 | Int(batch[index + 1]) << 16 | Int(batch[index + 2]) << 8
                | Int(batch[index + 3])
            body(batch[(index + 4)..<(index + 4 + length)])
            index += 4 + length
        }
        return count
    }

    /// The length of the record at `position`: its 4 bytes, in one load unless they wrap
    /// around the end (the writer reads one per record before it takes a batch).
    @inline(__always)
    private func length(at position: Int) -> Int {
        let offset = position & mask
        if offset &+ 4 <= capacity {
            return Int(UInt32(bigEndian: (storage + offset).loadUnaligned(as: UInt32.self)))
        }
        var length = 0
        for index in 0..<4 {
            length = length << 8 | Int(storage.load(fromByteOffset: (position &+ index) & mask, as: UInt8.self))
        }
        return length
    }

    private func copyOut(into destination: UnsafeMutableRawBufferPointer, from position: Int) {
        let count = destination.count
        guard count > 0, let target = destination.baseAddress else { return }
        let offset = position & mask
        let first = min(count, capacity - offset)
        target.copyMemory(from: storage + offset, byteCount: first)
        if first < count {
            (target + first).copyMemory(from: storage, byteCount: count - first)
        }
    }
}
