/// Traffic per topic (the first frame of each message): messages, bytes, when last seen.
///
/// Bounded by `maxTopics` and `maxTopicLength`: traffic on topics beyond the bounds is counted in
/// `untracked`, and the table never grows past them (at most `maxTopics x maxTopicLength` bytes
/// of keys). Recording a message on a known topic allocates nothing.
public struct TopicTable: Sendable {
    public struct Counters: Equatable, Sendable {
        public var messages: UInt64 = 0
        public var bytes: UInt64 = 0
        /// Milliseconds since the Unix epoch, as given to `count`.
        public var lastSeenMilliseconds: UInt64 = 0
        /// Messages on this topic that no subscription wanted when they passed.
        public var unwanted: UInt64 = 0
    }

    /// What a lookup found: the topic's index in the table (nil when untracked) and whether any
    /// subscription wanted it, in one word, so that the forwarding loop keeps one register (or
    /// one stack slot) across its calls into libzmq instead of three.
    public struct Lookup: Equatable, Sendable {
        /// The index shifted left by one, the wanted bit in bit 0; negative when untracked.
        @usableFromInline let raw: Int

        @inlinable public init(index: Int?, wanted: Bool) {
            raw = (index ?? -1) << 1 | (wanted ? 1 : 0)
        }

        @inlinable public var index: Int? { raw >= 0 ? raw >> 1 : nil }
        @inlinable public var wanted: Bool { raw & 1 != 0 }
    }

    /// Whether any subscription matches a topic, valid while `generation` equals the
    /// subscription table's generation. Kept with the topic's key, apart from its counters: a
    /// lookup reads it, a count writes the counters.
    @usableFromInline struct Match: Sendable {
        @usableFromInline var generation: UInt64 = .max
        @usableFromInline var matched = false
    }

    public var maxTopics: Int {
        // A reload that changes the bound sizes the cache for it (an empty cache only misses).
        didSet {
            if maxTopics != oldValue {
                recentIndexes = TopicIndexCache(topics: maxTopics)
                _ = recentIndexes.grow(toHold: table.count)
            }
        }
    }
    /// Longer topics are untracked: a producer sending 16 MiB topic frames would otherwise fill
    /// the keys' storage by gigabytes. Past the storage's 2 GiB bound (`max_topics` times this
    /// can be more), new topics are untracked too.
    public var maxTopicLength: Int
    @usableFromInline var table = ByteStringTable<Match>()
    /// The counters of the topic at each of `table`'s indexes (copied on write, checked once per
    /// burst: `prepareToCount`).
    @usableFromInline var counters = TopicCounterStore()
    /// Traffic on topics that did not fit in the table.
    public private(set) var untrackedMessages: UInt64 = 0
    public private(set) var untrackedBytes: UInt64 = 0
    /// The topic looked up last (`TopicKey.none`: none), its index and its match for
    /// subscription generation `lastGeneration`: consecutive messages on one topic skip the
    /// cache, the table and its keys (`lookupRepeated`). Valid because entries are never
    /// removed, only all at once (`removeAll`).
    @usableFromInline var lastKey = TopicKey.none
    @usableFromInline var lastFound = Lookup(index: nil, wanted: false)
    @usableFromInline var lastGeneration = UInt64.max
    /// Where recent topics are in `table`, under a cheaper hash than the table's own (for
    /// messages on another topic than the previous one). Valid for the same reason.
    var recentIndexes: TopicIndexCache
    /// Lookups that went past `recentIndexes` to the table's seeded hash (tests, profiles).
    private(set) var seededLookups: UInt64 = 0

    public init(maxTopics: Int, maxTopicLength: Int = 1_024) {
        self.maxTopics = maxTopics
        recentIndexes = TopicIndexCache(topics: maxTopics)
        self.maxTopicLength = maxTopicLength
    }

    public var count: Int { table.count }

