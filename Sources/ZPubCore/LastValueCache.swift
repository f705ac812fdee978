/// The last message of each topic under the configured prefixes, so that a late joiner gets the
/// current state instead of a blank page (the "slow joiner" of pub/sub).
///
/// Bounded by entry count and total bytes (oldest updates are evicted first) and optionally by
/// age. A message whose payload is absent or one empty frame deletes its topic's entry.
/// Storing copies the message's frames (the cache must own them); only topics under the
/// configured prefixes are stored, so the cost is opt-in.
public struct LastValueCache: Sendable {
    public struct Entry: Sendable, Equatable {
        /// Every frame of the message, the topic first, in `FrameCodec`'s layout: one buffer
        /// per entry, which an update of its topic refills in place. An array per frame cost
        /// three allocations and three frees for every cached message.
        public private(set) var encoded: [UInt8]
        /// Every frame of the message, the topic first (decoded: for replies and new
        /// subscribers, not for the forwarding path).
        public var frames: [[UInt8]] { FrameCodec.decode(encoded) ?? [] }
        public var bytes: Int
        /// Increases with every update the cache stores: later updates have larger numbers.
        public var sequence: UInt64
        /// Wall time of the update, in milliseconds since the Unix epoch.
        public var storedMilliseconds: UInt64

        public init(frames: [[UInt8]], bytes: Int, sequence: UInt64, storedMilliseconds: UInt64) {
            self.init(
                encoded: FrameCodec.encode(frames), bytes: bytes, sequence: sequence,
                storedMilliseconds: storedMilliseconds)
        }

        init(encoded: [UInt8], bytes: Int, sequence: UInt64, storedMilliseconds: UInt64) {
            self.encoded = encoded
            self.bytes = bytes
            self.sequence = sequence
            self.storedMilliseconds = storedMilliseconds
        }

        /// Replaces the message: in the entry's own buffer when it has the same size (a state
        /// topic's updates usually do) and nothing else holds it. A buffer of another size is
        /// made anew, so that an entry holds no more than its message (`bytes` counts it,
        /// each frame's 4-byte length included, and `max_bytes` bounds them).
        mutating func refill(
            with message: UnsafeRawBufferPointer, bytes: Int, sequence: UInt64, storedMilliseconds: UInt64
        ) {
            if encoded.count == message.count {
                encoded.withUnsafeMutableBytes { $0.copyMemory(from: message) }
            } else {
                encoded = Array(message)
            }
            self.bytes = bytes
            self.sequence = sequence
            self.storedMilliseconds = storedMilliseconds
        }
    }

    /// Where an entry is in the order of updates: the table indexes of the entries updated just
    /// before and just after it (-1: none), and its sequence (read here, in the list, rather than
    /// through the entry, which would retain its buffer).
    private struct Link {
        var older: Int32 = -1
        var newer: Int32 = -1
        var sequence: UInt64 = 0
    }

    public var prefixes: [[UInt8]] {
        didSet { matcher = PrefixMatcher(prefixes) }
    }
    /// `prefixes`, for `covers` on every forwarded message.
    @usableFromInline var matcher: PrefixMatcher
    public var maxEntries: Int
    public var maxBytes: Int
    /// 0: entries never expire.
    public var maxAgeMilliseconds: UInt64 {
        // A longer age brings expired values back, which a remembered answer of
        // `newest(under:)` may have passed over.
        didSet { newestFound.removeAll() }
    }

    private var table = ByteStringTable<Entry>()
    /// The entries in the order of their updates, for evicting the oldest first: a list linked
    /// through the table's indexes (`links[i]` is the table's entry `i`'s), so that an update
    /// moves its entry to the newest end, and the oldest goes, without looking a topic up. (A
    /// queue of (topic, sequence) updates, compacted when mostly stale, hashed every topic
    /// again to tell which were stale: some 400 instructions per cached message.)
    private var links: [Link] = []
    private var oldest: Int32 = -1
    private var newest: Int32 = -1
    /// The entry the latest update went to: a run of updates on one topic finds it without
    /// hashing the topic (checked by comparing the key).
    private var lastUpdated = -1

