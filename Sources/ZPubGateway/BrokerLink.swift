import Logging
import NIOCore
import ZPubCore
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// Where a client's catch-up starts: an SSE reconnection's Last-Event-ID, a WebSocket `since`,
/// or (`lastValue(after: 0)`) a new client of prefixes under the last-value cache.
enum ResumePoint: Sendable, Equatable {
    /// An id "<cache sequence>-<n>": the cached values newer than that sequence, then live.
    /// After 0: every cached value under the client's prefixes.
    case lastValue(after: UInt64)
    /// An id "h<history sequence>": every kept message after it (REPLAY), then live, exactly.
    case history(after: UInt64)
}

/// What the broker made of a `POST /publish` batch.
struct PublishReceipt: Sendable, Equatable {
    /// One per forwarded message, in order: its history sequence, or nil if history keeps
    /// nothing under its topic.
    var sequences: [UInt64?] = []
    /// Messages not forwarded: the queue to the broker was full (`busy`), forwarding is paused
    /// (`paused`), or the broker is a pair's passive one (`passive`); those after the first
    /// such are not sent either.
    var busy = 0
    var paused = 0
    var passive = 0
}

/// What event loops ask of the gateway's ZeroMQ thread.
enum LinkCommand: Sendable {
    /// A new client with its first prefixes; with `resume`, first what it missed (an SSE
    /// reconnection with Last-Event-ID). Without, a client of cached prefixes gets their cached
    /// values first (`splitByCachedValues`).
    /// `keptAfter`: with a `lastValue` resume, the history sequence its id carried (the client
    /// resumes its prefixes that history keeps from there).
    case attach(ClientOutbox, prefixes: [[UInt8]], resume: ResumePoint?, keptAfter: UInt64? = nil)
    /// A WebSocket `subscribe` (without `since`): its prefixes, those under the cache with
    /// their cached values first. The client's outbox gets `confirm` once the broker forwards
    /// them (with a catch-up, at its reply, just before its values): `subscribed` means that
    /// what is published from then on reaches the client.
    case subscribe(ClientID, [[UInt8]], confirm: UInt64)
    case unsubscribe(ClientID, [UInt8])
    /// A WebSocket subscribe with `since`: the prefixes, with every kept message under them
    /// after that history sequence first (REPLAY), then live.
    case resume(ClientID, prefixes: [[UInt8]], after: UInt64)
    case detach(ClientID)
    /// A WebSocket `publish`; `client` is told (`broker_busy`) when the broker's queue is full
    /// and the message was not published, instead of losing it unseen.
    case publish([[UInt8]], client: ClientOutbox)
    /// `POST /publish`: the messages in order; `receipt` learns, on the requester's event loop,
    /// what the broker made of them once it has forwarded them.
    case publishBatch([[[UInt8]]], receipt: EventLoopPromise<PublishReceipt>)
    /// A reload: the last-value cache's prefixes now in force (none: the cache is off).
    case cachePrefixes([[UInt8]])
    /// A reload: `upstream_subscriptions_per_s`.
    case upstreamRate(Int)
    /// The reply to a round's SNAPSHOT, REPLAY or HISTORY request, from the control thread
    /// (`ControlDispatcher`).
    case snapshotReplied(token: String, Result<ControlReply, ControlUnavailable>)
    /// The forwarding loop has applied the subscriptions sent before this barrier
    /// (`ControlDispatcher.afterSubscriptionsApplied`).
    case subscriptionsApplied(barrier: UInt64)
    /// Test hook (`ZPUBD_TEST_STALL=gateway`, SIGUSR2): the link stops reading its SUB, or
    /// starts again, as a link fallen far behind would: the broker's queue to it fills, and the
    /// broker drops what does not fit, catch-ups' markers included.
    case toggleReadingFromBroker
    case stop
}

/// The gateway's side of the broker, on a thread of its own. It owns two sockets, joined to
/// the broker over inproc with the broker's context: a SUB (the union of the clients'
/// prefixes) and a PUSH (what clients publish). Its SNAPSHOT requests go through the broker's
/// typed control API (`ControlDispatcher`), whose replies come back through the mailbox.
///
/// The type is not `Sendable`: it moves to its thread as a `sending` value; event loops hold
/// only its `mailbox`.
///
/// It never blocks: every send is non-blocking, every client gets messages through its own
/// bounded `ClientOutbox`, and a client whose queue is full is dropped. So neither a slow
/// browser nor this thread can hold up the broker's forwarding loop (which would in any case
/// only drop for this SUB, as for any slow subscriber).
final class BrokerLink {
    /// How often SSE event ids learn the cache's sequence (a marker round), while SSE clients exist.
    static let watermarkIntervalNanoseconds: UInt64 = 2_000_000_000
    static let markerPrefix = Array(SnapshotReply.markerPrefix.utf8)
    static let sequenceMarkerPrefix = Array("$zpub/seq/".utf8)
    /// How long a kept message waits for its sequence marker (which follows it at once) before
    /// it goes out without a history id.
    static let sequenceWaitNanoseconds: UInt64 = 20_000_000

    let mailbox = Mailbox<LinkCommand>()
    private let control: ControlDispatcher
    private let counters: GatewayCounters
    private let logger: Logger
    private let sub: Socket
    private let push: Socket
    /// POST /publish's path: messages out, one receipt back for each (`InternalEndpoints.receipts`).
    private let receipts: Socket
    /// Batches sent and waiting for their receipts, oldest first (receipts come in order).
    private var awaitingReceipts: [(sent: Int, receipt: PublishReceipt, promise: EventLoopPromise<PublishReceipt>)] =
        []
    /// Messages sent on `receipts` and not yet answered; bounds what may be outstanding.
    private var unanswered = 0
    static let maxUnanswered = 10_000
    private var index = SubscriptionIndex()
    /// What the event loops let clients hold (`max_upstream_prefixes`): lingering prefixes
    /// fill only the room claimed ones leave.
    private let claims: UpstreamClaims
    /// Prefixes no client wants that stay subscribed upstream a little longer.
    private var linger = UpstreamLinger()
    /// How fast new prefixes are subscribed upstream; those over it wait.
    private var budget: UpstreamBudget
    private var clients: [ClientID: Client] = [:]
    /// The broker's history prefixes: messages under them get their history sequence as SSE id.
    private let historyPrefixes: [[UInt8]]
    /// Whether history's numbering starts again at each start (`HistoryReplay`).
    private let historyNumberingRestarts: Bool
    /// The history prefixes as the latest REPLAY reply named them (a reload may change them):
    /// what a catch-up from history plans to read.
    private var historyKept: [[UInt8]]
    /// The cache's prefixes as the latest SNAPSHOT reply named them; nil until one came.
    private var cachedPrefixes: [[UInt8]]?
    /// Reloads that told the cache's prefixes (`.cachePrefixes`).
    private var reloads = 0
    /// The cache's prefixes in the configuration at start: what the gateway goes by until a
    /// snapshot reply names them (`cachedPrefixes`).
    private let configuredCachePrefixes: [[UInt8]]
    private var turns = ResumeTurns()
    /// A kept message waiting for its sequence marker, and since when.
    private var waitingForSequence: (frames: [[UInt8]], since: UInt64)?
    /// The history sequence of the last kept message delivered: an unkept event's id carries
    /// it, since every kept message a client got before that event is at or below it.
    private var lastHistorySequence: UInt64 = 0
    private let tokenPrefix = "gw\(getpid())-"
    /// WebSocket subscribes whose prefixes wait for the budget or for the next barrier, and
    /// those the barrier in flight answers (`confirmWhenForwarded`).
    private var confirmationsWaiting: [Confirmation] = []
    private var confirmationsInFlight: [Confirmation] = []
    /// The barrier asked for and not answered yet, and since when.
    private var barrierInFlight: (number: UInt64, since: UInt64)?
    private var barriersAsked: UInt64 = 0
    /// Something a waiting confirmation may wait for has changed (a prefix left the budget's
    /// queue, a barrier came back, a new one came): look at them again.
    private var confirmationsToLookAt = false
    /// A barrier the forwarding loop has not answered in this long (it is stalled) is given
    /// up: the subscribes it held are answered anyway, rather than every client's requests
    /// waiting behind it, and the log says so.
    static let barrierTimeoutNanoseconds: UInt64 = 5_000_000_000

    /// A WebSocket subscribe's `subscribed` replies, held by its session, or an SSE stream's
    /// `subscribed` event, until the broker forwards the prefixes.
    private struct Confirmation {
        let outbox: ClientOutbox
        /// The session's ticket (`ClientOutbox.Item.confirmation`), or the SSE event.
        let item: ClientOutbox.Item
        /// The prefixes that go live without a catch-up: a barrier vouches for them, or the
        /// reply of the catch-up the confirmation waits for (`Client.confirmationsAfterCatchUp`).
        let prefixes: [[UInt8]]
        /// When it was asked for (monotonic ns): one that waits for a catch-up is given up on
        /// after `catchUpConfirmationTimeoutNanoseconds`.
        var asked = SystemClock.monotonicNanoseconds()
        /// A WebSocket URL's prefixes, whose `subscribed` (`item`) is made again when it is
        /// delivered, for those the client still holds: one it has unsubscribed meanwhile got
        /// its `unsubscribed` already, and a `subscribed` after it would look like the reply
        /// to a subscribe sent since.
        var urlPrefixes: (prefixes: [[UInt8]], since: UInt64?)?
    }

    /// A subscribe waits this long for its catch-up's reply at most: behind a crowd's catch-ups
    /// (they take turns, four at a time, each of whose requests the broker may take 5 s to
    /// answer) or a stalled control thread, its client's requests would wait without end. It
    /// is then answered without the guarantee, as a barrier given up on is.
    static let catchUpConfirmationTimeoutNanoseconds: UInt64 = 10_000_000_000
    /// Clients with a confirmation that waits for a catch-up (`answerLateConfirmations`).
    private var confirmingAfterCatchUp = Set<ClientID>()
    private var lastLateConfirmationCheck: UInt64 = 0

