/// Where a topic was last found in the topic table, filed under a cheap hash of its bytes: the
/// forwarding loop's lookup for a topic other than the previous message's.
///
/// `ByteStringTable` files keys under SipHash-1-3 with a per-process key, so that crafted
/// topics cannot pile up in one probe run. For a 7-byte topic that hash alone was some 110 of
/// the ~210 instructions a lookup took (callgrind, 1,000 topics in turn). This cache answers
/// most lookups with a multiply-and-shift hash instead, and it is safe against crafted topics
/// because it is only a cache: a set holds two topics and never more, and a topic that
/// collides (by chance or by design) is looked up through the seeded table as before.
/// Colliding topics cost one failed look here, no more.
///
/// A way holds the topic's `TopicKey` beside its table index, so that a topic of up to 16 bytes
/// is confirmed by comparing three words, without reaching into the table's keys; a longer one
/// is confirmed against the table's key (`lookUp`'s `confirm`).
///
/// Two ways per set, 48 bytes. The number of sets follows the table: 1,024 to start with (48
/// KiB), doubled (and emptied: it is only a cache) while the table holds more than an eighth as
/// many topics as there are sets, up to two sets for each topic `max_topics` allows, rounded up
/// to a power of two, at most 65,536 (3 MiB; 1.5 MiB with the default 10,000 topics, in use). A
/// topic found through the table goes into the first way, pushing the previous first into the
/// second: with every topic coming in turn, only the topics of sets that three or more share
/// keep missing, 1 - e^-λ(1 + λ) of them with λ topics per set (0.7% with 0.125, 2.6% with
/// 0.25, 3.7% with 0.3, 9% with 0.5). Each miss costs a seeded lookup, some 500 instructions:
/// at four sets per topic, 1,000 topics in turn missed 2-6% (by the run's seed), which was
/// 10-30 instructions a message and most of the spread between runs.
struct TopicIndexCache: Sendable {
    static let setBitsRange = 10...16
    /// log2 of the number of sets now, and at most.
    private(set) var setBits: Int {
        didSet { shift = UInt64(64 - setBits) }
    }
    let maxSetBits: Int
    /// 64 - `setBits`: a hash's high bits pick its set.
    private var shift: UInt64

    /// Three words per way, two ways per set: the key's head and tail, then its length (high
    /// half) and table index (low half). `UInt64.max` in the third: empty.
    private var words: [UInt64]
    /// Random per table, so that which topics share a set differs from run to run.
    private let seed: UInt64
    /// 2^64 divided by the golden ratio, odd: the usual multiplier of multiplicative hashing
    /// (Knuth), which spreads every input bit over the product's high bits.
    private static let multiplier: UInt64 = 0x9e37_79b9_7f4a_7c15
    private static let wordsPerWay = 3
    private static let wordsPerSet = 2 * wordsPerWay
    private static let emptyWay = UInt64.max

    /// A cache for a table of at most `topics` topics.
    init(topics: Int = 4_096, seed: UInt64 = .random(in: .min ... .max)) {
        maxSetBits = Self.setBits(for: topics, perTopic: 2)
        setBits = Self.setBitsRange.lowerBound
        shift = UInt64(64 - setBits)
        words = Self.emptyWords(setBits: setBits)
        self.seed = seed
    }

    /// Two sets that never grow: for a copy of the table that is read but not looked up in
    /// (`TopicTable.dropCache`). Shared by every such copy; a write would copy its 96 bytes.
    /// (Two, not one: a shift by 64 - 0 bits would not give set 0.)
    static let singleSet = TopicIndexCache(singleSetSeed: 0)

    private init(singleSetSeed seed: UInt64) {
        (maxSetBits, setBits, shift) = (1, 1, 63)
        words = Self.emptyWords(setBits: 1)
        self.seed = seed
    }

