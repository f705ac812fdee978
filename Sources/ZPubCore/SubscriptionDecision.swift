/// What the broker does with one subscription frame read from its XPUB socket, decided with no
/// sockets: the table's bookkeeping, refusals, the last value for the new subscriber, snapshot
/// markers, and whether the frame goes on upstream. The forwarding loop carries the actions out
/// in the order of the fields: apply, last value, marker, upstream (then logs a refusal).
public struct SubscriptionActions: Equatable, Sendable {
    public enum Change: Equatable, Sendable {
        case subscribe, unsubscribe
    }

    /// A snapshot marker topic (`$zpub/snapshot/<token>`) came or went (`SnapshotRendezvous`).
    public enum MarkerEvent: Equatable, Sendable {
        case subscribed(token: String)
        case unsubscribed(token: String)
    }

    /// Why a subscription was not applied (counted in STATS; the loop logs it, rate-limited).
    public enum Refusal: Equatable, Sendable {
        case tooLong(bytes: Int, limit: Int)
        case tableFull(limit: Int)
    }

    /// Apply the change in XPUB for the subscriber the frame came from (XPUB_MANUAL: until
    /// then, that subscriber gets nothing for the prefix).
    public var apply: Change?
    /// Send this message (every frame) to the new subscriber only, before anything else.
    public var lastValue: [[UInt8]]?
    /// When the cache stored `lastValue` (wall clock, ms): a downstream broker's wrapping
    /// carries it (`UpstreamValue`).
    public var lastValueStoredMilliseconds: UInt64 = 0
    public var marker: MarkerEvent?
    /// Send the frame on to the publishers on XSUB: only a prefix's first subscription and its
    /// last unsubscription go upstream, so publishers see one subscriber, the broker.
    public var forwardUpstream = false
    public var refusal: Refusal?
    /// Subscriptions of the frame's connection refused earlier for a full table, admitted now
    /// that it has room: apply each in XPUB after the frame's own change (libzmq applies to
    /// the connection of the frame read last), and send those new to the table upstream.
    public var admitted: [Admission] = []

    public struct Admission: Equatable, Sendable {
        public var prefix: [UInt8]
        public var forwardUpstream: Bool

        public init(prefix: [UInt8], forwardUpstream: Bool) {
            self.prefix = prefix
            self.forwardUpstream = forwardUpstream
        }
    }

    public init() {}
}

extension BrokerState {
    /// Topics under this prefix are the broker's own: never forwarded upstream, never cached.
    public static let internalPrefix = Array("$zpub/".utf8)
    public static let markerPrefix = Array(SnapshotReply.markerPrefix.utf8)
    /// Sequence markers: `$zpub/seq/<topic>`, one after each kept message, carrying its sequence.
    public static let sequenceMarkerPrefix = Array("$zpub/seq/".utf8)
    /// A subscription frame that subscribes to nothing: a downstream zpubd sends it upstream
    /// every second, so that subscriptions an upstream refused for a full table are admitted
    /// (at a connection's next frame: `SubscriberConnections`) once it has room. Neither
    /// counted nor applied; any subscriber may send it.
    public static let retryPrefix = Array("$zpub/retry".utf8)

    /// Decides what a subscription frame (1 or 0, then the prefix) means, and counts it. Frames
    /// that are neither (empty, or another first byte from an XSUB-style peer) mean nothing.
    /// `connection`: the peer the frame came from, when libzmq says (`SubscriberConnections`);
    /// a connection's repeated subscription, or its unsubscription from a prefix it does not
    /// hold, is applied in libzmq (which keeps a set per connection) but not counted.
    /// `inProcess`: the frame came over inproc, from the HTTP gateway's SUB, which gets no last
    /// value on subscribe: it subscribes once for all its clients and gives each new one the
    /// cached values itself (a SNAPSHOT), so a value sent to its SUB reached every client of a
    /// wider prefix again, as a duplicate.
    /// `admitsWaiting`: false while libzmq pairs frames with the wrong peers
    /// (`MisdirectedSubscriptions`): nothing could be applied to this connection now.
    /// `connectionClosed`: the connection had closed when its frame was read. The frame is
    /// counted as any other (libzmq sends an unsubscription for it once it takes the close in),
    /// but nothing is applied in XPUB and no last value goes out: libzmq 4.3.4 pairs such a
    /// frame with a connection it may already have freed, so that applying it put a freed
    /// connection into XPUB's table (fixed in libzmq 4.3.5), and with that connection gone, the
    /// value meant for it alone went to every subscriber of its topic.
    public mutating func handleSubscriptionFrame(
        _ frame: UnsafeRawBufferPointer, from connection: SubscriberConnections.Identity? = nil,
        connectionClosed: Bool = false, inProcess: Bool = false, admitsWaiting: Bool = true, nowMilliseconds: UInt64
    ) -> SubscriptionActions {
        var actions = decideSubscriptionFrame(
            frame, from: connection, lastValueWanted: !inProcess && !connectionClosed, nowMilliseconds: nowMilliseconds)
        if connectionClosed {
            actions.apply = nil
        } else if admitsWaiting, let connection, subscriberConnections.waitingCount > 0 {
            admitWaiting(connection, into: &actions)
        }
        return actions
    }