    /// What a new client is told once the broker forwards its first prefixes (with a catch-up,
    /// at its reply, before its values); a page may start what it waits for then. An SSE
    /// stream's first event, `subscribed`; a WebSocket's `subscribed` for each prefix in its
    /// URL, as a `subscribe` would get (nil: none in the URL).
    static func subscribedNotice(
        _ kind: ClientOutbox.Kind, _ prefixes: [[UInt8]], since: UInt64?
    ) -> ClientOutbox.Item? {
        let names = prefixes.map { String(decoding: $0, as: UTF8.self) }
        switch kind {
        case .serverSentEvents:
            let list = names.map(WireFormat.jsonString).joined(separator: ",")
            return .notice(
                WireFormat.chunk(
                    WireFormat.serverSentEvent(
                        id: nil, event: "subscribed", data: Array("{\"prefixes\":[\(list)]}".utf8))))
        case .webSocket:
            guard !names.isEmpty else { return nil }
            var frames = ByteBuffer()
            for name in names {
                var frame = WireFormat.webSocketFrame(
                    opcode: .text, Array(WireFormat.subscribedJSON(prefix: name, since: since).utf8))
                frames.writeBuffer(&frame)
            }
            return .notice(frames)
        }
    }
    private var nextToken = 0

    private struct Client {
        let outbox: ClientOutbox
        /// The catch-up running for it.
        var resume: Resume?
        /// The catch-up it connected with (an SSE reconnection, a `/ws?since=` URL, or the
        /// cached values of its first prefixes), waiting for its turn (`ResumeTurns`).
        var firstResume: (prefixes: [[UInt8]], point: ResumePoint)?
        /// WebSocket subscribes with `since` or of cached prefixes that wait for the current
        /// resume to finish: one round per client at a time.
        var pending = PendingResumes()
        /// Confirmations that wait for catch-ups not started yet, each with the prefixes of its
        /// own those have yet to take. The catch-up that takes the last of them carries it, and
        /// its reply confirms it: the prefixes are subscribed ahead of the round's marker, so
        /// the reply means the broker forwards them. (A WebSocket session has one subscribe
        /// waiting at a time; an SSE stream, its first event.)
        var confirmationsAfterCatchUp: [(confirmation: Confirmation, waitingFor: [[UInt8]])] = []

        /// The confirmations that a catch-up of `prefixes`, starting now, takes the last
        /// prefixes of; or (an unsubscribe) that are left with no catch-up to wait for.
        mutating func confirmationsNoLongerWaiting(after prefixes: [[UInt8]]) -> [Confirmation] {
            var done: [Confirmation] = []
            for index in confirmationsAfterCatchUp.indices.reversed() {
                confirmationsAfterCatchUp[index].waitingFor.removeAll { prefixes.contains($0) }
                if confirmationsAfterCatchUp[index].waitingFor.isEmpty {
                    done.insert(confirmationsAfterCatchUp.remove(at: index).confirmation, at: 0)
                }
            }
            return done
        }

        /// The next catch-up it waits for, taken off its queue. Its prefixes are subscribed when
        /// it starts, so that nothing it catches up on was delivered live before.
        mutating func takeNextResume() -> (prefixes: [[UInt8]], point: ResumePoint)? {
            if let first = firstResume {
                firstResume = nil
                return first
            }
            return pending.next().map { ($0.prefixes, $0.point) }
        }

        var hasResumeWaiting: Bool { firstResume != nil || !pending.isEmpty }

        /// Whether `prefix` waits for a catch-up of its own: the client holds it already (a
        /// `subscribe` of it changes nothing, and must not replace that catch-up).
        func waitsToCatchUp(_ prefix: [UInt8]) -> Bool {
            firstResume?.prefixes.contains(prefix) == true || pending.contains(prefix)
        }

        /// Joins `prefix` to the first waiting catch-up of a prefix it falls under, if any: that
        /// catch-up brings its values and messages too, so a catch-up of its own would send
        /// them twice, and subscribing it now would send its live messages before them.
        mutating func joinWaitingCatchUp(_ prefix: [UInt8]) -> Bool {
            if let first = firstResume, first.prefixes.contains(where: { prefix.starts(with: $0) }) {
                firstResume!.prefixes.append(prefix)
                return true
            }
            return pending.join(prefix)
        }

        /// Takes the prefixes under `wider` that wait for a catch-up of cached values (not a
        /// `since` one, which is another request), for a catch-up of `wider` to bring them:
        /// separate, theirs would come twice.
        mutating func takeWaitingForValues(under wider: [[UInt8]]) -> [[UInt8]] {
            let isUnder = { (prefix: [UInt8]) in wider.contains { prefix.starts(with: $0) && prefix != $0 } }
            var taken = pending.takeWaitingForValues(where: isUnder)
            if let first = firstResume, first.point == .lastValue(after: 0) {
                taken += first.prefixes.filter(isUnder)
                firstResume!.prefixes.removeAll(where: isUnder)
                if firstResume!.prefixes.isEmpty { firstResume = nil }
            }
            return taken
        }
    }

    /// A client catching up through the round `token`: what it missed first (cached values
    /// newer than its id, or kept messages after it), then the live stream (the round's
    /// `SnapshotCatchUp` holds it meanwhile).
    private struct Resume {
        var token: String
        var point: ResumePoint
        /// What it catches up on: all of an SSE client's prefixes, or those of a WebSocket
        /// request (the client may get its others live meanwhile); less any it unsubscribes
        /// meanwhile, whose values it then does not get.
        var prefixes: [[UInt8]]
        /// `lastHistorySequence` when it started (its prefixes subscribed then): the position
        /// of kept messages its cached values' SSE ids carry. Kept messages under them until
        /// then came before the client subscribed; later ones are held, and follow the values.
        var historyAtStart: UInt64
        /// Confirmations its first reply sends, ahead of what it releases.
        var confirmations: [Confirmation] = []
    }

    /// A live message for a client catching up, as its round holds it: with its topic, so that
    /// a SNAPSHOT asked again (`redoSnapshot`) can sort what the first one held.
    private struct HeldLive {
        let topic: [UInt8]
        let item: ClientOutbox.Item
        /// For an SSE event of a message history does not keep: what its id was built from,
        /// so that the id can be built again when the event is released (`item(historyAtLeast:)`).
        var unkept: UnkeptEvent?

        struct UnkeptEvent {
            let frames: [[UInt8]]
            let cacheSequence: UInt64
            let number: UInt64
            let history: UInt64
        }

        /// The event to send after a replay through `through`: an unkept event that came
        /// before the replay's marker had its id built with the history position as it was
        /// then (0 after a restart); the client gets it after every kept message up to
        /// `through`, so its id says so, or a reconnection with it would replay them again
        /// (or, at 0, lose its history position).
        func item(historyAtLeast through: UInt64) -> ClientOutbox.Item {
            guard let unkept, unkept.history < through else { return item }
            let id = WireFormat.eventID(sequence: unkept.cacheSequence, number: unkept.number, history: through)
            return .event(
                WireFormat.chunk(
                    WireFormat.serverSentEvent(
                        id: id, event: nil, data: WireFormat.sseData(unkept.frames, sequence: nil))))
        }
    }

    /// A SNAPSHOT or REPLAY request and its marker: for a resuming client, or (no client) only
    /// to learn the cache's sequence for SSE event ids.
    private struct Round {
        var client: ClientID?
        var catchUp: SnapshotCatchUp<HeldLive>
        /// `reloads` when it was asked: a reply to a round asked before the latest reload names
        /// the cache's prefixes as they were, and must not undo what the reload told.
        var reload = 0
        /// A REPLAY round: what it read so far, and what to read next. Its marker carries a
        /// history sequence, not the cache's, and must not move the event-id watermark.
        var replay: HistoryReplay?
        /// A REPLAY round whose replay was sent: what it went through. Unkept events the
        /// client gets after it carry at least this history position (`HeldLive`); not after a
        /// replay that failed, whose messages the client never got.
        var replayedThrough: UInt64?
        /// A REPLAY round whose client's position was above every number the broker had
        /// given (`HistoryReplay.numberingStartedAfter`): the client is told.
        var numberingStartedAfter: UInt64?
        /// A SNAPSHOT round: the prefix it asked for.
        var snapshotPrefix: [UInt8] = []
        /// A SNAPSHOT asked again (`redoSnapshot`): it is not asked a third time.
        var redone = false
        /// When the reply was in while the marker was not (monotonic ns), or nil.
        var repliedBeforeMarker: UInt64?
        /// A client's round waiting for a reply holds one of `ResumeTurns`' places.
        var holdsPlace = false
        /// Its client left: nothing more is asked, the round ends with the reply it waits for.
        var abandoned = false
    }

    private var rounds: [String: Round] = [:]
    /// The last-value cache's sequence at the newest marker seen: every message after it in
    /// this SUB's stream has a larger sequence (if cached at all).
    private var watermark: UInt64 = 0
    private var messageNumber: UInt64 = 0
    private var lastWatermarkRound: UInt64 = 0
    /// Learnt from snapshot replies: false when the broker caches nothing (no rounds needed).
    private var cacheEnabled = true
    private var lastCacheCheck: UInt64 = 0
    /// Off only while the test hook holds the link back (`toggleReadingFromBroker`).
    private var readingFromBroker = true
    /// Whether what the SUB gives now is a broker's held backlog (`deliver`).
    private var backlogWatch = BacklogWatch()

