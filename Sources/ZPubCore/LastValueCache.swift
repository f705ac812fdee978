/// The last message of each topic under the configured prefixes, so that a late joiner gets the
/// current state instead of a blank page (the "slow joiner" of pub/sub).
///
/// Bounded by entry count and total bytes (oldest updates are evicted first) and optionally by
/// age. A message whose payload is absent or one empty frame deletes its topic's entry.
/// Storing copies the message's frames (the cache must own them); only topics under the
/// configured prefixes are stored, so the cost is opt-in.
public struct LastValueCache: Sendable {
    public struct Entry: Sendable, Equatable {
        /// Every frame of the message, the topic first.
        public var frames: [[UInt8]]
        public var bytes: Int
        /// Increases with every update the cache stores: later updates have larger numbers.
        public var sequence: UInt64
        /// Wall time of the update, in milliseconds since the Unix epoch.
        public var storedMilliseconds: UInt64

        public init(frames: [[UInt8]], bytes: Int, sequence: UInt64, storedMilliseconds: UInt64) {
            self.frames = frames
            self.bytes = bytes
            self.sequence = sequence
            self.storedMilliseconds = storedMilliseconds
        }
    }

    public var prefixes: [[UInt8]] {
        didSet { matcher = PrefixMatcher(prefixes) }
    }
    /// `prefixes`, for `covers` on every forwarded message.
    @usableFromInline var matcher: PrefixMatcher
    public var maxEntries: Int
    public var maxBytes: Int
    /// 0: entries never expire.
    public var maxAgeMilliseconds: UInt64

    private var table = ByteStringTable<Entry>()
    /// Updates in the order they were stored, for evicting the oldest in amortised O(1); stale
    /// items (a topic updated or deleted since) are skipped and compacted away.
    private var order: [(topic: [UInt8], sequence: UInt64)] = []
    private var orderStart = 0

    public private(set) var totalBytes = 0
    public private(set) var lastSequence: UInt64 = 0
    public private(set) var updates: UInt64 = 0
    public private(set) var deletions: UInt64 = 0
    public private(set) var evictions: UInt64 = 0
    /// Values sent to a new subscriber when it subscribed.
    public var hits: UInt64 = 0
    /// Subscriptions under a cached prefix for which nothing was cached.
    public var misses: UInt64 = 0
    public var snapshots: UInt64 = 0

    public init(prefixes: [[UInt8]], maxEntries: Int, maxBytes: Int, maxAgeMilliseconds: UInt64) {
        self.prefixes = prefixes
        matcher = PrefixMatcher(prefixes)
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
        self.maxAgeMilliseconds = maxAgeMilliseconds
    }

    @inlinable public var isEnabled: Bool { !prefixes.isEmpty }
    public var count: Int { table.count }

    /// Whether messages on `topic` are cached. Mutating for `PrefixMatcher.matchLength`'s
    /// reason: the forwarding loop asks for every message while the cache is on.
    @inlinable @inline(__always)
    public mutating func covers(_ topic: UnsafeRawBufferPointer) -> Bool {
        matcher.matchLength(topic) != nil
    }

    /// Whether some cached topic could start with `subscription` (the subscription lies under a
    /// cached prefix, or a cached prefix lies under it).
    public func mayHaveValues(for subscription: [UInt8]) -> Bool {
        prefixes.contains { $0.starts(with: subscription) || subscription.starts(with: $0) }
    }

    /// Stores (or, for a deletion marker, removes) the message `frames` on `frames[0]`.
    public mutating func store(_ frames: [[UInt8]], nowMilliseconds: UInt64) {
        guard let topic = frames.first else { return }
        let payload = frames.dropFirst()
        if payload.isEmpty || (payload.count == 1 && payload.first!.isEmpty) {
            if let index = table.index(of: topic) {
                totalBytes -= table[valueAt: index].bytes
                table.remove(at: index)
                deletions &+= 1
            }
            return
        }
        lastSequence &+= 1
        updates &+= 1
        insert(frames, topic: topic, sequence: lastSequence, storedMilliseconds: nowMilliseconds)
    }

    /// Puts back an entry persisted before a restart, with its own sequence and time (call in
    /// sequence order); later updates continue above its sequence.
    public mutating func restore(_ frames: [[UInt8]], sequence: UInt64, storedMilliseconds: UInt64) {
        guard let topic = frames.first, frames.count > 1 else { return }
        lastSequence = max(lastSequence, sequence)
        insert(frames, topic: topic, sequence: sequence, storedMilliseconds: storedMilliseconds)
    }

