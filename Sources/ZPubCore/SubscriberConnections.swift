/// Which prefixes each subscriber connection holds, so that the subscription table counts
/// subscribers, not frames.
///
/// libzmq's XPUB keeps a prefix per connection as a set: a connection that subscribes twice
/// holds it once, and its one unsubscribe (a SUB sends it after as many unsubscribes as it had
/// subscribes) or its disconnect removes it. Counted frame by frame, the table would keep one
/// subscription for good for each repeat, and a peer's unsubscribe for a prefix it never held
/// would count down another subscriber's, which can send the prefix's last unsubscription
/// upstream while subscribers still want it.
///
/// Frames from a tcp or ipc peer say which connection they came from: libzmq's `__fd`
/// metadata, whose value lives in the connection's own metadata object. A connection is known
/// by the descriptor, the socket's inode (two connections that had the same descriptor number
/// one after the other have different ones) and where that metadata lies (frames a closed
/// connection left queued are read after its descriptor may have gone to a new connection:
/// their metadata is still the old connection's, alive as long as such a frame is). Frames
/// without metadata (in-process subscribers, and the unsubscriptions libzmq sends for a
/// connection that closed, one per prefix it held) are counted as before, frame by frame.
///
/// libzmq's XPUB records every subscription frame it reads for its connection, applied or not,
/// and sends an unsubscription for each when the connection closes. So a subscription zpubd
/// refused (the table full, the prefix too long) still gets one, without a connection to tell
/// whose: counted, it would count down a subscriber who holds the prefix, and could send its
/// last unsubscription upstream while that subscriber still wants it. Refused prefixes are
/// recorded per connection too, and as many of those anonymous unsubscriptions as are still to
/// come for a prefix count for nothing (`absorbsUnsubscription`). Which one of several comes
/// first cannot be told: a held prefix's may be taken for a refused one's and the refused one's
/// counted in its place, so the counts are right once both came, and in between a count is
/// high, never low (a prefix is forwarded upstream a moment longer, never withdrawn early).
///
/// A prefix is remembered by its hash (seeded, 64 bits), not its bytes, in a flat set
/// (`HashSet64`): 8-16 bytes a subscription instead of an array's 40 or more, next to the
/// 64 MiB bound for 100,000 of them (docs/performance.md). Two prefixes of one connection with the same hash would be taken for
/// one; with a seeded 64-bit hash that is far less likely than a memory error.
public struct SubscriberConnections: Sendable {
    /// A connection as libzmq and the kernel know it.
    public struct Identity: Hashable, Sendable {
        public let descriptor: Int32
        /// The socket's device and inode, as the descriptor shows them when the frame is read.
        public let device: UInt64
        public let inode: UInt64
        /// Where the connection's metadata lies: distinct for two connections while either
        /// still has a frame to read, which is when they could be taken for one another.
        public let metadata: UInt

        public init(descriptor: Int32, device: UInt64, inode: UInt64, metadata: UInt) {
            self.descriptor = descriptor
            self.device = device
            self.inode = inode
            self.metadata = metadata
        }

        /// Whether the descriptor still shows the socket this connection was read on.
        public func isCurrent(_ current: Socket?) -> Bool { current == Socket(device: device, inode: inode) }
    }

    /// What a descriptor is now (fstat): nil once it is closed or is not a socket.
    public struct Socket: Equatable, Sendable {
        public let device: UInt64
        public let inode: UInt64

        public init(device: UInt64, inode: UInt64) {
            self.device = device
            self.inode = inode
        }
    }