    init(
        context: Context, control: ControlDispatcher, historyPrefixes: [String], lastValuePrefixes: [String] = [],
        historyNumberingRestarts: Bool = false,
        upstreamSubscriptionsPerSecond: Int = HTTPSettings.Defaults.upstreamSubscriptionsPerSecond,
        claims: UpstreamClaims, counters: GatewayCounters, logger: Logger
    ) throws {
        budget = UpstreamBudget(perSecond: upstreamSubscriptionsPerSecond, now: SystemClock.monotonicNanoseconds())
        self.control = control
        self.claims = claims
        self.historyPrefixes = historyPrefixes.map { Array($0.utf8) }
        self.historyNumberingRestarts = historyNumberingRestarts
        configuredCachePrefixes = lastValuePrefixes.map { Array($0.utf8) }
        historyKept = self.historyPrefixes
        self.counters = counters
        self.logger = logger
        sub = try Socket(context, type: .sub)
        push = try Socket(context, type: .push)
        receipts = try Socket(context, type: .pair)
        for socket in [sub, push, receipts] { try socket.setOption(.linger, 0) }
        // Unbounded here: `unanswered` bounds it (`maxUnanswered`). libzmq's bound would be
        // 11,000 (this side's 10,000 and the broker's receive HWM of 1,000, in-process), but it
        // counts what the broker read by reports every 5,500 messages (half the bound), so a
        // send could fail with some 5,500 unanswered: publishes refused `busy` while the broker
        // had room, below the gateway's own bound (libzmq 4.3.4, pipe.cpp compute_lwm).
        try receipts.setOption(.sendHighWaterMark, 0)
        try receipts.setOption(.receiveHighWaterMark, 0)
        // Room for bursts while this thread hands messages to clients' queues.
        try sub.setOption(.receiveHighWaterMark, 100_000)
        // Subscriptions must all reach the broker, however many clients subscribe at once.
        try sub.setOption(.sendHighWaterMark, 0)
        try sub.connect(InternalEndpoints.endpoint(for: .xpub)!)
        try push.connect(InternalEndpoints.endpoint(for: .pull)!)
        try receipts.connect(InternalEndpoints.receipts)
    }

    func run() {
        var poller = Poller()
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        let subIndex = poller.add(sub)
        let receiptsIndex = poller.add(receipts)
        let message = Message()
        var stopping = false
        var retry = SubscriptionRetry(
            intervalNanoseconds: 1_000_000_000, nowNanoseconds: SystemClock.monotonicNanoseconds())
        while !stopping {
            do {
                _ = try poller.poll(timeoutMilliseconds: pollTimeoutMilliseconds())
            } catch {
                logger.critical("http gateway cannot poll: \(error)")
                break
            }
            if poller.isReadable(mailboxIndex) {
                for command in mailbox.take() {
                    switch command {
                    case .stop: stopping = true
                    case .toggleReadingFromBroker:
                        readingFromBroker.toggle()
                        poller.setWatching(subIndex, readingFromBroker)
                        logger.warning(
                            "test hook: the http gateway \(readingFromBroker ? "reads from the broker again" : "stops reading from the broker")"
                        )
                    default: handle(command)
                    }
                }
            }
            if readingFromBroker && poller.isReadable(subIndex) { receiveBurst(message) }
            if poller.isReadable(receiptsIndex) { receiveReceipts() }
            // Read once what came is handled: times it set (a reply's, a confirmation's, a
            // message's wait for its sequence) are then never newer than `now`, which `now &-
            // then` would wrap (a round replied to before its marker was read was taken as lost
            // at once).
            let now = SystemClock.monotonicNanoseconds()
            if let waiting = waitingForSequence, now &- waiting.since > Self.sequenceWaitNanoseconds {
                waitingForSequence = nil
                deliver(waiting.frames, sequence: nil)
            }
            startWatermarkRoundIfDue(now: now)
            expireRoundsWithoutMarker(now: now)
            answerLateConfirmations(now: now)
            for prefix in linger.expire(now: now) { setUpstream(prefix, subscribed: false) }
            subscribeWhatIsDue()
            askForBarrierIfDue()
            // A frame that subscribes to nothing, once a second: the broker applies at the
            // gateway's next frame what it held back while libzmq paired frames wrongly (a peer
            // of the XPUB sent data; docs/control-protocol.md). This loop wakes every 200 ms.
            if retry.isDue(nowNanoseconds: now) { try? sub.setOption(.subscribe, bytes: BrokerState.retryPrefix) }
        }
        finishClients(message)
        // What came meanwhile is not served; a POST /publish's requester is told (its promise
        // left unanswered, NIO's debug builds stop the process as it is freed). Posted later,
        // it is refused, and its poster answers.
        for command in mailbox.close() {
            if case .publishBatch(_, let receipt) = command { receipt.fail(GatewayError("the gateway stopped")) }
        }
        sub.close()
        push.close()
        receipts.close()
        // Requests still waiting learn that their messages' fate is unknown.
        for waiting in awaitingReceipts { waiting.promise.fail(GatewayError("the gateway stopped")) }
    }

    // MARK: Commands

    private func handle(_ command: LinkCommand) {
        switch command {
        case .attach(let outbox, let prefixes, let resume, let keptAfter):
            clients[outbox.id] = Client(outbox: outbox)
            let stream = outbox.kind == .serverSentEvents
            // The stream's event, or a WebSocket's `subscribed` for each of its URL's prefixes:
            // once the broker forwards them; with a catch-up, at the reply of the (last) one,
            // before what it brings.
            var since: UInt64?
            if case .history(let after) = resume { since = after }
            let notice = Self.subscribedNotice(outbox.kind, prefixes, since: since)
            func confirmation(live: [[UInt8]]) -> Confirmation? {
                guard let notice else { return nil }
                var confirmation = Confirmation(outbox: outbox, item: notice, prefixes: live)
                if !stream { confirmation.urlPrefixes = (prefixes, since) }
                return confirmation
            }
            func confirmAfterCatchUp(live: [[UInt8]] = [], of catchingUp: [[UInt8]]) {
                guard let confirmation = confirmation(live: live) else { return }
                confirm(confirmation, afterCatchUpOf: catchingUp)
            }
            if let keptAfter, let resume, resumeKeptExactly(outbox.id, prefixes, after: keptAfter, rest: resume) {
                confirmAfterCatchUp(of: prefixes)
                waitForTurn(outbox.id)
            } else if let point = resume ?? (stream && overlapsCache(prefixes) ? .lastValue(after: 0) : nil) {
                // An SSE stream's prefixes wait for its values together: an event id given
                // before them would resume after values never sent.
                clients[outbox.id]!.firstResume = (prefixes, point)
                confirmAfterCatchUp(of: prefixes)
                waitForTurn(outbox.id)
            } else {
                // Those with cached values start with a catch-up of them (only a WebSocket's:
                // a stream's take the branch above); the others go live now.
                let (withValues, live) = splitByCachedValues(prefixes)
                for prefix in live { subscribe(outbox.id, prefix) }
                if withValues.isEmpty {
                    if let confirmation = confirmation(live: live) { confirmWhenForwarded(confirmation) }
                } else {
                    clients[outbox.id]!.firstResume = (withValues, .lastValue(after: 0))
                    confirmAfterCatchUp(live: live, of: withValues)
                    waitForTurn(outbox.id)
                }
            }
        case .subscribe(let id, let prefixes, let ticket):
            guard let client = clients[id] else { return }
            let held = index.prefixes(of: id)
            // Under a prefix it holds, it has the values and gets the messages already: held
            // from now, with no catch-up (it still must outlive an unsubscribe of the wider one).
            let isCovered = { (prefix: [UInt8]) in held.contains { prefix.starts(with: $0) } }
            // One that waits for a catch-up of its own changes nothing; one under a prefix that
            // waits joins that catch-up. The reply waits for those catch-ups.
            var catchingUp = prefixes.filter { clients[id]!.waitsToCatchUp($0) }
            let asked = prefixes.filter { !catchingUp.contains($0) }
            let covered = asked.filter(isCovered)
            for prefix in covered { subscribe(id, prefix) }
            var new: [[UInt8]] = []
            for prefix in asked where !isCovered(prefix) {
                if clients[id]!.joinWaitingCatchUp(prefix) { catchingUp.append(prefix) } else { new.append(prefix) }
            }
            let (withValues, live) = splitByCachedValues(new)
            for prefix in live { subscribe(id, prefix) }
            if !withValues.isEmpty {
                // Prefixes under these that wait for their cached values come with them, once.
                let under = clients[id]!.takeWaitingForValues(under: withValues)
                clients[id]!.pending.add(withValues + under, from: .lastValue(after: 0))
                catchingUp += withValues
            }
            // The reply once the broker forwards the live ones; with a catch-up, at its reply,
            // ahead of its values (the live ones are made to go upstream before its marker).
            let confirmation = Confirmation(
                outbox: client.outbox, item: .confirmation(ticket), prefixes: covered + live)
            if catchingUp.isEmpty {
                confirmWhenForwarded(confirmation)
            } else {
                confirm(confirmation, afterCatchUpOf: catchingUp)
                if client.resume == nil { waitForTurn(id) }
            }
        case .unsubscribe(let id, let prefix):
            if index.remove(id, prefix) { release(prefix) }
            // Prefixes under it that the client holds and that still wait for the budget: their
            // messages came through this one, which may now go, so they go upstream now.
            for under in index.prefixes(of: id) where under.starts(with: prefix) { subscribeNowIfWaiting(under) }
            // A subscribe whose reply waited for this prefix's catch-up alone: answered as one
            // without a catch-up.
            for confirmation in clients[id]?.confirmationsNoLongerWaiting(after: [prefix]) ?? [] {
                confirmWhenForwarded(confirmation)
            }
            if let resume = clients[id]?.resume, resume.prefixes.contains(prefix) {
                // Its values are left out, but not those of the prefixes under it that the client
                // holds: this catch-up's values are theirs too (those subscribed during it had
                // none of their own, `.subscribe`).
                let under = index.prefixes(of: id).filter { $0.starts(with: prefix) && !resume.prefixes.contains($0) }
                clients[id]!.resume!.prefixes = resume.prefixes.filter { $0 != prefix } + under
            }
            guard clients[id]?.hasResumeWaiting == true else { return }
            clients[id]!.pending.remove([prefix])
            clients[id]!.firstResume?.prefixes.removeAll { $0 == prefix }
            if clients[id]!.firstResume?.prefixes.isEmpty == true { clients[id]!.firstResume = nil }
        case .resume(let id, let prefixes, let after):
            guard clients[id] != nil else { return }
            clients[id]!.pending.add(prefixes, from: .history(after: after))
            if clients[id]!.resume == nil { waitForTurn(id) }
        case .detach(let id):
            _ = disconnect(id)
        case .publish(let frames, let client):
            client.publishHandled()
            // Told through its queue, behind what it was sent before; a client whose queue is
            // full is dropped by that anyway. A pair's passive broker would hold the message
            // until it takes over, which may be never: refused, as POST /publish is there.
            if control.brokerIsPassive {
                counters.publishFailures.add(1, ordering: .relaxed)
                _ = client.offer(.webSocketText(Self.passiveReply(topic: frames.first ?? [])))
            } else if !publish(frames) {
                _ = client.offer(.webSocketText(Self.busyReply(topic: frames.first ?? [])))
            }
        case .publishBatch(let messages, let promise):
            var sent = 0
            for frames in messages {
                guard unanswered < Self.maxUnanswered, (try? receipts.send(frames: frames, dontWait: true)) == true
                else { break }
                sent += 1
                unanswered += 1
            }
            let receipt = PublishReceipt(busy: messages.count - sent)
            counters.publishFailures.add(UInt64(receipt.busy), ordering: .relaxed)
            if sent == 0 {
                promise.succeed(receipt)
            } else {
                awaitingReceipts.append((sent, receipt, promise))
            }
        case .upstreamRate(let perSecond):
            budget.changeRate(perSecond: perSecond, now: SystemClock.monotonicNanoseconds())
        case .cachePrefixes(let prefixes):
            // What snapshot replies would tell, but only once a round runs: without SSE
            // clients there are no marker rounds, and a new client's catch-up must know now.
            cachedPrefixes = prefixes
            cacheEnabled = !prefixes.isEmpty
            reloads += 1
        case .snapshotReplied(let token, let result):
            snapshotReplied(token: token, result)
        case .subscriptionsApplied(let barrier):
            guard barrier == barrierInFlight?.number else { return }  // one given up on
            barrierInFlight = nil
            deliverConfirmationsInFlight()
        case .stop, .toggleReadingFromBroker:
            break  // `run`'s own
        }
    }

