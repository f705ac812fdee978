import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

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
    /// The fast path's one bound: bytes at `cursor` up to here can be written in one piece,
    /// with no other check (within `writableEnd` and before the storage's end). Zero while no
    /// record is open or the open one no longer fits, so that every append then takes the slow
    /// path, which knows why. One comparison per append instead of four (callgrind: about 80
    /// instructions per kept message).
    @exclusivity(unchecked) @usableFromInline var fastEnd = 0
    @exclusivity(unchecked) @usableFromInline var building = false
    @exclusivity(unchecked) @usableFromInline var overflowed = false

    /// The producer goes back to the storage's start, when it finds the ring empty, once it is
    /// this far into it (`begin`). A ring goes round all its memory, so without this every page
    /// of it becomes resident as traffic passes, however little is ever waiting: 64 MiB of
    /// history queue held for good after 64 MiB of kept messages (scripts/memory-soak.py).
    /// With it the ring touches what its fullest moment needed, plus this.
    public let restartOffset: Int
    /// Where the producer last went back to the storage's start (-1: never): the consumer
    /// skips from there to the next lap without reading the memory, which the producer may
    /// reuse at once. Only one is ever pending: the producer goes back only when the consumer
    /// has taken everything.
    @usableFromInline let restartedAt = Atomic<Int>(-1)
    /// Producer-only: where the producer last went back to; the consumer reads nothing below
    /// it, so the room runs to here plus the capacity even before `tail` gets here.
    @exclusivity(unchecked) @usableFromInline var restartedTo = 0
    /// How many times the producer went back to the storage's start.
    public var restarts: Int { restartCount.load(ordering: .relaxed) }
    @usableFromInline let restartCount = Atomic<Int>(0)
    /// Producer-only: how far into the storage the producer has written since the pages past
    /// `restartOffset` were last given back, as far as it knows at a restart. A burst (the
    /// writer behind: a slow disk, a busy machine) makes the ring resident that far, and for
    /// good: the memory soak saw 42 MiB of a 64 MiB queue stay resident after the machine was
    /// loaded for a while. Each restart gives back a slice of it (`trim`).
    @exclusivity(unchecked) @usableFromInline var touchedEnd = 0
    /// Bytes given back at most per restart: the loop makes the call, and releasing 2 MiB of
    /// resident pages takes some 100-300 µs, once per restart until the rest is back.
    public static let trimSlice = 2 << 20
    /// Bytes given back so far (`madvise`).
    public var trimmedBytes: Int { trimmed.load(ordering: .relaxed) }
    @usableFromInline let trimmed = Atomic<Int>(0)

    /// `restartOffset` nil: a quarter of the capacity, at most 1 MiB; the capacity or more
    /// never restarts early.
    public init(capacity: Int, restartOffset: Int? = nil) {
        precondition(capacity >= 16, "a ring holds at least one small record")
        precondition(capacity <= 1 << 32, "a record's length is 4 bytes")
        var size = 16
        while size < capacity { size <<= 1 }
        self.capacity = size
        mask = size - 1
        // A mapping of its own: page-aligned, so that `trim` gives back whole pages, and none of
        // it resident until written. From malloc, a long-running process's arena can hand out
        // memory already resident (glibc raises its mmap threshold as large blocks are freed):
        // the whole suite's run saw 4 MiB past the ring's reach resident that no trim covered.
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else {
            fatalError("the history queue cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        storage = mapped
        writableEnd = size
        self.restartOffset = restartOffset ?? Swift.min(size / 4, 1 << 20)
    }

    deinit { munmap(storage, capacity) }

    // MARK: Producer (inlinable: the forwarding loop calls these for every kept message)
    // Positions use wrapping arithmetic: they only grow, by less than the capacity per record,
    // so an Int never overflows in practice, and the checked forms cost a trap branch for each
    // field of each record.

    /// Starts a record (a previous one not committed is abandoned).
    @inlinable @inline(__always)
    public func begin() {
        recordStart = head.load(ordering: .relaxed)
        if recordStart & mask > restartOffset && tail.load(ordering: .acquiring) == recordStart { restart() }
        cursor = recordStart &+ 4
        building = true
        // Even the length does not fit while the ring is full.
        overflowed = !reserve(0)
        openFastPath()
    }

    /// Past `restartOffset` with nothing waiting (`begin` looks): the next record starts at the storage's
    /// start, in memory already resident, and the rest of the storage is left unused this lap
    /// (`restartedAt` tells the consumer). One look at the consumer per record until it has
    /// taken everything, so that the records' order stays the order of their positions.
    @usableFromInline @inline(never)
    func restart() {
        // Where this lap got to (all of it, if the producer went round the storage since the
        // last restart).
        touchedEnd = Swift.max(touchedEnd, recordStart &- restartedTo >= capacity ? capacity : recordStart & mask)
        trim()
        restartedAt.store(recordStart, ordering: .relaxed)
        recordStart = (recordStart & ~mask) &+ capacity
        restartedTo = recordStart
        writableEnd = recordStart &+ capacity
        head.store(recordStart, ordering: .releasing)
        restartCount.add(1, ordering: .relaxed)
    }

    /// Gives back the resident pages of a slice past `restartOffset`, from the end the producer
    /// reached. Safe at a restart: the consumer has taken everything, and the producer (this
    /// thread) writes from the storage's start on, into these pages only once they are
    /// needed again, when the kernel gives it zeroed ones.
    @usableFromInline func trim() {
        let floor = (restartOffset + Self.pageSize - 1) & ~(Self.pageSize - 1)
        let end = Swift.min(capacity, (touchedEnd + Self.pageSize - 1) & ~(Self.pageSize - 1))
        // Not the page or two that steady traffic reaches past the offset before each restart:
        // given back at every restart, they would be faulted in again at every lap.
        guard end > floor + Self.trimSlice / 32 else { return }
        let start = Swift.max(floor, end - Self.trimSlice)
        if madvise(storage + start, end - start, MADV_DONTNEED) == 0 {
            trimmed.add(end - start, ordering: .relaxed)
        }
        touchedEnd = start
    }

    @usableFromInline static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Bytes of the storage resident in memory now (`mincore`), for tests and gauges.
    public var residentBytes: Int {
        let pages = (capacity + Self.pageSize - 1) / Self.pageSize
        var vector = [UInt8](repeating: 0, count: pages)
        guard mincore(storage, pages * Self.pageSize, &vector) == 0 else { return -1 }
        return vector.reduce(0) { $0 + Int($1 & 1) } * Self.pageSize
    }

    /// Sets `fastEnd` for the state the producer is in now.
    @inlinable @inline(__always)
    func openFastPath() {
        // The storage ends where the lap `cursor` is in ends.
        let storageEnd = (cursor & ~mask) &+ capacity
        fastEnd = building && !overflowed ? Swift.min(writableEnd, storageEnd) : 0
    }

    /// Whether `count` more bytes fit after `cursor`; looks at the consumer's progress only
    /// when the cached limit says no.
    @inlinable @inline(__always)
    func reserve(_ count: Int) -> Bool {
        if cursor &+ count <= writableEnd { return true }
        writableEnd = Swift.max(tail.load(ordering: .acquiring), restartedTo) &+ capacity
        return cursor &+ count <= writableEnd
    }

    /// Appends bytes to the record being built; once it no longer fits, the rest is ignored
    /// and `commit` will refuse it.
    @inlinable @inline(__always)
    public func append(_ bytes: UnsafeRawBufferPointer) {
        let end = cursor &+ bytes.count
        guard end <= fastEnd else { return appendSlowly(lengthPrefixed: false, bytes) }
        RawBytes.copy(storage + (cursor & mask), from: bytes)
        cursor = end
    }

    /// Appends `count` bytes that `write` stores through the pointer it is given: in place on
    /// the fast path, through a temporary copy on the slow one (they wrap, or the room seen
    /// free must be looked at again). For fixed-size fields, which then cost one check for room
    /// instead of one each.
    @inlinable @inline(__always)
    public func append(count: Int, _ write: (UnsafeMutableRawPointer) -> Void) {
        let end = cursor &+ count
        if end <= fastEnd {
            write(storage + (cursor & mask))
            cursor = end
            return
        }
        guard building, !overflowed else { return }
        guard reserve(count) else {
            overflowed = true
            fastEnd = 0
            return
        }
        withUnsafeTemporaryAllocation(byteCount: count, alignment: 8) { buffer in
            write(buffer.baseAddress!)
            copyIn(UnsafeRawBufferPointer(buffer), at: cursor)
        }
        cursor &+= count
        openFastPath()
    }

    /// Appends `bytes` as a 4-byte big-endian length and the bytes (`FrameCodec`'s layout), with
    /// one check for room.
    @inlinable @inline(__always)
    public func appendLengthPrefixed(_ bytes: UnsafeRawBufferPointer) {
        let end = cursor &+ 4 &+ bytes.count
        guard end <= fastEnd else { return appendSlowly(lengthPrefixed: true, bytes) }
        let target = storage + (cursor & mask)
        target.storeBytes(of: UInt32(truncatingIfNeeded: bytes.count).bigEndian, as: UInt32.self)
        RawBytes.copy(target + 4, from: bytes)
        cursor = end
    }

    /// An append that the fast path could not take: no record open, the record already too
    /// large, the cached room used up (the consumer may have freed more), or the bytes wrap
    /// around the storage's end.
    @usableFromInline @inline(never)
    func appendSlowly(lengthPrefixed: Bool, _ bytes: UnsafeRawBufferPointer) {
        guard building, !overflowed else { return }
        let count = lengthPrefixed ? 4 &+ bytes.count : bytes.count
        guard reserve(count) else {
            overflowed = true
            fastEnd = 0
            return
        }
        if lengthPrefixed {
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: bytes.count).bigEndian) { copyIn($0, at: cursor) }
            copyIn(bytes, at: cursor &+ 4)
        } else {
            copyIn(bytes, at: cursor)
        }
        cursor &+= count
        openFastPath()
    }

    @inlinable
    public func append<T: FixedWidthInteger>(integer value: T) {
        withUnsafeBytes(of: value.bigEndian) { append($0) }
    }

    /// Publishes the record. False when it did not fit (nothing of it is visible).
    @inlinable @inline(__always)
    @discardableResult
    public func commit() -> Bool {
        guard building else { return false }
        building = false
        fastEnd = 0
        guard !overflowed else { return false }
        // At most the capacity, which `init` keeps within 4 bytes' reach.
        let length = UInt32(truncatingIfNeeded: cursor &- recordStart &- 4).bigEndian
        let offset = recordStart & mask
        if offset &+ 4 <= capacity {
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

    /// Bytes published and not yet consumed (not the storage left unused by a restart): a
    /// gauge, read from any thread while both sides move. Its three loads are not one moment:
    /// a restart between them, or a thread paused between them across two restarts, can make
    /// the difference fall outside the ring (below zero; a test saw capacity + 61), hence the
    /// clamp; inside it, a figure a moment stale is what any gauge shows.
    public var usedBytes: Int {
        let end = head.load(ordering: .acquiring)
        let start = tail.load(ordering: .relaxed)
        let restart = restartedAt.load(ordering: .relaxed)
        let used = end - (restart == start ? (restart & ~mask) &+ capacity : start)
        return Swift.min(Swift.max(0, used), capacity)
    }

    /// Calls `body` with the published records, oldest first, each its 4-byte length and then
    /// its bytes (what the history store keeps: `HistoryRecord`), and whether some were left
    /// for the next call; then frees their space, whether `body` returns or throws. At most
    /// `byteLimit` bytes of records are taken (at least one record, whatever its size): only
    /// then are the records walked, to cut between two of them. The consumer parses what it
    /// takes anyway, so counting the records here too would walk them twice (callgrind: 18
    /// instructions a 32 B message). The bytes are the ring's own when they do not wrap around
    /// its end (the producer cannot reuse them until `body` is done: it never writes past
    /// `tail` plus the capacity), so that the writer hands them to SQLite without a copy;
    /// copied out once when they wrap.
    public func consumeBatch<Result>(
        byteLimit: Int = .max, _ body: (_ records: UnsafeRawBufferPointer, _ cut: Bool) throws -> Result
    ) rethrows -> Result {
        let (start, end) = waiting()
        var stop = end
        if end &- start > byteLimit {
            stop = start &+ 4 &+ length(at: start)
            while stop < end {
                let next = stop &+ 4 &+ length(at: stop)
                if next &- start > byteLimit { break }
                stop = next
            }
        }
        return try consume(from: start, to: stop) { try body($0, stop < end) }
    }

    /// Calls `body` with each published record's bytes (its length not included), oldest
    /// first, at most `limit` of them, and frees their space. Returns how many there were.
    @discardableResult
    public func drain(limit: Int = .max, _ body: (ArraySlice<UInt8>) -> Void) -> Int {
        let (start, end) = waiting()
        var stop = start
        var count = 0
        while stop < end && count < limit {
            stop &+= 4 &+ length(at: stop)
            count += 1
        }
        let batch = consume(from: start, to: stop) { Array($0) }
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

    /// Where the records waiting start and end. A restart pending at `tail` is skipped: the
    /// producer went back to the storage's start (`restart`), which it does only when the
    /// consumer had taken everything, so nothing lies between.
    private func waiting() -> (start: Int, end: Int) {
        let end = head.load(ordering: .acquiring)
        // Read after `head`: a restart that `end` includes is seen. One that `end` does not
        // include yet (`end` is still the restart's own position) is left for the next call.
        let restart = restartedAt.load(ordering: .relaxed)
        let start = tail.load(ordering: .relaxed)
        guard start == restart && start != end else { return (start, end) }
        return ((start & ~mask) &+ capacity, end)
    }

    /// Calls `body` with the records from `start` to `stop`, then frees them (and, if `start`
    /// is past a restart, the storage the restart left unused).
    private func consume<Result>(
        from start: Int, to stop: Int, _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        defer { if stop != tail.load(ordering: .relaxed) { tail.store(stop, ordering: .releasing) } }
        let offset = start & mask
        let size = stop &- start
        guard size > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        if offset &+ size <= capacity {
            return try body(UnsafeRawBufferPointer(start: storage + offset, count: size))
        }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { copy.deallocate() }
        copyOut(into: copy, from: start)
        return try body(UnsafeRawBufferPointer(copy))
    }

    /// The length of the record at `position`: its 4 bytes, in one load unless they wrap
    /// around the end.
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