    /// The first half of counting a message, while its topic is at hand: the topic's index
    /// (inserted if new and there is room; nil when untracked) and whether some subscription
    /// wants it. The forwarding loop counts it (`countPrepared`) once the message's size is
    /// known, so the topic's counters are updated once per message. (`BrokerState.lookupTopic` takes the
    /// same steps with the loop's own split between inlined and out-of-line code.)
    public mutating func lookup(topic: UnsafeRawBufferPointer, subscriptions: SubscriptionTable) -> Lookup {
        let key = TopicKey(topic)
        let generation = subscriptions.generation
        if let hit = lookupRepeated(key, topic: topic, generation: generation) { return hit }
        let index = find(key, topic: topic)
        if let index, let matched = knownMatch(at: index, generation: generation) {
            return remember(key, at: index, matched: matched, generation: generation)
        }
        let matched = subscriptions.matches(topic)
        guard let index else { return Lookup(index: nil, wanted: matched) }
        return setMatch(matched, key: key, generation: generation, at: index)
    }

    /// The common case, inlined into the forwarding loop: the previous message's topic, its
    /// match still valid for this subscription `generation`; nil otherwise. Two words and a
    /// length compared (the table's key too, for a topic longer than 16 bytes); it takes the
    /// generation rather than the subscription table so that the loop does not copy the
    /// table's fields for every message (callgrind: some 17 instructions).
    @inlinable @inline(__always)
    func lookupRepeated(_ key: TopicKey, topic: UnsafeRawBufferPointer, generation: UInt64) -> Lookup? {
        guard key == lastKey && lastGeneration == generation else { return nil }
        guard key.isExact || table.key(at: lastFound.raw >> 1, equals: topic) else { return nil }
        return lastFound
    }

    // The slow path in steps, so that the caller asks its subscription table itself, and only
    // when a topic's match must be refreshed: passed to one call with the topic table, the
    // subscription table (144 bytes) was copied for every message on another topic than the
    // previous one (callgrind).

    /// The index of the topic of `key`, inserted if new and there is room; nil when untracked.
    /// Asks `recentIndexes` (inlined: with many topics in turn it answers nearly every
    /// message), then the table (out of line).
    @inline(__always)
    mutating func find(_ key: TopicKey, topic: UnsafeRawBufferPointer) -> Int? {
        let set = cacheSet(of: key, topic: topic)
        return cachedIndex(of: key, topic: topic, in: set) ?? findInTable(key, topic: topic, set: set)
    }

    /// The set of `recentIndexes` the topic of `key` belongs to, and the index it holds there
    /// for the topic, if any (`find`'s steps, for a caller that goes on to `findInTable` itself).
    @inline(__always)
    func cacheSet(of key: TopicKey, topic: UnsafeRawBufferPointer) -> Int {
        recentIndexes.set(of: key, topic: topic)
    }

    @inline(__always)
    func cachedIndex(of key: TopicKey, topic: UnsafeRawBufferPointer, in set: Int) -> Int? {
        recentIndexes.lookUp(key, in: set) { table.key(at: $0, equals: topic) }
    }

    /// The common case of `BrokerState.lookupTopicSlowly`: a topic of up to 16 bytes (`key` is
    /// exact, so no call compares or hashes its middle) that the cache holds with its match
    /// valid for `generation`, made the previous topic; nil otherwise.
    @inline(__always)
    mutating func cachedShortTopic(_ key: TopicKey, topic: UnsafeRawBufferPointer, generation: UInt64) -> Lookup? {
        let set = recentIndexes.set(of: key, topic: topic)
        guard let index = recentIndexes.lookUp(key, in: set, confirm: { _ in true }),
            let matched = knownMatch(at: index, generation: generation)
        else { return nil }
        return remember(key, at: index, matched: matched, generation: generation)
    }

    @inline(never)
    mutating func findInTable(_ key: TopicKey, topic: UnsafeRawBufferPointer, set: Int) -> Int? {
        seededLookups &+= 1
        if let index = table.index(of: topic) {
            recentIndexes.remember(key, at: index, in: set)
            return index
        }
        guard table.count < maxTopics && topic.count <= maxTopicLength && table.hasRoom(forKeyOf: topic.count)
        else { return nil }
        let index = table.insert(topic, value: Match())
        prepareToCount()
        counters.append()
        if recentIndexes.grow(toHold: table.count) {
            recentIndexes.remember(key, at: index, in: recentIndexes.set(of: key, topic: topic))
        } else {
            recentIndexes.remember(key, at: index, in: set)
        }
        return index
    }