    /// Receipts in order: each answers the oldest batch still waiting.
    private func receiveReceipts() {
        while let frames = try? receipts.receiveFrames(dontWait: true) {
            unanswered -= 1
            guard !awaitingReceipts.isEmpty else { continue }
            let reply = frames.first ?? []
            if reply.count != 8 {
                // Refused: a publish the broker did not take, as a busy one.
                if reply == InternalEndpoints.refusedWhilePassive {
                    awaitingReceipts[0].receipt.passive += 1
                } else {
                    awaitingReceipts[0].receipt.paused += 1
                }
                counters.publishFailures.add(1, ordering: .relaxed)
            } else {
                let sequence = reply.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
                awaitingReceipts[0].receipt.sequences.append(sequence == 0 ? nil : sequence)
                counters.published.add(1, ordering: .relaxed)
            }
            let waiting = awaitingReceipts[0]
            if waiting.receipt.sequences.count + waiting.receipt.paused + waiting.receipt.passive == waiting.sent {
                awaitingReceipts.removeFirst()
                waiting.promise.succeed(waiting.receipt)
            }
        }
    }

    /// What a WebSocket publisher is told when its message was not published.
    static func busyReply(topic: [UInt8]) -> String {
        WireFormat.errorJSON(
            code: "broker_busy",
            "the broker's queue is full (it is paused, or behind): this message was not published; send it again later",
            topic: String(decoding: topic, as: UTF8.self))
    }

    /// What a WebSocket publisher at a pair's passive broker is told.
    static func passiveReply(topic: [UInt8]) -> String {
        WireFormat.errorJSON(
            code: "passive",
            "this broker is the passive one of a pair: it forwards nothing until it takes over; this message was not published: publish through the active broker's gateway",
            topic: String(decoding: topic, as: UTF8.self))
    }

    /// Hands a message to the broker without waiting; false (and counted) when its queue is full.
    private func publish(_ frames: [[UInt8]]) -> Bool {
        let sent = (try? push.send(frames: frames, dontWait: true)) ?? false
        if sent {
            counters.published.add(1, ordering: .relaxed)
        } else {
            counters.publishFailures.add(1, ordering: .relaxed)
        }
        return sent
    }

    /// A client's prefix; new to the gateway, subscribed upstream within the budget, or when
    /// its turn comes (`UpstreamBudget`). A catch-up's (`catchingUp`) goes upstream now, ahead
    /// of its marker, and is charged to the budget.
    private func subscribe(_ id: ClientID, _ prefix: [UInt8], catchingUp: Bool = false) {
        let now = SystemClock.monotonicNanoseconds()
        guard index.add(id, prefix) else {
            // Held already, but perhaps still waiting for the budget.
            if catchingUp { subscribeNowIfWaiting(prefix) }
            return
        }
        if linger.reclaim(prefix) { return countUpstreamPrefixes() }
        for gone in linger.shrink(to: lingerRoom) { setUpstream(gone, subscribed: false) }
        if catchingUp {
            budget.charge(now: now)
        } else if !budget.admit(prefix, now: now) {
            return countUpstreamPrefixes()
        }
        setUpstream(prefix, subscribed: true)
    }

    /// Confirms a subscribe once the broker forwards its prefixes: when none of them waits for
    /// the budget any more (`isForwarded`), and a barrier asked for after that has come back
    /// from the forwarding loop (the SUB's subscription reaches the broker some time after
    /// `setsockopt`; a prefix the client held already may have been subscribed a moment ago,
    /// with the URL's). At once when it names none (an unsubscribe left a confirmation that
    /// waited for a catch-up with nothing to wait for).
    private func confirmWhenForwarded(_ confirmation: Confirmation) {
        guard !confirmation.prefixes.isEmpty else { return deliver(confirmation) }
        confirmationsWaiting.append(confirmation)
        confirmationsToLookAt = true
        askForBarrierIfDue()
    }

    private func deliver(_ confirmation: Confirmation) {
        guard let url = confirmation.urlPrefixes else { return confirmation.outbox.confirm(confirmation.item) }
        let id = confirmation.outbox.id
        let held = url.prefixes.filter {
            index.prefixes(of: id).contains($0) || clients[id]?.waitsToCatchUp($0) == true
        }
        if held.count == url.prefixes.count {
            confirmation.outbox.confirm(confirmation.item)
        } else if let item = Self.subscribedNotice(.webSocket, held, since: url.since) {
            confirmation.outbox.confirm(item)
        }
    }

    /// Confirms at the reply of the catch-up that takes the last of `prefixes` (those waiting,
    /// now, for a catch-up of its client).
    private func confirm(_ confirmation: Confirmation, afterCatchUpOf prefixes: [[UInt8]]) {
        let id = confirmation.outbox.id
        clients[id]!.confirmationsAfterCatchUp.append((confirmation, prefixes))
        confirmingAfterCatchUp.insert(id)
    }

    /// Answers the confirmations that have waited for their catch-up's reply longer than
    /// `catchUpConfirmationTimeoutNanoseconds`, without it (looked at every 100 ms at most).
    private func answerLateConfirmations(now: UInt64) {
        guard !confirmingAfterCatchUp.isEmpty, now &- lastLateConfirmationCheck > 100_000_000 else { return }
        lastLateConfirmationCheck = now
        let isLate = { (confirmation: Confirmation) in
            now &- confirmation.asked > Self.catchUpConfirmationTimeoutNanoseconds
        }
        var late: [Confirmation] = []
        for id in confirmingAfterCatchUp {
            guard var client = clients[id] else {
                confirmingAfterCatchUp.remove(id)
                continue
            }
            late += client.confirmationsAfterCatchUp.map(\.confirmation).filter(isLate)
            client.confirmationsAfterCatchUp.removeAll { isLate($0.confirmation) }
            if let waiting = client.resume?.confirmations {
                late += waiting.filter(isLate)
                client.resume!.confirmations.removeAll(where: isLate)
            }
            if client.confirmationsAfterCatchUp.isEmpty, client.resume?.confirmations.isEmpty ?? true {
                confirmingAfterCatchUp.remove(id)
            }
            clients[id] = client
        }
        guard !late.isEmpty else { return }
        for confirmation in late { deliver(confirmation) }
        counters.catchUpConfirmationsGivenUp.add(UInt64(late.count), ordering: .relaxed)
        logger.warning(
            "http gateway: \(late.count) subscribes waited more than \(Self.catchUpConfirmationTimeoutNanoseconds / 1_000_000_000) s for their catch-up (catch-ups waiting for their turn: \(turns.waiting)); answered without it, their first messages may be lost"
        )
    }

    private func deliverConfirmationsInFlight() {
        let delivered = confirmationsInFlight
        confirmationsInFlight.removeAll()
        for confirmation in delivered { deliver(confirmation) }
        confirmationsToLookAt = true
    }

    /// Whether messages under `prefix` come to the gateway for this client, once the broker has
    /// what was sent: the client holds it, or a wider prefix, that does not wait for the budget.
    /// Held by nothing (the client let go meanwhile): nothing to wait for either.
    private func isForwarded(_ prefix: [UInt8], to id: ClientID) -> Bool {
        let covering = index.prefixes(of: id).filter { prefix.starts(with: $0) }
        return covering.isEmpty || covering.contains { !budget.isWaiting($0) }
    }