    /// Waiting subscriptions looked at, once the table is full, for a prefix it holds already.
    static let heldLookAhead = 16

    /// Admits the connection's subscriptions refused for a full table, in the order refused,
    /// while the table has room; once it has none, those of the next `heldLookAhead` whose
    /// prefix the table holds already (another subscriber's), which need no room. Such a
    /// subscription waited for as long as the table stayed full, and a downstream broker got
    /// nothing of a prefix the upstream forwarded to others (an audit). Each entry costs an
    /// admission, or one look of at most `heldLookAhead`: a frame costs no more than that.
    private mutating func admitWaiting(
        _ connection: SubscriberConnections.Identity, into actions: inout SubscriptionActions
    ) {
        guard let waiting = subscriberConnections.waiting(for: connection) else { return }
        // Those taken from the front until one needs room the table lacks, and those taken
        // after it: of the next `heldLookAhead`, only prefixes the table holds (a new one
        // admitted there would pass the earlier one waiting for room, were the table's bytes
        // what stopped it).
        var taken = 0
        var takenPastFull: [Int] = []
        var full = false
        var lookedPastFull = 0
        for (index, (hash, prefix)) in waiting.enumerated() {
            if full {
                lookedPastFull += 1
                if lookedPastFull > Self.heldLookAhead { break }
            }
            // Too long since a reload lowered max_subscription_length: it never gets in.
            if prefix.count > subscriptions.maxPrefixLength {
                if full { takenPastFull.append(index) } else { taken += 1 }
                continue
            }
            if full && subscriptions.count(of: prefix) == 0 { continue }
            guard let isNewPrefix = subscriptions.admit(prefix) else {
                full = true
                continue
            }
            if full { takenPastFull.append(index) } else { taken += 1 }
            subscriberConnections.subscribed(hash, connection, waited: true)
            actions.admitted.append(.init(prefix: prefix, forwardUpstream: isNewPrefix))
            admittedSubscriptions &+= 1
        }
        subscriberConnections.stopWaiting(first: taken, andAt: takenPastFull, of: connection)
    }

    private mutating func decideSubscriptionFrame(
        _ frame: UnsafeRawBufferPointer, from connection: SubscriberConnections.Identity?, lastValueWanted: Bool,
        nowMilliseconds: UInt64
    ) -> SubscriptionActions {
        guard let kind = frame.first, kind <= 1 else { return SubscriptionActions() }
        let prefix = UnsafeRawBufferPointer(rebasing: frame[1...])
        if prefix.elementsEqual(Self.retryPrefix) { return SubscriptionActions() }
        // A downstream broker's, for the last values it gets wrapped (`UpstreamValue`): applied
        // for its connection, uncounted, not sent upstream, as the retry frame is not.
        if prefix.elementsEqual(UpstreamValue.prefix) {
            var actions = SubscriptionActions()
            actions.apply = kind == 1 ? .subscribe : .unsubscribe
            return actions
        }
        guard let connection else {
            guard kind == 1 else {
                // libzmq's unsubscription for a refused subscription of a connection that
                // closed (`SubscriberConnections`): nobody's count goes down for it.
                guard
                    subscriberConnections.refusedPendingCount == 0
                        || !subscriberConnections.absorbsUnsubscription(seededHash(prefix))
                else { return uncountedUnsubscription() }
                return unsubscribe(prefix)
            }
            return subscribe(prefix, lastValueWanted: lastValueWanted, nowMilliseconds: nowMilliseconds)
        }
        let prefixHash = seededHash(prefix)
        if kind == 1 {
            if subscriberConnections.holds(prefixHash, connection) {
                repeatedSubscriptions &+= 1
                subscriptions.noteUncounted(subscribe: true)
                return repeatedSubscription(prefix, lastValueWanted: lastValueWanted, nowMilliseconds: nowMilliseconds)
            }
            let actions = subscribe(prefix, lastValueWanted: lastValueWanted, nowMilliseconds: nowMilliseconds)
            if actions.apply == .subscribe {
                subscriberConnections.subscribed(prefixHash, connection)
            } else if let refusal = actions.refusal {
                // Only a full table's refusal can end; the broker's own prefixes wait for nobody.
                var waits = false
                if case .tableFull = refusal { waits = !prefix.starts(with: Self.internalPrefix) }
                subscriberConnections.refused(prefixHash, connection, waitsForRoom: waits ? Array(prefix) : nil)
            }
            return actions
        }
        guard subscriberConnections.unsubscribed(prefixHash, connection) else { return uncountedUnsubscription() }
        return unsubscribe(prefix)
    }