    /// What `newest(under:)` found by scanning the whole table, per subscribed prefix: the
    /// newest topic under it then (nil: none), that topic's sequence, and the cache's last
    /// sequence at the time. Subscribers that come and go ask for the same few prefixes, and a
    /// scan of 10 million values takes milliseconds of the forwarding loop; with this, the next
    /// subscription to the prefix looks only at what was updated since (`newestSince`).
    private struct NewestFound {
        var topic: [UInt8]?
        var sequence: UInt64
        var through: UInt64
        /// The time of the scan: what was expired then is expired later, unless the clock went
        /// back.
        var at: UInt64
    }
    private var newestFound: [[UInt8]: NewestFound] = [:]
    /// At most this many prefixes are remembered (then forgotten all at once: the next
    /// subscription to each scans again).
    static let newestFoundLimit = 1_024
    /// Whole-table scans `newest(under:)` made (for tests: a remembered prefix needs none).
    private(set) var tableScans = 0
    /// The last entry of the last page `entries(updatedAfter:)` gave: its sequence and table
    /// index.
    private var lastPageEnd: (sequence: UInt64, index: Int32)?

    /// Where `expire`'s sweep of the table (for values expired out of the order of updates)
    /// goes on, downwards; -1: at the top.
    private var expirySweep = -1
    /// Entries `expire` looks at in the sweep per call, and removes at most in all: bounds on
    /// the forwarding loop's work per second whatever the cache's size. A removal costs about
    /// half a microsecond at a million values (it frees the value, and the table's slots and
    /// the order's links are far apart in memory): 8,192 are some 4 ms.
    static let expirySweepPerCall = 4_096
    static let expiryRemovalsPerCall = 8_192