    /// One barrier at a time, for every confirmation whose prefixes are all upstream now; and
    /// a barrier the loop has not answered within `barrierTimeoutNanoseconds` given up.
    private func askForBarrierIfDue() {
        if let inFlight = barrierInFlight {
            let waited = SystemClock.monotonicNanoseconds() &- inFlight.since
            guard waited > Self.barrierTimeoutNanoseconds else { return }
            logger.warning(
                "http gateway: the forwarding loop has not answered a subscription barrier in \(waited / 1_000_000) ms (is it stalled?); \(confirmationsInFlight.count) subscribes answered without it, whose first messages may be lost"
            )
            barrierInFlight = nil
            counters.barriersGivenUp.add(1, ordering: .relaxed)
            deliverConfirmationsInFlight()
        }
        guard confirmationsToLookAt, !confirmationsWaiting.isEmpty else { return }
        confirmationsToLookAt = false
        var stillWaiting: [Confirmation] = []
        for confirmation in confirmationsWaiting {
            if confirmation.prefixes.allSatisfy({ isForwarded($0, to: confirmation.outbox.id) }) {
                confirmationsInFlight.append(confirmation)
            } else {
                stillWaiting.append(confirmation)
            }
        }
        confirmationsWaiting = stillWaiting
        guard !confirmationsInFlight.isEmpty else { return }
        barriersAsked += 1
        let number = barriersAsked
        barrierInFlight = (number, SystemClock.monotonicNanoseconds())
        control.afterSubscriptionsApplied { [mailbox] in mailbox.post(.subscriptionsApplied(barrier: number)) }
    }

    /// `prefix` of client `id`'s, and those it holds that `prefix` falls under, go upstream now
    /// if they wait for the budget: a catch-up's reply is to vouch for them.
    private func subscribeNowIfWaiting(_ prefix: [UInt8], orWhatCovers id: ClientID) {
        for held in index.prefixes(of: id) where prefix.starts(with: held) { subscribeNowIfWaiting(held) }
    }

    /// A prefix that waits for the budget goes upstream now, charged to it: a catch-up needs it
    /// ahead of its marker, or the wider prefix its messages came through is going.
    private func subscribeNowIfWaiting(_ prefix: [UInt8]) {
        guard budget.cancel(prefix) else { return }
        confirmationsToLookAt = true
        budget.charge(now: SystemClock.monotonicNanoseconds())
        setUpstream(prefix, subscribed: true)
    }

    /// Subscribes the waiting prefixes whose turn has come, and starts the catch-ups that
    /// waited for the budget.
    private func subscribeWhatIsDue() {
        guard budget.waitingCount > 0 || turns.waiting > 0 else { return }
        let now = SystemClock.monotonicNanoseconds()
        for prefix in budget.due(now: now) {
            setUpstream(prefix, subscribed: true)
            confirmationsToLookAt = true
        }
        if turns.waiting > 0 { startTurns() }
        countUpstreamPrefixes()
    }

    /// Until the next thing due: 200 ms when nothing waits, less when the budget holds back
    /// prefixes or catch-ups (at least 1 ms).
    private func pollTimeoutMilliseconds() -> Int {
        let now = SystemClock.monotonicNanoseconds()
        // Catch-ups that wait for a place (not for the budget) start when a reply frees one.
        let catchUpsWaitForBudget =
            turns.waiting > 0 && turns.asking < ResumeTurns.places && !budget.allowsCatchUp(now: now)
        guard budget.waitingCount > 0 || catchUpsWaitForBudget else { return 200 }
        let nanoseconds = budget.untilNext(now: now)
        return Int(min(200, max(1, (nanoseconds + 999_999) / 1_000_000)))
    }

    /// A prefix no client wants any more: unsubscribed upstream once its linger is over. A
    /// client that comes back for a cached prefix meanwhile still gets its values: from the
    /// gateway's SNAPSHOT (`splitByCachedValues`), not from the broker's last value on subscribe.
    private func release(_ prefix: [UInt8]) {
        // Never subscribed upstream: nothing to undo.
        if budget.cancel(prefix) {
            confirmationsToLookAt = true
            return countUpstreamPrefixes()
        }
        for gone in linger.release(prefix, now: SystemClock.monotonicNanoseconds(), capacity: lingerRoom) {
            setUpstream(gone, subscribed: false)
        }
        countUpstreamPrefixes()
    }

    /// How many prefixes may linger: what `max_upstream_prefixes` leaves beside those clients
    /// hold (claimed, some still waiting for a catch-up's turn), so that the gateway's
    /// subscriptions at the broker stay within it.
    private var lingerRoom: Int { claims.limit - max(claims.count, index.distinctPrefixes) }

    private func setUpstream(_ prefix: [UInt8], subscribed: Bool) {
        try? sub.setOption(subscribed ? .subscribe : .unsubscribe, bytes: prefix)
        // Under a history prefix (or above one): the sequence markers too, for SSE ids.
        if historyPrefixes.contains(where: { PrefixMatcher.overlap($0, prefix) }) {
            try? sub.setOption(subscribed ? .subscribe : .unsubscribe, bytes: Self.sequenceMarkerPrefix + prefix)
        }
        countUpstreamPrefixes()
    }

    private func countUpstreamPrefixes() {
        counters.upstreamPrefixes.store(
            index.distinctPrefixes - budget.waitingCount + linger.count, ordering: .relaxed)
        counters.upstreamWaiting.store(budget.waitingCount, ordering: .relaxed)
        counters.upstreamDelayed.store(budget.delayed, ordering: .relaxed)
    }

    /// Where a client new to `prefixes` starts. Those that the last-value cache may hold values
    /// under start with the cached values (a SNAPSHOT round, as `zpub sub --snapshot` does),
    /// so that every page that opens shows the current state; the others go live at once (their
    /// catch-up would hold nothing, and would only delay them). The broker's own last value on
    /// subscribe would be no substitute: it would go only to a subscription new to the
    /// gateway's one SUB (the first client of a prefix), and hold the newest value under the
    /// prefix, not all of them; the broker sends the gateway none (`inProcess` in
    /// `handleSubscriptionFrame`).
    private func splitByCachedValues(_ prefixes: [[UInt8]]) -> (withValues: [[UInt8]], live: [[UInt8]]) {
        var withValues: [[UInt8]] = []
        var live: [[UInt8]] = []
        for prefix in prefixes {
            if overlapsCache([prefix]) { withValues.append(prefix) } else { live.append(prefix) }
        }
        return (withValues, live)
    }

    /// Whether the last-value cache may hold values under any of `prefixes`.
    private func overlapsCache(_ prefixes: [[UInt8]]) -> Bool {
        cacheEnabled && !ResumeScope.overlap(of: prefixes, with: cachedPrefixes ?? configuredCachePrefixes).isEmpty
    }

    // MARK: Messages: broker -> clients

    /// Reads up to a burst of what the SUB has; true when the burst was full (more may wait).
    @discardableResult
    private func receiveBurst(_ message: Message) -> Bool {
        backlogWatch.readStarts(control.brokerCatchUp)
        do {
            for _ in 0..<Self.burst {
                guard try sub.receive(into: message, dontWait: true) else {
                    backlogWatch.foundEmpty()
                    return false
                }
                var frames = [message.bytes]
                while message.hasMore {
                    _ = try sub.receive(into: message)
                    frames.append(message.bytes)
                }
                receive(frames)
            }
        } catch {
            logger.error("http gateway: receiving from the broker failed: \(error)")
            return false
        }
        // A full burst that emptied the SUB: the poller does not wake for it again.
        if !sub.hasInput { backlogWatch.foundEmpty() }
        return true
    }

    private static let burst = 1_024

    /// How long a client has, at the gateway's stop, to take what it was sent before its
    /// goodbye; one that has not is closed then, its goodbye sent 200 ms at most.
    static let goodbyePatience = TimeAmount.seconds(2)

    /// How long the gateway's stop waits for its clients to be gone: the patience, the
    /// goodbye's 200 ms, and some room.
    static let goodbyeWaitNanoseconds: UInt64 = 3_000_000_000

    /// The gateway's stop, inside the broker's, once its loop has drained and closed its
    /// sockets: what the broker forwarded until then (the drain's messages) is read to the
    /// end and offered to the clients, each client gets a goodbye behind it (a close frame
    /// 1001, or a last SSE `error` event `stopping`), and the link waits for them to be
    /// written, up to `goodbyeWaitNanoseconds`. Before, the gateway stopped first and its
    /// clients lost every message of the drain.
    private func finishClients(_ message: Message) {
        // The broker's XPUB is closed: this ends with what its pipe holds.
        if readingFromBroker { while receiveBurst(message) {} }
        if let waiting = waitingForSequence {
            waitingForSequence = nil
            deliver(waiting.frames, sequence: nil)
        }
        let reason = "zpubd is stopping: reconnect to another broker's gateway, or to this one once it is back"
        let outboxes = clients.values.map(\.outbox)
        for outbox in outboxes {
            outbox.closeAfterQueued(code: "stopping", reason, closeCode: 1001, patience: Self.goodbyePatience)
        }
        let channels = outboxes.map(\.channel)
        let start = SystemClock.monotonicNanoseconds()
        while channels.contains(where: \.isActive)
            && SystemClock.monotonicNanoseconds() &- start < Self.goodbyeWaitNanoseconds
        {
            usleep(10_000)
        }
        guard !channels.isEmpty else { return }
        // Otherwise the seconds between "forwarding stopped" and "zpubd stopped" went unexplained.
        let left = channels.filter(\.isActive).count
        let cutOff = outboxes.filter(\.wasCutOff).count
        let waited = (SystemClock.monotonicNanoseconds() &- start) / 1_000_000
        let told = channels.count - cutOff - left
        var line =
            "http gateway: \(told) client\(told == 1 ? "" : "s") sent what the broker forwarded and a goodbye (stopping) in \(waited) ms"
        if cutOff > 0 {
            line +=
                "; \(cutOff) that had not read it within \(Self.goodbyePatience.nanoseconds / 1_000_000_000) s closed without the rest"
        }
        if left > 0 { line += "; \(left) still connected are closed now" }
        logger.notice("\(line)")
    }