    private mutating func insert(_ frames: [[UInt8]], topic: [UInt8], sequence: UInt64, storedMilliseconds: UInt64) {
        let bytes = frames.reduce(0) { $0 + $1.count }
        let entry = Entry(frames: frames, bytes: bytes, sequence: sequence, storedMilliseconds: storedMilliseconds)
        if let index = table.index(of: topic) {
            totalBytes += bytes - table[valueAt: index].bytes
            table[valueAt: index] = entry
        } else {
            // The cache is best effort: a new topic with no room left for its key (max_bytes
            // allows more topic bytes than a table holds) is not cached rather than trapping.
            guard table.hasRoom(forKeyOf: topic.count) else { return }
            table.insert(topic, value: entry)
            totalBytes += bytes
        }
        order.append((topic, sequence))
        evictWhileOverLimits()
        compactOrderIfMostlyStale()
    }

    /// The entry of exactly `topic`, if cached and not expired.
    public func entry(for topic: [UInt8], nowMilliseconds: UInt64) -> Entry? {
        guard let entry = table[topic], !isExpired(entry, nowMilliseconds: nowMilliseconds) else { return nil }
        return entry
    }

    /// The value a new subscription to `prefix` receives: the exact topic if cached, otherwise
    /// the most recently updated cached topic under the prefix. Costs one lookup for an exact
    /// topic, a scan of the cache otherwise.
    public func newest(under prefix: [UInt8], nowMilliseconds: UInt64) -> Entry? {
        if let exact = entry(for: prefix, nowMilliseconds: nowMilliseconds) { return exact }
        var best: Entry?
        for index in table.indices where table.key(at: index, startsWith: prefix) {
            let value = table[valueAt: index]
            if isExpired(value, nowMilliseconds: nowMilliseconds) { continue }
            if best == nil || value.sequence > best!.sequence { best = value }
        }
        return best
    }

    /// Every unexpired entry under `prefix`, oldest update first (the snapshot of the Clone
    /// pattern).
    public func entries(under prefix: [UInt8], nowMilliseconds: UInt64) -> [Entry] {
        table.values(withKeyPrefix: prefix)
            .filter { !isExpired($0, nowMilliseconds: nowMilliseconds) }
            .sorted { $0.sequence < $1.sequence }
    }

    /// The unexpired entries updated after `sequence`, oldest update first: at most `limit` of
    /// them and, past the first, at most `maxBytes` of frames. `more` when some were left for a
    /// next page (which starts after the last sequence of this one). One pass over the cache,
    /// and a sort of what was updated: what a pair's backup asks for every second, on the
    /// forwarding loop.
    public func entries(updatedAfter sequence: UInt64, limit: Int, maxBytes: Int, nowMilliseconds: UInt64)
        -> (entries: [Entry], more: Bool)
    {
        let updated = table.values(withKeyPrefix: [])
            .filter { $0.sequence > sequence && !isExpired($0, nowMilliseconds: nowMilliseconds) }
            .sorted { $0.sequence < $1.sequence }
        var bytes = 0
        var count = 0
        for entry in updated.prefix(limit) {
            if count > 0 && bytes + entry.bytes > maxBytes { break }
            bytes += entry.bytes
            count += 1
        }
        return (Array(updated.prefix(count)), count < updated.count)
    }

    /// Removes expired entries; call now and then (the forwarding loop does, once a second).
    public mutating func expire(nowMilliseconds: UInt64) {
        guard maxAgeMilliseconds > 0 else { return }
        var index = 0
        while index < table.count {
            if isExpired(table[valueAt: index], nowMilliseconds: nowMilliseconds) {
                totalBytes -= table[valueAt: index].bytes
                table.remove(at: index)
                evictions &+= 1
            } else {
                index += 1
            }
        }
    }

    public mutating func removeAll() {
        table.removeAll()
        order.removeAll()
        orderStart = 0
        totalBytes = 0
    }

    private func isExpired(_ entry: Entry, nowMilliseconds: UInt64) -> Bool {
        maxAgeMilliseconds > 0 && nowMilliseconds &- entry.storedMilliseconds > maxAgeMilliseconds
    }

    private mutating func evictWhileOverLimits() {
        while (table.count > maxEntries || totalBytes > maxBytes) && orderStart < order.count {
            let oldest = order[orderStart]
            orderStart += 1
            guard let index = table.index(of: oldest.topic), table[valueAt: index].sequence == oldest.sequence else {
                continue  // updated or deleted since: not the oldest any more
            }
            totalBytes -= table[valueAt: index].bytes
            table.remove(at: index)
            evictions &+= 1
        }
    }

    private mutating func compactOrderIfMostlyStale() {
        let live = order.count - orderStart
        guard live > 64, live > 2 * table.count + 64 || orderStart > order.count / 2 else { return }
        order = order[orderStart...].filter { item in
            table.index(of: item.topic).map { table[valueAt: $0].sequence == item.sequence } ?? false
        }
        orderStart = 0
    }
}
