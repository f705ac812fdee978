/// Traffic per topic (the first frame of each message): messages, bytes, when last seen.
///
/// Bounded by `maxTopics`: traffic on topics beyond the bound is counted in `untracked`, and the
/// table never grows past it. Recording a message on a known topic allocates nothing.
public struct TopicTable: Sendable {
    public struct Counters: Equatable, Sendable {
        public var messages: UInt64 = 0
        public var bytes: UInt64 = 0
        /// Milliseconds since the Unix epoch, as given to `record`.
        public var lastSeenMilliseconds: UInt64 = 0
        /// Messages on this topic that no subscription wanted when they passed.
        public var unwanted: UInt64 = 0
        /// Cache of "does any subscription match this topic", valid while `generation` equals
        /// the subscription table's generation.
        var matchGeneration: UInt64 = .max
        var matched = false
    }

    public var maxTopics: Int
    private var table = ByteStringTable<Counters>()
    /// Traffic on topics that did not fit in the table.
    public private(set) var untrackedMessages: UInt64 = 0
    public private(set) var untrackedBytes: UInt64 = 0
    /// The index of the topic recorded last (-1: none): consecutive messages on one topic skip
    /// the seeded hash and the probe (callgrind: some 150 instructions per message). Valid
    /// because entries are never removed, only all at once (`removeAll`).
    private var lastIndex = -1

    public init(maxTopics: Int) {
        self.maxTopics = maxTopics
    }

    public var count: Int { table.count }

    /// Counts one message of `bytes` bytes on `topic`. Returns whether some subscription in
    /// `subscriptions` wanted it, and the topic's index for `addBytes(_:at:)` (nil when the
    /// topic is untracked), for callers that learn the size only after the last frame.
    @inline(__always)
    public mutating func record(
        topic: UnsafeRawBufferPointer, bytes: Int, nowMilliseconds: UInt64,
        subscriptions: SubscriptionTable
    ) -> (wanted: Bool, index: Int?) {
        var index: Int?
        if lastIndex >= 0 && table.key(at: lastIndex, equals: topic) {
            index = lastIndex
        } else {
            index = table.index(of: topic)
            if index == nil && table.count < maxTopics {
                index = table.insert(topic, value: Counters())
            }
            lastIndex = index ?? -1
        }
        guard let index else {
            untrackedMessages &+= 1
            untrackedBytes &+= UInt64(bytes)
            return (subscriptions.matches(topic), nil)
        }
        let generation = subscriptions.generation
        let stale = table[valueAt: index].matchGeneration != generation
        let matched = stale && subscriptions.matches(topic)
        // One in-place update: allocation-free in debug builds too (see `withValue(at:_:)`).
        let wanted = table.withValue(at: index) { counters in
            if stale {
                counters.matched = matched
                counters.matchGeneration = generation
            }
            counters.messages &+= 1
            counters.bytes &+= UInt64(bytes)
            counters.lastSeenMilliseconds = nowMilliseconds
            if !counters.matched { counters.unwanted &+= 1 }
            return counters.matched
        }
        return (wanted, index)
    }

    /// Adds bytes to a topic's count (index from `record`), or to the untracked count.
    @inline(__always)
    public mutating func addBytes(_ bytes: UInt64, at index: Int?) {
        if let index {
            table.withValue(at: index) { $0.bytes &+= bytes }
        } else {
            untrackedBytes &+= bytes
        }
    }

    public func counters(of topic: [UInt8]) -> Counters? { table[topic] }

    /// All topics with their counters, optionally only those starting with `filter`, sorted by
    /// topic bytes.
    public func entries(withPrefix filter: [UInt8] = []) -> [(topic: [UInt8], counters: Counters)] {
        table.entries(withKeyPrefix: filter)
            .map { (topic: $0.key, counters: $0.value) }
            .sorted { $0.topic.lexicographicallyPrecedes($1.topic) }
    }

    public mutating func removeAll() {
        table.removeAll()
        lastIndex = -1
        untrackedMessages = 0
        untrackedBytes = 0
    }
}