    /// Sorts what the SUB brings: snapshot markers, sequence markers (which number the kept
    /// message just before them), and messages, of which kept ones wait for their number.
    private func receive(_ frames: [[UInt8]]) {
        let topic = frames[0]
        if topic.starts(with: Self.markerPrefix) {
            // What came before the marker goes first (its sequence marker, sent right behind
            // it, would have come before this one: it was lost).
            if let waiting = waitingForSequence {
                waitingForSequence = nil
                deliver(waiting.frames, sequence: nil)
            }
            markerArrived(topic: topic, frames: frames)
            return  // markers are the gateway's and other snapshot clients' business, not browsers'
        }
        if topic.starts(with: Self.sequenceMarkerPrefix) {
            guard let waiting = waitingForSequence,
                topic.dropFirst(Self.sequenceMarkerPrefix.count).elementsEqual(waiting.frames[0])
            else { return }
            waitingForSequence = nil
            let sequence = frames.count > 1 ? UInt64(String(decoding: frames[1], as: UTF8.self)) : nil
            deliver(waiting.frames, sequence: sequence)
            return
        }
        if let waiting = waitingForSequence {
            waitingForSequence = nil
            deliver(waiting.frames, sequence: nil)
        }
        if historyPrefixes.contains(where: { topic.starts(with: $0) }) {
            waitingForSequence = (frames, SystemClock.monotonicNanoseconds())
        } else {
            deliver(frames, sequence: nil)
        }
    }

    /// Hands a message to every client that wants it; `sequence` is its history sequence, when
    /// known (its SSE id is then "h<sequence>").
    private func deliver(_ frames: [[UInt8]], sequence: UInt64?) {
        let topic = frames[0]
        messageNumber &+= 1
        if let sequence, sequence > lastHistorySequence { lastHistorySequence = sequence }
        counters.messagesIn.add(1, ordering: .relaxed)
        counters.bytesIn.add(UInt64(frames.reduce(0) { $0 + $1.count }), ordering: .relaxed)
        let matched = index.clients(matching: topic)
        guard !matched.isEmpty else { return }
        // A broker's backlog (one PAUSE held: RESUME's, a stop's drain) comes as fast as this
        // link reads it, and the broker paces it to the link, not to the clients behind it:
        // it may fill a client's queue as a resume's catch-up does (`resumeFactor` times
        // `client_queue`). Before, a backlog of 3,000 dropped 6 of 6 reading clients as too
        // slow after RESUME at the default client_queue (a walkthrough).
        let backlog = backlogWatch.isBacklog(control.brokerCatchUp, nowNanoseconds: SystemClock.monotonicNanoseconds)
        var webSocketItem: ClientOutbox.Item?
        var eventItem: ClientOutbox.Item?
        for id in matched {
            guard let client = clients[id] else { continue }
            let item: ClientOutbox.Item
            switch client.outbox.kind {
            case .webSocket:
                if webSocketItem == nil {
                    webSocketItem = .webSocket(frames, sequence: sequence)
                }
                item = webSocketItem!
            case .serverSentEvents:
                if eventItem == nil {
                    let id =
                        sequence.map(WireFormat.historyEventID)
                        ?? WireFormat.eventID(sequence: watermark, number: messageNumber, history: lastHistorySequence)
                    eventItem = .event(
                        WireFormat.chunk(
                            WireFormat.serverSentEvent(
                                id: id, event: nil, data: WireFormat.sseData(frames, sequence: sequence))))
                }
                item = eventItem!
            }
            if let resume = client.resume {
                var held = HeldLive(topic: topic, item: item)
                if sequence == nil, client.outbox.kind == .serverSentEvents {
                    held.unkept = .init(
                        frames: frames, cacheSequence: watermark, number: messageNumber, history: lastHistorySequence)
                }
                deliverResuming(id, round: resume.token, held, backlog: backlog)
            } else if !client.outbox.offer(item, catchingUp: backlog) {
                drop(id)
            }
        }
    }

    /// A live message for a client still catching up: delivered, skipped or held as its
    /// round decides; a client holding more than its catch-up allowance (`resumeFactor` times
    /// its queue's limit, which the held messages share with the replay) is dropped as too
    /// slow. Held beyond the limit alone, a round of a few pages at 5,000 messages a second
    /// dropped a client that had not yet been sent anything.
    private func deliverResuming(_ id: ClientID, round token: String, _ held: HeldLive, backlog: Bool) {
        guard var round = rounds[token], let outbox = clients[id]?.outbox else { return }
        let now = round.catchUp.received(topic: held.topic, held)
        rounds[token] = round
        if let now {
            // After the replay's reply and before its marker: the client has what it replayed.
            let item = round.replayedThrough.map { now.item(historyAtLeast: $0) } ?? now.item
            if !outbox.offer(item, catchingUp: backlog) { drop(id) }
        } else if round.catchUp.heldCount > outbox.limit * ClientOutbox.resumeFactor {
            drop(id)
        }
    }

    /// A client whose queue is full: counted, told why, disconnected.
    private func drop(_ id: ClientID) {
        guard let client = disconnect(id) else { return }
        counters.droppedSlow.add(1, ordering: .relaxed)
        client.outbox.closeTooSlow()
        logger.info(
            "http gateway: dropped a \(client.outbox.kind.rawValue) client that fell \(client.outbox.limit) messages behind (client_queue)"
        )
    }

    /// Forgets a client that left or that the gateway disconnects (its prefixes, upstream
    /// subscriptions it alone held, its queue, its turn and its catch-up); when the gateway
    /// disconnects it, the caller tells it why.
    private func disconnect(_ id: ClientID) -> Client? {
        guard let client = clients.removeValue(forKey: id) else { return nil }
        for prefix in index.removeAll(id) { release(prefix) }
        confirmationsWaiting.removeAll { $0.outbox.id == id }
        client.outbox.close()
        turns.leave(id)
        counters.resumesWaiting.store(turns.waiting, ordering: .relaxed)
        if let token = client.resume?.token { abandonRound(token) }
        return client
    }

    /// A client left during its catch-up: nothing more is asked for it (a replay of a busy
    /// prefix would otherwise page on for nobody). A round waiting for a reply ends when the
    /// reply comes: its marker subscription must stay until then, since a REPLAY or SNAPSHOT
    /// whose marker subscription is gone waits for it on the control thread, up to 5 s. A round
    /// waiting only for its marker ends now.
    private func abandonRound(_ token: String) {
        guard var round = rounds[token] else { return }
        if round.holdsPlace {
            round.abandoned = true
            rounds[token] = round
        } else {
            rounds[token] = nil
            try? sub.setOption(.unsubscribe, bytes: round.catchUp.markerTopic)
        }
    }

    // MARK: Snapshots, resumes and the event-id watermark

    /// Queues a client's catch-up and starts those whose turn it is.
    private func waitForTurn(_ id: ClientID) {
        turns.wait(id)
        startTurns()
    }

    /// Starts waiting catch-ups while `ResumeTurns` has places free and the budget of new
    /// subscriptions is not in debt: each costs the broker a marker subscription and a request
    /// (charged as one), and its new prefixes.
    private func startTurns() {
        while budget.allowsCatchUp(now: SystemClock.monotonicNanoseconds()), let id = turns.next() {
            guard var client = clients[id], client.resume == nil, let next = client.takeNextResume() else { continue }
            let confirmations = client.confirmationsNoLongerWaiting(after: next.prefixes)
            clients[id] = client
            budget.charge(now: SystemClock.monotonicNanoseconds())
            for prefix in next.prefixes { subscribe(id, prefix, catchingUp: true) }
            // The other prefixes of the subscribes this catch-up answers go ahead of its marker
            // too, so that its reply vouches for them as well.
            for confirmation in confirmations {
                for prefix in confirmation.prefixes { subscribeNowIfWaiting(prefix, orWhatCovers: id) }
            }
            startResume(id, from: next.point, prefixes: next.prefixes, confirmations: confirmations)
        }
        counters.resumesWaiting.store(turns.waiting, ordering: .relaxed)
    }

    /// An SSE reconnection whose id carries both positions (an unkept event's): the prefixes
    /// history keeps any of resume from the history sequence, exactly, first; the others
    /// from the cache position (`rest`) after them, subscribed only then. False when none of
    /// the prefixes is under history (the cache position alone then).
    private func resumeKeptExactly(
        _ id: ClientID, _ prefixes: [[UInt8]], after sequence: UInt64, rest: ResumePoint
    ) -> Bool {
        let kept = prefixes.filter { !ResumeScope.overlap(of: [$0], with: historyKept).isEmpty }
        guard !kept.isEmpty else { return false }
        clients[id]!.firstResume = (kept, .history(after: sequence))
        let others = prefixes.filter { !kept.contains($0) }
        if !others.isEmpty { clients[id]!.pending.add(others, from: rest) }
        return true
    }

    /// A round that catches `id` up on `prefixes`, asking only for what they can hold
    /// (`ResumeScope`).
    private func startResume(
        _ id: ClientID, from point: ResumePoint, prefixes: [[UInt8]], confirmations: [Confirmation]
    ) {
        let token: String
        switch point {
        case .lastValue:
            token = startRound(
                client: id, snapshotOf: ResumeScope.snapshotPrefix(for: prefixes, cached: cachedPrefixes))
        case .history(let after):
            let limit = (clients[id]?.outbox.limit ?? 1) * ClientOutbox.resumeFactor - 2
            token = startRound(
                client: id,
                replay: HistoryReplay(
                    after: after, wanted: prefixes, kept: historyKept, limit: limit,
                    numberingRestarts: historyNumberingRestarts))
        }
        turns.started()
        clients[id]?.resume = Resume(
            token: token, point: point, prefixes: prefixes, historyAtStart: lastHistorySequence,
            confirmations: confirmations)
        counters.resumes.add(1, ordering: .relaxed)
    }