    /// Per descriptor (what a close event names), each connection read on it and its prefixes
    /// (held, or refused: `refusedKey`).
    private var connections: [Int32: [Identity: HashSet64]] = [:]
    /// How many of a connection's records are refused ones (`heldCount`); only connections
    /// with some.
    private var refusedRecords: [Identity: Int] = [:]
    /// The recorded connections by descriptor and metadata (`recorded`), and per descriptor
    /// those not seen closed yet (no `closedAt`: what a close, or a new connection on the
    /// descriptor, looks through). The closed ones kept for their late frames pile up on a
    /// descriptor that one peer connects to over and over (the kernel gives each new
    /// connection the lowest free number), and were looked through one by one: R
    /// reconnections a second cost R² looks on the forwarding loop, each frame as many as the
    /// descriptor had closed connections kept (a review, 2026-12-07).
    private var byMetadata: [MetadataKey: [Identity]] = [:]
    private var unclosed: [Int32: Set<Identity>] = [:]
    /// Connections looked through for a close or a new connection on their descriptor (for
    /// tests: it grows with the connections, not with their square).
    public private(set) var connectionsLookedAt = 0
    private struct MetadataKey: Hashable {
        let descriptor: Int32
        let metadata: UInt
    }
    /// Per prefix hash, the anonymous unsubscriptions still to come for refused subscriptions.
    private var refusedPending: [Int: Int] = [:]
    private var refusedPendingTotal = 0
    /// Refused subscriptions tracked at most (beyond, they are not: a flood of refused
    /// subscriptions costs no memory here, and the counts may then drift as they did before).
    public static let maxRefusedPending = 100_000
    /// Subscriptions refused because the table was full, per connection in the order refused,
    /// with their prefixes: admitted when the table has room again and the connection sends
    /// its next frame (`BrokerState`), which is when libzmq lets zpubd apply a prefix to it.
    /// Before, such a subscriber (a downstream broker, whose subscription is sent once) never
    /// got the prefix while it stayed connected.
    private var waiting: [Identity: [(hash: Int, prefix: [UInt8])]] = [:]
    /// Refused subscriptions waiting for room, and their prefixes' bytes; bounded by both.
    public private(set) var waitingCount = 0
    private var waitingBytes = 0
    public static let maxWaiting = 10_000
    public static let maxWaitingBytes = 4 << 20
    /// The connections that held the longest lists when they were last looked through, and
    /// a length no connection's list exceeds: with them a connection under its share finds
    /// whom to take from without looking through every list each time (each look yields
    /// every connection at the longest length: 5,000 lists of 2 are one look, not 5,000).
    private var heaviestWaiting: [Identity] = []
    private var mostWaiting = 0
    /// The most places one refusal may take (at the bytes bound, several short prefixes may
    /// give way to one long one): bounded work per frame, undone if not enough.
    static let maxPlacesTakenAtOnce = 64
    /// Waiting subscriptions given up so that another connection's could wait.
    public private(set) var waitingGivenUp: UInt64 = 0
    /// Descriptors libzmq reported closed while they still showed a recorded connection's
    /// socket (libzmq reports before it closes): looked at again until that is gone.
    public private(set) var closing: Set<Int32> = []
    /// When each closed connection whose records are kept was first seen closed (monotonic
    /// milliseconds). libzmq reads a connection's frames ahead, so some may be read after its
    /// close is reported: a subscription and then its unsubscription, say. Forgotten at the
    /// close, the record made the unsubscription one from a prefix not held, counted for
    /// nothing, and the subscription stayed counted for good (libzmq sends no unsubscription
    /// for it at the close: it had read the unsubscription). 300 subscribers that subscribe,
    /// unsubscribe and close at once left 2-19 subscriptions counted; enough such connections
    /// filled max_subscriptions.
    private var closedAt: [Identity: UInt64] = [:]
    /// How long a closed connection's records are kept at least, and until the XPUB has been
    /// read dry after it (`forgetClosed`): libzmq has queued its last frames microseconds after
    /// it reports the close.
    public static let lateFrameMilliseconds: UInt64 = 1_000
    /// How long they are kept at most, read dry or not: subscription frames that never stop
    /// coming must not keep every closed connection's records.
    public static let lateFrameMaximumMilliseconds: UInt64 = 10_000

    public init() {}