    /// Where the ways are stored (tests: whether a write copied them).
    var storageAddress: UnsafeRawPointer? { words.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) } }

    /// log2 of `perTopic` sets for each of `topics` topics, rounded up, within `setBitsRange`.
    private static func setBits(for topics: Int, perTopic: Int) -> Int {
        let sets = topics >= Int.max / perTopic ? Int.max : topics * perTopic
        var bits = setBitsRange.lowerBound
        while bits < setBitsRange.upperBound && 1 << bits < sets { bits += 1 }
        return bits
    }

    private static func emptyWords(setBits: Int) -> [UInt64] {
        Array(repeating: emptyWay, count: wordsPerSet << setBits)
    }

    var setCount: Int { 1 << setBits }
    var maxSetCount: Int { 1 << maxSetBits }

    /// The set `key` (of `topic`) belongs to: the key's head and length mixed in with a
    /// multiply, every word between head and tail for a topic longer than 16 bytes, then the
    /// tail with a last multiply whose two halves (one `mul` gives both) are folded together, so
    /// that the tail's high bytes, a topic's last characters, move every bit of the result.
    /// Without the fold the tail's top byte moved only the top bits of the product: topics
    /// numbered in hex (`id.%08x`) then shared sets by the run's seed, up to a quarter of them
    /// missing the cache (simulated over 100 seeds; 4-5% with the fold, as random topics).
    @inline(__always)
    func set(of key: TopicKey, topic: UnsafeRawBufferPointer) -> Int {
        var hash = (seed ^ UInt64(truncatingIfNeeded: key.count) ^ key.head) &* Self.multiplier
        hash ^= hash &>> 32
        if !key.isExact { hash = Self.mixMiddle(of: topic, into: hash) }
        let product = (hash ^ key.tail).multipliedFullWidth(by: Self.multiplier)
        return Int(truncatingIfNeeded: (product.high ^ product.low) &>> shift)
    }

    /// The words between a long topic's first and last 8 bytes. Inlined: the short topics'
    /// path (`TopicTable.cachedShortTopic`) knows its key is exact and drops this loop, and the
    /// long topics' saves a call and the registers kept around it.
    @inline(__always)
    private static func mixMiddle(of topic: UnsafeRawBufferPointer, into start: UInt64) -> UInt64 {
        guard let base = topic.baseAddress else { return start }
        var hash = start
        var offset = 8
        while offset < topic.count &- 8 {
            hash =
                (hash ^ UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))) &* multiplier
            hash ^= hash &>> 32
            offset &+= 8
        }
        return hash
    }

    /// The table index remembered for `key` in `set`, if any. An exact key (up to 16 bytes) is
    /// confirmed by the words alone; a longer one also by `confirm`, which compares the table's
    /// key at the index.
    @inline(__always)
    func lookUp(_ key: TopicKey, in set: Int, confirm: (Int) -> Bool) -> Int? {
        let meta = UInt64(truncatingIfNeeded: UInt32(truncatingIfNeeded: key.count)) << 32
        return words.withUnsafeBufferPointer { words in
            var way = set &* Self.wordsPerSet
            for _ in 0..<2 {
                let stored = words[way &+ 2]
                if stored & 0xffff_ffff_0000_0000 == meta && words[way] == key.head && words[way &+ 1] == key.tail {
                    let index = Int(truncatingIfNeeded: UInt32(truncatingIfNeeded: stored))
                    if key.isExact || confirm(index) { return index }
                }
                way &+= Self.wordsPerWay
            }
            return nil
        }
    }

    /// Remembers that the topic of `key`, filed under `set`, is at `index` in the table.
    mutating func remember(_ key: TopicKey, at index: Int, in set: Int) {
        let way = set * Self.wordsPerSet
        words[way + 3] = words[way]
        words[way + 4] = words[way + 1]
        words[way + 5] = words[way + 2]
        words[way] = key.head
        words[way + 1] = key.tail
        words[way + 2] =
            UInt64(truncatingIfNeeded: UInt32(truncatingIfNeeded: key.count)) << 32
            | UInt64(truncatingIfNeeded: UInt32(truncatingIfNeeded: index))
    }

    /// Called as the table grows: once it holds more than an eighth as many topics as there are
    /// sets, the sets are doubled (up to `maxSetBits`) and emptied. Returns whether they were
    /// (every `set(of:)` computed before is then stale).
    mutating func grow(toHold topics: Int) -> Bool {
        let wanted = min(Self.setBits(for: topics, perTopic: 8), maxSetBits)
        guard wanted > setBits else { return false }
        setBits = wanted
        words = Self.emptyWords(setBits: setBits)
        return true
    }
}