    private func startWatermarkRoundIfDue(now: UInt64) {
        guard counters.sseClients.load(ordering: .relaxed) > 0 else { return }
        if !cacheEnabled {
            // The cache may be switched on by a reload: look again now and then.
            guard now &- lastCacheCheck > 30_000_000_000 else { return }
            lastCacheCheck = now
            cacheEnabled = true
        }
        guard now &- lastWatermarkRound > Self.watermarkIntervalNanoseconds,
            !rounds.values.contains(where: { $0.client == nil })
        else { return }
        lastWatermarkRound = now
        // "$zpub/" matches no cached topic: only the marker's sequence is wanted.
        _ = startRound(client: nil, snapshotOf: Array("$zpub/".utf8))
    }

    /// Subscribes to a fresh marker topic and asks for a SNAPSHOT of the cached values under
    /// `prefix` (docs/last-value.md).
    private func startRound(client: ClientID?, snapshotOf prefix: [UInt8]) -> String {
        let catchUp = newCatchUp()
        rounds[catchUp.token] = Round(
            client: client, catchUp: catchUp, reload: reloads, snapshotPrefix: prefix, holdsPlace: client != nil)
        ask(
            ControlRequest(command: .snapshot, argument: Array("\(catchUp.token) ".utf8) + prefix), round: catchUp.token
        )
        return catchUp.token
    }

    /// Subscribes to a fresh marker topic and asks for the REPLAY that starts `replay`
    /// (docs/history.md); its HISTORY pages follow as the replies come.
    private func startRound(client: ClientID, replay: HistoryReplay) -> String {
        let catchUp = newCatchUp()
        rounds[catchUp.token] = Round(client: client, catchUp: catchUp, replay: replay, holdsPlace: true)
        let (since, prefix) = replay.replayArguments
        ask(
            ControlRequest(command: .replay, argument: Array("\(catchUp.token) \(since) ".utf8) + prefix),
            round: catchUp.token)
        return catchUp.token
    }

    private func newCatchUp() -> SnapshotCatchUp<HeldLive> {
        nextToken += 1
        let catchUp = SnapshotCatchUp<HeldLive>(token: tokenPrefix + String(nextToken))
        try? sub.setOption(.subscribe, bytes: catchUp.markerTopic)
        return catchUp
    }

    private func ask(_ request: ControlRequest, round token: String) {
        let mailbox = self.mailbox
        control.submit(request) { result in mailbox.post(.snapshotReplied(token: token, result)) }
    }

    private func markerArrived(topic: [UInt8], frames: [[UInt8]]) {
        let token = String(decoding: topic.dropFirst(Self.markerPrefix.count), as: UTF8.self)
        guard var round = rounds[token] else { return }
        round.catchUp.markerReceived(frames: frames)
        // The watermark counts the cache's updates (ids of cached topics resume from it); a
        // REPLAY's marker carries a history sequence, another counter, which made a client's
        // later Last-Event-ID skip every cache update below it.
        if round.replay == nil, let sequence = round.catchUp.markerSequence { watermark = max(watermark, sequence) }
        // A REPLAY's marker: every kept message numbered up to it that this gateway receives
        // has passed (live, in order before it, any waiting for its own sequence marker
        // flushed by `receive` first), so unkept events' ids may say so, also before any kept
        // message passes live (after a restart, say). Not at the reply, which can come first.
        if round.replay != nil, let sequence = round.catchUp.markerSequence, sequence > lastHistorySequence {
            lastHistorySequence = sequence
        }
        try? sub.setOption(.unsubscribe, bytes: topic)
        rounds[token] = round
        finishRoundIfDone(token)
    }

    /// The broker sends a round's marker without waiting (it never blocks its loop on the
    /// gateway), so when the gateway's queue from it is full the marker is lost. Its round would
    /// then wait for ever, skipping every live message on the topics its reply covers. Ten
    /// seconds after the reply, the marker is taken as lost: a client's round ends by
    /// disconnecting the client, whose reconnection (EventSource's own, with its Last-Event-ID)
    /// resumes exactly; a watermark round just ends.
    static let markerWaitNanoseconds: UInt64 = 10_000_000_000

    private func expireRoundsWithoutMarker(now: UInt64) {
        for (token, round) in rounds {
            guard let replied = round.repliedBeforeMarker, now &- replied > Self.markerWaitNanoseconds else { continue }
            rounds[token] = nil
            try? sub.setOption(.unsubscribe, bytes: round.catchUp.markerTopic)
            counters.markersLost.add(1, ordering: .relaxed)
            logger.warning(
                "http gateway: a catch-up's marker did not come within 10 s of its reply (the broker's queue to the gateway was full?); \(round.client == nil ? "the event-id watermark waits for the next round" : "its client is disconnected to resume again")"
            )
            guard let id = round.client, let client = disconnect(id) else { continue }
            client.outbox.closeWithError(
                code: "resume_again",
                "the catch-up could not be joined to the live stream (the gateway fell behind); reconnect to resume",
                closeCode: 1013)
        }
    }

    private func snapshotReplied(token: String, _ result: Result<ControlReply, ControlUnavailable>) {
        guard var round = rounds[token] else { return }
        if round.abandoned {
            rounds[token] = nil
            // The broker has answered: no request waits for this subscription any more (and
            // when the marker came already, it was unsubscribed then: this does nothing).
            try? sub.setOption(.unsubscribe, bytes: round.catchUp.markerTopic)
            return freePlace(of: round)
        }
        // The broker served the request once it had the round's marker subscription, and so
        // every prefix subscribed before it: the subscribes this catch-up answers are answered,
        // ahead of its values. (On a failure too: the client is told why next, and its
        // requests must not wait for ever.)
        if let id = round.client, let resume = clients[id]?.resume, resume.token == token,
            !resume.confirmations.isEmpty
        {
            clients[id]!.resume!.confirmations = []
            for confirmation in resume.confirmations { deliver(confirmation) }
        }
        let release: SnapshotCatchUp<HeldLive>.Release
        if case .success(let reply) = result, var replay = round.replay, let step = replay.take(reply) {
            round.replay = replay
            if case .replay = reply { historyKept = replay.keptPrefixes.map { Array($0.utf8) } }
            if let argument = step.historyArgument {
                rounds[token] = round
                ask(ControlRequest(command: .history, argument: argument), round: token)
                return
            }
            release = round.catchUp.replied(entries: replay.entries, covering: replay.covering)
            round.replayedThrough = replay.through
            round.numberingStartedAfter = replay.numberingStartedAfter
        } else if case .success(.snapshot(let reply)) = result, round.replay == nil {
            // A Last-Event-ID above every sequence this cache has given is another numbering's
            // (zpubd restarted without a state directory: its cache numbers from 1 again) or a
            // made-up one: every value is news. Taken as a position, it withheld them all.
            if let id = round.client, let resume = clients[id]?.resume, resume.token == token,
                case .lastValue(let after) = resume.point, after > reply.sequence
            {
                clients[id]!.resume!.point = .lastValue(after: 0)
            }
            let cached = reply.prefixes.map { Array($0.utf8) }
            if round.reload == reloads {
                cachedPrefixes = cached
                cacheEnabled = !cached.isEmpty
            }
            // The prefix asked was chosen with the cache's prefixes as the gateway knew them; a
            // reload may have added one the client wants since, which the reply now names.
            if !round.redone, let id = round.client, let wanted = clients[id]?.resume?.prefixes,
                let prefix = ResumeScope.snapshotPrefixToRedo(asked: round.snapshotPrefix, for: wanted, cached: cached)
            {
                return redoSnapshot(round, token: token, client: id, prefix: prefix)
            }
            // Live messages before the marker are in what the client gets only under the prefix
            // asked for and its prefixes in this round: the reply is cut to those (wider when
            // the SNAPSHOT asked under their common prefix), and the live messages on its other
            // prefixes must come through.
            let wanted = round.client.flatMap { clients[$0]?.resume?.prefixes } ?? [round.snapshotPrefix]
            let covering = ResumeScope.overlap(of: wanted, with: cached).filter {
                $0.starts(with: round.snapshotPrefix)
            }
            release = round.catchUp.replied(
                entries: reply.entries, covering: covering.map { String(decoding: $0, as: UTF8.self) })
        } else {
            release = round.catchUp.failed()
            try? sub.setOption(.unsubscribe, bytes: round.catchUp.markerTopic)
            let reason: String
            switch result {
            case .success(let reply): reason = reply.failure?.message ?? "?"
            case .failure(let error): reason = "\(error)"
            }
            logger.warning("http gateway: SNAPSHOT, REPLAY or HISTORY failed: \(reason)")
            // Never silence. A replay that may work when asked again (a timeout, a busy broker)
            // ends an SSE client's connection: EventSource reconnects by itself with the same
            // Last-Event-ID and resumes exactly, where live events alone would carry ids past
            // the messages it never got. Otherwise the client is told, and gets live messages.
            // Nor does a store that cannot be read (a damaged block, a failing disk: the
            // operator's to see to): EventSource came back with the same id and met it again,
            // for ever, with no live message between (a walkthrough, 2026-12-06).
            let permanent: Bool
            if case .success(let reply) = result,
                reply.failure?.code == .historyOff || reply.failure?.code == .historyReadFailed
            {
                permanent = true
            } else {
                permanent = round.replay == nil
            }
            if let id = round.client, let outbox = clients[id]?.outbox {
                let text = WireFormat.errorJSON(code: "replay_failed", reason)
                switch outbox.kind {
                case .webSocket:
                    if !outbox.offer(.webSocketText(text), catchingUp: true) { drop(id) }
                case .serverSentEvents where permanent:
                    let event = WireFormat.serverSentEvent(id: nil, event: "error", data: Array(text.utf8))
                    if !outbox.offer(.event(WireFormat.chunk(event)), catchingUp: true) { drop(id) }
                case .serverSentEvents:
                    if let client = disconnect(id) {
                        client.outbox.closeWithError(
                            code: "resume_again", "the replay failed (\(reason)); reconnect to resume", closeCode: 1013)
                    }
                }
            }
        }
        if !round.catchUp.isComplete { round.repliedBeforeMarker = SystemClock.monotonicNanoseconds() }
        let placeHeld = round
        round.holdsPlace = false
        rounds[token] = round
        if let id = round.client { deliverRelease(release, gap: round.replay?.gap, to: id) }
        finishRoundIfDone(token)
        freePlace(of: placeHeld)
    }

