/// A hash table from byte strings to values, looked up by raw bytes without allocating.
///
/// The forwarding loop looks a topic up for every message it moves, straight from the bytes of a
/// `zmq_msg_t`; a `Dictionary<[UInt8], V>` would have to build an array for each lookup. This
/// table hashes an `UnsafeRawBufferPointer` with SipHash under a random key (`seededHash`: so
/// crafted topics cannot force collisions) and compares keys with `memcmp`.
///
/// Layout: `entries` is dense (iteration is a plain array walk, removal moves the last entry into
/// the hole); `slots` is an open-addressing index into `entries` with linear probing and
/// backward-shift deletion, so there are no tombstones and lookups stay short after churn.
/// Keys live end to end in one byte array, `keyBytes`, not in an array each: an array per key
/// costs ~48 bytes of heap on top of its bytes, which for 100,000 subscriptions is ~5 MiB.
/// Removed keys leave holes there, compacted once they make up half of it.
public struct ByteStringTable<Value> {
    @usableFromInline struct Entry {
        @usableFromInline var keyStart: Int32
        @usableFromInline let keyCount: Int32
        @usableFromInline let hash: Int
        @usableFromInline var value: Value

        var keyRange: Range<Int> { Int(keyStart)..<Int(keyStart) + Int(keyCount) }
    }

    // Usable from inline code: the forwarding loop's topic check (`key(at:equals:)`) and
    // counter update (`withValue`) are inlined into it across the module boundary.
    @usableFromInline var entries: ContiguousArray<Entry> = []
    @usableFromInline var keyBytes: ContiguousArray<UInt8> = []
    /// Bytes of `keyBytes` that belong to removed keys.
    private var deadKeyBytes = 0
    private var slots: [Int32]
    private var mask: Int
    private let hashKey = SipHash.Key.process
    /// The most key bytes a table can hold: entries keep 4-byte offsets (what keeps an entry
    /// small enough for 100,000 subscriptions in a few MiB).
    public static var keyBytesLimit: Int { Int(Int32.max) }
    /// This table's bound on key bytes: `keyBytesLimit`, or less for a test.
    public let maxKeyBytes: Int

    private static var emptySlot: Int32 { -1 }