    /// Whether some subscription wants the topic at `index`, if known for subscription
    /// `generation`; nil when it must be matched again (`setMatch`).
    @inline(__always)
    func knownMatch(at index: Int, generation: UInt64) -> Bool? {
        let match = table[valueAt: index]
        return match.generation == generation ? match.matched : nil
    }

    /// Makes the topic at `index` the previous topic for `lookupRepeated`.
    @inline(__always)
    @discardableResult
    mutating func remember(_ key: TopicKey, at index: Int, matched: Bool, generation: UInt64) -> Lookup {
        let found = Lookup(index: index, wanted: matched)
        lastKey = key
        lastFound = found
        lastGeneration = generation
        return found
    }

    /// Records whether the topic at `index` is wanted under subscription `generation`, and makes
    /// it the previous topic.
    mutating func setMatch(_ matched: Bool, key: TopicKey, generation: UInt64, at index: Int) -> Lookup {
        table.withValue(at: index) { match in
            match.matched = matched
            match.generation = generation
        }
        return remember(key, at: index, matched: matched, generation: generation)
    }

    /// The second half: counts one message of `bytes` bytes on the topic `lookup` found, or as
    /// untracked.
    public mutating func count(_ found: Lookup, bytes: UInt64, nowMilliseconds: UInt64) {
        prepareToCount()
        countPrepared(found, bytes: bytes, nowMilliseconds: nowMilliseconds)
    }

    /// Makes the counters this table's own (a copy if a copy of the table shares them), so that
    /// `countPrepared` may write them in place until the table is next copied. The forwarding
    /// loop calls it once per burst.
    @inlinable @inline(__always)
    public mutating func prepareToCount() {
        if !isKnownUniquelyReferenced(&counters) { copyCounters() }
    }

    /// Out of line: once after each copy handed to a reader.
    @usableFromInline @inline(never)
    mutating func copyCounters() {
        counters = counters.copy()
    }

    /// `count` without the check that the counters are not shared: for the forwarding loop,
    /// which has called `prepareToCount` since it last handed out a copy of the table. One
    /// topic's counters updated in place, some ten instructions; a debug build checks the rule.
    @inlinable @inline(__always)
    public mutating func countPrepared(_ found: Lookup, bytes: UInt64, nowMilliseconds: UInt64) {
        assert(isKnownUniquelyReferenced(&counters), "topic counters written while a copy shares them")
        // One unsigned comparison: an untracked lookup's negative index is past any count.
        let index = found.raw >> 1
        guard UInt(bitPattern: index) < UInt(bitPattern: counters.count) else { return countUntracked(bytes: bytes) }
        let entry = counters.base + index
        entry.pointee.messages &+= 1
        entry.pointee.bytes &+= bytes
        entry.pointee.lastSeenMilliseconds = nowMilliseconds
        if !found.wanted { entry.pointee.unwanted &+= 1 }
    }

    @usableFromInline
    mutating func countUntracked(bytes: UInt64) {
        untrackedMessages &+= 1
        untrackedBytes &+= bytes
    }

    public func counters(of topic: [UInt8]) -> Counters? { table.index(of: topic).map { counters[$0] } }

    /// All topics with their counters, optionally only those starting with `filter`, sorted by
    /// topic bytes.
    public func entries(withPrefix filter: [UInt8] = []) -> [(topic: [UInt8], counters: Counters)] {
        table.indices.filter { filter.isEmpty || table.key(at: $0, startsWith: filter) }
            .map { (topic: table.key(at: $0), counters: counters[$0]) }
            .sorted { $0.topic.lexicographicallyPrecedes($1.topic) }
    }

    /// Puts a one-set topic cache in place of this table's own: for a copy handed to a reader
    /// (TOPICS), which never looks a topic up. The copy would otherwise share the loop's cache
    /// (up to 3 MiB), and the loop's next change to it would copy it all first.
    mutating func dropCache() {
        recentIndexes = .singleSet
    }

    public mutating func removeAll() {
        table.removeAll()
        counters = TopicCounterStore()
        lastKey = .none
        lastFound = Lookup(index: nil, wanted: false)
        recentIndexes = TopicIndexCache(topics: maxTopics)
        untrackedMessages = 0
        untrackedBytes = 0
    }
}
