/// Where a topic was last found in the topic table, filed under a cheap hash of its bytes: the
/// forwarding loop's lookup for a topic other than the previous message's.
///
/// `ByteStringTable` files keys under SipHash-1-3 with a per-process key, so that crafted
/// topics cannot pile up in one probe run. For a 7-byte topic that hash alone was some 110 of
/// the ~210 instructions a lookup took (callgrind, 1,000 topics in turn). This cache answers
/// most lookups with a multiply-and-shift hash instead, and it is safe against crafted topics
/// because it is only a cache: a hit is confirmed by comparing the stored key, a set holds two
/// topics and never more, and a topic that collides (by chance or by design) is looked up
/// through the seeded table as before. Colliding topics cost one failed look here, no more.
///
/// Two ways per set, and a set for each topic the table may hold (`max_topics`), rounded up to
/// a power of two between 1,024 and 65,536: 16,384 sets in 128 KiB for the default 10,000. A
/// topic found through the table goes into the first way, pushing the previous first into the
/// second: with every topic coming in turn, only the sets that three or more share keep
/// missing (one topic in eight with 0.6 topics per set, as 10,000 in 16,384; about a quarter
/// with as many sets as topics; a third with 4,096 sets for 5,000 topics).
struct TopicIndexCache: Sendable {
    static let setBitsRange = 10...16
    /// log2 of the number of sets.
    let setBits: Int

    /// Table indexes, two per set (-1: empty).
    private var ways: [Int32]
    /// Random per table, so that which topics share a set differs from run to run.
    private let seed: UInt64
    /// 2^64 divided by the golden ratio, odd: the usual multiplier of multiplicative hashing
    /// (Knuth), which spreads every input bit over the product's high bits.
    private static let multiplier: UInt64 = 0x9e37_79b9_7f4a_7c15

    /// A cache for a table of at most `topics` topics.
    init(topics: Int = 4_096, seed: UInt64 = .random(in: .min ... .max)) {
        var bits = Self.setBitsRange.lowerBound
        while bits < Self.setBitsRange.upperBound && 1 << bits < topics { bits += 1 }
        setBits = bits
        ways = Array(repeating: -1, count: 2 << bits)
        self.seed = seed
    }

    var setCount: Int { 1 << setBits }

    /// The set `topic` belongs to: each 8-byte word mixed in with a multiply, the last 1 to 7
    /// bytes read in at most two loads (as `SipHash` does), the length on top.
    @inline(__always)
    func set(of topic: UnsafeRawBufferPointer) -> Int {
        let count = topic.count
        var hash = seed ^ UInt64(truncatingIfNeeded: count)
        guard let base = topic.baseAddress else { return finish(hash) }
        var offset = 0
        while count &- offset >= 8 {
            hash =
                (hash ^ UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                &* Self.multiplier
            hash ^= hash >> 32
            offset &+= 8
        }
        let tail = count &- offset
        var last: UInt64 = 0
        if tail >= 4 {
            // Two 4-byte loads, overlapping when fewer than 8 bytes are left.
            let low = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let high = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self))
            last = UInt64(low) | UInt64(high) << 32
        } else if tail > 0 {
            // The first, middle and last of the 1 to 3 bytes left (some of them the same byte).
            let first = UInt64(base.load(fromByteOffset: offset, as: UInt8.self))
            let middle = UInt64(base.load(fromByteOffset: offset &+ tail >> 1, as: UInt8.self))
            let end = UInt64(base.load(fromByteOffset: count &- 1, as: UInt8.self))
            last = first | middle << 8 | end << 16 | 1 << 24
        }
        return finish(hash ^ last)
    }

    @inline(__always)
    private func finish(_ hash: UInt64) -> Int {
        var mixed = hash &* Self.multiplier
        mixed ^= mixed >> 29
        mixed = mixed &* Self.multiplier
        return Int(truncatingIfNeeded: mixed >> UInt64(64 - setBits))
    }

    /// The two table indexes remembered in `set` (-1 where none): candidates, to be confirmed
    /// by comparing their keys.
    @inline(__always)
    func candidates(in set: Int) -> (first: Int, second: Int) {
        ways.withUnsafeBufferPointer { ways in
            (Int(ways[set &* 2]), Int(ways[set &* 2 &+ 1]))
        }
    }

    /// Remembers that the topic filed under `set` is at `index` in the table.
    mutating func remember(_ index: Int, in set: Int) {
        ways[set * 2 + 1] = ways[set * 2]
        ways[set * 2] = Int32(truncatingIfNeeded: index)
    }

    /// Forgets every topic: for when the table's indexes no longer mean what they did.
    mutating func removeAll() {
        for way in ways.indices { ways[way] = -1 }
    }
}