    /// Asks a client's SNAPSHOT again, under `prefix`, because its reply lacks values the client
    /// wants (`ResumeScope.snapshotPrefixToRedo`). A new round (a new marker) takes over the
    /// client's place in `ResumeTurns` and the live messages the old one held: all came before
    /// the new marker, since it is asked only now, so the new reply sorts them as any held
    /// before its marker (skipped where it has their topic's value, delivered otherwise). The
    /// old reply is dropped: the new one has what it had, or newer.
    private func redoSnapshot(_ old: Round, token: String, client id: ClientID, prefix: [UInt8]) {
        var old = old
        rounds[token] = nil
        // Its reply is in: no request waits for its marker subscription any more.
        try? sub.setOption(.unsubscribe, bytes: old.catchUp.markerTopic)
        let held = old.catchUp.failed().items
        let newToken = startRound(client: id, snapshotOf: prefix)
        rounds[newToken]!.redone = true
        for live in held { _ = rounds[newToken]!.catchUp.received(topic: live.topic, live) }
        if clients[id]?.resume != nil {
            clients[id]!.resume!.token = newToken
        }
    }

    /// A client's round has its last reply: the next catch-up may ask.
    private func freePlace(of round: Round) {
        guard round.holdsPlace else { return }
        turns.finished()
        startTurns()
    }

    private func finishRoundIfDone(_ token: String) {
        guard let round = rounds[token], round.catchUp.isComplete else { return }
        rounds[token] = nil
        guard let id = round.client, clients[id] != nil else { return }
        clients[id]!.resume = nil
        // The next WebSocket catch-up of this client, if one waits: at the back of the queue.
        if clients[id]!.hasResumeWaiting { waitForTurn(id) }
    }

    /// What of a round's reply goes to its client: the entries under the client's prefixes (the
    /// SNAPSHOT asked under their common prefix), newer than its Last-Event-ID. Of cached
    /// values, as many as `room` (what the catch-up's allowance leaves, after what is queued
    /// and the live messages held meanwhile), the newest. A client of more cached topics than
    /// that was dropped as too slow, and reconnected to be dropped again; it now gets the
    /// newest values, whose ids resume it from there. (A REPLAY is bounded when it is asked:
    /// `HistoryReplay`'s limit.) Also how many cached values did not fit, which the client is
    /// told (`truncated`). Of kept messages too, as many as `room`, the newest: the replay's
    /// limit leaves no room for the live messages held while it was read (at 5,000 a second, a
    /// client with client_queue = 300 and 5,000 behind was dropped as too slow in 3 of 6 tries,
    /// reading as fast as they came); the older ones join the gap (`leftOutOfHistory`).
    private static func entriesToSend(
        _ entries: [MessageJSON], for resume: Resume, room: Int
    ) -> (entries: ArraySlice<(MessageJSON, [[UInt8]])>, leftOut: Int, leftOutOfHistory: HistoryReply.Gap?) {
        var sent: [(MessageJSON, [[UInt8]])] = []
        for entry in entries {
            if case .lastValue(let after) = resume.point, entry.sequence <= after { continue }
            guard let frames = entry.messageFrames, resume.prefixes.contains(where: { frames[0].starts(with: $0) })
            else { continue }
            sent.append((entry, frames))
        }
        let room = max(0, room)
        guard sent.count > room else { return (sent[...], 0, nil) }
        let leftOut = sent.count - room
        guard case .lastValue = resume.point else {
            let gap = HistoryReply.Gap(from: sent[0].0.sequence, to: sent[leftOut - 1].0.sequence)
            return (sent.suffix(room), 0, gap)
        }
        return (sent.suffix(room), leftOut, nil)
    }

    /// Sends a resuming client what it missed under its prefixes (cached values newer than its
    /// Last-Event-ID, or every kept message after it, and a `gap` for what history no longer
    /// keeps; a WebSocket client then gets `caught_up`), then the live messages its round
    /// released.
    private func deliverRelease(
        _ release: SnapshotCatchUp<HeldLive>.Release, gap: HistoryReply.Gap?, to id: ClientID
    ) {
        guard let client = clients[id], let resume = client.resume else { return }
        var items: [ClientOutbox.Item] = []
        // Room in the catch-up's allowance, less the held messages and the notices: a `gap` or
        // a `truncated`, and a WebSocket's `caught_up`.
        let isHistory = if case .history = resume.point { true } else { false }
        let notices =
            (client.outbox.kind == .webSocket && isHistory ? 2 : 1)
            + (rounds[resume.token]?.numberingStartedAfter == nil ? 0 : 1)
        let room =
            client.outbox.limit * ClientOutbox.resumeFactor - client.outbox.queuedCount - release.items.count - notices
        let (entries, leftOut, leftOutOfHistory) = Self.entriesToSend(release.entries, for: resume, room: room)
        // A catch-up whose prefixes the client has all unsubscribed meanwhile tells nothing: its
        // `caught_up` came before the messages of a catch-up the client asked for since, with
        // a `through` above them (a client that stored it would have skipped them).
        let cancelled = resume.prefixes.isEmpty
        let gap = cancelled ? nil : leftOutOfHistory.map { HistoryReplay.union(gap, $0) } ?? gap
        let gapJSON = gap.map { #"{"type":"gap","from":\#($0.from),"to":\#($0.to)}"# }
        // Never silence: what was published between the client's last message and the restart
        // is gone with the broker's memory, and nothing can say how much.
        let restartedJSON = rounds[resume.token]?.numberingStartedAfter.map { after in
            WireFormat.errorJSON(
                code: "numbering_started_again",
                "history's numbering started again since h\(after) (zpubd restarted without its state directory?): what was published between your last message and the restart is lost; every message kept since follows"
            )
        }
        // Cached values that did not fit, the oldest: said, never silence (as history's `gap`).
        let truncatedJSON = leftOut > 0 ? #"{"type":"truncated","left_out":\#(leftOut)}"# : nil
        if client.outbox.kind == .webSocket {
            if let restartedJSON { items.append(.webSocketText(restartedJSON)) }
            if let gapJSON { items.append(.webSocketText(gapJSON)) }
            if let truncatedJSON { items.append(.webSocketText(truncatedJSON)) }
            // `seq` is a history sequence (what `since` takes): a cached value has none.
            for (entry, frames) in entries {
                items.append(.webSocket(frames, sequence: isHistory ? entry.sequence : nil))
            }
            if case .history = resume.point, !cancelled, let through = rounds[resume.token]?.replayedThrough {
                items.append(.webSocketText(#"{"type":"caught_up","through":\#(through)}"#))
            }
        } else {
            if let restartedJSON {
                items.append(
                    .event(
                        WireFormat.chunk(
                            WireFormat.serverSentEvent(id: nil, event: "error", data: Array(restartedJSON.utf8)))))
            }
            appendServerSentEvents(
                to: &items, gap: gapJSON, truncated: truncatedJSON, entries, from: resume.point,
                history: resume.historyAtStart)
        }
        // What it missed: the values and messages, not the notices.
        counters.resumedValues.add(UInt64(entries.count), ordering: .relaxed)
        // Of a cancelled catch-up, only the held messages of prefixes the client still holds:
        // one it subscribes again waits for a catch-up of its own, which has the others.
        let held = cancelled ? index.prefixes(of: id) : []
        let released =
            cancelled ? release.items.filter { item in held.contains { item.topic.starts(with: $0) } } : release.items
        if let through = rounds[resume.token]?.replayedThrough {
            items += released.map { $0.item(historyAtLeast: through) }
        } else {
            items += released.map(\.item)
        }
        for item in items where !client.outbox.offer(item, catchingUp: true) {
            drop(id)
            return
        }
        counters.valuesLeftOut.add(UInt64(leftOut), ordering: .relaxed)
    }

    /// A catch-up as SSE events: the notices, then each value or kept message with its id.
    private func appendServerSentEvents(
        to items: inout [ClientOutbox.Item], gap gapJSON: String?, truncated truncatedJSON: String?,
        _ entries: ArraySlice<(MessageJSON, [[UInt8]])>, from point: ResumePoint, history: UInt64
    ) {
        if let gapJSON {
            items.append(
                .event(WireFormat.chunk(WireFormat.serverSentEvent(id: nil, event: "gap", data: Array(gapJSON.utf8)))))
        }
        if let truncatedJSON {
            items.append(
                .event(
                    WireFormat.chunk(
                        WireFormat.serverSentEvent(id: nil, event: "truncated", data: Array(truncatedJSON.utf8)))))
        }
        for (entry, frames) in entries {
            let eventID: String
            var historySequence: UInt64?
            switch point {
            case .lastValue:
                eventID = WireFormat.eventID(sequence: entry.sequence, number: 0, history: history)
            case .history:
                eventID = WireFormat.historyEventID(entry.sequence)
                historySequence = entry.sequence
            }
            items.append(
                .event(
                    WireFormat.chunk(
                        WireFormat.serverSentEvent(
                            id: eventID, event: nil, data: WireFormat.sseData(frames, sequence: historySequence))
                    ))
            )
        }
    }
}