    /// The connections with at least one prefix recorded.
    public var count: Int { connections.values.reduce(0) { $0 + $1.count } }
    /// Prefixes recorded over all connections.
    public var subscriptionCount: Int {
        connections.values.reduce(0) { total, byIdentity in byIdentity.values.reduce(total) { $0 + $1.count } }
    }

    /// Whether `connection` holds the prefix already: its subscription is a repeat.
    public func holds(_ prefixHash: Int, _ connection: Identity) -> Bool {
        connections[connection.descriptor]?[connection]?.contains(prefixHash) ?? false
    }

    /// A recorded connection on `descriptor` with this metadata: what a frame with this
    /// metadata belongs to, whether the connection is open, closed, or its descriptor went to
    /// another since, as long as the metadata cannot go to another connection meanwhile (the
    /// loop keeps it alive while the connection is recorded: `isRecorded`).
    public func recorded(descriptor: Int32, metadata: UInt) -> Identity? {
        // The newest: two share a key when an unpinned connection's metadata was freed and a
        // new connection's took its place (no frame of the old one is left then), or when a
        // connection was recorded again with its descriptor closed. Taking the oldest gave the
        // new connection's frames to the closed one (a review, 2026-12-07).
        byMetadata[MetadataKey(descriptor: descriptor, metadata: metadata)]?.last
    }

    /// The records `connection` has: prefixes held, and refused ones.
    public func recordCount(of connection: Identity) -> Int {
        connections[connection.descriptor]?[connection]?.count ?? 0
    }

    /// The prefixes `connection` holds, counted in the table's total: its records less the
    /// refused ones, which the total never had (libzmq's unsubscriptions for those count
    /// nothing down: `absorbsUnsubscription`).
    public func heldCount(of connection: Identity) -> Int {
        recordCount(of: connection) - (refusedRecords[connection] ?? 0)
    }

    /// Whether `connection` has records (a prefix held or refused).
    public func isRecorded(_ connection: Identity) -> Bool { connections[connection.descriptor]?[connection] != nil }

    /// Connections forgotten since `takeForgotten` was last asked: what holds on to their
    /// metadata (the loop's pins) may let go.
    private var forgotten: [Identity] = []

    /// The connections forgotten since the last call.
    public mutating func takeForgotten() -> [Identity] {
        defer { forgotten.removeAll(keepingCapacity: true) }
        return forgotten
    }

    /// Records an accepted subscription. Records of the descriptor's earlier sockets are
    /// closed connections, whether or not their close was reported: kept for their late
    /// frames, like any closed connection's (`closedAt`).
    ///
    /// Every change goes through the dictionaries' subscripts in place: a set copied out and
    /// written back is copied whole (100,000 subscriptions took 15 s instead of 0.3).
    public mutating func subscribed(_ prefixHash: Int, _ connection: Identity, waited: Bool = false) {
        // A connection whose descriptor had closed when its frame was read (device and inode
        // 0) shows nothing to compare with.
        let isNew = connections[connection.descriptor]?[connection] == nil
        if connection.inode != 0 || connection.device != 0, isNew, let others = unclosed[connection.descriptor] {
            let socket = Socket(device: connection.device, inode: connection.inode)
            connectionsLookedAt += others.count
            for identity in others where !identity.isCurrent(socket) { markClosed(identity, at: Self.unstamped) }
        }
        record(prefixHash, for: connection)
        // libzmq's one record of the prefix for this connection is a counted subscription now.
        takeRefused(prefixHash, connection, waited: waited)
    }

    /// A connection whose descriptor had closed when its frame was read is a closed one: its
    /// close may have been handled before it had records (`closed` then found none), and no
    /// other would come to let them go.
    private mutating func noteIfClosed(_ connection: Identity) {
        if connection.inode == 0 && connection.device == 0 && closedAt[connection] == nil {
            markClosed(connection, at: Self.unstamped)
        }
    }

