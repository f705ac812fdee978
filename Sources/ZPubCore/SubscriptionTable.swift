/// Which topic prefixes subscribers want, and by how many subscriptions.
///
/// Fed by the subscribe and unsubscribe frames an XPUB socket reports (including those libzmq
/// generates when a subscriber disconnects). Bounded: a table that is full, or a prefix that is
/// too long, refuses new subscriptions rather than growing.
///
/// The table counts what it is given; `SubscriberConnections` keeps a connection's repeated
/// subscriptions, and its unsubscriptions from prefixes it does not hold, from reaching it.
public struct SubscriptionTable: Sendable {
    /// What became of a subscribe frame.
    public enum SubscribeOutcome: Equatable, Sendable {
        /// Counted. `isNewPrefix` is true when nobody wanted this prefix before.
        case accepted(isNewPrefix: Bool)
        /// Longer than `maxPrefixLength`.
        case refusedTooLong
        /// `maxPrefixes` distinct prefixes are already tracked.
        case refusedTableFull
    }

    /// What became of an unsubscribe frame.
    public enum UnsubscribeOutcome: Equatable, Sendable {
        /// Counted down. `wasLast` is true when nobody wants the prefix any more.
        case removed(wasLast: Bool)
        /// The prefix was not tracked (it was refused, or the frame is spurious).
        case unknown
    }

    public var maxPrefixes: Int
    public var maxPrefixLength: Int

    // Internal, not private: a test gives it a small bound on key bytes.
    var table = ByteStringTable<Int>()
    /// How many prefixes exist of each length; lets `matches` probe only lengths in use.
    private var prefixLengthCounts: [Int: Int] = [:]
    private var sortedPrefixLengths: [Int] = []

    /// Bumped on every change of the set of prefixes, so callers can cache match results.
    public private(set) var generation: UInt64 = 0
    /// Sum of all counts: the number of live subscriptions.
    public private(set) var totalSubscriptions = 0
    public private(set) var refusedTooLong: UInt64 = 0
    public private(set) var refusedTableFull: UInt64 = 0
    public private(set) var subscribeEvents: UInt64 = 0
    public private(set) var unsubscribeEvents: UInt64 = 0

    public init(maxPrefixes: Int, maxPrefixLength: Int) {
        self.maxPrefixes = maxPrefixes
        self.maxPrefixLength = maxPrefixLength
    }

    /// The number of distinct prefixes wanted.
    public var prefixCount: Int { table.count }

    public mutating func subscribe(_ prefix: UnsafeRawBufferPointer) -> SubscribeOutcome {
        subscribeEvents &+= 1
        if prefix.count > maxPrefixLength {
            refusedTooLong &+= 1
            return .refusedTooLong
        }
        guard let isNewPrefix = add(prefix) else {
            refusedTableFull &+= 1
            return .refusedTableFull
        }
        return .accepted(isNewPrefix: isNewPrefix)
    }

    /// Whether the table has room for one more prefix.
    public var hasRoom: Bool { table.count < maxPrefixes }

    /// Counts a subscription refused earlier for a full table, now admitted (not a frame seen,
    /// nor a refusal: both were counted when it came). Nil when there is still no room; else
    /// whether nobody wanted the prefix before.
    public mutating func admit(_ prefix: [UInt8]) -> Bool? {
        prefix.count > maxPrefixLength ? nil : prefix.withUnsafeBytes { add($0) }
    }

    private mutating func add(_ prefix: UnsafeRawBufferPointer) -> Bool? {
        if let index = table.index(of: prefix) {
            table[valueAt: index] += 1
            totalSubscriptions += 1
            return false
        }
        if table.count >= maxPrefixes || !table.hasRoom(forKeyOf: prefix.count) { return nil }
        table.insert(prefix, value: 1)
        totalSubscriptions += 1
        addLength(prefix.count)
        generation &+= 1
        return true
    }

    public mutating func unsubscribe(_ prefix: UnsafeRawBufferPointer) -> UnsubscribeOutcome {
        unsubscribeEvents &+= 1
        guard let index = table.index(of: prefix) else { return .unknown }
        totalSubscriptions -= 1
        if table[valueAt: index] > 1 {
            table[valueAt: index] -= 1
            return .removed(wasLast: false)
        }
        table.remove(at: index)
        removeLength(prefix.count)
        generation &+= 1
        return .removed(wasLast: true)
    }

    /// A frame that changes no count (a connection's repeated subscription, or its
    /// unsubscription from a prefix it did not hold): still a frame seen, in the events.
    public mutating func noteUncounted(subscribe: Bool) {
        if subscribe { subscribeEvents &+= 1 } else { unsubscribeEvents &+= 1 }
    }

    public mutating func subscribe(_ prefix: [UInt8]) -> SubscribeOutcome {
        prefix.withUnsafeBytes { subscribe($0) }
    }

    public mutating func unsubscribe(_ prefix: [UInt8]) -> UnsubscribeOutcome {
        prefix.withUnsafeBytes { unsubscribe($0) }
    }

    /// How many subscriptions want exactly this prefix.
    public func count(of prefix: [UInt8]) -> Int { table[prefix] ?? 0 }

    /// True when some subscription's prefix is a prefix of `topic`. Costs one hash lookup per
    /// distinct prefix length in use, independent of the number of subscriptions.
    public func matches(_ topic: UnsafeRawBufferPointer) -> Bool {
        for length in sortedPrefixLengths {
            if length > topic.count { break }
            if table.index(of: UnsafeRawBufferPointer(rebasing: topic[0..<length])) != nil { return true }
        }
        return false
    }

    public func matches(_ topic: [UInt8]) -> Bool {
        topic.withUnsafeBytes { matches($0) }
    }

    /// All prefixes with their counts, optionally only those starting with `filter`, sorted by
    /// prefix bytes.
    public func entries(withPrefix filter: [UInt8] = []) -> [(prefix: [UInt8], count: Int)] {
        table.entries(withKeyPrefix: filter)
            .map { (prefix: $0.key, count: $0.value) }
            .sorted { $0.prefix.lexicographicallyPrecedes($1.prefix) }
    }

    private mutating func addLength(_ length: Int) {
        let previous = prefixLengthCounts[length, default: 0]
        prefixLengthCounts[length] = previous + 1
        if previous == 0 {
            sortedPrefixLengths.append(length)
            sortedPrefixLengths.sort()
        }
    }

    private mutating func removeLength(_ length: Int) {
        let remaining = prefixLengthCounts[length, default: 1] - 1
        if remaining == 0 {
            prefixLengthCounts[length] = nil
            sortedPrefixLengths.removeAll { $0 == length }
        } else {
            prefixLengthCounts[length] = remaining
        }
    }
}