    /// An unsubscription from a prefix nobody's count holds for it: applied (harmless in
    /// libzmq, which has nothing to remove for the connection either), counted for nothing.
    private mutating func uncountedUnsubscription() -> SubscriptionActions {
        unheldUnsubscriptions &+= 1
        subscriptions.noteUncounted(subscribe: false)
        var actions = SubscriptionActions()
        actions.apply = .unsubscribe
        return actions
    }

    /// A connection subscribes again to a prefix it holds: libzmq applies it (a no-op for its
    /// set), and the subscriber gets the prefix's last value again as it asked, but the
    /// subscription is not counted twice nor sent upstream.
    private mutating func repeatedSubscription(
        _ prefix: UnsafeRawBufferPointer, lastValueWanted: Bool, nowMilliseconds: UInt64
    ) -> SubscriptionActions {
        var actions = SubscriptionActions()
        actions.apply = .subscribe
        let bytes = Array(prefix)
        guard !bytes.starts(with: Self.internalPrefix) else { return actions }
        if lastValueWanted && lastValue.isEnabled && sendsLastValueOnSubscribe && lastValue.mayHaveValues(for: bytes),
            let entry = lastValue.newest(under: bytes, nowMilliseconds: nowMilliseconds)
        {
            actions.lastValue = entry.frames
            actions.lastValueStoredMilliseconds = entry.storedMilliseconds
        }
        return actions
    }

    private mutating func subscribe(
        _ prefix: UnsafeRawBufferPointer, lastValueWanted: Bool, nowMilliseconds: UInt64
    ) -> SubscriptionActions {
        var actions = SubscriptionActions()
        switch subscriptions.subscribe(prefix) {
        case .refusedTooLong:
            actions.refusal = .tooLong(bytes: prefix.count, limit: subscriptions.maxPrefixLength)
        case .refusedTableFull:
            actions.refusal = .tableFull(limit: subscriptions.maxPrefixes)
        case .accepted(let isNewPrefix):
            actions.apply = .subscribe
            let bytes = Array(prefix)
            if bytes.starts(with: Self.internalPrefix) {
                if let token = Self.markerToken(bytes) { actions.marker = .subscribed(token: token) }
                if bytes.starts(with: Self.sequenceMarkerPrefix) { sequenceMarkerSubscriptions += 1 }
                return actions
            }
            if lastValueWanted && lastValue.isEnabled && sendsLastValueOnSubscribe
                && lastValue.mayHaveValues(for: bytes)
            {
                if let entry = lastValue.newest(under: bytes, nowMilliseconds: nowMilliseconds) {
                    actions.lastValue = entry.frames
                    actions.lastValueStoredMilliseconds = entry.storedMilliseconds
                    lastValue.hits &+= 1
                } else {
                    lastValue.misses &+= 1
                }
            }
            actions.forwardUpstream = isNewPrefix
        }
        return actions
    }

    private mutating func unsubscribe(_ prefix: UnsafeRawBufferPointer) -> SubscriptionActions {
        var actions = SubscriptionActions()
        // Always applied: harmless when the subscriber is gone (libzmq then has no "last pipe").
        actions.apply = .unsubscribe
        let outcome = subscriptions.unsubscribe(prefix)
        guard case .removed(let wasLast) = outcome else { return actions }
        if prefix.starts(with: Self.sequenceMarkerPrefix) {
            sequenceMarkerSubscriptions = max(0, sequenceMarkerSubscriptions - 1)
        }
        guard wasLast else { return actions }
        let bytes = Array(prefix)
        if bytes.starts(with: Self.internalPrefix) {
            if let token = Self.markerToken(bytes) { actions.marker = .unsubscribed(token: token) }
        } else {
            actions.forwardUpstream = true
        }
        return actions
    }

    private static func markerToken(_ prefix: [UInt8]) -> String? {
        guard prefix.starts(with: markerPrefix) else { return nil }
        return String(decoding: prefix.dropFirst(markerPrefix.count), as: UTF8.self)
    }
}