    /// Adds `key` (a held prefix's hash, or a refused one's `refusedKey`) to the records of
    /// `connection`, indexing a connection new to them; false when it held it already.
    @discardableResult
    private mutating func record(_ key: Int, for connection: Identity) -> Bool {
        let isNew = connections[connection.descriptor]?[connection] == nil
        let inserted = connections[connection.descriptor, default: [:]][connection, default: HashSet64()].insert(key)
        if isNew { noteRecorded(connection) }
        noteIfClosed(connection)
        return inserted
    }

    /// A connection that has its first record now: indexed.
    private mutating func noteRecorded(_ connection: Identity) {
        byMetadata[MetadataKey(descriptor: connection.descriptor, metadata: connection.metadata), default: []].append(
            connection)
        unclosed[connection.descriptor, default: []].insert(connection)
    }

    /// `closedAt` set for a connection not seen closed before.
    private mutating func markClosed(_ connection: Identity, at milliseconds: UInt64) {
        closedAt[connection] = milliseconds
        notOpen(connection)
    }

    /// Takes `connection` out of its descriptor's `unclosed`.
    private mutating func notOpen(_ connection: Identity) {
        guard unclosed[connection.descriptor]?.remove(connection) != nil else { return }
        if unclosed[connection.descriptor]?.isEmpty == true { unclosed[connection.descriptor] = nil }
    }

    /// Records a subscription zpubd refused, which libzmq keeps for the connection anyway;
    /// `waitsForRoom`: keeps its prefix for admission once the table has room (refused because
    /// it was full: not one too long). False when it was not recorded (recorded already, or
    /// beyond the bounds).
    @discardableResult
    public mutating func refused(_ prefixHash: Int, _ connection: Identity, waitsForRoom prefix: [UInt8]? = nil) -> Bool
    {
        guard refusedPendingTotal < Self.maxRefusedPending else { return false }
        guard record(Self.refusedKey(prefixHash), for: connection) else { return false }
        refusedRecords[connection, default: 0] += 1
        refusedPending[prefixHash, default: 0] += 1
        refusedPendingTotal += 1
        if let prefix, makeRoomToWait(prefix.count, for: connection) {
            waiting[connection, default: []].append((prefixHash, prefix))
            waitingCount += 1
            waitingBytes += prefix.count
            mostWaiting = max(mostWaiting, waiting[connection]!.count)
        }
        return true
    }

    /// Whether a prefix of `bytes` may wait for `connection`. At the bounds, a connection with
    /// fewer waiting than another's list takes that list's newest entry (max-min fair shares):
    /// before, one peer refused 10,000 prefixes and no other connection's could wait at all.
    private mutating func makeRoomToWait(_ bytes: Int, for connection: Identity) -> Bool {
        guard bytes <= Self.maxWaitingBytes else { return false }
        let mine = waiting[connection]?.count ?? 0
        var taken: [(from: Identity, entry: (hash: Int, prefix: [UInt8]))] = []
        while waitingCount >= Self.maxWaiting || waitingBytes + bytes > Self.maxWaitingBytes {
            guard taken.count < Self.maxPlacesTakenAtOnce, let victim = connectionToGiveWay(above: mine + 1) else {
                // Not enough room to be had: the places taken go back where they were.
                for (victim, entry) in taken.reversed() {
                    waiting[victim, default: []].append(entry)
                    waitingCount += 1
                    waitingBytes += entry.prefix.count
                }
                return false
            }
            let gone = waiting[victim]!.removeLast()
            waitingCount -= 1
            waitingBytes -= gone.prefix.count
            if waiting[victim]!.isEmpty { waiting[victim] = nil }
            taken.append((victim, gone))
        }
        waitingGivenUp += UInt64(taken.count)
        return true
    }