    public init(minimumCapacity: Int = 16, maxKeyBytes: Int = keyBytesLimit) {
        precondition(maxKeyBytes <= Self.keyBytesLimit, "keys are found by 4-byte offsets")
        self.maxKeyBytes = maxKeyBytes
        var size = 16
        while size < minimumCapacity * 2 { size <<= 1 }
        slots = Array(repeating: Self.emptySlot, count: size)
        mask = size - 1
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    /// Valid entry indexes, for `key(at:)` and `subscript(valueAt:)`.
    public var indices: Range<Int> { 0..<entries.count }

    /// The key of the entry at `index` (a new array: for replies, not the per-message path).
    public func key(at index: Int) -> [UInt8] {
        Array(keyBytes[entries[index].keyRange])
    }

    /// Whether the key at `index` starts with `prefix`, without copying the key, nor the entry
    /// (its value: a copy retained and released a buffer per key, for scans of a million).
    public func key(at index: Int, startsWith prefix: [UInt8]) -> Bool {
        precondition(entries.indices.contains(index), "no entry at \(index)")
        let (start, count) = entries.withUnsafeBufferPointer { (Int($0[index].keyStart), Int($0[index].keyCount)) }
        guard count >= prefix.count else { return false }
        guard !prefix.isEmpty else { return true }
        return keyBytes.withUnsafeBytes { stored in
            prefix.withUnsafeBytes { RawBytes.equal(stored.baseAddress! + start, $0.baseAddress!, count: prefix.count) }
        }
    }

    /// The value of every key starting with `prefix` that `including` takes, in table order: no
    /// key is copied, and each value once.
    public func values(withKeyPrefix prefix: [UInt8], including: (Value) -> Bool = { _ in true }) -> [Value] {
        var found: [Value] = []
        if prefix.isEmpty { found.reserveCapacity(entries.count) }
        for index in indices where key(at: index, startsWith: prefix) {
            let value = entries[index].value
            if including(value) { found.append(value) }
        }
        return found
    }

    /// Every key starting with `prefix`, with its value, in table order.
    public func entries(withKeyPrefix prefix: [UInt8]) -> [(key: [UInt8], value: Value)] {
        indices.filter { key(at: $0, startsWith: prefix) }.map { (key(at: $0), entries[$0].value) }
    }

    /// `seededHash`, with the process's key copied into the table: no look at the global (its
    /// once-only initialisation check) per lookup.
    @inline(__always)
    func hash(_ key: UnsafeRawBufferPointer) -> Int {
        Int(truncatingIfNeeded: SipHash.hash13(key, key: hashKey))
    }

    /// The index in `entries` of `key`, or nil.
    @inline(__always)
    public func index(of key: UnsafeRawBufferPointer) -> Int? {
        let hash = self.hash(key)
        var slot = hash & mask
        while true {
            let entryIndex = slots[slot]
            if entryIndex == Self.emptySlot { return nil }
            let index = Int(entryIndex)
            if entries[index].hash == hash && keyEquals(entries[index], key) { return index }
            slot = (slot + 1) & mask
        }
    }

    /// Whether the entry at `index` (from `index(of:)` or `insert`) has exactly this key: a
    /// check without hashing.
    @inlinable @inline(__always)
    public func key(at index: Int, equals key: UnsafeRawBufferPointer) -> Bool {
        index < entries.count && keyEquals(entries[index], key)
    }

    public func index(of key: [UInt8]) -> Int? {
        key.withUnsafeBytes { index(of: $0) }
    }

    public subscript(key: [UInt8]) -> Value? {
        guard let index = index(of: key) else { return nil }
        return entries[index].value
    }

    /// Mutable access to the value at an index returned by `index(of:)` or `insert`.
    @inlinable @inline(__always)
    public subscript(valueAt index: Int) -> Value {
        get { entries[index].value }
        _modify { yield &entries[index].value }
    }

    /// Calls `body` with the value at `index` to change in place. For the per-message path:
    /// unlike the `_modify` accessor above, it allocates nothing even in a debug build, where
    /// the generic accessor coroutine is not specialized and gets its frame from malloc.
    @inlinable @inline(__always)
    public mutating func withValue<R>(at index: Int, _ body: (inout Value) -> R) -> R {
        entries.withUnsafeMutableBufferPointer { body(&$0[index].value) }
    }

    /// Whether a key of `count` bytes can be inserted (the removed keys' bytes are given back
    /// first if need be). Callers whose keys come from the network ask before `insert`, and
    /// refuse as they would when the table is full: limits that allow, say, millions of
    /// 4 KiB topics must not be able to stop the process.
    public func hasRoom(forKeyOf count: Int) -> Bool {
        count <= maxKeyBytes - (keyBytes.count - deadKeyBytes)
    }

    /// Inserts `key` with `value`; the key must not be present, and there must be room for it
    /// (`hasRoom`). Returns the entry's index.
    @discardableResult
    public mutating func insert(_ key: UnsafeRawBufferPointer, value: Value) -> Int {
        if key.count > maxKeyBytes - keyBytes.count && deadKeyBytes > 0 { compactKeys() }
        precondition(key.count <= maxKeyBytes - keyBytes.count, "ByteStringTable keys exceed their bound")
        if (entries.count + 1) * 2 > slots.count { grow() }
        let hash = self.hash(key)
        var slot = hash & mask
        while slots[slot] != Self.emptySlot { slot = (slot + 1) & mask }
        slots[slot] = Int32(entries.count)
        let start = Int32(keyBytes.count)
        keyBytes.append(contentsOf: key)
        entries.append(Entry(keyStart: start, keyCount: Int32(key.count), hash: hash, value: value))
        return entries.count - 1
    }

    @discardableResult
    public mutating func insert(_ key: [UInt8], value: Value) -> Int {
        key.withUnsafeBytes { insert($0, value: value) }
    }

    /// Removes the entry at `index`. The last entry moves into its place, so indexes obtained
    /// before a removal are invalid after it.
    public mutating func remove(at index: Int) {
        let removedSlot = slot(ofEntry: index)
        deleteSlot(removedSlot)
        let last = entries.count - 1
        if index != last {
            let movedSlot = slot(ofEntry: last)
            slots[movedSlot] = Int32(index)
            entries.swapAt(index, last)
        }
        deadKeyBytes += Int(entries.removeLast().keyCount)
        if deadKeyBytes > 4096 && deadKeyBytes * 2 > keyBytes.count { compactKeys() }
    }

    public mutating func removeAll() {
        entries.removeAll()
        keyBytes.removeAll()
        deadKeyBytes = 0
        for i in slots.indices { slots[i] = Self.emptySlot }
    }

    // MARK: Internals

    private func slot(ofEntry index: Int) -> Int {
        var slot = entries[index].hash & mask
        while Int(slots[slot]) != index { slot = (slot + 1) & mask }
        return slot
    }

    /// Backward-shift deletion: moves later members of the probe run into the hole so that every
    /// entry stays reachable from its home slot without tombstones.
    private mutating func deleteSlot(_ start: Int) {
        var hole = start
        var next = (hole + 1) & mask
        while slots[next] != Self.emptySlot {
            let home = entries[Int(slots[next])].hash & mask
            // Move `next` into the hole unless its home lies cyclically in (hole, next].
            let distanceToNext = (next - home) & mask
            let distanceToHole = (hole - home) & mask
            if distanceToHole < distanceToNext {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = Self.emptySlot
    }

    private mutating func grow() {
        let size = slots.count * 2
        slots = Array(repeating: Self.emptySlot, count: size)
        mask = size - 1
        for (index, entry) in entries.enumerated() {
            var slot = entry.hash & mask
            while slots[slot] != Self.emptySlot { slot = (slot + 1) & mask }
            slots[slot] = Int32(index)
        }
    }

    /// Rewrites `keyBytes` without the removed keys' bytes. Amortized: it runs only after
    /// removals have freed as many bytes as the live keys hold.
    private mutating func compactKeys() {
        var compacted = ContiguousArray<UInt8>()
        compacted.reserveCapacity(keyBytes.count - deadKeyBytes)
        for index in entries.indices {
            let range = entries[index].keyRange
            entries[index].keyStart = Int32(compacted.count)
            compacted.append(contentsOf: keyBytes[range])
        }
        keyBytes = compacted
        deadKeyBytes = 0
    }

    @inlinable @inline(__always)
    func keyEquals(_ entry: Entry, _ key: UnsafeRawBufferPointer) -> Bool {
        guard Int(entry.keyCount) == key.count else { return false }
        if key.isEmpty { return true }
        return keyBytes.withUnsafeBytes { stored in
            RawBytes.equal(stored.baseAddress! + Int(entry.keyStart), key.baseAddress!, count: key.count)
        }
    }
}

/// Bytes hashed with SipHash-1-3 under a key drawn afresh in every process, so that crafted
/// input cannot force collisions: how `ByteStringTable` files its keys, and how
/// `SubscriberConnections` remembers prefixes.
@inline(__always)
func seededHash(_ bytes: UnsafeRawBufferPointer) -> Int {
    Int(truncatingIfNeeded: SipHash.hash13(bytes, key: .process))
}

extension ByteStringTable: Sendable where Value: Sendable {}
extension ByteStringTable.Entry: Sendable where Value: Sendable {}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