    public private(set) var totalBytes = 0
    public private(set) var lastSequence: UInt64 = 0
    public private(set) var updates: UInt64 = 0
    public private(set) var deletions: UInt64 = 0
    /// Messages larger than `maxBytes`: not cached, their topic's older value removed (it is
    /// stale). Counted as deletions before, which they are not (a walkthrough).
    public private(set) var tooLarge: UInt64 = 0
    public private(set) var evictions: UInt64 = 0
    /// Values sent to a new subscriber when it subscribed.
    public var hits: UInt64 = 0
    /// Subscriptions under a cached prefix for which nothing was cached.
    public var misses: UInt64 = 0
    public var snapshots: UInt64 = 0
    /// Values an upstream broker sent as this broker subscribed that this cache held already,
    /// or held a later value of: dropped (`UpstreamValue`).
    public private(set) var upstreamValuesKnown: UInt64 = 0

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
        guard !frames.isEmpty else { return }
        FrameCodec.encode(frames).withUnsafeBytes {
            store(encoded: $0, frameCount: frames.count, nowMilliseconds: nowMilliseconds)
        }
    }

    /// Stores (or, for a deletion marker, removes) a message of `frameCount` frames, laid out
    /// as `FrameCodec` lays them out, the topic first: the forwarding loop's path, which
    /// allocates nothing when the topic already has a value. `frameCount` must be the number of
    /// frames in `message` (not checked: the check would cost what this path saves), hence
    /// package access only.
    /// `tooLarge`: the message was larger than `maxBytes`, and `message` holds its topic alone.
    package mutating func store(
        encoded message: UnsafeRawBufferPointer, frameCount: Int, nowMilliseconds: UInt64, tooLarge: Bool = false
    ) {
        guard frameCount > 0, let topic = Self.topic(in: message) else { return }
        if tooLarge {
            self.tooLarge &+= 1
            if let index = index(of: topic) { remove(at: index) }
            return
        }
        // No payload, or one empty frame.
        if frameCount == 1 || (frameCount == 2 && message.count == 8 + topic.count) {
            if let index = index(of: topic) {
                remove(at: index)
                deletions &+= 1
            }
            return
        }
        lastSequence &+= 1
        updates &+= 1
        put(message, topic: topic, sequence: lastSequence, storedMilliseconds: nowMilliseconds)
    }

    /// Puts back an entry persisted before a restart, with its own sequence and time (in any
    /// order); later updates continue above its sequence.
    public mutating func restore(_ frames: [[UInt8]], sequence: UInt64, storedMilliseconds: UInt64) {
        restore(
            Entry(
                frames: frames, bytes: frames.reduce(0) { $0 + 4 + $1.count }, sequence: sequence,
                storedMilliseconds: storedMilliseconds))
    }

    /// Puts back `entry` (persisted, or mirrored from a pair's active broker), with its own
    /// sequence and time (in any order: the order of updates follows the sequences); later
    /// updates continue above its sequence. It replaces its topic's value whatever that one's
    /// sequence: each broker of a pair numbers its own cache when active, so after each was
    /// active alone their numbers do not compare (late pages are dropped before they get here).
    /// An entry without a payload frame is not one. True when it went in.
    @discardableResult
    public mutating func restore(_ entry: Entry) -> Bool {
        entry.encoded.withUnsafeBytes { message in
            guard let topic = Self.topic(in: message), message.count > 4 + topic.count else { return false }
            // An entry put back below the last sequence lies where `newestSince` does not look.
            if entry.sequence <= lastSequence { newestFound.removeAll() }
            lastSequence = max(lastSequence, entry.sequence)
            put(message, topic: topic, sequence: entry.sequence, storedMilliseconds: entry.storedMilliseconds)
            return true
        }
    }

    /// The first frame of a message in `FrameCodec`'s layout, where it lies; nil when there is
    /// none.
    private static func topic(in message: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard message.count >= 4 else { return nil }
        let count = Int(UInt32(bigEndian: message.loadUnaligned(as: UInt32.self)))
        guard message.count - 4 >= count else { return nil }
        return UnsafeRawBufferPointer(rebasing: message[4..<4 + count])
    }

    /// `bytes`, the entry's size against `max_bytes`, is what it holds: the frames with their
    /// 4-byte lengths. Counting the frames' bytes alone let a message of a million empty frames
    /// count as its topic while it took 4 MB.
    private mutating func put(
        _ message: UnsafeRawBufferPointer, topic: UnsafeRawBufferPointer, sequence: UInt64,
        storedMilliseconds: UInt64
    ) {
        let bytes = message.count
        if let index = index(of: topic) {
            totalBytes += bytes - table[valueAt: index].bytes
            table.withValue(at: index) {
                $0.refill(with: message, bytes: bytes, sequence: sequence, storedMilliseconds: storedMilliseconds)
            }
            unlink(index)
            link(index, sequence: sequence)
            lastUpdated = index
        } else {
            // The cache is best effort: a new topic with no room left for its key (max_bytes
            // allows more topic bytes than a table holds) is not cached rather than trapping.
            guard table.hasRoom(forKeyOf: topic.count) else { return }
            let entry = Entry(
                encoded: Array(message), bytes: bytes, sequence: sequence, storedMilliseconds: storedMilliseconds)
            let index = table.insert(topic, value: entry)
            links.append(Link())
            link(index, sequence: sequence)
            lastUpdated = index
            totalBytes += bytes
        }
        evictWhileOverLimits()
    }

    private func index(of topic: UnsafeRawBufferPointer) -> Int? {
        if lastUpdated >= 0 && table.key(at: lastUpdated, equals: topic) { return lastUpdated }
        return table.index(of: topic)
    }

    /// Whether the value of `topic` cached now (not expired) makes an upstream broker's value
    /// of it redundant: the same value (`digest`, `UpstreamValue.digest`), or one stored here
    /// no earlier than the upstream stored its own (`storedMilliseconds`). Counted in
    /// `upstreamValuesKnown`.
    public mutating func supersedes(
        _ topic: UnsafeRawBufferPointer, digest: UInt64, storedMilliseconds: UInt64, nowMilliseconds: UInt64
    ) -> Bool {
        guard let index = index(of: topic) else { return false }
        let entry = table[valueAt: index]
        guard !isExpired(entry, nowMilliseconds: nowMilliseconds),
            entry.storedMilliseconds >= storedMilliseconds
                || entry.encoded.withUnsafeBytes({ UpstreamValue.digest(encoded: $0) }) == digest
        else { return false }
        upstreamValuesKnown &+= 1
        return true
    }

    /// The entry of exactly `topic`, if cached and not expired.
    public func entry(for topic: [UInt8], nowMilliseconds: UInt64) -> Entry? {
        guard let entry = table[topic], !isExpired(entry, nowMilliseconds: nowMilliseconds) else { return nil }
        return entry
    }

    /// The value a new subscription to `prefix` receives: the exact topic if cached, otherwise
    /// the most recently updated cached topic under the prefix.
    ///
    /// One lookup for an exact topic. Otherwise the newest few updates are looked at first,
    /// through the order of updates, which finds at once what a subscription to a cached prefix
    /// itself wants (the whole table's scan, reading every match's value, cost 180 µs per such
    /// subscription with 10,000 topics cached, 2 ms with 100,000). Past those, what an earlier
    /// scan found for the prefix is brought up to date (`newestSince`); failing that, the table
    /// is scanned in its own order, which is sequential memory (following the list further is
    /// not: 2.4 ns a topic against 1.2 for a prefix that covers nothing), and what it finds is
    /// remembered. Mutating for that memory only.
    public mutating func newest(under prefix: [UInt8], nowMilliseconds: UInt64) -> Entry? {
        newest(under: prefix, nowMilliseconds: nowMilliseconds, updatesFirst: 32)
    }

    /// `newest(under:)`, looking at the `updatesFirst` newest updates before the table's scan
    /// (tests pass fewer, so that every path is taken with a few topics).
    mutating func newest(under prefix: [UInt8], nowMilliseconds: UInt64, updatesFirst: Int) -> Entry? {
        if let exact = entry(for: prefix, nowMilliseconds: nowMilliseconds) { return exact }
        // The list is in the sequences' order (`put`), so the first unexpired match is the
        // newest.
        var index = Int(newest)
        var steps = 0
        while index >= 0 && steps < updatesFirst {
            if table.key(at: index, startsWith: prefix) {
                let value = table[valueAt: index]
                if !isExpired(value, nowMilliseconds: nowMilliseconds) { return value }
            }
            index = Int(links[index].older)
            steps += 1
        }
        guard index >= 0 else { return nil }
        if let found = newestFound[prefix],
            let known = newestSince(
                found, under: prefix, nowMilliseconds: nowMilliseconds, stepsAllowed: table.count / 2)
        {
            remember(prefix, newestAt: known, nowMilliseconds: nowMilliseconds)
            return known >= 0 ? table[valueAt: known] : nil
        }
        tableScans += 1
        var best = -1
        var bestSequence: UInt64 = 0
        for index in table.indices where table.key(at: index, startsWith: prefix) {
            // The list's copy of the sequence: reading the entry's retains its buffer, a miss
            // to memory for each (67 ns a topic at a million).
            let sequence = links[index].sequence
            if (best < 0 || sequence > bestSequence)
                && !isExpired(table[valueAt: index], nowMilliseconds: nowMilliseconds)
            {
                best = index
                bestSequence = sequence
            }
        }
        remember(prefix, newestAt: best, nowMilliseconds: nowMilliseconds)
        return best >= 0 ? table[valueAt: best] : nil
    }

    /// The index of the newest unexpired entry under `prefix` (-1: none), from what a scan
    /// `found` and the updates since, which are at the newest end of the list: nil when that
    /// cannot tell (the entry found then has gone, changed or expired, and the next newest is
    /// unknown; or more than `stepsAllowed` updates came since, where a scan costs less).
    private func newestSince(
        _ found: NewestFound, under prefix: [UInt8], nowMilliseconds: UInt64, stepsAllowed: Int
    ) -> Int? {
        guard nowMilliseconds >= found.at else { return nil }
        var index = Int(newest)
        var steps = 0
        while index >= 0 && links[index].sequence > found.through {
            if table.key(at: index, startsWith: prefix)
                && !isExpired(table[valueAt: index], nowMilliseconds: nowMilliseconds)
            {
                return index
            }
            steps += 1
            if steps > stepsAllowed { return nil }
            index = Int(links[index].older)
        }
        guard let topic = found.topic else { return -1 }
        guard let index = table.index(of: topic), table[valueAt: index].sequence == found.sequence,
            !isExpired(table[valueAt: index], nowMilliseconds: nowMilliseconds)
        else { return nil }
        return index
    }

    private mutating func remember(_ prefix: [UInt8], newestAt index: Int, nowMilliseconds: UInt64) {
        if newestFound.count >= Self.newestFoundLimit && newestFound[prefix] == nil { newestFound.removeAll() }
        newestFound[prefix] = NewestFound(
            topic: index >= 0 ? table.key(at: index) : nil, sequence: index >= 0 ? links[index].sequence : 0,
            through: lastSequence, at: nowMilliseconds)
    }

    /// Every unexpired entry under `prefix`, oldest update first (the snapshot of the Clone
    /// pattern).
    public func entries(under prefix: [UInt8], nowMilliseconds: UInt64) -> [Entry] {
        unsortedEntries(under: prefix, nowMilliseconds: nowMilliseconds).sorted { $0.sequence < $1.sequence }
    }

    /// `entries(under:)` in the table's order, which is sequential memory: for the forwarding
    /// loop, which leaves the sort to the thread that replies (at a million values, 24 ms to
    /// copy, the sort 120). Following the order of updates instead, an entry is a miss to
    /// memory: three times as long.
    public func unsortedEntries(under prefix: [UInt8], nowMilliseconds: UInt64) -> [Entry] {
        table.values(withKeyPrefix: prefix) { !isExpired($0, nowMilliseconds: nowMilliseconds) }
    }

    /// The unexpired entries updated after `sequence`, oldest update first: at most `limit` of
    /// them and, past the first, at most `maxBytes` of frames. `more` when some were left for a
    /// next page (which starts after the last sequence of this one). What a pair's backup asks
    /// for every second, on the forwarding loop: it costs what the page holds, and finding its
    /// start: after the last page's end when the request follows it (a backup copying the
    /// whole cache), else the shorter way in from an end of the order of updates
    /// (`firstUpdate`: a few steps for the last second's updates). Mutating for that end only.
    public mutating func entries(updatedAfter sequence: UInt64, limit: Int, maxBytes: Int, nowMilliseconds: UInt64)
        -> (entries: [Entry], more: Bool)
    {
        var page: [Entry] = []
        var bytes = 0
        var index = pageFollowing(sequence) ?? firstUpdate(after: sequence)
        while index >= 0 {
            let entry = table[valueAt: index]
            if !isExpired(entry, nowMilliseconds: nowMilliseconds) {
                if page.count == limit || (!page.isEmpty && bytes + entry.bytes > maxBytes) { break }
                page.append(entry)
                bytes += entry.bytes
                lastPageEnd = (entry.sequence, Int32(index))
            }
            index = Int(links[index].newer)
        }
        return (page, index >= 0)
    }

    /// Where the page after the last one starts, when `sequence` is that page's last (the
    /// entry is still where it was, with that sequence: not updated, removed or moved); nil
    /// otherwise. Entries added since with higher sequences are further on in the order.
    private func pageFollowing(_ sequence: UInt64) -> Int? {
        guard let end = lastPageEnd, end.sequence == sequence, Int(end.index) < links.count,
            links[Int(end.index)].sequence == sequence
        else { return nil }
        var index = Int(links[Int(end.index)].newer)
        // Another entry of the same sequence (restored) is not after it.
        while index >= 0 && links[index].sequence <= sequence { index = Int(links[index].newer) }
        return index
    }

    /// The index of the oldest update with a sequence above `sequence` (-1: none), walking in
    /// from both ends of the list at once: a backup asking every second for the last second's
    /// updates finds them a few steps from the newest end, its first page a few from the oldest.
    private func firstUpdate(after sequence: UInt64) -> Int {
        var fromOldest = Int(oldest)
        var fromNewest = Int(newest)
        var oldestAbove = -1
        while fromOldest >= 0 {
            if links[fromOldest].sequence > sequence { return fromOldest }
            if fromNewest < 0 || links[fromNewest].sequence <= sequence { return oldestAbove }
            oldestAbove = fromNewest
            fromNewest = Int(links[fromNewest].older)
            fromOldest = Int(links[fromOldest].newer)
        }
        return -1
    }

    /// Removes expired entries; call now and then (the forwarding loop does, once a second).
    ///
    /// Updates expire in their order, so the expired are found at the oldest end of the list.
    /// Entries put back out of order (a restart's, a pair's) or stored while the wall clock went
    /// back can expire behind one that has not: a sweep of the table finds those, a few
    /// thousand entries a call. Both are bounded per call, so that the forwarding loop's
    /// second does not grow with the cache; an expired value left for a later call is never
    /// served (every read checks its age). `expired` is told each topic removed, before it goes.
    public mutating func expire(nowMilliseconds: UInt64, expired: ([UInt8]) -> Void = { _ in }) {
        guard maxAgeMilliseconds > 0 else { return }
        var removals = 0
        while oldest >= 0 && removals < Self.expiryRemovalsPerCall
            && isExpired(table[valueAt: Int(oldest)], nowMilliseconds: nowMilliseconds)
        {
            expired(table.key(at: Int(oldest)))
            evict(at: Int(oldest))
            removals += 1
        }
        // Downwards: a removal moves the last entry, one already looked at in this pass, into
        // the hole; entries added since the pass began are at the top, for the next pass.
        var budget = min(Self.expirySweepPerCall, table.count)
        while budget > 0 && removals < Self.expiryRemovalsPerCall {
            if expirySweep < 0 || expirySweep >= table.count { expirySweep = table.count - 1 }
            if isExpired(table[valueAt: expirySweep], nowMilliseconds: nowMilliseconds) {
                expired(table.key(at: expirySweep))
                evict(at: expirySweep)
                removals += 1
            }
            expirySweep -= 1
            budget -= 1
        }
    }

    public mutating func removeAll() {
        table.removeAll()
        links.removeAll()
        oldest = -1
        newest = -1
        lastUpdated = -1
        totalBytes = 0
        newestFound.removeAll()
        expirySweep = -1
        lastPageEnd = nil
    }

    /// An entry stored later than `now` (mirrored from a pair's peer whose clock is ahead, or
    /// before this clock stepped back) is of age 0, not expired: the wrapping difference hid
    /// such values until this clock caught up. So, for a clock that does not go back, an
    /// expired entry stays expired, which `newestSince` relies on.
    private func isExpired(_ entry: Entry, nowMilliseconds: UInt64) -> Bool {
        maxAgeMilliseconds > 0 && nowMilliseconds > entry.storedMilliseconds
            && nowMilliseconds - entry.storedMilliseconds > maxAgeMilliseconds
    }

    /// Drops the values no prefix covers any more (a reload's): kept, they were served as
    /// current by SNAPSHOT and on subscribe, while their updates were no longer cached (a
    /// walkthrough). Returns how many went.
    public mutating func dropUncovered() -> Int {
        var dropped = 0
        // From the end: `remove(at:)` moves the last entry into the hole, one already looked at.
        for index in stride(from: table.count - 1, through: 0, by: -1) {
            let covered = table.key(at: index).withUnsafeBytes { covers($0) }
            if !covered {
                remove(at: index)
                dropped += 1
            }
        }
        return dropped
    }

    /// Evicts the oldest updates while over lower bounds (a reload's): at once, as the
    /// persisted table is trimmed at once, so that the two hold the same values.
    public mutating func applyLimits() {
        evictWhileOverLimits()
    }

    private mutating func evictWhileOverLimits() {
        while (table.count > maxEntries || totalBytes > maxBytes) && oldest >= 0 { evict(at: Int(oldest)) }
    }

    /// Removes the entry at `index` for the cache's bounds (count, bytes, age), counted as an
    /// eviction: not a deletion its producer asked for.
    private mutating func evict(at index: Int) {
        remove(at: index)
        evictions &+= 1
    }

    // MARK: The order of updates

    /// Removes the entry at `index`. The table moves its last entry into the hole, and its
    /// link moves with it.
    private mutating func remove(at index: Int) {
        totalBytes -= table[valueAt: index].bytes
        unlink(index)
        table.remove(at: index)
        let moved = table.count
        if index != moved {
            links[index] = links[moved]
            let link = links[index]
            if link.older >= 0 { links[Int(link.older)].newer = Int32(index) } else { oldest = Int32(index) }
            if link.newer >= 0 { links[Int(link.newer)].older = Int32(index) } else { newest = Int32(index) }
        }
        links.removeLast()
        if lastUpdated == index {
            lastUpdated = -1
        } else if lastUpdated == moved {
            lastUpdated = index
        }
    }

    private mutating func unlink(_ index: Int) {
        let link = links[index]
        if link.older >= 0 { links[Int(link.older)].newer = link.newer } else { oldest = link.newer }
        if link.newer >= 0 { links[Int(link.newer)].older = link.older } else { newest = link.older }
    }

    /// Links the entry at `index` where its `sequence` puts it: at the newest end for an update
    /// (it takes the next sequence; one comparison), further back for an entry restored out of
    /// order (a pair's backup copying the active broker's cache again from the start, while it
    /// holds entries with higher sequences). The list stays in the sequences' order, which
    /// eviction (oldest first) and `newest(under:)` rely on.
    private mutating func link(_ index: Int, sequence: UInt64) {
        var newer: Int32 = -1
        var older = newest
        while older >= 0 && links[Int(older)].sequence > sequence {
            newer = older
            older = links[Int(older)].older
        }
        links[index] = Link(older: older, newer: newer, sequence: sequence)
        if older >= 0 { links[Int(older)].newer = Int32(index) } else { oldest = Int32(index) }
        if newer >= 0 { links[Int(newer)].older = Int32(index) } else { newest = Int32(index) }
    }
}