    /// A connection (not the asking one, which has `count - 1`) with more than `count` waiting.
    private mutating func connectionToGiveWay(above count: Int) -> Identity? {
        // A candidate too short for this asker is dropped: the next look finds it if needed.
        while let candidate = heaviestWaiting.last {
            if let entries = waiting[candidate], entries.count > count { return candidate }
            heaviestWaiting.removeLast()
        }
        guard mostWaiting > count else { return nil }
        mostWaiting = waiting.values.reduce(0) { max($0, $1.count) }
        heaviestWaiting = waiting.compactMap { $0.value.count == mostWaiting ? $0.key : nil }
        return mostWaiting > count ? heaviestWaiting.last : nil
    }

    /// The refused subscriptions of `connection` waiting for room, in the order refused.
    public func waiting(for connection: Identity) -> [(hash: Int, prefix: [UInt8])]? { waiting[connection] }

    /// The first `count` waiting subscriptions of `connection` go (admitted, or never to be),
    /// and those at the indices `later` (past `count`, ascending): at once, not one by one
    /// from the front (10,000 admitted in one frame cost 10,000²/2 moves).
    public mutating func stopWaiting(first count: Int, andAt later: [Int] = [], of connection: Identity) {
        guard count > 0 || !later.isEmpty, var entries = waiting.removeValue(forKey: connection) else { return }
        let end = max(count, (later.last ?? -1) + 1)
        var kept: [(hash: Int, prefix: [UInt8])] = []
        var laterIndex = 0
        for index in 0..<end {
            if index >= count && (laterIndex >= later.count || later[laterIndex] != index) {
                kept.append(entries[index])
                continue
            }
            if index >= count { laterIndex += 1 }
            waitingCount -= 1
            waitingBytes -= entries[index].prefix.count
        }
        entries.replaceSubrange(0..<end, with: kept)
        if !entries.isEmpty { waiting[connection] = entries }
    }

    private mutating func stopWaiting(_ prefixHash: Int, _ connection: Identity) {
        guard let index = waiting[connection]?.firstIndex(where: { $0.hash == prefixHash }) else { return }
        waitingBytes -= waiting[connection]![index].prefix.count
        waitingCount -= 1
        waiting[connection]!.remove(at: index)
        if waiting[connection]!.isEmpty { waiting[connection] = nil }
    }

    /// Records an unsubscription; false when the connection did not hold the prefix (it was
    /// refused, or the peer unsubscribes from something it never subscribed to), which then
    /// counts for nothing.
    public mutating func unsubscribed(_ prefixHash: Int, _ connection: Identity) -> Bool {
        guard connections[connection.descriptor]?[connection]?.remove(prefixHash) == true else {
            // libzmq drops its record of a refused prefix too: no unsubscription comes for it.
            takeRefused(prefixHash, connection)
            return false
        }
        dropIfEmpty(connection)
        return true
    }

    /// An unsubscription without a connection (libzmq's, for one that closed): true when it
    /// is one still to come for a refused subscription, which then counts for nothing.
    public mutating func absorbsUnsubscription(_ prefixHash: Int) -> Bool {
        takePending(prefixHash)
    }

    /// Refused subscriptions whose unsubscription is still to come.
    public var refusedPendingCount: Int { refusedPendingTotal }

    /// `waited`: admitted from the waiting list, which its caller trims (`stopWaiting(first:of:)`).
    private mutating func takeRefused(_ prefixHash: Int, _ connection: Identity, waited: Bool = false) {
        guard connections[connection.descriptor]?[connection]?.remove(Self.refusedKey(prefixHash)) == true else {
            return
        }
        if let count = refusedRecords[connection] { refusedRecords[connection] = count > 1 ? count - 1 : nil }
        if waitingCount > 0 && !waited { stopWaiting(prefixHash, connection) }
        dropIfEmpty(connection)
        takePending(prefixHash)
    }

    /// One anonymous unsubscription fewer to expect for the prefix; false if none was.
    @discardableResult
    private mutating func takePending(_ prefixHash: Int) -> Bool {
        guard let pending = refusedPending[prefixHash] else { return false }
        refusedPending[prefixHash] = pending > 1 ? pending - 1 : nil
        refusedPendingTotal -= 1
        return true
    }

    private mutating func dropIfEmpty(_ connection: Identity) {
        if connections[connection.descriptor]?[connection]?.isEmpty == true { forget(connection) }
    }

    /// Drops a connection's records, the one way they go.
    private mutating func forget(_ connection: Identity) {
        connections[connection.descriptor]?[connection] = nil
        if connections[connection.descriptor]?.isEmpty == true { connections[connection.descriptor] = nil }
        if !refusedRecords.isEmpty { refusedRecords[connection] = nil }
        if !closedAt.isEmpty { closedAt[connection] = nil }
        let key = MetadataKey(descriptor: connection.descriptor, metadata: connection.metadata)
        if byMetadata[key]?.count == 1 {
            byMetadata[key] = nil
        } else {
            byMetadata[key]?.removeAll { $0 == connection }
        }
        notOpen(connection)
        if waitingCount > 0, let gone = waiting.removeValue(forKey: connection) {
            waitingCount -= gone.count
            waitingBytes -= gone.reduce(0) { $0 + $1.prefix.count }
        }
        forgotten.append(connection)
    }

    /// A refused prefix's entry in its connection's set, apart from the held prefixes' hashes.
    private static func refusedKey(_ prefixHash: Int) -> Int { ~prefixHash }

    /// libzmq reported the connection on `descriptor` closed. Its records are kept for its
    /// late frames (`closedAt`) once the descriptor (`current`: what it shows now) no longer
    /// shows their socket; until then the descriptor stays in `closing` for `forgetClosed`. The
    /// table's counts are not touched: libzmq sends an unsubscription for each prefix the
    /// connection held.
    public mutating func closed(descriptor: Int32, current: (Int32) -> Socket?, nowMilliseconds: UInt64) {
        guard connections[descriptor] != nil else { return }
        if retire(descriptor, current: current(descriptor), now: nowMilliseconds) { closing.insert(descriptor) }
    }

    /// Looks again at the descriptors in `closing`, and forgets the closed connections seen
    /// closed `lateFrameMilliseconds` ago when the XPUB has no frame left to read (`readDry`:
    /// none of theirs can come later), `lateFrameMaximumMilliseconds` ago otherwise
    /// (housekeeping, once a second).
    public mutating func forgetClosed(current: (Int32) -> Socket?, nowMilliseconds: UInt64, readDry: Bool = true) {
        let keep = readDry ? Self.lateFrameMilliseconds : Self.lateFrameMaximumMilliseconds
        for descriptor in closing where !retire(descriptor, current: current(descriptor), now: nowMilliseconds) {
            closing.remove(descriptor)
        }
        for (identity, since) in closedAt {
            if since == Self.unstamped {
                closedAt[identity] = nowMilliseconds
            } else if nowMilliseconds &- since >= keep {
                forget(identity)
            }
        }
    }

    /// Whether closed connections' records wait to be forgotten.
    public var hasClosed: Bool { !closing.isEmpty || !closedAt.isEmpty }

    /// `closedAt` for a connection seen closed whose time `forgetClosed` has still to note.
    private static let unstamped = UInt64.max

    /// Notes the records of `descriptor` whose socket it no longer shows as closed; true while
    /// one still shows it (libzmq reported the close first).
    /// Only those not seen closed before are looked at: one seen closed showed another socket
    /// then, and the kernel numbers sockets' inodes with a counter that comes back to a number
    /// only after some four billion sockets.
    private mutating func retire(_ descriptor: Int32, current: Socket?, now: UInt64) -> Bool {
        guard let candidates = unclosed[descriptor] else { return false }
        connectionsLookedAt += candidates.count
        var open = false
        for identity in candidates {
            if identity.isCurrent(current) {
                open = true
            } else {
                markClosed(identity, at: now)
            }
        }
        return open
    }
}
