import Logging
import Synchronization
import Systemd
import ZPubCore
import ZPubStore
import ZeroMQ

/// What the forwarding loop can be asked to do, from other threads, through its mailbox.
enum LoopCommand: Sendable {
    /// Send back a copy of the broker's state, tables included, for SUBSCRIPTIONS and TOPICS.
    /// Taking it is cheap (copy-on-write), but the loop's next change to a table then copies
    /// that whole table on the forwarding thread: only requests that list a table ask for it.
    case snapshot(ReplySlot<BrokerState>)
    /// Send back the counters (STATS, HEALTH): built on the loop, no table is copied.
    case stats(ReplySlot<StatsSnapshot>)
    /// Stop or restart reading producers' sockets; messages wait in libzmq's queues meanwhile.
    case setPaused(Bool, ReplySlot<ForwardingState>)
    /// Apply a reloaded configuration: limits, socket options, endpoints. Replies with what
    /// could not be bound.
    /// `revoked`: the sockets whose allow lists no longer let in every client they did.
    case reconfigure(
        BrokerConfiguration, serverKey: CurveKey?, revoked: Set<BrokerSocketRole>, ReplySlot<ReloadOutcome>)
    /// Forward what producers already sent (for up to `shutdown_drain_ms`), then return.
    case stop
    /// A second SIGTERM or SIGINT: end the drain now (or have none, if the stop is yet to come).
    case endDrain
    /// Test hook: block the loop for this long, as a hung loop would (see `ZPUBD_TEST_HOOKS`).
    case stall(milliseconds: Int)
    /// SNAPSHOT: once the client's marker subscription has arrived, copy the cached values
    /// under the prefix and publish the marker (see `SnapshotReply`).
    case snapshotValues(token: String, prefix: [UInt8], ReplySlot<CapturedSnapshot>)
    /// REPLAY: once the client's marker subscription has arrived, publish the marker with the
    /// last sequence assigned, and have the history writer read what was kept after `since`
    /// up to it (the writer fulfills the slot, after writing everything handed over before).
    case replay(token: String, since: UInt64, prefix: [UInt8], ReplySlot<Result<HistoryReply, ControlError>>)
    /// A pair (`PairLink`): the next sequence this broker would assign and how many
    /// subscribers are connected to its XPUB (the clients that may vote for a takeover).
    case pairQuery(ReplySlot<PairLoopView>)
    /// A pair: kept messages mirrored from the active peer, in order, with their sequences.
    /// Mirrored messages, from a HISTORY reply that answered `since <after>`.
    case replicate([StoredMessage], after: UInt64)
    /// A pair (active side): the cached last values stored after this cache sequence.
    case lastValues(since: UInt64, ReplySlot<(entries: [LastValueCache.Entry], more: Bool)>)
    /// A pair (passive side): last values mirrored from the active peer.
    case restoreValues([LastValueCache.Entry])
    /// A pair: become the active broker: bind the producers' endpoints, forward, and assign
    /// sequences from `nextSequence` at least. Replies with what could not be bound.
    /// `unusedAbove`: the peer handed over every number it gave, through this one; those
    /// skipped above it were never used (`HistoryStore.expectTakeover`).
    case pairActivate(nextSequence: UInt64, unusedAbove: UInt64?, ReplySlot<[BrokerError]>)
    /// A pair: this broker must give up being active (it stops next): unbind the producers'
    /// endpoints at once (`standDown`).
    case pairStandDown(ReplySlot<Bool>)
    /// A pair's primary, active beside a backup that took over while it was silent: number from
    /// here on (its history's reserve covers it already), above everything the backup numbered.
    case pairNumberFrom(UInt64)
    /// A connection event of PULL, XSUB or XPUB, read by `ConnectionEventReader` (which has fed
    /// the descriptor guard already): peer counts, upstream states, the log.
    case connectionEvent(BrokerSocketRole, MonitorEvent, accepted: SubscriberReachability.Accepted? = nil)
    /// The reader has added events up (`ConnectionEventBacklog`): take them from there.
    case connectionEventSummary
    /// Call back once every subscription frame that had reached the XPUB when this was posted
    /// is read and applied: the HTTP gateway's barrier, so that it tells a client `subscribed`
    /// only once the broker forwards the prefix (its SUB's subscription is asynchronous). The
    /// callback runs on the loop: it may only hand over (post to a mailbox).
    case afterSubscriptionsApplied(@Sendable () -> Void)
}

extension LoopCommand {
    /// Wakes whoever waits for this command's reply (`ReplySlot.abandon`): the loop stopped
    /// before it took the command. A barrier's callback runs: there is nothing left to apply.
    func abandon() {
        switch self {
        case .snapshot(let slot): slot.abandon()
        case .stats(let slot): slot.abandon()
        case .setPaused(_, let slot): slot.abandon()
        case .reconfigure(_, _, _, let slot): slot.abandon()
        case .snapshotValues(_, _, let slot): slot.abandon()
        case .replay(_, _, _, let slot): slot.abandon()
        case .pairQuery(let slot): slot.abandon()
        case .lastValues(_, let slot): slot.abandon()
        case .pairActivate(_, _, let slot): slot.abandon()
        case .pairStandDown(let slot): slot.abandon()
        case .afterSubscriptionsApplied(let done): done()
        case .stop, .endDrain, .stall, .replicate, .restoreValues, .pairNumberFrom, .connectionEvent,
            .connectionEventSummary:
            break
        }
    }
}

/// What the pair link learns from the loop at each heartbeat.
struct PairLoopView: Sendable {
    var nextSequence: UInt64
    var subscribers: Int
    /// When `subscribers` was counted (monotonic clock).
    var countedAtNanoseconds: UInt64
    /// Mirroring stopped here since the last look: the next mirrored message did not fit in the
    /// history queue, and the pair link must ask again from this sequence.
    var mirrorStoppedAfter: UInt64?
    /// Producers' endpoints of the configuration this active broker has not bound (its
    /// takeover's or a reload's bind failed).
    var unboundProducerEndpoints: [String] = []
}

/// What waits for a client's marker subscription: a SNAPSHOT or a REPLAY.
enum MarkerRequest {
    case snapshot(prefix: [UInt8], ReplySlot<CapturedSnapshot>)
    case replay(since: UInt64, prefix: [UInt8], ReplySlot<Result<HistoryReply, ControlError>>)
}

/// Cached values under a prefix, copied by the loop at the marker; the control server sorts
/// and encodes them (so that the sort, base64 and JSON work stay off the forwarding thread).
struct CapturedSnapshot: Sendable {
    /// In the cache's table order.
    let unsortedEntries: [LastValueCache.Entry]
    let sequence: UInt64
    let prefixes: [[UInt8]]

    /// The values, oldest update first, as SNAPSHOT replies them: sorted at each call.
    func sortedEntries() -> [LastValueCache.Entry] { unsortedEntries.sorted { $0.sequence < $1.sequence } }
}

/// What other threads may touch of the forwarding loop: its mailbox, its heartbeat, the flag it
/// raises once running, and the descriptor guard it feeds.
final class ForwardingLoopHandle: Sendable {
    let mailbox = Mailbox<LoopCommand>()
    /// Set once the loop is running: the daemon tells systemd READY=1 only after that.
    let started = ConditionFlag()
    /// Monotonic time of the last completed iteration, read by HEALTH on another thread.
    let lastIterationNanoseconds = Atomic<UInt64>(0)
    /// Near the end of the file descriptors: pauses new TCP connections. The connection event
    /// reader feeds it monitor events; its own thread (started by `Broker`) probes.
    let descriptorGuard: DescriptorGuard
    /// Bounds what the connection event reader queues in `mailbox` while the loop is behind.
    let connectionEvents = ConnectionEventBacklog()
    /// The `[history] prefixes` the loop keeps by (a reload changes them, once the loop has
    /// applied it): the pair link's heartbeats carry their digest (`PairLink`).
    let historyPrefixes = Locked<[String]>([])

    /// One of a pair: what `PairLink` last knew (nil for a single broker).
    let pairStatus = Locked<PairStatus?>(nil)
    /// The last sequence the loop gave, set when it has stopped: what a pair's active broker
    /// waits for its peer to have mirrored before it stops reporting (`PairLink`).
    let lastSequenceGiven = Atomic<UInt64>(0)
    /// Set once the loop has stopped: requests that ask it (STATS, HEALTH...) are answered at
    /// once rather than after `ControlResponder.loopReplyTimeoutMilliseconds` each, which held
    /// the control thread, and so the exit, for minutes under a monitor's steady requests.
    let stopped = Atomic<Bool>(false)
    /// Posts to the loop. Once it has stopped (its mailbox closed), the command's reply slot is
    /// abandoned instead: its waiter is answered at once, not at its timeout.
    func post(_ command: LoopCommand) {
        if !mailbox.post(command) { command.abandon() }
    }

    /// Set while a catch-up of a held backlog runs (RESUME's, a stop's), and when the last
    /// one ended (monotonic ns; 0: none yet): `BrokerControl.catchUp`. Not the start
    /// hold's: it is for ZeroMQ subscribers coming back, and what producers send as zpubd
    /// starts, live traffic, went through it (a slow gateway client was then allowed 20
    /// times its queue, and not dropped).
    let catchingUp = Atomic<Bool>(false)
    let catchUpEndedNanoseconds = Atomic<UInt64>(0)
    /// When the loop closed its sockets (monotonic ns; 0: not yet), and with which linger:
    /// `Broker.stop` tells whether the context's end waited the linger out.
    let socketsClosedNanoseconds = Atomic<UInt64>(0)
    let lingerAtCloseMilliseconds = Atomic<Int>(0)
    /// Set as the stop begins, before the loop takes it: HEALTH says "stopping" from the
    /// signal on (it said "paused" or "ok" until the loop's next turn).
    let stopAsked = Atomic<Bool>(false)
    /// Test hook: `stallIdle`, `stallHeld` while a stall holds the loop, `stallReleased` once
    /// another SIGUSR2 asked it to end early (a test done with the stall needs not wait it out).
    let stall = Atomic<Int>(ForwardingLoopHandle.stallIdle)
    static let stallIdle = 0
    static let stallHeld = 1
    static let stallReleased = 2

    init(logger: Logger) {
        descriptorGuard = DescriptorGuard(logger: logger)
        lastIterationNanoseconds.store(SystemClock.monotonicNanoseconds(), ordering: .relaxed)
    }
}

/// The heart of the broker. Runs on its own thread and owns the PULL, XSUB and XPUB sockets
/// and the `BrokerState`; nothing else touches them (the type is not `Sendable`: it moves to
/// its thread as a `sending` value, and other threads hold only its `handle`).
///
/// Each iteration polls the three sockets and the mailbox, then moves bounded bursts:
/// data messages PULL/XSUB -> XPUB (every frame, whole and unchanged) and subscription frames
/// XPUB -> XSUB. Every socket call is non-blocking: XPUB drops for a subscriber whose queue is
/// full instead of waiting, so a slow or vanished subscriber costs the others nothing. In the
/// steady state an iteration allocates nothing: one reusable `Message`, counters updated in place.
final class ForwardingLoop {
    /// At most this many messages from one socket per iteration, so that one busy producer
    /// socket cannot starve the others or the mailbox.
    static let burst = 512

    private let pull: Socket
    private let xsub: Socket
    private let xpub: Socket
    private var pullEndpoints: BoundEndpoints
    private var xsubEndpoints: BoundEndpoints
    private var xpubEndpoints: BoundEndpoints
    private var configuration: BrokerConfiguration
    /// XSUB's send high-water mark, set at start from the configuration then.
    private let xsubQueueAtStart: Int
    // Unchecked: only this loop's thread ever touches `state`, and the runtime check on each
    // access cost ~230 instructions per message with topic accounting (docs/performance.md).
    @exclusivity(unchecked) private var state: BrokerState
    /// Writes through `logQueue`: the loop never waits for its log's reader.
    private let logger: Logger
    private let logQueue: LogRecordQueue
    private let notifier: NotifyRelay
    private let registry: EndpointRegistry
    /// The HTTP gateway's publishes that want their history sequence back (`InternalEndpoints.receipts`);
    /// nil without the gateway.
    private let receipts: Socket?
    let handle: ForwardingLoopHandle
    private var mailbox: Mailbox<LoopCommand> { handle.mailbox }
    private var descriptorGuard: DescriptorGuard { handle.descriptorGuard }
    private var connectionEvents: ConnectionEventBacklog { handle.connectionEvents }
    private let message = Message()
    /// For messages the loop makes itself (last values, snapshot markers), so that `message`
    /// can still hold the subscription frame being handled.
    private let outgoing = Message()
    /// A held backlog going out at the subscribers' pace (`BacklogCatchUp`); nil otherwise.
    private var catchUp: BacklogCatchUp?
    /// While pacing: the message in hand, whose first frame is `heldFirstFrame` and whose other
    /// frames still wait in `source`. Kept apart from `message`, which subscriptions use meanwhile.
    private var inHand: (source: Socket, role: BrokerSocketRole, size: Int)?
    private let heldFirstFrame = Message()
    /// What is offered to XPUB while pacing: a share of `heldFirstFrame`, which stays whole when
    /// the offer is refused.
    private let offer = Message()
    /// While pacing: markers (sequence, snapshot) XPUB refused because a subscriber they go to
    /// had a full queue, in order, sent before any further message so that each stays where it
    /// belongs in the stream. Not sent lossily instead: libzmq takes a pipe that a lossy send
    /// found full out of its active set until the subscriber reads again, XPUB_NODROP no longer
    /// sees it, and the rest of the backlog went out as if that subscriber were not there (a
    /// walkthrough: 20,000 of 60,000 after one gateway publish).
    private var pendingMarkers: [[[UInt8]]] = []
    /// Where kept messages go (nil: history is off), which topics are kept, and the sequence
    /// the next kept message gets (sequences are assigned here, in forwarding order).
    private let history: HistoryHandle?
    /// `history?.queue`, held directly: the hot path reads it for every message.
    /// Unmanaged: `history` holds the queue as long as the loop lives, and a strong reference
    /// would be retained and released around every use on the hot path (callgrind: 8 calls
    /// into the runtime per kept message). Used through `_withUnsafeGuaranteedRef`.
    private let historyQueue: Unmanaged<HistoryQueue>?
    /// Last-value updates go to the store too (a state directory is configured).
    private let persistLastValues: Bool
    @exclusivity(unchecked) private var historyPrefixes: HistoryPrefixes
    /// Prefixes XSUB holds for zpubd itself, subscribers or not: the history's and the
    /// last-value cache's. A PUB (and an upstream broker) sends only what is subscribed, so
    /// without them what it published while no subscriber held the prefix was never sent, and
    /// neither kept nor cached (a walkthrough: 150 of 400 messages missing from history).
    private var pinnedUpstream: Set<[UInt8]> = []
    @exclusivity(unchecked) private var nextSequence: UInt64
    /// The lowest number this broker may give a message itself: above its store's reserve.
    private let sequenceFloor: UInt64
    /// False while this broker is the waiting or passive one of a pair: the producers'
    /// endpoints are not bound, and nothing is forwarded (docs/topologies.md, "A pair").
    private var pairActive: Bool
    /// A pair member that gave up being active (`standDown`) and stops: its producers'
    /// endpoints are unbound, but what their connections had already queued here is still read
    /// and forwarded while it drains, not left in the queue when it exits.
    private var stoodDown = false
    /// Whether PULL and XSUB are read: while active and not paused, and through a stand-down's
    /// drain.
    private var readsProducers: Bool { !state.paused && startHoldUntil == nil && (pairActive || stoodDown) }
    /// Whether the gateway's publishes are read: not while a takeover waits for its reserve
    /// (they wait with it, rather than be refused as if paused), not through the start's hold
    /// (their subscribers are coming back too) nor a catch-up (at most `resume_catch_up_ms`),
    /// but while paused, when each is refused at once.
    private var readsReceipts: Bool {
        activation == nil && startHoldUntil == nil && (catchUp == nil || state.paused)
    }
    /// Until when (monotonic ns) producers are not read after start (`start_hold_ms`): a
    /// restarted zpubd took what producers had queued while it was down before the subscribers
    /// had reconnected, and dropped it as unwanted (620 to 944 messages per producer).
    private var startHoldUntil: UInt64?
    /// A takeover waiting for the history writer's reserve above `nextSequence` (a write and a
    /// sync; seconds on a slow disk): the producers' endpoints are bound once it is recorded,
    /// or at `deadline` without it, and meanwhile the loop goes on answering subscriptions and
    /// requests (it used to wait in `activate`, up to 5 s, and STATS and HEALTH with it).
    private var activation: (reserved: ReplySlot<Bool>, reply: ReplySlot<[BrokerError]>, deadline: UInt64)?
    /// A passive pair member's mirroring stopped at a message the history queue had no room
    /// for (`replicate`), until the pair link asks again from there.
    private var mirrorStopped = false
    /// Barriers waiting until the XPUB is read dry (`afterSubscriptionsApplied`).
    private var subscriptionBarriers: [@Sendable () -> Void] = []
    /// A pair's XPUB connections, for the count of clients a takeover needs.
    private var subscriberReachability = SubscriberReachability()
    /// A subscription frame of each connection `SubscriberConnections` records, by the address
    /// of its metadata: libzmq frees a connection's metadata once no frame holds it, and a new
    /// connection may then get the same address; held here, the address names one connection
    /// for as long as it is recorded (a `zmq_msg_t` of 64 bytes, and a prefix longer than 32
    /// bytes shared with libzmq: at most `max_subscription_length` a subscriber; let go at
    /// housekeeping).
    private var connectionPins: [UInt: Message] = [:]
    /// After a message that is no subscription, until the XPUB is read dry.
    private var misdirected = MisdirectedSubscriptions()
    /// The connections to drop for it, once each is known as the XPUB's, or by the deadline
    /// (one entry a connection: bounded by the descriptors, however many windows there are).
    private var misdirectedToDrop: [SubscriberConnections.Identity: UInt64] = [:]
    static let misdirectedDropNanoseconds: UInt64 = 10_000_000_000
    /// The reachable subscribers a broker that is not active counts at most (HEALTH's
    /// `pair.clients`): a takeover needs one (`SubscriberReachability.reachable`).
    static let passiveClientsCountedAtMost = 100
    /// Connections that subscribed while the subscriptions of all connections were past
    /// `max_live_subscriptions`, to drop as `misdirectedToDrop`'s are (`dropOverTheTotal`).
    private var overTotalToDrop: [SubscriberConnections.Identity: UInt64] = [:]
    /// Those shut down, until their descriptor no longer shows them (or 10 s): what libzmq
    /// still reads of theirs drops nothing more, and their subscriptions, counted down only
    /// once libzmq ends their pipes, are not held against other connections meanwhile.
    /// With the records each had when it was shut down, and their sum (`overTotalRecords`):
    /// summed again at every frame past the limit, R drops a second cost R² looks on the loop
    /// (a review, 2026-12-07). A record its late frames add meanwhile is not counted. The sum
    /// comes down as the unsubscriptions for them come in (`countDownLeaving`), so that it is
    /// what the total still holds of them: those of a connection itself come off its records;
    /// libzmq's, which say not whose, are held as `overTotalCountedDown`, spent as each entry
    /// goes. `overTotalLeaving` is the records' sum less that.
    private var overTotalShutDown: [SubscriberConnections.Identity: (since: UInt64, records: Int)] = [:]
    private var overTotalRecords = 0
    private var overTotalCountedDown = 0
    private var overTotalLeaving: Int { max(0, overTotalRecords - overTotalCountedDown) }
    private var overTotalLogLimit = LogRateLimit()
    /// Connections accepted on each bound endpoint, for those an unbind closes (`UnbindClosures`).
    private var unbinding = UnbindClosures()
    /// Untracked messages when the full topic table was last told of, and when (`warnIfTopicTableIsFull`).
    private var topicTableFullWarning = (untracked: UInt64(0), at: UInt64(0), told: false)
    /// Whether libzmq sends cached values to new subscribers (`ZMQ_XPUB_MANUAL_LAST_VALUE`);
    /// a passive pair member does not, or subscribers of both would get them twice.
    private let lastValueOnSubscribeSupported: Bool
    /// The sequence marker of the message being forwarded (`$zpub/seq/<topic>`), built in place
    /// while somebody subscribes to markers; empty otherwise.
    @exclusivity(unchecked) private var sequenceMarkerTopic: [UInt8] = []
    @exclusivity(unchecked) private var sequenceDigits: [UInt8] = []
    /// The frames of the message being forwarded, copied while the last-value cache covers its
    /// topic, in `FrameCodec`'s layout (as the cache and the history queue take them). One
    /// buffer, kept and refilled: an array per frame cost three allocations per cached message.
    private let captured = FrameBuffer()
    /// The frames' bytes so far, lengths not counted.
    @exclusivity(unchecked) private var capturedBytes = 0
    /// Upstream endpoints the XSUB socket is connected to.
    private var upstreamEndpoints: [String]
    /// The CURVE server key the sockets were last set up with: a reload that changes it binds
    /// the CURVE sockets' endpoints again.
    private var serverKey: CurveKey?
    /// SNAPSHOT requests waiting for their marker subscription, and markers seen before their
    /// request; both bounded.
    private var snapshots = SnapshotRendezvous<MarkerRequest>()

    /// Refused subscriptions and failed handshakes are logged once per 10 s at most: a flood of
    /// them must not flood the journal too (STATS counts every one).
    /// One per kind of refusal: with one for both, a refusal of one kind hid the other's for
    /// the interval, and the held-back count added both up (a walkthrough: a full table was
    /// never logged after a too-long prefix).
    private var tooLongLogLimit = LogRateLimit()
    private var tableFullLogLimit = LogRateLimit()
    private var tooLargeLogLimit = LogRateLimit()
    private var strangerLogLimit = LogRateLimit()
    private var admissionLogLimit = LogRateLimit()
    private var ceilingLogLimit = LogRateLimit()
    private var handshakeLogLimit = LogRateLimit()
    /// ZAP's count of the connections it decided on (let in or refused), by socket (its
    /// domain), and the handshakes that ended since, completed or refused:
    /// together they show peers that passed the checks and were then dropped, or left
    /// (`warnOfIncompleteHandshakes`). ZAP is asked for XSUB's own connections upstream too.
    private let zapDecided: @Sendable () -> [String: UInt64]
    private var handshakesEnded: [BrokerSocketRole: UInt64] = [:]
    /// At the last look: ZAP's counts then, and how many of those before never ended.
    private var zapDecidedAtLastLook: [String: UInt64] = [:]
    private var incompleteAtLastLook: [BrokerSocketRole: UInt64] = [:]
    private var nextHandshakeLook: UInt64 = 0
    private var incompleteHandshakeLogLimits: [BrokerSocketRole: LogRateLimit] = [:]
    /// Upstreams whose failed connection attempts the log has told of, until they connect:
    /// one refused, or whose host is not found, was said nowhere but in STATS (a probe).
    private var upstreamsToldUnreachable: Set<String> = []
    /// Upstream links connected whose ZeroMQ handshake has not completed yet, and those of
    /// them refused by the upstream's ZAP (counted as ended there already).
    private var upstreamsHandshaking: Set<String> = []
    private var upstreamsFailedWithEvent: Set<String> = []
    /// Upstream links lost, and when zpubd connects them again unless libzmq retries first
    /// (its CONNECT_RETRIED, CONNECT_DELAYED or CONNECTED cancel it): libzmq 4.3.4 gives up on
    /// a link for good once it finds the peer's socket type does not pair with XSUB (an
    /// upstream naming another broker's pull or control port), while STATS said "retrying"
    /// for ever (a walkthrough).
    private var upstreamReconnects: [String: UInt64] = [:]
    private var upstreamHandshakeLogLimits: [String: LogRateLimit] = [:]
    static let upstreamReconnectNanoseconds: UInt64 = 5_000_000_000
    private var summaryLogLimit = LogRateLimit()
    /// A passive pair member mirroring topics its `[history] prefixes` do not keep: a
    /// configuration that differs from the peer's, said once a minute while it lasts.
    private var mirroredNotKeptLogLimit = LogRateLimit(intervalSeconds: 60)
    /// The configuration each bound endpoint (and upstream connection) took its socket options
    /// from: libzmq keeps an endpoint's until it is bound again. A reload's kept options are
    /// told against these, not against the last file: a value set back to what the endpoints
    /// had was told as a change, and a walkthrough's reload of a file that matched what was in
    /// force failed (`zpub reload` exit 2).
    private var optionsAtBind: [BrokerSocketRole: [String: BrokerConfiguration]] = [:]
    /// Set once a downstream broker's connection subscribed to wrapped last values
    /// (`looksForWrappedValues`).
    private var wrapsValuesForDownstreams = false
    /// XSUB holds `UpstreamValue.prefix` (`subscribeToWrappedValuesIfUpstreams`).
    private var subscribedToWrappedValues = false
    /// Connection events taken as counts (STATS `connection_events_summarized`).
    private var connectionEventsSummarized: UInt64 = 0

    private static func heldBackNote(_ heldBack: Int) -> String {
        heldBack == 0 ? "" : " (and \(heldBack) more like it since the last such message; see STATS)"
    }

    private var nowMilliseconds: UInt64 = 0
    /// A second SIGTERM or SIGINT: the drain ends at once (`LoopCommand.endDrain`).
    private var drainCutShort = false
    /// Messages in and out when STATUS= was last sent, for the rates it shows.
    private var lastStatusCounts: (in: UInt64, out: UInt64) = (0, 0)
    init(
        pull: Socket, xsub: Socket, xpub: Socket,
        endpoints: (pull: BoundEndpoints, xsub: BoundEndpoints, xpub: BoundEndpoints),
        receipts: Socket? = nil, lastValueOnSubscribe: Bool, serverKey: CurveKey?,
        configuration: BrokerConfiguration, history: HistoryHandle?, restoredLastValues: [LastValueRecord],
        registry: EndpointRegistry, logger: Logger, notifier: NotifyRelay,
        zapDecided: @escaping @Sendable () -> [String: UInt64] = { [:] }
    ) {
        self.zapDecided = zapDecided
        self.receipts = receipts
        self.history = history
        self.historyQueue = history.map { Unmanaged.passUnretained($0.queue) }
        self.persistLastValues = history != nil && configuration.stateDirectory != nil
        self.historyPrefixes = HistoryPrefixes(history == nil ? [] : configuration.historyPrefixes)
        // A pair member starts passive: it mirrors the peer's numbers from its last one, and
        // numbers above its own floor only once it takes over (`activate`).
        self.nextSequence =
            (configuration.pair.isEnabled ? history?.firstMirroredSequence : history?.firstNewSequence) ?? 1
        self.sequenceFloor = history?.firstNewSequence ?? 1
        self.pairActive = !configuration.pair.isEnabled
        let handle = ForwardingLoopHandle(logger: logger)
        handle.historyPrefixes.withLock { $0 = history == nil ? [] : configuration.historyPrefixes }
        self.handle = handle
        self.upstreamEndpoints = configuration.upstreamEndpoints
        self.serverKey = serverKey
        self.registry = registry
        self.pull = pull
        self.xsub = xsub
        self.xpub = xpub
        self.pullEndpoints = endpoints.pull
        self.xsubEndpoints = endpoints.xsub
        self.xpubEndpoints = endpoints.xpub
        self.configuration = configuration
        self.state = BrokerState(configuration: configuration)
        self.state.holdUpstreams(whilePassive: configuration.pair.isEnabled)
        self.lastValueOnSubscribeSupported = lastValueOnSubscribe
        self.state.lastValueOnSubscribe = lastValueOnSubscribe && !configuration.pair.isEnabled
        self.logQueue = LogRecordQueue()
        self.logger = logQueue.logger(like: logger)
        self.notifier = notifier
        xsubQueueAtStart = SocketSetup.xsubSubscriptionFramesQueued(configuration)
        // Last values persisted before this start, under the prefixes cached now.
        for record in restoredLastValues {
            let cached = record.frames.first.map { topic in topic.withUnsafeBytes { state.lastValue.covers($0) } }
            guard cached == true else { continue }
            state.lastValue.restore(
                record.frames, sequence: record.sequence, storedMilliseconds: record.storedMilliseconds)
        }
    }

    /// Runs until a `.stop` command has been handled; then closes the sockets (lingering as
    /// configured). Call on the loop's own thread.
    func run() {
        logQueue.start()
        recordOptionsAtBind()
        subscribeToWrappedValuesIfUpstreams()
        var poller = Poller()
        let pullIndex = poller.add(pull)
        let xsubIndex = poller.add(xsub)
        let xpubIndex = poller.add(xpub)
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        let receiptsIndex = receipts.map { poller.add($0) }
        // While XSUB is not read, libzmq still has to attach a publisher that connects, and send
        // it the subscriptions, which it does only when the loop polls or asks for ZMQ_EVENTS.
        // The socket's own descriptor wakes the loop for that (it signals the socket's commands,
        // not its messages); a loop that slept to its poll timeout (500 ms) let `zpub pub --pub`
        // give up waiting for a subscription and send to no one.
        let xsubCommandsIndex = poller.add(fileDescriptor: (try? xsub.intOption(.fileDescriptor)) ?? -1)
        // The same for XPUB while a catch-up holds a message: libzmq tells the socket
        // that a subscriber has read (and its queue has room again) by a command.
        let xpubCommandsIndex = poller.add(fileDescriptor: (try? xpub.intOption(.fileDescriptor)) ?? -1)
        let hold = configuration.startHoldMilliseconds
        if hold > 0 && pairActive {
            startHoldUntil = SystemClock.monotonicNanoseconds() &+ UInt64(hold) &* 1_000_000
            logger.info(
                "producers are read \(hold) ms after start (start_hold_ms), once subscribers coming back after a restart have subscribed"
            )
        }
        /// Producers are read only while active and not paused (`readsProducers`), and not
        /// while the catch-up holds a message (a poll would find them readable at once, every
        /// time); the gateway's publishes as `readsReceipts` says.
        func watchProducers() {
            let holding = catchUp?.isHolding == true
            poller.setWatching(pullIndex, readsProducers && !holding)
            poller.setWatching(xsubIndex, readsProducers && !holding)
            poller.setWatching(xsubCommandsIndex, !readsProducers || holding)
            poller.setWatching(xpubCommandsIndex, holding && readsProducers)
            if let receiptsIndex { poller.setWatching(receiptsIndex, readsReceipts) }
        }
        watchProducers()
        pinUpstream()
        // The watchdog is pinged from here, and only here: if this loop hangs, the pings stop and
        // systemd restarts the daemon.
        var schedule = LoopSchedule(
            watchdogMicroseconds: notifier.watchdogIntervalMicroseconds(), reportsStatus: notifier.isActive,
            nowNanoseconds: SystemClock.monotonicNanoseconds())
        handle.started.signal()
        var drainEndedQuiet = false
        // The drain's length, once it started (0: none, or cut short before it began).
        var drainMilliseconds = 0
        while true {
            let ready: Int
            // A message held for a subscriber's room leaves the producers unwatched: a poll
            // with nothing to read then says nothing about them (and the catch-up may let go
            // of the message in this turn, before the drain asks).
            let producersUnwatched = catchUp?.isHolding == true
            do {
                // While a takeover waits for its reserve, its answer is looked for every 5 ms;
                // while the catch-up holds a message, room for it every 10 ms besides XPUB's
                // wake-ups (a command libzmq takes in just before the poll sleeps wakes no one).
                var timeout =
                    activation != nil
                    ? 5 : readsProducers && catchUp?.isHolding == true ? 10 : schedule.pollTimeoutMilliseconds
                if let startHoldUntil {
                    let left = startHoldUntil &- min(startHoldUntil, SystemClock.monotonicNanoseconds())
                    timeout = min(timeout, Int(left / 1_000_000) + 1)
                }
                // A catch-up may end a while after a turn found the producers empty: woken for
                // it. (Not in a drain, whose 100 ms poll with nothing to read ends both.)
                if readsProducers, !schedule.isDraining,
                    let left = catchUp?.millisecondsUntilCaughtUp(nowNanoseconds: SystemClock.monotonicNanoseconds())
                {
                    timeout = min(timeout, left)
                }
                ready = try poller.poll(timeoutMilliseconds: timeout)
            } catch {
                logger.critical("forwarding loop cannot poll: \(error)")
                break
            }
            nowMilliseconds = SystemClock.wallMilliseconds()
            let now = SystemClock.monotonicNanoseconds()
            handle.lastIterationNanoseconds.store(now, ordering: .relaxed)
            perform(schedule.tick(nowNanoseconds: now), schedule: &schedule, now: now)

            if poller.isReadable(xpubIndex), handleSubscriptions() { passSubscriptionBarriers() }
            if let until = startHoldUntil, now >= until {
                startHoldUntil = nil
                // What producers queued meanwhile goes out as a paused backlog at RESUME would.
                if readsProducers { startCatchUp(.startHold) }
                watchProducers()
            }
            if readsProducers {
                if catchUp != nil {
                    catchUpTurn(now: now)
                    watchProducers()
                } else {
                    if poller.isReadable(pullIndex) { forwardBurst(from: pull, role: .pull) }
                    if poller.isReadable(xsubIndex) { forwardBurst(from: xsub, role: .xsub) }
                }
            }
            if poller.isReadable(xsubCommandsIndex) { xsub.takeInPendingNotes() }
            // Paused or not: while paused, each gets a refusal instead of waiting.
            if let receiptsIndex, readsReceipts, poller.isReadable(receiptsIndex) {
                forwardWithReceipts()
            }
            if poller.isReadable(mailboxIndex) {
                handleCommands()
                if state.stopping && !schedule.isDraining {
                    // Forward what producers already sent, paused or not, then stop. A pair's
                    // passive broker binds no producers' endpoint: nothing to drain (mirrored
                    // pages kept its loop from ever being quiet, and it waited the whole drain).
                    let drains = pairActive || stoodDown || activation != nil
                    let drain = drains && !drainCutShort ? configuration.shutdownDrainMilliseconds : 0
                    schedule.startDrain(nowNanoseconds: now, milliseconds: drain)
                    drainMilliseconds = drain
                    let held = state.paused || startHoldUntil != nil
                    state.paused = false
                    startHoldUntil = nil
                    if drain > 0 && (pairActive || stoodDown) {
                        paceTheDrain(held: held, milliseconds: drain, now: now)
                    }
                }
                if drainCutShort && schedule.isDraining { schedule.endDrainNow(nowNanoseconds: now) }
                watchProducers()
            }
            if activation != nil, finishActivationIfReserved(now: SystemClock.monotonicNanoseconds()) {
                watchProducers()
            }
            // The gateway's POST /publish waits unread while a catch-up runs: it is a producer's
            // too, and a drain ended then closed its socket on it (asked only while draining).
            let receiptsWaiting = schedule.isDraining && !readsReceipts && receipts?.hasInput == true
            let producersReadable =
                poller.isReadable(pullIndex) || poller.isReadable(xsubIndex)
                || receiptsIndex.map { poller.isReadable($0) } == true || receiptsWaiting
            if let end = schedule.drainEnd(
                pollWasEmpty: ready == 0, producersWereQuiet: !producersReadable && !producersUnwatched,
                nowNanoseconds: now)
            {
                drainEndedQuiet = end == .quiet
                break
            }
        }
        if drainMilliseconds > 0 && !drainEndedQuiet && !drainCutShort {
            // Otherwise nothing told that the drain waited its whole time for producers that
            // kept sending (a walkthrough: 20 s, 2.7 million messages taken in meanwhile).
            logger.warning(
                "the stop's drain reached shutdown_drain_ms (\(drainMilliseconds)) with producers still sending: the messages on their way to zpubd that it has not read are dropped, a few in flight when it kept up, up to receive_hwm per producer when it did not (stop the producers first, or raise shutdown_drain_ms)"
            )
        }
        // A drain that ended quiet with nothing held forwarded its backlog (the catch-up would
        // have ended at its next turn). One whose time ran out with a message held
        // (pacing ends before it, so rarely) sends it lossily, as at full speed.
        endCatchUp(
            drainEndedQuiet && catchUp?.isHolding == false ? .caughtUp : nil, now: SystemClock.monotonicNanoseconds())
        // Stopped while a takeover waited: it never forwarded; the pair link waits no more.
        activation?.reply.fulfill([])
        activation = nil
        // The last number a kept message got (not `nextSequence`, which a takeover moves up
        // without a message): the peer mirrors up to the history's last sequence, which is it.
        let assigned = historyQueue?._withUnsafeGuaranteedRef { $0.assignedThrough } ?? 0
        handle.lastSequenceGiven.store(assigned, ordering: .relaxed)
        handle.stopped.store(true, ordering: .releasing)
        // Requests that wait for the loop are answered now, "stopping", rather than when their
        // 5 s are up: a SNAPSHOT round of the gateway's, caught by the stop, held its stop that
        // long (a walkthrough: 200 SSE clients, every stop 5.7-6.0 s).
        for request in snapshots.removeAll() {
            switch request {
            case .snapshot(_, let slot): slot.abandon()
            case .replay(_, _, let slot): slot.abandon()
            }
        }
        for command in handle.mailbox.close() { command.abandon() }
        passSubscriptionBarriers()
        closeSockets()
        // The loop's last lines (a poll failure, the drain) are written before the process goes.
        logQueue.finish(waitingMilliseconds: 2_000)
    }

    /// The periodic duties `LoopSchedule` says are due.
    private func perform(_ due: LoopSchedule.Due, schedule: inout LoopSchedule, now: UInt64) {
        if due.watchdogPing { notifier.watchdogPing() }
        if due.statusReport {
            notifier.status(
                state.statusLine(
                    previousIn: lastStatusCounts.in, previousOut: lastStatusCounts.out,
                    seconds: Double(now &- schedule.lastStatus) / 1e9))
            schedule.statusReported(nowNanoseconds: now)
            lastStatusCounts = (state.pull.messagesIn &+ state.xsub.messagesIn, state.xpub.messagesOut)
        }
        if due.housekeeping {
            expireLastValues()
            snapshots.expire(nowNanoseconds: now)
            if state.subscriberConnections.hasClosed {
                state.subscriberConnections.forgetClosed(
                    current: Self.socket(at:), nowMilliseconds: SystemClock.monotonicMilliseconds(),
                    readDry: !xpub.hasInput)
            }
            for gone in state.subscriberConnections.takeForgotten()
            where state.subscriberConnections.recorded(descriptor: gone.descriptor, metadata: gone.metadata) == nil {
                connectionPins[gone.metadata] = nil
            }
            warnIfTopicTableIsFull(nowNanoseconds: now)
            if now >= nextHandshakeLook {
                nextHandshakeLook = now &+ Self.handshakeLookNanoseconds
                warnOfIncompleteHandshakes()
            }
            if !upstreamReconnects.isEmpty { reconnectFailedUpstreams(now: now) }
            if !misdirectedToDrop.isEmpty { dropMisdirectedConnections(now: now) }
            if !overTotalToDrop.isEmpty { noteDroppedOverTheTotal(drop(&overTotalToDrop, now: now), now: now) }
            for (connection, shutDown) in overTotalShutDown
            where now &- shutDown.since >= Self.misdirectedDropNanoseconds
                || Self.socket(at: connection.descriptor).map({ connection.isCurrent($0) }) != true
            {
                overTotalShutDown[connection] = nil
                // What libzmq's unsubscriptions counted down is taken as this entry's first.
                overTotalRecords -= shutDown.records
                overTotalCountedDown = min(
                    overTotalCountedDown - min(overTotalCountedDown, shutDown.records), overTotalRecords)
            }
            // An upstream that refused a subscription for a full table admits it at this
            // connection's next frame once it has room (`BrokerState.retryPrefix`).
            if !upstreamEndpoints.isEmpty { try? subscribeUpstream(BrokerState.retryPrefix) }
            for closed in unbinding.closedByUnbind(now: now, socket: Self.socket(at:)) {
                connectionClosedWithoutEvent(closed.descriptor, role: closed.role)
            }
            // The guard decides on its own thread; STATS shows what it decided.
            (state.acceptPaused, state.acceptPauses) = descriptorGuard.status
        }
    }

    // MARK: Data: PULL / XSUB -> XPUB

    /// Whether a message may be stored on its way: copied into the last-value cache or kept by
    /// history (both opt-in, by prefix).
    private var storesMessages: Bool { state.lastValue.isEnabled || historyPrefixes.isEnabled }

    /// A burst of messages from `source`, by one of two copies of the same code: with neither
    /// store configured, the copy that never looks at them has none of their checks on each
    /// message and frame, and fewer values to keep across the calls into libzmq (some 20
    /// instructions a message of ~4,200; docs/performance.md, "Many topics").
    @inline(__always)
    private func forwardBurst(from source: Socket, role: BrokerSocketRole) {
        if storesMessages {
            forwardBurstStoring(from: source, role: role)
        } else {
            forwardBurstPassing(from: source, role: role)
        }
    }

    /// Never inlined: one call per burst costs nothing, and it gives profiles a boundary around
    /// the per-message work (scripts/callgrind-history.sh counts the instructions inside it).
    @inline(never)
    private func forwardBurstStoring(from source: Socket, role: BrokerSocketRole) {
        forwardBurst(from: source, role: role, storing: true)
    }

    @inline(never)
    private func forwardBurstPassing(from source: Socket, role: BrokerSocketRole) {
        forwardBurst(from: source, role: role, storing: false)
    }

    @inline(__always)
    private func forwardBurst(from source: Socket, role: BrokerSocketRole, storing: Bool) {
        // Once per burst, so that each message's topic counters are written in place.
        if state.topicAccounting { state.prepareToCountTopics() }
        do {
            for _ in 0..<Self.burst {
                guard let size = try source.receiveSize(into: message, dontWait: true) else { return }
                try forwardMessage(from: source, role: role, firstFrameSize: size, storing: storing)
            }
        } catch {
            logger.error("forwarding from \(role.rawValue) failed: \(error)")
        }
    }

    /// The gateway's POST /publish: each message forwarded as a PULLed one (its counters
    /// included), then answered with its history sequence. While paused, each is read whole and
    /// refused, so that the request gets a clear answer instead of waiting.
    private func forwardWithReceipts() {
        guard let receipts else { return }
        if state.topicAccounting { state.prepareToCountTopics() }
        do {
            for _ in 0..<Self.burst {
                guard let size = try receipts.receiveSize(into: message, dontWait: true) else { return }
                if state.paused || !pairActive {
                    while message.hasMore { _ = try receipts.receiveSize(into: message) }
                    // Passive first: a publisher told "paused" was sent to RESUME, which answers
                    // "running" and changes nothing on a pair's passive broker.
                    outgoing.replace(
                        with: pairActive ? InternalEndpoints.refusedWhilePaused : InternalEndpoints.refusedWhilePassive)
                } else {
                    let sequence = try forwardMessage(
                        from: receipts, role: .pull, firstFrameSize: size, storing: storesMessages)
                    outgoing.replace(with: InternalEndpoints.receipt(sequence: sequence ?? 0))
                }
                _ = try receipts.send(outgoing, dontWait: true)
            }
        } catch {
            logger.error("forwarding the gateway's publishes failed: \(error)")
        }
    }

    /// Moves one whole message, whose first frame is already in `message`, to XPUB. Returns its
    /// history sequence if history keeps it. `storing` is `storesMessages`, as a constant where
    /// the caller has one.
    /// `firstFrameSent`: a catch-up sent a share of the first frame already.
    @inline(__always) @discardableResult
    private func forwardMessage(
        from source: Socket, role: BrokerSocketRole, firstFrameSize: Int, storing: Bool, firstFrameSent: Bool = false
    ) throws -> UInt64? {
        var more = message.hasMore
        let accounting = state.topicAccounting
        // Every decision on the topic from one look at it (each look is two calls into libzmq):
        // its counters; whether the last-value cache copies the message (opt-in, so the
        // allocation-free path stays so when the cache is off); whether history keeps it, in
        // which case it is written into the history queue's ring frame by frame, with no
        // allocation.
        var found = TopicTable.Lookup(index: nil, wanted: true)
        var caching = false
        var keeping = false
        var internalTopic = false
        if accounting || storing || looksForWrappedValues(role) {
            message.withUnsafeBytes(count: firstFrameSize) { topic in
                // zpubd's own topics (sequence and snapshot markers) come from zpubd alone: a
                // producer's, or an upstream broker's numbered with its own sequences, would
                // mislead the clients that resume from them. Looked for where the topic is
                // looked at anyway: with accounting, the cache and history all off, no marker
                // means anything, and the look would cost some 80 instructions a message; but
                // see `looksForWrappedValues`.
                // One byte per message (non-generic: a debug build allocated for `first`);
                // the rest only for topics that start with "$".
                if topic.count >= 6 && topic[0] == UInt8(ascii: "$") && Self.isInternal(topic) {
                    internalTopic = true
                    return
                }
                if accounting { found = state.lookupTopic(topic) }
                guard storing else { return }
                caching = state.lastValue.isEnabled && state.lastValue.covers(topic)
                keeping = historyPrefixes.isEnabled && keep(topic)
            }
        }
        if internalTopic {
            if role == .xsub {
                switch try unwrapUpstreamValue(in: message, from: source, firstFrameSize: firstFrameSize) {
                case .forward(let topicSize):
                    return try forwardUnwrapped(from: source, topicSize: topicSize, storing: storing)
                case .known:
                    while message.hasMore { _ = try source.receiveSize(into: message) }
                    return nil
                case .wrappingAnInternalTopic:
                    more = message.hasMore
                case .notAWrapping:
                    break
                }
            }
            while more {
                _ = try source.receiveSize(into: message)
                more = message.hasMore
            }
            state.internalTopicMessages &+= 1
            return nil
        }
        var bytes = firstFrameSize
        // Assigned, not appended: a message whose reading failed half way must not leave its
        // first frames in front of the next one's.
        if storing && caching { caching = beginCapture(firstFrameSize: firstFrameSize) }
        // XPUB does not block and, without XPUB_NODROP, does not refuse; if it ever does, the
        // rest of the message must still be read so the next message starts at a first frame.
        var sending = try firstFrameSent || xpub.send(message, more: more, dontWait: true)
        while more {
            let frameSize = try source.receiveSize(into: message) ?? 0
            bytes &+= frameSize
            more = message.hasMore
            if storing && keeping, let historyQueue {
                message.withUnsafeBytes(count: frameSize) { frame in
                    historyQueue._withUnsafeGuaranteedRef { $0.appendFrame(frame) }
                }
            }
            if storing && caching { continueCapture(frameSize: frameSize) }
            if sending { sending = try xpub.send(message, more: more, dontWait: true) }
        }
        var keptSequence: UInt64?
        if storing && keeping {
            // The sequence is used up even when the writer's queue is full: never reused.
            let sequence = nextSequence
            keptSequence = sequence
            historyQueue?._withUnsafeGuaranteedRef { $0.commit(sequence: sequence) }
            if !sequenceMarkerTopic.isEmpty { try sendSequenceMarker(nextSequence) }
            nextSequence &+= 1
        }
        // After the message's history record is committed: the ring builds one record at a
        // time, and a last-value record begun before the commit would abandon the message's.
        if storing && caching {
            let tooLarge = capturedBytes > state.lastValue.maxBytes
            if tooLarge { tellTooLargeForTheCache(bytes: capturedBytes) }
            state.lastValue.store(
                encoded: captured.bytes, frameCount: captured.frameCount, nowMilliseconds: nowMilliseconds,
                tooLarge: tooLarge)
            if persistLastValues {
                let sequence = state.lastValue.lastSequence
                historyQueue?._withUnsafeGuaranteedRef {
                    $0.lastValue(encoded: captured.bytes, sequence: sequence, milliseconds: nowMilliseconds)
                }
            }
            // Now, not at the next cached message: a buffer grown for a large one is given back.
            captured.removeAll()
        }
        let size = UInt64(bytes)
        if role == .pull {
            state.pull.messagesIn &+= 1
            state.pull.bytesIn &+= size
        } else {
            state.xsub.messagesIn &+= 1
            state.xsub.bytesIn &+= size
        }
        if accounting {
            state.countTopicPrepared(found, bytes: size, nowMilliseconds: nowMilliseconds)
        }
        if sending {
            state.xpub.messagesOut &+= 1
            state.xpub.bytesOut &+= size
        } else {
            state.sendFailures &+= 1
        }
        return keptSequence
    }

    @inline(never)
    private static func isInternal(_ topic: UnsafeRawBufferPointer) -> Bool {
        topic.starts(with: BrokerState.internalPrefix)
    }

    /// Subscribes XSUB to the last values upstream zpubd brokers send wrapped (`UpstreamValue`)
    /// while there are upstreams, and lets go of it when none are left: XSUB keeps it, and
    /// sends it to every upstream as it connects. Publishers on XSUB then see one more
    /// subscription, to a topic they do not send (as they see `$zpub/retry`).
    private func subscribeToWrappedValuesIfUpstreams() {
        let wanted = !upstreamEndpoints.isEmpty
        guard wanted != subscribedToWrappedValues else { return }
        try? subscribeUpstream(UpstreamValue.prefix, subscribe: wanted)
        subscribedToWrappedValues = wanted
    }

    /// Whether messages from `role` are looked at for zpubd's own topics even with accounting
    /// and the stores off: XSUB's where upstreams may send wrapped last values
    /// (`UpstreamValue`), and everyone's once a downstream broker has subscribed to
    /// `UpstreamValue.prefix`: a producer's `$zpub/value/...` message would reach it as a
    /// value under any topic.
    @inline(__always)
    private func looksForWrappedValues(_ role: BrokerSocketRole) -> Bool {
        wrapsValuesForDownstreams || (role == .xsub && !upstreamEndpoints.isEmpty)
    }

    /// Removes the cache's values older than `max_age_s`, and the persisted ones with them: the
    /// table keeps exactly the cache's values, and an expired value left in it came back at the
    /// next start, served again where max_age_s had been raised or taken out (a walkthrough,
    /// 2026-12-07). The deletion goes as a producer's does (a record without a payload).
    private func expireLastValues() {
        guard persistLastValues, let historyQueue else {
            state.lastValue.expire(nowMilliseconds: nowMilliseconds)
            return
        }
        let (now, sequence) = (nowMilliseconds, state.lastValue.lastSequence)
        state.lastValue.expire(nowMilliseconds: now) { topic in
            FrameCodec.encode([topic]).withUnsafeBytes { deletion in
                historyQueue._withUnsafeGuaranteedRef {
                    $0.lastValue(encoded: deletion, sequence: sequence, milliseconds: now)
                }
            }
        }
    }

    /// The message an upstream zpubd's wrapped last value holds, forwarded as any from XSUB:
    /// `message` holds its topic.
    @inline(never)
    private func forwardUnwrapped(from source: Socket, topicSize: Int, storing: Bool) throws -> UInt64? {
        try forwardMessage(from: source, role: .xsub, firstFrameSize: topicSize, storing: storing)
    }

    enum UpstreamValueFate {
        /// News here: `message` holds the value's topic, of this size, and the rest follows.
        case forward(topicSize: Int)
        /// The cache holds it already: dropped (`message` holds its topic).
        case known
        /// A wrapping whose topic is zpubd's own again: no upstream cache holds one (internal
        /// topics are never cached), so it is a peer's forgery, dropped with the rest of its
        /// message as any internal topic. Unwrapped again, a message of wrappings nested a few
        /// thousand deep recursed until the loop's stack overflowed: one peer of the XSUB took
        /// the broker down (a review, 2026-12-07).
        case wrappingAnInternalTopic
        /// Some other internal topic.
        case notAWrapping
    }

    /// The first frame in `frame` (`message`, or a catch-up's `heldFirstFrame`) is zpubd's own:
    /// whether it wraps an upstream zpubd's last value (`UpstreamValue`), and if so, whether
    /// this broker's cache holds that value already; `frame` then holds the value's topic. A
    /// value this cache lacks, or holds an older value of, is forwarded: news to this broker's
    /// subscribers, as it was before values were wrapped.
    @inline(never)
    private func unwrapUpstreamValue(in frame: Message, from source: Socket, firstFrameSize: Int) throws
        -> UpstreamValueFate
    {
        let header = frame.withUnsafeBytes(count: firstFrameSize) { UpstreamValue.header(inFirstFrame: $0) }
        guard let header, frame.hasMore else { return .notAWrapping }
        let topicSize = try source.receiveSize(into: frame) ?? 0
        if topicSize >= 6 && frame.withUnsafeBytes(count: topicSize, Self.isInternal) {
            return .wrappingAnInternalTopic
        }
        let now = nowMilliseconds
        let known =
            state.lastValue.isEnabled
            && frame.withUnsafeBytes(count: topicSize) { topic in
                state.lastValue.covers(topic)
                    && state.lastValue.supersedes(
                        topic, digest: header.digest, storedMilliseconds: header.storedMilliseconds,
                        nowMilliseconds: now)
            }
        return known ? .known : .forward(topicSize: topicSize)
    }

    /// Starts a history record for a message whose first frame is `topic`, if the topic is
    /// under a history prefix.
    @inline(__always)
    private func keep(_ topic: UnsafeRawBufferPointer) -> Bool {
        guard let historyQueue, let prefixLength = historyPrefixes.matchLength(topic) else { return false }
        let (sequence, milliseconds) = (nextSequence, nowMilliseconds)
        guard historyQueue._withUnsafeGuaranteedRef({ $0.mayNumber(sequence) }) else {
            warnOfTheSequenceCeiling()
            return false
        }
        historyQueue._withUnsafeGuaranteedRef {
            $0.begin(sequence: sequence, milliseconds: milliseconds, prefixLength: prefixLength, topic: topic)
        }
        if state.sequenceMarkerSubscriptions > 0 {
            sequenceMarkerTopic.removeAll(keepingCapacity: true)
            sequenceMarkerTopic.append(contentsOf: BrokerState.sequenceMarkerPrefix)
            sequenceMarkerTopic.append(contentsOf: topic)
        } else if !sequenceMarkerTopic.isEmpty {
            sequenceMarkerTopic.removeAll(keepingCapacity: true)
        }
        return true
    }

    /// Out of line: reached only while the history writer's commits fail, or when more than
    /// half a small `sequence_reserve` arrives between two of its commits.
    @inline(never)
    private func warnOfTheSequenceCeiling() {
        guard let heldBack = ceilingLogLimit.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) else { return }
        logger.error(
            "history keeps nothing for now: sequence \(nextSequence) is beyond the numbers its store has reserved on disk, which the writer renews as it commits (if it reports errors, they are why; if not, [history] sequence_reserve is too small for this rate); messages are forwarded, and kept again once it can\(Self.heldBackNote(heldBack))"
        )
    }

    /// Publishes `[$zpub/seq/<topic>, <sequence>]` right after the kept message it numbers: a
    /// subscriber to both learns each message's sequence, to resume from exactly there.
    private func sendSequenceMarker(_ sequence: UInt64) throws {
        sequenceDigits.removeAll(keepingCapacity: true)
        var value = sequence
        repeat {
            sequenceDigits.append(UInt8(ascii: "0") + UInt8(value % 10))
            value /= 10
        } while value > 0
        sequenceDigits.reverse()
        if catchUp != nil { return try sendPacedMarker([sequenceMarkerTopic, sequenceDigits]) }
        // Frame by frame, not `sendFrames`: no array of frames to build for every kept message.
        outgoing.replace(with: sequenceMarkerTopic)
        guard try xpub.send(outgoing, more: true, dontWait: true) else { return }
        outgoing.replace(with: sequenceDigits)
        _ = try xpub.send(outgoing, dontWait: true)
    }

    // MARK: A held backlog's catch-up

    /// RESUME, or the end of the start's hold: the backlog goes out at the subscribers' pace
    /// (`BacklogCatchUp`), unless pacing is off or no queue is bounded (`send_hwm = 0`: nothing
    /// is dropped anyway).
    private func startCatchUp(_ cause: BacklogCatchUp.Cause) {
        let limit = configuration.resumeCatchUpMilliseconds
        let paced = limit > 0 && ((try? xpub.intOption(.sendHighWaterMark)) ?? 0) > 0
        if let suspended = catchUp {
            // Suspended by a PAUSE: its message in hand goes first, with the time limit anew.
            if paced {
                catchUp = BacklogCatchUp(
                    resuming: suspended, cause, nowNanoseconds: SystemClock.monotonicNanoseconds(),
                    limitMilliseconds: limit, stallMilliseconds: configuration.catchUpStallMilliseconds)
                handle.catchingUp.store(cause.isHeldBacklog, ordering: .relaxed)
            } else {
                endCatchUp(nil, now: SystemClock.monotonicNanoseconds())
            }
            return
        }
        guard paced else { return }
        do {
            try xpub.setOption(.xpubNoDrop, 1)
        } catch {
            logger.warning("\(cause.backlog) goes out at full speed: XPUB refused XPUB_NODROP (\(error))")
            return
        }
        catchUp = BacklogCatchUp(
            cause, nowNanoseconds: SystemClock.monotonicNanoseconds(), limitMilliseconds: limit,
            stallMilliseconds: configuration.catchUpStallMilliseconds)
        handle.catchingUp.store(cause.isHeldBacklog, ordering: .relaxed)
    }

    /// A stop: a backlog still `held` (paused, or at start) goes out at the subscribers' pace,
    /// as at RESUME, and a catch-up under way goes on, both within the drain. At full speed each
    /// subscriber lost all but `send_hwm` of a held backlog (46,533 of 120,000 reached a
    /// subscriber that read everything). Pacing ends before the drain does: its last quarter
    /// (at most 500 ms) goes at full speed, so that what pacing has not sent by then still
    /// reaches the subscribers with room, rather than being dropped for everyone with the
    /// producers' queues at close.
    private func paceTheDrain(held: Bool, milliseconds: Int, now: UInt64) {
        if held { startCatchUp(.stop) }
        let paced = milliseconds - Self.drainAtFullSpeedMilliseconds(milliseconds)
        catchUp?.endPacing(byNanoseconds: now &+ UInt64(paced) &* 1_000_000)
    }

    /// The end of a drain of `milliseconds` that goes at full speed.
    static func drainAtFullSpeedMilliseconds(_ milliseconds: Int) -> Int { min(500, milliseconds / 4) }

    /// One turn of pacing: the message in hand first, then up to a burst from each of PULL and
    /// XSUB, each message sent only once every subscriber it goes to has room for it.
    private func catchUpTurn(now: UInt64) {
        if state.topicAccounting { state.prepareToCountTopics() }
        // Both found empty in this turn: the backlog is out (not at the next turn, which a poll
        // with nothing to read would start only at its timeout, 500 ms later).
        var (pullEmpty, xsubEmpty) = (false, false)
        do {
            // The notes of subscribers' reads are what make room; take them in first.
            if catchUp?.isHolding == true { xpub.takeInPendingNotes() }
            if !pendingMarkers.isEmpty {
                if try sendPendingMarkers() {
                    catchUp?.unblocked()
                } else {
                    catchUp?.refused(nowNanoseconds: now)
                }
            }
            if pendingMarkers.isEmpty && inHand != nil { _ = try offerInHand(now: now) }
            if catchUp?.isStalled(nowNanoseconds: now) == true { letStalledSubscribersGo() }
            if inHand == nil && pendingMarkers.isEmpty { pullEmpty = try pacedBurst(from: pull, role: .pull, now: now) }
            if inHand == nil && pendingMarkers.isEmpty { xsubEmpty = try pacedBurst(from: xsub, role: .xsub, now: now) }
        } catch {
            logger.error("forwarding \(catchUp?.cause.backlog ?? "a held backlog") failed: \(error)")
        }
        if let ending = catchUp?.ending(nowNanoseconds: now, producersEmpty: pullEmpty && xsubEmpty) {
            endCatchUp(ending, now: now)
        }
    }

    /// Reads messages from `source` while each can be sent at once, up to a burst; true when it
    /// found `source` empty.
    private func pacedBurst(from source: Socket, role: BrokerSocketRole, now: UInt64) throws -> Bool {
        for _ in 0..<Self.burst {
            guard let size = try source.receiveSize(into: heldFirstFrame, dontWait: true) else { return true }
            inHand = (source, role, size)
            // Not sent, or its marker was refused: nothing more before them.
            guard try offerInHand(now: now), pendingMarkers.isEmpty else { return false }
        }
        return false
    }

    /// Offers the message in hand to XPUB, whose XPUB_NODROP refuses its first frame while any
    /// subscriber it goes to has a full queue; sent whole when taken. True when it went.
    private func offerInHand(now: UInt64) throws -> Bool {
        guard var (source, role, size) = inHand else { return false }
        // An upstream zpubd's wrapped last value: its own topic is the first frame to offer,
        // so that a refusal keeps it in hand as any message (left to `forwardMessage`, it went
        // out lossily while XPUB_NODROP was on: refused, it was lost for everyone).
        if role == .xsub && size == UpstreamValue.firstFrameSize {
            switch try unwrapUpstreamValue(in: heldFirstFrame, from: source, firstFrameSize: size) {
            case .forward(let topicSize):
                size = topicSize
                inHand = (source, role, size)
            case .known:
                while heldFirstFrame.hasMore { _ = try source.receiveSize(into: heldFirstFrame) }
                inHand = nil
                return true
            case .wrappingAnInternalTopic:
                while heldFirstFrame.hasMore { _ = try source.receiveSize(into: heldFirstFrame) }
                inHand = nil
                state.internalTopicMessages &+= 1
                return true
            case .notAWrapping:
                break
            }
        }
        // zpubd's own topics are not forwarded but read to their end, where `forwardMessage`
        // looks for them (with accounting or storing on).
        let internalTopic =
            (state.topicAccounting || storesMessages || looksForWrappedValues(role)) && size >= 6
            && heldFirstFrame.withUnsafeBytes(count: size) { $0[0] == UInt8(ascii: "$") && Self.isInternal($0) }
        if !internalTopic {
            offer.share(heldFirstFrame)
            guard try xpub.send(offer, more: heldFirstFrame.hasMore, dontWait: true) else {
                catchUp?.refused(nowNanoseconds: now)
                return false
            }
        }
        inHand = nil
        catchUp?.sent(nowNanoseconds: now)
        message.take(from: heldFirstFrame)
        try forwardMessage(
            from: source, role: role, firstFrameSize: size, storing: storesMessages, firstFrameSent: !internalTopic)
        // Sent, but its marker was refused: that waits now, as a refused message would.
        if !pendingMarkers.isEmpty { catchUp?.refused(nowNanoseconds: now) }
        return true
    }

    /// A marker during a catch-up: sent after those still pending, or kept pending.
    private func sendPacedMarker(_ frames: [[UInt8]]) throws {
        pendingMarkers.append(frames)
        try sendPendingMarkers()
    }

    /// Sends the pending markers in order while XPUB takes them (XPUB_NODROP refuses only a
    /// first frame); true when none is left.
    @discardableResult
    private func sendPendingMarkers() throws -> Bool {
        while let frames = pendingMarkers.first {
            guard try sendFrames(frames) else { return false }
            pendingMarkers.removeFirst()
        }
        return true
    }

    /// What is held has waited `catch_up_stall_ms`: the subscribers whose queues
    /// are still full read nothing meanwhile (one that reads empties its queue well within
    /// that). Sent without XPUB_NODROP, it is dropped for exactly them, and libzmq takes their
    /// pipes out of the set it sends to until each reads again (`dist_t` deactivates a pipe a
    /// write found full until its reader reaches the low-water mark), so XPUB_NODROP no longer
    /// waits for them, and the rest goes out at the pace of those that read. Ending the
    /// catch-up there instead sent the rest at full speed: a subscriber that read everything
    /// got 40,000 of 80,000 messages.
    private func letStalledSubscribersGo() {
        guard let stalled = catchUp else { return }
        // Longer than catch_up_stall_ms after a reload that shortened it, or a loop held up.
        let waited = stalled.stats(nowNanoseconds: SystemClock.monotonicNanoseconds()).waitingMilliseconds ?? 0
        let longer = waited >= stalled.stallNanoseconds / 1_000_000 + 100 ? "; it waited \(waited) ms" : ""
        do {
            try xpub.setOption(.xpubNoDrop, 0)
        } catch {
            logger.error("XPUB_NODROP could not be turned off to let a stalled subscriber go: \(error)")
            return endCatchUp(nil, now: SystemClock.monotonicNanoseconds())
        }
        if sendHeldLossily() { catchUp?.sent(nowNanoseconds: SystemClock.monotonicNanoseconds()) }
        catchUp?.letGo()
        do {
            try xpub.setOption(.xpubNoDrop, 1)
        } catch {
            logger.error("XPUB_NODROP could not be turned on again after a stalled subscriber was let go: \(error)")
            return endCatchUp(nil, now: SystemClock.monotonicNanoseconds())
        }
        guard let progress = catchUp else { return }
        logger.warning(
            "no read heard from a subscriber for \(progress.stallNanoseconds / 1_000_000) ms while \(progress.cause.backlog) went out (\(progress.forwarded) forwarded so far\(longer)): the subscribers whose queues were full no longer hold the others back, and lose what goes out until they read again; one that reads fewer than half its RCVHWM (500 by default) in that time looks like that: raise catch_up_stall_ms for such readers (docs/reliability.md)"
        )
    }

    /// Sends what the catch-up holds, its markers first, with XPUB_NODROP off: dropped only for
    /// full queues. True when a message was in hand.
    private func sendHeldLossily() -> Bool {
        // A refused offer still shares its frame's buffer.
        offer.replace(with: [UInt8]())
        do {
            try sendPendingMarkers()
        } catch {
            logger.error("cannot publish a marker: \(error)")
        }
        pendingMarkers.removeAll()
        guard let (source, role, size) = inHand else { return false }
        inHand = nil
        message.take(from: heldFirstFrame)
        // Ended by a command too, after a reader was handed the counters.
        if state.topicAccounting { state.prepareToCountTopics() }
        do {
            try forwardMessage(from: source, role: role, firstFrameSize: size, storing: storesMessages)
        } catch {
            logger.error("forwarding from \(role.rawValue) failed: \(error)")
        }
        return true
    }

    /// Ends pacing: XPUB drops for full queues again, and a message in hand goes out as any
    /// other would. `ending` nil: the stop's drain ran out of time, XPUB_NODROP could not be
    /// set, or a RESUME without pacing after a PAUSE suspended it.
    private func endCatchUp(_ ending: BacklogCatchUp.Ending?, now: UInt64) {
        guard let progress = catchUp else { return }
        catchUp = nil
        do {
            try xpub.setOption(.xpubNoDrop, 0)
        } catch {
            logger.error("XPUB_NODROP could not be turned off after \(progress.cause.backlog): \(error)")
        }
        _ = sendHeldLossily()
        // After the backlog's last message, the one in hand: an in-process subscriber that
        // finds its queue empty once it knows of the end has read all of it (`BacklogWatch`).
        if handle.catchingUp.load(ordering: .relaxed) {
            handle.catchUpEndedNanoseconds.store(SystemClock.monotonicNanoseconds(), ordering: .releasing)
            handle.catchingUp.store(false, ordering: .releasing)
        }
        let elapsed = progress.elapsedMilliseconds(nowNanoseconds: now)
        let stalls =
            progress.stalls == 0
            ? "" : "; subscribers let go at \(progress.stalls) stall\(progress.stalls == 1 ? "" : "s")"
        let paced = "\(progress.forwarded) forwarded in \(elapsed) ms at the slowest subscriber's pace\(stalls)"
        switch ending {
        case .caughtUp?:
            // Nothing held at start is the usual case, not worth a line.
            // The count may include live traffic: pacing cannot tell it from the backlog.
            let why =
                progress.producersWentQuiet(nowNanoseconds: now)
                ? ""
                : "; the subscribers kept up for \(BacklogCatchUp.keptUpNanoseconds / 1_000_000) ms, so what still comes goes at full speed"
            if progress.forwarded > 0 || progress.cause == .resume {
                logger.info("\(progress.cause.backlog) is out: \(paced)\(why)")
            }
        case .drainsEnd?:
            let drain = configuration.shutdownDrainMilliseconds
            logger.warning(
                "\(progress.cause.backlog) goes out at full speed for the last \(Self.drainAtFullSpeedMilliseconds(drain)) ms of the stop's drain, after \(paced): subscribers send_hwm behind lose messages, and what producers still have queued when it ends is dropped (raise shutdown_drain_ms)"
            )
        case .timeLimit?:
            logger.warning(
                "\(progress.cause.backlog) goes out at full speed after \(paced): resume_catch_up_ms (\(configuration.resumeCatchUpMilliseconds)) passed; subscribers send_hwm behind lose messages (raise resume_catch_up_ms or send_hwm)"
            )
        case nil:
            logger.info("pacing \(progress.cause.backlog) ended after \(paced)")
        }
    }

    // MARK: Subscriptions: XPUB -> XSUB

    /// Subscription frames are handled for at most this long per iteration before data gets
    /// its turn: each new prefix costs a table insert here and a node per byte in XPUB's and
    /// XSUB's tries, so 512 long ones in a row held data back for tens of milliseconds. (What
    /// libzmq does inside its own calls under a flood is beyond this; docs/reliability.md.)
    static let subscriptionSliceNanoseconds: UInt64 = 1_000_000

    /// Reads subscription frames for up to a burst or a time slice; true when it read them
    /// all (the XPUB had no more: libzmq's non-blocking read takes in what its pipes hold
    /// before it says so, as does asking for its events when the slice ends; without that, a
    /// slice that ended on the last frame left a barrier waiting for the next frame to come).
    @discardableResult
    private func handleSubscriptions() -> Bool {
        let readAll = readSubscriptions()
        if readAll && misdirected.isOpen {
            let now = SystemClock.monotonicNanoseconds()
            let toDrop = misdirected.readDry()
            for connection in toDrop { misdirectedToDrop[connection] = now &+ Self.misdirectedDropNanoseconds }
            tellOfAMessageThatIsNoSubscription(subscribersToDrop: toDrop.count)
        }
        return readAll
    }

    private func readSubscriptions() -> Bool {
        let sliceEnd = SystemClock.monotonicNanoseconds() &+ Self.subscriptionSliceNanoseconds
        do {
            for handled in 0..<Self.burst {
                // The clock after every frame: a frame can cost milliseconds (a subscription to
                // a prefix the last-value cache covers may scan the cache: 2 ms with 100,000
                // topics, and an XSUB peer can repeat one as often as it likes), and a read of
                // the clock costs less than the cheapest frame.
                if handled > 0 && SystemClock.monotonicNanoseconds() >= sliceEnd { return !xpub.hasInput }
                guard try xpub.receive(into: message, dontWait: true) else { return true }
                state.xpub.messagesIn &+= 1
                state.xpub.bytesIn &+= UInt64(message.count)
                if message.hasMore || message.count == 0 || message.withUnsafeBytes({ $0[0] > 1 }) {
                    // Not a subscription: subscribers have nothing else to say. Discard it whole;
                    // until the XPUB is read dry, libzmq pairs frames with the wrong subscribers.
                    misdirected.notASubscription()
                    state.nonSubscriptionMessages &+= 1
                    while message.hasMore {
                        _ = try xpub.receive(into: message)
                        // libzmq takes a further frame that starts with 0 or 1 for a subscription
                        // of the sender's (it ends the message there: its copy has no "more"):
                        // it keeps it for the sender, and unsubscribes it when the sender leaves.
                        // Counted as one, or that unsubscription counted down somebody else's.
                        if message.count > 0 && message.withUnsafeBytes({ $0[0] <= 1 }) { try takeSubscriptionFrame() }
                    }
                    continue
                }
                try takeSubscriptionFrame()
            }
        } catch {
            logger.error("handling subscriptions failed: \(error)")
        }
        return !xpub.hasInput
    }

    /// Counts the subscription frame in `message` and carries out what it means.
    private func takeSubscriptionFrame() throws {
        let connection = subscriberConnection()
        // No connection metadata at all: an inproc peer (the gateway) or libzmq itself.
        let inProcess = connection == nil && !message.hasMetadata
        let totalBefore = state.subscriptions.totalSubscriptions
        var actions = message.withUnsafeBytes {
            state.handleSubscriptionFrame(
                $0, from: connection?.identity, connectionClosed: connection?.closed ?? false,
                inProcess: inProcess, admitsWaiting: !misdirected.isOpen, nowMilliseconds: nowMilliseconds)
        }
        var heldForTheGateway: [[UInt8]] = []
        if misdirected.isOpen {
            actions = message.withUnsafeBytes {
                misdirected.withhold(
                    actions, frame: $0, from: connection?.identity, closed: connection?.closed ?? false)
            }
        } else if inProcess && !misdirected.inProcessHeld.isEmpty && message.withUnsafeBytes({ $0.first == 1 }) {
            // The gateway's frame: libzmq pairs it with the gateway, as it does what was held.
            heldForTheGateway = misdirected.takeInProcessHeld()
        }
        // A frame longer than a subscription may be (a refused one) is not the pin: libzmq
        // shares a long frame's content with its copy, and up to 16 MiB would stay.
        if let identity = connection?.identity, connectionPins[identity.metadata] == nil,
            message.count <= 1 + configuration.maxSubscriptionLength,
            state.subscriberConnections.isRecorded(identity)
        {
            connectionPins[identity.metadata] = Message(copyOf: message)
        }
        try carryOut(actions, thenApply: heldForTheGateway)
        if overTotalLeaving > 0 {
            if let identity = connection?.identity {
                countDownLeaving(identity)
            } else if state.subscriptions.totalSubscriptions < totalBefore {
                // libzmq's own unsubscription for a connection it closed, which says not whose
                // (or the gateway's): taken as a leaving connection's, up to what they hold.
                // Wrong only while another connection's close is counted down at the same
                // moment (or a leaving one's late subscription), and then on the safe side,
                // until housekeeping lets those entries go: less is held as leaving, and a
                // subscriber past the limit is dropped.
                overTotalCountedDown += min(overTotalLeaving, totalBefore - state.subscriptions.totalSubscriptions)
            }
        }
        // Only a frame that added to the total: a repeat, zpub's retry frame or a refusal adds
        // nothing, and dropping for those dropped everyone who sent one while the total stayed
        // past the limit (a review).
        if let connection, !connection.closed, state.subscriptions.totalSubscriptions > totalBefore,
            state.subscriptions.totalSubscriptions > state.maxLiveSubscriptions
        {
            dropOverTheTotal(connection.identity)
        }
    }

    /// Tells, once a minute at most, that messages go untracked because the topic table is full:
    /// counted in TOPICS and STATS, it was said nowhere, and the table keeps its topics until a
    /// restart (or a reload that changes `max_topics`).
    private func warnIfTopicTableIsFull(nowNanoseconds now: UInt64) {
        let untracked = state.topics.untrackedMessages
        guard untracked != topicTableFullWarning.untracked, state.topics.count >= state.topics.maxTopics else { return }
        guard !topicTableFullWarning.told || now &- topicTableFullWarning.at >= 60_000_000_000 else { return }
        logger.warning(
            "the topic table is full (max_topics = \(state.topics.maxTopics)): \(untracked &- topicTableFullWarning.untracked) messages on other topics were forwarded without being counted per topic (TOPICS and STATS show them as untracked); the table keeps its topics until a restart: raise max_topics (a reload applies it) if they should be counted"
        )
        topicTableFullWarning = (untracked, now, true)
    }

    /// Answers the barriers waiting (`afterSubscriptionsApplied`): the XPUB was just read dry.
    private func passSubscriptionBarriers() {
        guard !subscriptionBarriers.isEmpty else { return }
        for done in subscriptionBarriers { done() }
        subscriptionBarriers.removeAll()
    }

    /// The first frame of a message the last-value cache covers, into `captured`; false
    /// when the topic alone is larger than the cache may hold. Out of line, as is the next one:
    /// inside the forwarding loop's frame loop their code cost every message some 20
    /// instructions (callgrind), cached or not.
    ///
    /// A message larger than the cache's max_bytes is not cached: stored, it would evict every
    /// other value and then itself. It still replaces the topic's older value, which is stale
    /// now: it is captured as its topic alone, which the cache takes as a deletion.
    @inline(never)
    private func beginCapture(firstFrameSize: Int) -> Bool {
        // Counted as the cache counts an entry: each frame with its 4-byte length.
        guard 4 + firstFrameSize <= state.lastValue.maxBytes else { return false }
        captured.removeAll()
        message.withUnsafeBytes(count: firstFrameSize) { captured.append(frame: $0) }
        capturedBytes = 4 + firstFrameSize
        return true
    }

    /// A message too large for the cache, logged (rate-limited): the value a new subscriber
    /// would expect is not there, and nothing said why.
    @inline(never)
    private func tellTooLargeForTheCache(bytes: Int) {
        guard let heldBack = tooLargeLogLimit.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) else { return }
        logger.warning(
            "a message of \(bytes) bytes (its frames, 4 bytes each besides) under the [last_value] prefixes is larger than max_bytes (\(state.lastValue.maxBytes)): it is forwarded but not cached, and its topic's older value is removed; raise max_bytes to cache such messages\(Self.heldBackNote(heldBack))"
        )
    }

    @inline(never)
    private func continueCapture(frameSize: Int) {
        capturedBytes &+= 4 + frameSize
        if capturedBytes <= state.lastValue.maxBytes {
            message.withUnsafeBytes(count: frameSize) { captured.append(frame: $0) }
        } else {
            captured.keepFirstFrame()
        }
    }

    /// The subscribers whose subscriptions were held back after a message that is no
    /// subscription are dropped; they reconnect and subscribe again (`MisdirectedSubscriptions`).
    /// At housekeeping, once their accept events are in (a connection is dropped only as the
    /// XPUB's); one whose event has not come by its deadline is let be.
    private func dropMisdirectedConnections(now: UInt64) {
        state.misdirectionDrops &+= UInt64(drop(&misdirectedToDrop, now: now).count)
    }

    /// Drops the connections in `pending` that are known as the XPUB's by now, and lets be
    /// those past their deadline or gone; returns those it dropped.
    private func drop(_ pending: inout [SubscriberConnections.Identity: UInt64], now: UInt64)
        -> [SubscriberConnections.Identity]
    {
        var dropped: [SubscriberConnections.Identity] = []
        for (connection, deadline) in pending {
            let settled: Bool
            if let socket = Self.socket(at: connection.descriptor), connection.isCurrent(socket) {
                let done = MisdirectedSubscriptions.drop(
                    connection, current: Self.socket(at:),
                    isSubscriber: { unbinding.isOpen(descriptor: $0, role: .xpub, socket: $1) })
                if done { dropped.append(connection) }
                settled = done || now >= deadline
            } else {
                settled = true  // gone already
            }
            if settled { pending[connection] = nil }
        }
        return dropped
    }

    /// A subscription from `connection` while every connection's subscriptions together are
    /// past `max_live_subscriptions`: the connection is dropped (it reconnects, and subscribes
    /// again). Its subscription is counted and applied first, as any other: libzmq records the
    /// frame for the connection whatever zpubd does, and unsubscribes it at the close, without
    /// saying whose; counted, that unsubscription counts it down. Refused instead, it could not
    /// be told from a holder's of the same prefix (`SubscriberConnections`): counts went wrong,
    /// or the refused subscriber waited for good (tried, and reviewed, 2026-12-07). Frames
    /// without a connection (the HTTP gateway's, in-process, bounded by its own limits) are let be.
    private func dropOverTheTotal(_ connection: SubscriberConnections.Identity) {
        guard overTotalToDrop[connection] == nil, overTotalShutDown[connection] == nil else { return }
        // The subscriptions of connections shut down are counted down only as libzmq ends their
        // pipes: held against this one meanwhile, they dropped it too.
        guard state.subscriptions.totalSubscriptions - overTotalLeaving > state.maxLiveSubscriptions else { return }
        let now = SystemClock.monotonicNanoseconds()
        overTotalToDrop[connection] = now &+ Self.misdirectedDropNanoseconds
        // At once when its accept event is in, as it mostly is; at housekeeping otherwise.
        noteDroppedOverTheTotal(drop(&overTotalToDrop, now: now), now: now)
        if let heldBack = overTotalLogLimit.admit(nowNanoseconds: now) {
            logger.warning(
                "dropped a subscriber's connection: it subscribed while the subscriptions of all connections together (\(state.subscriptions.totalSubscriptions)) were past max_live_subscriptions (\(state.maxLiveSubscriptions)); it reconnects and subscribes again, and is dropped again while the total stays past the limit: raise it in [limits], or find who holds so many (zpub subscriptions)\(Self.heldBackNote(heldBack))"
            )
        }
    }

    /// A connection shut down for the total has its subscriptions counted down as its own
    /// unsubscriptions or libzmq's for it come in: what they count down of the total comes off
    /// what is held as leaving too. Held until housekeeping instead (a second or more), they
    /// were subtracted twice meanwhile, and the connection, back within libzmq's 100 ms
    /// reconnect, subscribed against a total that looked below the limit and stayed for good
    /// (an audit).
    private func countDownLeaving(_ connection: SubscriberConnections.Identity) {
        guard let shutDown = overTotalShutDown[connection] else { return }
        let records = state.subscriberConnections.heldCount(of: connection)
        guard records < shutDown.records else { return }
        overTotalRecords -= shutDown.records - records
        overTotalCountedDown = min(overTotalCountedDown, overTotalRecords)
        overTotalShutDown[connection] = (shutDown.since, records)
    }

    private func noteDroppedOverTheTotal(_ dropped: [SubscriberConnections.Identity], now: UInt64) {
        for connection in dropped where overTotalShutDown[connection] == nil {
            let records = state.subscriberConnections.heldCount(of: connection)
            overTotalShutDown[connection] = (now, records)
            overTotalRecords += records
        }
        state.overTotalDrops &+= UInt64(dropped.count)
    }

    /// Says that the window after a message that is no subscription is over, and what it costs.
    private func tellOfAMessageThatIsNoSubscription(subscribersToDrop: Int) {
        guard let heldBack = strangerLogLimit.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) else { return }
        var cost =
            subscribersToDrop == 0
            ? "no subscription was read meanwhile"
            : "zpubd applied none of the \(subscribersToDrop) subscriber\(subscribersToDrop == 1 ? "'s" : "s'") subscriptions read meanwhile (libzmq would have given them to others) and drops their connections: they reconnect and subscribe again"
        // The gateway's held back beyond the bound: said, not lost in silence.
        if misdirected.inProcessLost > 0 {
            cost +=
                "; \(misdirected.inProcessLost) of the HTTP gateway's subscriptions could not be held (over \(MisdirectedSubscriptions.maxInProcessHeldBytes >> 20) MiB since start): its clients of those prefixes get nothing until they subscribe again"
        }
        logger.warning(
            "a peer of the XPUB sent a message that is not a subscription (an XSUB sending data upstream; dropped): \(cost). If such a peer should not connect at all: allowed_keys, a firewall (docs/security.md)\(heldBack > 0 ? " (\(heldBack) more since the last such message)" : "")"
        )
    }

    /// The connection the subscription frame in `message` came from, as `SubscriberConnections`
    /// knows connections, and whether it had closed when the frame was read; nil for frames
    /// without one (in-process subscribers, libzmq's own unsubscriptions for a closed
    /// connection).
    ///
    /// libzmq closes a connection's descriptor before it tells the socket that the connection
    /// ended, so a descriptor that still shows the socket a connection was recorded with means
    /// that it is still open. A connection not recorded yet is the one the descriptor shows (a
    /// closed connection's first frame read after its descriptor went to a new one is then
    /// taken as the new one's: applied, as before this was looked at).
    private func subscriberConnection() -> (identity: SubscriberConnections.Identity, closed: Bool)? {
        guard let source = message.sourceConnection else { return nil }
        let socket = Self.socket(at: source.descriptor)
        // A recorded connection's metadata is pinned (`connectionPins`): a frame with it is that
        // connection's, open or closed, even once its descriptor went to a new connection. Taken
        // for the new one, a closed connection's late unsubscription was one from a prefix not
        // held, and its subscription stayed counted for good.
        // (Unpinned, a recorded connection is trusted only while its descriptor shows its socket.)
        if let known = state.subscriberConnections.recorded(
            descriptor: source.descriptor, metadata: source.metadataAddress),
            connectionPins[known.metadata] != nil || known.isCurrent(socket)
        {
            return (known, !known.isCurrent(socket))
        }
        guard let socket else {
            // The connection closed before its frame was read (libzmq reads ahead): still
            // that connection, known by its metadata, which lives as long as the frame. Counted
            // frame by frame instead, an unsubscription from a prefix it never held counted
            // down another subscriber's, and a repeated subscription was counted twice.
            return (
                SubscriberConnections.Identity(
                    descriptor: source.descriptor, device: 0, inode: 0, metadata: source.metadataAddress), true
            )
        }
        return (
            SubscriberConnections.Identity(
                descriptor: source.descriptor, device: socket.device, inode: socket.inode,
                metadata: source.metadataAddress), false
        )
    }

    /// The socket a descriptor shows now (nil: closed, or not a socket).
    private static func socket(at descriptor: Int32) -> SubscriberConnections.Socket? {
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return nil }
        return SubscriberConnections.Socket(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Does what `BrokerState.handleSubscriptionFrame` decided, in its order; the frame is
    /// still in `message`. `held`: prefixes to apply for the same subscriber too (the
    /// gateway's, held back while libzmq paired frames wrongly: `MisdirectedSubscriptions`).
    private func carryOut(_ actions: SubscriptionActions, thenApply held: [[UInt8]] = []) throws {
        if let change = actions.apply {
            message.withUnsafeBytes { frame in
                let prefix = UnsafeRawBufferPointer(rebasing: frame[1...])
                // XPUB_MANUAL: the change takes effect for the subscriber it came from only here.
                try? xpub.setOption(change == .subscribe ? .subscribe : .unsubscribe, bytes: prefix)
                if change == .subscribe && !wrapsValuesForDownstreams && prefix.elementsEqual(UpstreamValue.prefix) {
                    wrapsValuesForDownstreams = true
                }
            }
        }
        // Before anything is sent: a send (a last value, a marker) may end libzmq's pairing.
        for prefix in held { try? xpub.setOption(.subscribe, bytes: prefix) }
        if !actions.admitted.isEmpty { try admit(actions.admitted) }
        if let value = actions.lastValue {
            if message.property(UpstreamValue.property) == "1" {
                // A downstream zpubd: wrapped, so that it forwards the value only if it is news
                // there. Its own subscription to the wrapping's topic makes the send reach it
                // (forced here for its connection, the subscription stayed with whichever
                // connection libzmq took for it when it paired frames wrongly, a walkthrough's
                // plain subscriber, which then got every wrapped value).
                try sendToNewSubscriberOnly(
                    UpstreamValue.wrapped(value, storedMilliseconds: actions.lastValueStoredMilliseconds))
            } else {
                try sendToNewSubscriberOnly(value)
            }
        }
        switch actions.marker {
        case .subscribed(let token):
            if let request = snapshots.markerSubscribed(token: token) { serve(request, token: token) }
        case .unsubscribed(let token):
            snapshots.markerUnsubscribed(token: token)
        case nil:
            break
        }
        // Only `outgoing` was sent so far: `message` still holds the subscription frame.
        if actions.forwardUpstream && !subscriptionFrameIsPinned() { try forwardUpstream() }
        switch actions.refusal {
        case .tooLong(let bytes, let limit):
            if let heldBack = tooLongLogLimit.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                logger.warning(
                    "refused a subscription of \(bytes) bytes: longer than max_subscription_length (\(limit))\(Self.heldBackNote(heldBack))"
                )
            }
        case .tableFull(let limit):
            if let heldBack = tableFullLogLimit.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                logger.warning(
                    "refused a subscription: the table holds max_subscriptions (\(limit)) prefixes; raise the limit in [limits]\(Self.heldBackNote(heldBack))"
                )
            }
        case nil:
            break
        }
    }

    /// Applies subscriptions refused earlier for a full table to the connection whose frame was
    /// just read (before a last value is sent to it: that send ends libzmq's pairing), and
    /// sends those new to the table upstream. No last value: it goes to the connection of the
    /// frame read last, and only once.
    private func admit(_ admitted: [SubscriptionActions.Admission]) throws {
        for admission in admitted {
            try? xpub.setOption(.subscribe, bytes: admission.prefix)
            if admission.forwardUpstream && !pinnedUpstream.contains(admission.prefix) {
                try subscribeUpstream(admission.prefix)
            }
        }
        if let heldBack = admissionLogLimit.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
            logger.info(
                "admitted \(admitted.count) subscription\(admitted.count == 1 ? "" : "s") of a subscriber refused earlier for max_subscriptions, now that the table has room\(Self.heldBackNote(heldBack))"
            )
        }
    }

    /// Sends a subscription to `prefix` (or its end) to the publishers and upstream brokers on
    /// XSUB.
    private func subscribeUpstream(_ prefix: [UInt8], subscribe: Bool = true) throws {
        outgoing.replace(with: [subscribe ? 1 : 0] + prefix)
        let size = UInt64(outgoing.count)
        if try xsub.send(outgoing, dontWait: true) {
            state.xsub.messagesOut &+= 1
            state.xsub.bytesOut &+= size
        }
    }

    /// Subscribes XSUB to the prefixes history and the last-value cache keep, and lets go of
    /// those they no longer keep (at start, and after a reload). A prefix subscribers hold too
    /// is neither sent again nor let go of: upstream, each prefix is one subscription, which
    /// the last of zpubd and its subscribers to let go of ends.
    /// A passive pair member holds none: it reads no producer, and what its upstreams sent meanwhile
    /// would wait in XSUB's queue, to go out at its takeover as new messages, numbered again.
    private func pinUpstream() {
        var wanted = Set<[UInt8]>()
        if pairActive {
            wanted.formUnion(state.lastValue.prefixes)
            if history != nil { wanted.formUnion(historyPrefixes.names.map { Array($0.utf8) }) }
        }
        for prefix in wanted.subtracting(pinnedUpstream) where state.subscriptions.count(of: prefix) == 0 {
            try? subscribeUpstream(prefix)
        }
        for prefix in pinnedUpstream.subtracting(wanted) where state.subscriptions.count(of: prefix) == 0 {
            try? subscribeUpstream(prefix, subscribe: false)
        }
        pinnedUpstream = wanted
        state.heldUpstream = Array(wanted)
    }

    /// Whether the subscription frame in `message` is for a prefix XSUB holds for zpubd
    /// (`pinUpstream`): sent already, and kept when its last subscriber leaves.
    private func subscriptionFrameIsPinned() -> Bool {
        guard !pinnedUpstream.isEmpty, message.count > 0 else { return false }
        return message.withUnsafeBytes { pinnedUpstream.contains(Array($0[1...])) }
    }

    /// Sends the subscription frame in `message` to the publishers on XSUB.
    private func forwardUpstream() throws {
        let size = UInt64(message.count)
        if try xsub.send(message, dontWait: true) {
            state.xsub.messagesOut &+= 1
            state.xsub.bytesOut &+= size
        }
    }

    // MARK: Last values and snapshots

    /// Sends a message to the subscriber whose subscription was just applied, and to nobody
    /// else: with ZMQ_XPUB_MANUAL_LAST_VALUE on, libzmq's next send after a received
    /// subscription goes to that subscriber only. The option is on for this one send: left on,
    /// it would also divert the first data message after every subscription that has no value.
    private func sendToNewSubscriberOnly(_ frames: [[UInt8]]) throws {
        try xpub.setOption(.xpubManualLastValue, 1)
        defer {
            // Turning it off also turns manual mode off; turn that back on at once.
            try? xpub.setOption(.xpubManualLastValue, 0)
            try? xpub.setOption(.xpubManual, 1)
        }
        try sendFrames(frames)
    }

    /// Sends a message zpubd makes itself, frame by frame through `outgoing`; false when XPUB
    /// refused it (XPUB_NODROP refuses only a first frame, so nothing of it went out).
    @discardableResult
    private func sendFrames(_ frames: [[UInt8]]) throws -> Bool {
        for (index, frame) in frames.enumerated() {
            outgoing.replace(with: frame)
            guard try xpub.send(outgoing, more: index < frames.count - 1, dontWait: true) else { return false }
        }
        return true
    }

    private func requested(_ request: MarkerRequest, token: String) {
        if let ready = snapshots.requested(token: token, request, nowNanoseconds: SystemClock.monotonicNanoseconds()) {
            serve(ready, token: token)
        }
    }

    private func serve(_ request: MarkerRequest, token: String) {
        switch request {
        case .snapshot(let prefix, let slot):
            serveSnapshot(token: token, prefix: prefix, slot: slot)
        case .replay(let since, let prefix, let slot):
            serveReplay(token: token, since: since, prefix: prefix, slot: slot)
        }
    }

    /// Every message forwarded so far has a sequence up to `through`, every later one above it:
    /// the marker goes out now, between two forwarded messages, and the writer reads the kept
    /// ones after everything handed to it so far is written.
    private func serveReplay(
        token: String, since: UInt64, prefix: [UInt8], slot: ReplySlot<Result<HistoryReply, ControlError>>
    ) {
        guard let history else {
            return slot.fulfill(.failure(ControlError(.historyOff, "history is off")))
        }
        let through = nextSequence &- 1
        publishMarker(token: token, sequence: through)
        var query = HistoryQuery(position: .since(since), through: through, prefix: prefix)
        query.resumesAcrossSplit = true
        history.mailbox.post(.query(query, slot))
    }

    private func publishMarker(token: String, sequence: UInt64) {
        do {
            let marker = SnapshotReply.markerFrames(token: token, sequence: sequence)
            if catchUp != nil { return try sendPacedMarker(marker) }
            try sendFrames(marker)
        } catch {
            logger.error("cannot publish a snapshot marker: \(error)")
        }
    }

    /// Copies the values (all forwarded messages so far are in them), then publishes the marker
    /// (everything forwarded later follows it in each subscriber's stream).
    private func serveSnapshot(token: String, prefix: [UInt8], slot: ReplySlot<CapturedSnapshot>) {
        let captured = CapturedSnapshot(
            unsortedEntries: state.lastValue.unsortedEntries(under: prefix, nowMilliseconds: nowMilliseconds),
            sequence: state.lastValue.lastSequence, prefixes: state.lastValue.prefixes)
        state.lastValue.snapshots &+= 1
        publishMarker(token: token, sequence: captured.sequence)
        slot.fulfill(captured)
    }

    // MARK: Connection events

    /// One connection event; the descriptor guard has had it already (`ConnectionEventReader`).
    private func handle(_ event: MonitorEvent, of role: BrokerSocketRole, accepted: SubscriberReachability.Accepted?) {
        let metadata: Logger.Metadata = ["socket": "\(role.rawValue)", "endpoint": "\(event.endpoint)"]
        if event.event.contains(.accepted) {
            unbinding.accepted(descriptor: event.value, role: role, endpoint: event.endpoint, socket: Self.socket(at:))
        } else if event.event.contains(.connected) {
            unbinding.connected(descriptor: event.value, role: role)
        } else if event.event.contains(.disconnected), !unbinding.expectsDisconnect(descriptor: event.value, role: role)
        {
            return  // counted out already, as closed by an unbind
        }
        if event.event.contains(.accepted) || event.event.contains(.connected) {
            state.peerChanged(role, by: 1)
            if role == .xpub && configuration.pair.isEnabled, let accepted {
                subscriberReachability.opened(descriptor: event.value, accepted)
            }
            (state.acceptPaused, state.acceptPauses) = descriptorGuard.status
            if state.upstreamEvent(endpoint: event.endpoint, .connected) {
                upstreamsToldUnreachable.remove(event.endpoint)
                upstreamReconnects[event.endpoint] = nil
                // Told once the handshake completes: a peer of the wrong type connects too.
                upstreamsHandshaking.insert(event.endpoint)
            } else {
                logger.debug("peer connected", metadata: metadata)
            }
        } else if event.event.contains(.disconnected) {
            state.peerChanged(role, by: -1)
            if role == .xpub {
                state.subscriberConnections.closed(
                    descriptor: event.value, current: Self.socket(at:),
                    nowMilliseconds: SystemClock.monotonicMilliseconds())
                subscriberReachability.closed(descriptor: event.value)
            }
            if state.upstreamEvent(endpoint: event.endpoint, .disconnected) {
                upstreamReconnects[event.endpoint] =
                    SystemClock.monotonicNanoseconds() &+ Self.upstreamReconnectNanoseconds
                if upstreamsHandshaking.remove(event.endpoint) != nil {
                    upstreamHandshakeFailed(event.endpoint, metadata: metadata)
                } else {
                    logger.warning("lost upstream \(event.endpoint); reconnecting", metadata: metadata)
                }
            } else {
                logger.debug("peer disconnected", metadata: metadata)
            }
        } else if event.event.contains(.connectRetried) {
            upstreamReconnects[event.endpoint] = nil  // libzmq retries this one itself
            if state.upstreamEvent(endpoint: event.endpoint, .retrying),
                upstreamsToldUnreachable.insert(event.endpoint).inserted
            {
                logger.warning(
                    "upstream \(event.endpoint) cannot be reached (the connection is refused, or its host is not found); trying again until it can: is the broker there running, and is that its XPUB endpoint?",
                    metadata: metadata)
            }
        } else if event.event.contains(.connectDelayed) {
            upstreamReconnects[event.endpoint] = nil
            state.upstreamEvent(endpoint: event.endpoint, .connecting)
        } else if event.event.contains(.acceptFailed) {
            (state.acceptPaused, state.acceptPauses) = descriptorGuard.status
        } else if event.event.contains(.handshakeSucceeded) {
            handshakesEnded[role, default: 0] &+= 1
            if role == .xsub, upstreamsHandshaking.remove(event.endpoint) != nil {
                upstreamReconnects[event.endpoint] = nil
                upstreamsFailedWithEvent.remove(event.endpoint)
                logger.notice("connected to upstream \(event.endpoint)", metadata: metadata)
            }
        } else if !event.event.intersection(.handshakeFailed).isEmpty {
            // A refusal (ZAP's, here or upstream) ends the handshake ZAP decided on. Other
            // failures after ZAP stay incomplete for `warnOfIncompleteHandshakes`: a peer that
            // hangs up during the handshake is most often one whose own check of the socket
            // type failed, and which will not come back (libzmq gives such a link up).
            if event.event.contains(.handshakeFailedAuth) {
                handshakesEnded[role, default: 0] &+= 1
                if role == .xsub && upstreamsHandshaking.contains(event.endpoint) {
                    upstreamsFailedWithEvent.insert(event.endpoint)
                }
            }
            state.handshakeFailures &+= 1
            if let heldBack = handshakeLogLimit.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                logger.info(
                    "a peer failed the ZeroMQ handshake and was dropped\(Self.heldBackNote(heldBack))",
                    metadata: metadata)
            }
        }
    }

    static let handshakeLookNanoseconds: UInt64 = 5_000_000_000

    /// An upstream link that ended before its handshake completed: told (libzmq retries a
    /// link whose peer hung up, but not one it dropped itself over the socket type: the
    /// reconnection scheduled at the disconnect covers that).
    private func upstreamHandshakeFailed(_ endpoint: String, metadata: Logger.Metadata) {
        // Counted as ended once: `warnOfIncompleteHandshakes` is for peers that connect to zpubd.
        if upstreamsFailedWithEvent.remove(endpoint) == nil { handshakesEnded[.xsub, default: 0] &+= 1 }
        guard
            let heldBack = upstreamHandshakeLogLimits[endpoint, default: LogRateLimit(intervalSeconds: 60)].admit(
                nowNanoseconds: SystemClock.monotonicNanoseconds())
        else { return }
        logger.error(
            "upstream \(endpoint) dropped the link during the ZeroMQ handshake: is it the upstream broker's xpub endpoint (not its pull, xsub or control), or a PUB, with the same CURVE settings? zpubd connects again every 5 s until it completes\(heldBack == 0 ? "" : " (said once a minute: \(heldBack) more times since)")",
            metadata: metadata)
    }

    /// Connects again the upstream links lost that libzmq did not retry, when due.
    private func reconnectFailedUpstreams(now: UInt64) {
        for (endpoint, due) in upstreamReconnects where now >= due {
            upstreamReconnects[endpoint] = nil
            guard upstreamEndpoints.contains(endpoint), pairActive, !upstreamsHandshaking.contains(endpoint) else {
                continue
            }
            try? xsub.disconnect(endpoint)
            do {
                try xsub.connect(endpoint)
                optionsAtBind[.xsub]?[endpoint] = configuration
            } catch {
                logger.warning(
                    "cannot connect to upstream \(endpoint) again: \(error)", metadata: ["endpoint": "\(endpoint)"])
            }
        }
    }

    /// Warns of connections ZAP let in that never completed the ZeroMQ handshake. libzmq 4.3.4
    /// drops a peer whose socket type does not pair with the socket's (a PUSH on the XPUB's
    /// port) with no event but the disconnect, and the peer reconnects every 100 ms, its
    /// messages going nowhere: a walkthrough found that invisible to both sides. Connections
    /// ZAP let in before the last look (5 s ago) have had time to complete. Logged once a
    /// minute at most while it lasts.
    private func warnOfIncompleteHandshakes() {
        let decided = zapDecided()
        defer { zapDecidedAtLastLook = decided }
        for role in [BrokerSocketRole.pull, .xsub, .xpub] {
            let checked = zapDecidedAtLastLook[role.rawValue] ?? 0
            let incomplete = checked &- min(checked, handshakesEnded[role] ?? 0)
            let before = incompleteAtLastLook[role] ?? 0
            incompleteAtLastLook[role] = incomplete
            guard incomplete > before,
                let heldBack = incompleteHandshakeLogLimits[role, default: LogRateLimit(intervalSeconds: 60)].admit(
                    nowNanoseconds: SystemClock.monotonicNanoseconds())
            else { continue }
            let pairs =
                switch role {
                case .pull: "PUSH sockets (producers)"
                case .xsub:
                    "PUB and XPUB sockets (publishers), and is itself an XSUB towards its upstreams, which must be XPUB or PUB endpoints"
                default: "SUB and XSUB sockets (subscribers)"
                }
            logger.warning(
                "\(incomplete - before) connection\(incomplete - before == 1 ? "" : "s") to the \(role.rawValue) socket passed its address and key checks but never completed the ZeroMQ handshake: most likely sockets of a type it does not pair with, which libzmq drops (or which hang up themselves) without a word, their messages going nowhere. The \(role.rawValue) socket takes \(pairs); producers' PUSH connect to pull, publishers' PUB to xsub, subscribers' SUB to xpub, REQ to control, and a downstream zpubd's upstream setting names this broker's xpub endpoint\(heldBack == 0 ? "" : " (said once a minute: \(heldBack) such looks were not logged)")",
                metadata: ["socket": "\(role.rawValue)"])
        }
    }

    /// A connection an unbind closed: libzmq ends those without a disconnect event, so the
    /// peer count kept them (10 subscribers of an endpoint a reload removed were still counted,
    /// and 20 once they reconnected elsewhere), and a pair's backup counted them as clients.
    private func connectionClosedWithoutEvent(_ descriptor: Int32, role: BrokerSocketRole) {
        state.peerChanged(role, by: -1)
        if role == .xpub {
            state.subscriberConnections.closed(
                descriptor: descriptor, current: Self.socket(at:),
                nowMilliseconds: SystemClock.monotonicMilliseconds())
            subscriberReachability.closed(descriptor: descriptor)
        }
    }

    /// Connection events the reader added up while the loop was behind: their effect at once,
    /// as `handle` one by one would leave it; upstream links logged by the state they end in,
    /// the rest by one line (rate-limited).
    private func apply(_ summary: ConnectionEventSummary) {
        guard !summary.isEmpty else { return }
        unbinding.summarized()
        for role in BrokerSocketRole.allCases {
            state.peerChanged(role, by: summary.opened[role, default: 0])
            state.peerChanged(role, by: -summary.closed[role, default: 0])
        }
        for descriptor in summary.closedSubscribers {
            state.subscriberConnections.closed(
                descriptor: descriptor, current: Self.socket(at:),
                nowMilliseconds: SystemClock.monotonicMilliseconds())
            subscriberReachability.closed(descriptor: descriptor)
        }
        if configuration.pair.isEnabled {
            for (descriptor, accepted) in summary.openedSubscribers {
                subscriberReachability.opened(descriptor: descriptor, accepted)
            }
        }
        (state.acceptPaused, state.acceptPauses) = descriptorGuard.status
        for (endpoint, changes) in summary.links {
            guard let now = state.upstreamEvents(endpoint: endpoint, changes) else { continue }
            // Taken as counts, the handshake's end is not known: a link not connected now is
            // connected again in 5 s unless libzmq retries it first (`upstreamReconnects`).
            upstreamsHandshaking.remove(endpoint)
            upstreamsFailedWithEvent.remove(endpoint)
            if now != .connected {
                upstreamReconnects[endpoint] = SystemClock.monotonicNanoseconds() &+ Self.upstreamReconnectNanoseconds
            }
            let metadata: Logger.Metadata = ["socket": "xsub", "endpoint": "\(endpoint)"]
            if changes.disconnects > 0 {
                logger.warning(
                    "lost upstream \(endpoint) \(changes.disconnects) time(s) while the loop was behind; \(now) now",
                    metadata: metadata)
            } else if changes.connects > 0 {
                logger.notice("connected to upstream \(endpoint)", metadata: metadata)
            }
        }
        state.handshakeFailures &+= UInt64(summary.handshakeFailures)
        for (role, count) in summary.handshakesEnded { handshakesEnded[role, default: 0] &+= UInt64(count) }
        connectionEventsSummarized &+= UInt64(summary.events)
        if let heldBack = summaryLogLimit.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
            logger.warning(
                "the forwarding loop fell \(connectionEvents.limit) connection events behind, and took the next \(summary.events) as counts (peer counts, subscriptions and upstream states stay right; those connections' own log lines were left out)\(Self.heldBackNote(heldBack))"
            )
        }
    }

    // MARK: Commands

    private func handleCommands() {
        for command in mailbox.take() {
            switch command {
            case .snapshot(let slot):
                slot.fulfill(state.forReaders)
            case .stats(let slot):
                var stats = state.statsSnapshot(uptimeSeconds: 0)
                stats.droppedLogRecords = UInt64(logQueue.droppedRecords)
                stats.connectionEventsSummarized = connectionEventsSummarized
                let now = SystemClock.monotonicNanoseconds()
                stats.catchUp = catchUp?.stats(nowNanoseconds: now)
                stats.startHoldLeftMilliseconds = startHoldUntil.map { ($0 &- min($0, now)) / 1_000_000 }
                slot.fulfill(stats)
            case .setPaused(let paused, let slot) where state.stopping:
                // Stopping: paused now, the drain would end with the producers' queues unread.
                logger.notice(
                    "\(paused ? "PAUSE" : "RESUME") ignored: zpubd is stopping and forwards what producers send")
                slot.fulfill(state.forwardingState)
            case .setPaused(let paused, let slot):
                if paused != state.paused {
                    logger.notice(paused ? "forwarding paused" : "forwarding resumed")
                    // A catch-up suspended sends nothing; RESUME's catch-up says so again.
                    if paused { handle.catchingUp.store(false, ordering: .relaxed) }
                    // Not during the start's hold (its end starts one) or on a passive broker.
                    if !paused && startHoldUntil == nil && (pairActive || stoodDown) { startCatchUp(.resume) }
                }
                state.paused = paused
                slot.fulfill(state.forwardingState)
            case .reconfigure(let newConfiguration, let serverKey, let revoked, let slot):
                slot.fulfill(reconfigure(newConfiguration, serverKey: serverKey, revoked: revoked))
            case .stop:
                // The loop starts the drain once the commands are handled.
                state.stopping = true
            case .endDrain:
                // The loop ends the drain once the commands are handled.
                drainCutShort = true
            case .snapshotValues(let token, let prefix, let slot):
                requested(.snapshot(prefix: prefix, slot), token: token)
            case .replay(let token, let since, let prefix, let slot):
                requested(.replay(since: since, prefix: prefix, slot), token: token)
            case .connectionEvent(let role, let event, let accepted):
                handle(event, of: role, accepted: accepted)
                connectionEvents.handled()
            case .connectionEventSummary:
                apply(connectionEvents.takeSummary())
            case .stall(let milliseconds):
                holdForTest(milliseconds: milliseconds)
            case .pairQuery(let slot):
                // Only a broker that may take over asks the kernel about each connection (three
                // system calls each: not on the active one's loop, at every heartbeat).
                let countedAt = SystemClock.monotonicNanoseconds()
                let subscribers =
                    pairActive
                    ? state.peers[.xpub, default: 0]
                    : subscriberReachability.reachable(
                        silenceMilliseconds: UInt32(clamping: configuration.pair.failoverMilliseconds / 3),
                        nowNanoseconds: countedAt, limit: Self.passiveClientsCountedAtMost)
                slot.fulfill(
                    PairLoopView(
                        nextSequence: nextSequence, subscribers: subscribers, countedAtNanoseconds: countedAt,
                        mirrorStoppedAfter: mirrorStopped ? nextSequence &- 1 : nil,
                        unboundProducerEndpoints: pairActive
                            ? pullEndpoints.missing(from: configuration.pullEndpoints)
                                + xsubEndpoints.missing(from: configuration.xsubEndpoints) : []))
            // Not once stood down: the drain numbers what producers had queued here, above what
            // it mirrored, and mirroring the active peer's numbers meanwhile would make this
            // broker give them again.
            case .replicate(let messages, let after) where !pairActive && activation == nil && !stoodDown:
                replicate(messages, after: after)
            case .replicate:
                // Taking over, or active (a late reply to a passive request): the numbers from
                // `nextSequence` on are this broker's now.
                break
            case .lastValues(let since, let slot):
                slot.fulfill(
                    state.lastValue.entries(
                        updatedAfter: since, limit: PairLink.valuesPageEntries, maxBytes: PairLink.valuesPageBytes,
                        nowMilliseconds: nowMilliseconds))
            case .restoreValues(let entries) where !pairActive && activation == nil && !stoodDown:
                // Persisted too, as forwarded updates are: a backup that took over and then
                // restarted alone came back with its own values of before, not the mirrored ones.
                for entry in entries where state.lastValue.restore(entry) && persistLastValues {
                    entry.encoded.withUnsafeBytes { message in
                        historyQueue?._withUnsafeGuaranteedRef {
                            $0.lastValue(
                                encoded: message, sequence: entry.sequence, milliseconds: entry.storedMilliseconds)
                        }
                    }
                }
            case .restoreValues:
                // A page that came after the takeover: the old active's, older than this
                // broker's own values now.
                break
            case .pairActivate(let sequence, let unusedAbove, let slot):
                beginActivation(nextSequence: sequence, unusedAbove: unusedAbove, reply: slot)
            case .pairStandDown(let slot):
                standDown()
                slot.fulfill(true)
            case .pairNumberFrom(let sequence) where pairActive:
                // The numbers skipped reach the writer as a hole, told as the peer's
                // (`takeover`): the writer was told to expect it with the reserve (and where
                // the numberings split, for readers positioned among them: `PairLink`).
                nextSequence = max(nextSequence, sequence)
            case .pairNumberFrom:
                break
            case .afterSubscriptionsApplied(let done):
                subscriptionBarriers.append(done)
            }
        }
        // Read now rather than at the XPUB's next turn: it may have nothing more to say, and
        // the frames the barrier waits for may have been read already.
        if !subscriptionBarriers.isEmpty, handleSubscriptions() { passSubscriptionBarriers() }
    }

    /// Test hook: holds the loop as a subscription flood inside libzmq would, for `milliseconds`
    /// (clamped: a test's setting, an environment variable, must not trap the daemon) or until
    /// `Broker.stallForwardingLoop` is asked again.
    private func holdForTest(milliseconds: Int) {
        logger.warning("test hook: stalling the forwarding loop for \(milliseconds) ms")
        handle.stall.store(ForwardingLoopHandle.stallHeld, ordering: .sequentiallyConsistent)
        let deadline = SystemClock.monotonicNanoseconds() + UInt64(min(max(milliseconds, 0), 60_000)) * 1_000_000
        while SystemClock.monotonicNanoseconds() < deadline {
            if handle.stall.load(ordering: .sequentiallyConsistent) == ForwardingLoopHandle.stallReleased {
                logger.warning("test hook: the forwarding loop's stall ends early")
                break
            }
            usleep(5_000)
        }
        handle.stall.store(ForwardingLoopHandle.stallIdle, ordering: .sequentiallyConsistent)
    }

    /// Writes mirrored messages into this broker's history with the active peer's sequences,
    /// so that a takeover continues them and resumes (`since`, Last-Event-ID) work across it.
    private func replicate(_ messages: [StoredMessage], after: UInt64) {
        guard let historyQueue else { return }
        // Stopped at a message that did not fit: only a reply to the request asked again from
        // here continues (replies asked before would leave a hole).
        if mirrorStopped {
            guard after == nextSequence &- 1 else { return }
            mirrorStopped = false
        }
        for stored in messages where stored.sequence >= nextSequence {
            guard let topic = stored.frames.first else { continue }
            let prefixLength = topic.withUnsafeBytes { historyPrefixes.matchLength($0) }
            let fitted = historyQueue._withUnsafeGuaranteedRef { queue in
                if let prefixLength {
                    topic.withUnsafeBytes {
                        queue.begin(
                            sequence: stored.sequence, milliseconds: stored.receivedMilliseconds,
                            prefixLength: prefixLength, topic: $0)
                    }
                    for frame in stored.frames.dropFirst() { frame.withUnsafeBytes { queue.appendFrame($0) } }
                }
                // What the record takes: `HistoryRecord`'s header, the topic, each frame, each
                // with its 4-byte length.
                let recordBytes = stored.frames.reduce(4 + HistoryRecord.messageHeaderSize) { $0 + 4 + $1.count }
                return queue.commitMirrored(
                    sequence: stored.sequence, kept: prefixLength != nil, recordBytes: recordBytes)
            }
            guard fitted else {
                mirrorStopped = true
                return
            }
            if prefixLength == nil { warnOfAMirroredTopicNotKept(topic, sequence: stored.sequence) }
            nextSequence = stored.sequence &+ 1
        }
    }

    /// The peer keeps a topic this broker's history does not: its number is used here and
    /// nothing is stored under it, so HISTORY replies here tell it as not kept (`dropped`), and
    /// after a takeover this broker's history lacks the peer's messages of that prefix.
    @inline(never)
    private func warnOfAMirroredTopicNotKept(_ topic: [UInt8], sequence: UInt64) {
        guard let heldBack = mirroredNotKeptLogLimit.admit(nowNanoseconds: SystemClock.monotonicNanoseconds())
        else { return }
        let shown = TopicText.display(Array(topic.prefix(64))) + (topic.count > 64 ? "…" : "")
        logger.warning(
            "pair: the active peer keeps topic '\(shown)' (sequence \(sequence)) in its history, and this broker's [history] prefixes do not: the number is used here, nothing is kept under it, and HISTORY here reports it as not kept (dropped); after a takeover this broker's history lacks that prefix. Give both brokers the same [history] prefixes (docs/topologies.md)\(heldBack == 0 ? "" : "; \(heldBack) more mirrored messages were not kept since the last such warning")"
        )
    }

    /// The pair chose this broker: once the history writer has reserved the numbers from here
    /// on (the peer may have been far above this store's), bind the producers' endpoints and
    /// forward (`finishActivation`). Nothing is forwarded before, so nothing is numbered.
    private func beginActivation(nextSequence sequence: UInt64, unusedAbove: UInt64?, reply: ReplySlot<[BrokerError]>) {
        guard !pairActive, activation == nil else { return reply.fulfill([]) }
        mirrorStopped = false
        // The peer is gone: subscribers that come meanwhile (moved by a load balancer, say)
        // get their last value as on an active broker.
        state.lastValueOnSubscribe = lastValueOnSubscribeSupported
        nextSequence = max(nextSequence, sequence, sequenceFloor)
        guard let history else { return reply.fulfill(finishActivation()) }
        let reserved = ReplySlot<Bool>()
        history.mailbox.post(.reserve(above: nextSequence, unusedAbove: unusedAbove, settles: true, reserved))
        activation = (reserved, reply, SystemClock.monotonicNanoseconds() &+ Self.reserveWaitNanoseconds)
    }

    /// How long a takeover waits for the history writer's reserve before it forwards anyway.
    static let reserveWaitNanoseconds: UInt64 = 5_000_000_000

    /// Ends a takeover whose reserve is recorded (or refused, or late); true once it has.
    private func finishActivationIfReserved(now: UInt64) -> Bool {
        guard let pending = activation else { return false }
        let reserved = pending.reserved.value
        guard reserved != nil || now >= pending.deadline || state.stopping else { return false }
        activation = nil
        // Stopping: a broker on its way out binds nothing more.
        if state.stopping {
            pending.reply.fulfill([])
            return true
        }
        if reserved != true {
            logger.warning(
                "taking over without a durable reserve above sequence \(nextSequence): history keeps nothing until its writer records one (forwarding goes on)"
            )
        }
        pending.reply.fulfill(finishActivation())
        return true
    }

    /// One of a pair that gives up being active, and stops next: its producers' endpoints are
    /// unbound now, which also ends the connections made through them, so that producers send
    /// to the active peer. Left bound through the stop's drain (`shutdown_drain_ms`), they took
    /// and numbered messages for a second or more after the stand-down, into a history that is
    /// then set aside: lost to the pair. What was already taken in is still forwarded
    /// (`stoodDown`) to the subscribers still connected here. A takeover still waiting for
    /// its reserve ends here, unbound: binding the producers' endpoints after the stand-down
    /// would take in messages for a broker on its way out.
    private func standDown() {
        if let pending = activation {
            activation = nil
            pending.reply.fulfill([])
            logger.notice("pair: standing down before the takeover's endpoints were bound; zpubd stops")
            return
        }
        guard pairActive else { return }
        pairActive = false
        stoodDown = true
        pullEndpoints.unbindRemoved([], on: pull, logger: logger)
        xsubEndpoints.unbindRemoved([], on: xsub, logger: logger)
        // Upstream brokers' messages are the active peer's to forward now: the drain would
        // number them into the history set aside, for as long as they keep coming.
        for endpoint in upstreamEndpoints {
            try? xsub.disconnect(endpoint)
            logger.info("disconnected from upstream \(endpoint)", metadata: ["endpoint": "\(endpoint)"])
        }
        upstreamReconnects.removeAll()
        state.holdUpstreams(whilePassive: true)
        registry.set(.pull, pullEndpoints.actual)
        registry.set(.xsub, xsubEndpoints.actual)
        pinUpstream()
        logger.notice("pair: standing down: the producers' endpoints are unbound, and zpubd stops")
    }

    private func finishActivation() -> [BrokerError] {
        pairActive = true
        pinUpstream()
        var failures = [
            pullEndpoints.reconcile(with: configuration.pullEndpoints, on: pull, logger: logger),
            xsubEndpoints.reconcile(with: configuration.xsubEndpoints, on: xsub, logger: logger),
        ].compactMap { $0 }
        // Now, not while passive: what upstreams sent then waited unread in XSUB's queue, and
        // went out here as new messages, numbered again. XSUB sends each its subscriptions
        // (its subscribers' and the pins) as it connects.
        state.holdUpstreams(whilePassive: false)
        for endpoint in upstreamEndpoints {
            do {
                try xsub.connect(endpoint)
                logger.info("connecting to upstream \(endpoint)", metadata: ["endpoint": "\(endpoint)"])
            } catch {
                failures.append(
                    BrokerError(
                        code: .bindFailed, message: "cannot connect to the upstream \(endpoint): \(error)",
                        endpoint: endpoint))
            }
        }
        registry.set(.pull, pullEndpoints.actual)
        registry.set(.xsub, xsubEndpoints.actual)
        recordOptionsAtBind()
        return failures
    }

    /// Applies a reloaded configuration in two steps. First what can fail: the socket options,
    /// the endpoints new to the broker bound, the new upstreams connected. If any of that fails
    /// it is undone, and the reload is refused with nothing changed. Then the rest: the limits,
    /// the endpoints no longer configured unbound (after the binds: an endpoint that cannot be
    /// bound never costs the one it replaces, or the connections made through it), the
    /// endpoints moved from another socket bound.
    private func reconfigure(
        _ reloaded: BrokerConfiguration, serverKey newServerKey: CurveKey?, revoked: Set<BrokerSocketRole> = []
    ) -> ReloadOutcome {
        // Keys read at start (io_threads, [history] directory, [ha], ...) come with the values
        // in force: `StartOnlySettings` keeps them, and warns of a change, before any reload.
        let newConfiguration = reloaded
        let sockets: [(role: BrokerSocketRole, socket: Socket)] = [(.pull, pull), (.xsub, xsub), (.xpub, xpub)]
        // A passive pair member binds its producers' endpoints only when it takes over.
        let wanted: [BrokerSocketRole: [String]] = [
            .pull: pairActive ? newConfiguration.pullEndpoints : [],
            .xsub: pairActive ? newConfiguration.xsubEndpoints : [],
            .xpub: newConfiguration.xpubEndpoints,
        ]
        // libzmq copies a socket's options into each listener when it is bound: options set
        // later reach only endpoints bound later. CURVE switched on or off, or a new server key,
        // must not wait for that: such a socket's endpoints are all bound again (its
        // connections are dropped, and clients reconnect under the new rules).
        let curveChanged = Set(
            sockets.map(\.role).filter { role in
                let (old, new) = (configuration.security(for: role).curve, newConfiguration.security(for: role).curve)
                return old != new || (new && newServerKey != serverKey)
            })
        // The same where the allow lists no longer let in every client they did: ZAP checks a
        // connection at its handshake only, and the clients connected with a key or from an
        // address taken out stayed in for as long as they stayed connected (a walkthrough).
        let rebinding = curveChanged.union(revoked.filter { role in sockets.contains { $0.role == role } })
        // Told with the reload's outcome too (RELOAD's problems, `zpub reload` exit 2): CONFIG
        // shows the file's max_message_size, and `zpub pub` sized its frames by it while the
        // bound endpoints dropped them (a walkthrough). Only for endpoints that stay bound (a
        // passive member's producers' endpoints are bound at its takeover, with the new ones),
        // each change named, so that a second, different change is not taken for the first.
        let keptChanges: [String] = sockets.compactMap { role, _ in
            // Those the file names again (as spelled), or sockets systemd passed (kept as they are).
            let bound = endpoints(of: role)
            var kept = bound.order.filter { (wanted[role] ?? []).contains($0) || bound.adopted.contains($0) }
            // The XSUB's connections to upstream brokers keep theirs too.
            if role == .xsub && pairActive {
                kept += upstreamEndpoints.filter(newConfiguration.upstreamEndpoints.contains)
            }
            guard !rebinding.contains(role), !kept.isEmpty else { return nil }
            var changes: [String] = []
            for endpoint in kept {
                let atBind = optionsAtBind[role]?[endpoint] ?? configuration
                for change in SocketSetup.keptOptionChanges(role, from: atBind, to: newConfiguration)
                where !changes.contains(change) {
                    changes.append(change)
                }
            }
            return changes.isEmpty ? nil : "\(role.rawValue): \(changes.joined(separator: ", "))"
        }
        let keptOptions: BrokerError? =
            keptChanges.isEmpty
            ? nil
            : BrokerError(
                code: .keptByBoundEndpoints,
                message:
                    "reloaded socket options reach endpoints bound from now on only (\(keptChanges.joined(separator: "; "))): libzmq keeps each endpoint's options from when it was bound, so those already bound keep theirs until a restart"
            )
        if let keptOptions { logger.warning("\(keptOptions.message)") }

        // Step 1: what can fail, undone if anything does.
        func applyOptions(_ configuration: BrokerConfiguration, key: CurveKey?, inForce: BrokerConfiguration) {
            for (role, socket) in sockets {
                do {
                    try SocketSetup.applyOptions(
                        to: socket, role: role, configuration: configuration, serverKey: key, inForce: inForce)
                } catch {
                    logger.error("cannot apply socket options to \(role.rawValue): \(error)")
                }
            }
        }
        applyOptions(newConfiguration, key: newServerKey, inForce: configuration)
        // Endpoints another of these sockets holds now are bound in step 2, once released.
        let held = Set(sockets.flatMap { endpoints(of: $0.role).configured })
        var added: [(role: BrokerSocketRole, endpoints: [String])] = []
        var connected: [String] = []
        var refusal: BrokerError?
        for (role, socket) in sockets {
            do throws(BrokerError) {
                let bound = try withEndpoints(of: role) { endpoints throws(BrokerError) in
                    try endpoints.bindAdded(wanted[role] ?? [], except: held, on: socket, logger: logger)
                }
                added.append((role, bound))
            } catch {
                refusal = error.naming(portHeldIn: sockets.flatMap { endpoints(of: $0.role).actual })
                break
            }
        }
        if refusal == nil {
            // Upstreams: connect the new, disconnect the gone; libzmq reconnects by itself. A
            // passive pair member connects them as it takes over.
            for endpoint in newConfiguration.upstreamEndpoints where pairActive && !upstreamEndpoints.contains(endpoint)
            {
                do {
                    try xsub.connect(endpoint)
                    connected.append(endpoint)
                    logger.info("connecting to upstream \(endpoint)", metadata: ["endpoint": "\(endpoint)"])
                } catch {
                    refusal = BrokerError(
                        code: .bindFailed, message: "cannot connect to the upstream \(endpoint): \(error)",
                        endpoint: endpoint)
                    break
                }
            }
        }
        if let refusal {
            for (role, endpoints) in added {
                let socket = sockets.first { $0.role == role }!.socket
                withEndpoints(of: role) { $0.undo(endpoints, on: socket) }
            }
            for endpoint in connected { try? xsub.disconnect(endpoint) }
            // Endpoints bound later (a takeover's) take the options in force.
            applyOptions(configuration, key: serverKey, inForce: newConfiguration)
            return .refused(refusal)
        }

        // Step 2: the rest.
        // Twice the replay, without the queue's spare frames: a prefix or two added to
        // [last_value] or [history] fits in those, and was told as a max_subscriptions too high
        // for the queue (a walkthrough, 2026-12-07).
        let xsubQueueWanted = SocketSetup.xsubReplayRoom(newConfiguration)
        var xsubQueueTooSmall: BrokerError?
        if xsubQueueWanted > xsubQueueAtStart && xsubQueueWanted != SocketSetup.xsubReplayRoom(configuration) {
            // Silently, a publisher or upstream that connects once the table is that large
            // would get part of it: libzmq drops the rest of XSUB's replay. Told with the
            // reload's outcome too: `zpub reload` exited 0 as if the file were wholly in force
            // (an audit).
            let problem = BrokerError(
                code: .keptUntilRestart,
                message:
                    "max_subscriptions is now \(newConfiguration.maxSubscriptions), but XSUB's queue towards each publisher holds \(xsubQueueAtStart) subscription frames, sized at start for about half as many subscriptions: once the table holds more than that, a publisher or upstream that connects gets only part of it (libzmq drops the rest of the replay); restart zpubd to size the queue for the new limit"
            )
            logger.warning("\(problem.message)")
            xsubQueueTooSmall = problem
        }
        configuration = newConfiguration
        serverKey = newServerKey
        state.apply(newConfiguration)
        if !pairActive { state.holdUpstreams(whilePassive: true) }
        let uncovered = state.lastValuesUncoveredByReload
        if uncovered > 0 {
            logger.notice(
                "dropped \(uncovered) cached last value\(uncovered == 1 ? "" : "s") that [last_value] prefixes no longer cover"
            )
        }
        // A shorter resume_catch_up_ms ends a catch-up under way sooner (0: at its next turn);
        // a longer one applies from the next RESUME. catch_up_stall_ms applies at once.
        if var running = catchUp {
            running.limit(toMilliseconds: newConfiguration.resumeCatchUpMilliseconds)
            running.stall(afterMilliseconds: newConfiguration.catchUpStallMilliseconds)
            catchUp = running
        }
        let prefixesHeld = state.subscriptions.prefixCount
        if prefixesHeld > newConfiguration.maxSubscriptions {
            // Taken without a word, it looked applied, while the table stays above it.
            logger.warning(
                "max_subscriptions is now \(newConfiguration.maxSubscriptions), below the \(prefixesHeld) prefixes subscribed: they stay, and subscriptions to other prefixes are refused until fewer are held"
            )
        }
        if state.subscriptions.totalSubscriptions > newConfiguration.maxLiveSubscriptions {
            logger.warning(
                "max_live_subscriptions is now \(newConfiguration.maxLiveSubscriptions), below the \(state.subscriptions.totalSubscriptions) subscriptions the connections hold: they stay, and a subscriber that adds one is dropped until fewer are held"
            )
        }
        if state.topics.count > newConfiguration.maxTopics {
            // The same for topics, whose table keeps what it holds until a restart: this was
            // said only once a message on a new topic came.
            logger.warning(
                "max_topics is now \(newConfiguration.maxTopics), below the \(state.topics.count) topics the table holds: they stay counted until a restart, and messages on other topics are forwarded without being counted per topic"
            )
        }
        // Without a store, a reload's prefixes were set back to none (`StartOnlySettings`).
        if let history {
            historyPrefixes = HistoryPrefixes(newConfiguration.historyPrefixes)
            handle.historyPrefixes.withLock { $0 = newConfiguration.historyPrefixes }
            history.mailbox.post(.reconfigure(newConfiguration))
        }
        pinUpstream()
        // A passive member's producers' endpoints are not bound: nothing to say of them.
        for role in rebinding where !endpoints(of: role).order.isEmpty {
            let adopted = !endpoints(of: role).adopted.isEmpty
            if adopted {
                // systemd's sockets are kept as they are (`BoundEndpoints.unbindRemoved`).
                logger.warning(
                    "\(curveChanged.contains(role) ? "CURVE changed" : "the allow lists changed") on \(role.rawValue), whose endpoints systemd passed: they are not bound again, and the clients connected there keep their connections until they reconnect (restart zpubd, or its socket units, to end them now)"
                )
            } else if curveChanged.contains(role) {
                logger.notice(
                    "CURVE changed on \(role.rawValue): its endpoints are bound again, and the clients connected there reconnect under the new settings"
                )
            } else {
                logger.notice(
                    "the allow lists of \(role.rawValue) no longer let in every client they did: its endpoints are bound again, and the clients connected there reconnect and are checked again"
                )
            }
        }
        // Those unbound here were released by this broker: binding one of them on another
        // socket (or again) may wait a moment for libzmq to let go of it (`bindMissing`).
        var released = Set<String>()
        for (role, socket) in sockets {
            let resolvedBefore = endpoints(of: role).resolved
            let unbound = withEndpoints(of: role) {
                $0.unbindRemoved(wanted[role] ?? [], everything: rebinding.contains(role), on: socket, logger: logger)
            }
            released.formUnion(unbound)
            unbinding.unbound(unbound.compactMap { resolvedBefore[$0] }, role: role)
        }
        var problems: [BrokerError] = []
        let deadline = SystemClock.monotonicNanoseconds() + BoundEndpoints.releasedBindWaitNanoseconds
        for (role, socket) in sockets {
            problems += withEndpoints(of: role) {
                $0.bindMissing(wanted[role] ?? [], released: released, until: deadline, on: socket, logger: logger)
            }
        }
        for endpoint in upstreamEndpoints where !newConfiguration.upstreamEndpoints.contains(endpoint) {
            // A link added again later starts afresh.
            upstreamReconnects[endpoint] = nil
            upstreamsHandshaking.remove(endpoint)
            upstreamsFailedWithEvent.remove(endpoint)
            guard pairActive else { continue }
            try? xsub.disconnect(endpoint)
            logger.info("disconnected from upstream \(endpoint)", metadata: ["endpoint": "\(endpoint)"])
        }
        upstreamEndpoints = newConfiguration.upstreamEndpoints
        subscribeToWrappedValuesIfUpstreams()
        // ZAP checks XSUB's own links to its upstreams too (NULL mechanism): narrowed lists
        // check them again, as the bound endpoints' clients.
        if revoked.contains(.xsub) && pairActive {
            for endpoint in upstreamEndpoints where !connected.contains(endpoint) {
                try? xsub.disconnect(endpoint)
                try? xsub.connect(endpoint)
                optionsAtBind[.xsub]?[endpoint] = newConfiguration
                logger.info(
                    "connecting to upstream \(endpoint) again: xsub's allow lists changed",
                    metadata: ["endpoint": "\(endpoint)"])
            }
        }
        registry.set(.pull, pullEndpoints.actual)
        registry.set(.xsub, xsubEndpoints.actual)
        registry.set(.xpub, xpubEndpoints.actual)
        recordOptionsAtBind(rebound: rebinding)
        return .applied(problems: problems + [keptOptions, xsubQueueTooSmall].compactMap { $0 })
    }

    /// Records the endpoints bound (and upstreams connected) since the last look as having
    /// the options of the configuration in force, and forgets those gone (`optionsAtBind`).
    /// `rebound`: the roles whose endpoints were all bound again.
    private func recordOptionsAtBind(rebound: Set<BrokerSocketRole> = []) {
        for role in [BrokerSocketRole.pull, .xsub, .xpub] {
            var bound = endpoints(of: role).order
            if role == .xsub && pairActive { bound += upstreamEndpoints }
            let known = rebound.contains(role) ? [:] : optionsAtBind[role] ?? [:]
            optionsAtBind[role] = Dictionary(
                bound.map { ($0, known[$0] ?? configuration) }, uniquingKeysWith: { first, _ in first })
        }
    }

    private func endpoints(of role: BrokerSocketRole) -> BoundEndpoints {
        withEndpoints(of: role) { $0 }
    }

    private func withEndpoints<T, E: Error>(
        of role: BrokerSocketRole, _ body: (inout BoundEndpoints) throws(E) -> T
    ) throws(E) -> T {
        switch role {
        case .pull: try body(&pullEndpoints)
        case .xsub: try body(&xsubEndpoints)
        case .xpub: try body(&xpubEndpoints)
        case .control: preconditionFailure("the control socket's endpoints are the control thread's")
        }
    }

    private func closeSockets() {
        let linger = Int32(configuration.lingerMilliseconds)
        // PULL sends nothing, and XSUB only subscriptions: with a linger, XSUB's frames for an
        // upstream that cannot be reached held every stop for the whole of it, which
        // `Broker.warnIfTheLingerRanOut` then blamed on a slow subscriber.
        for socket in [pull, xsub] {
            try? socket.setOption(.linger, Int32(0))
            socket.close()
        }
        try? xpub.setOption(.linger, linger)
        xpub.close()
        handle.lingerAtCloseMilliseconds.store(Int(linger), ordering: .relaxed)
        handle.socketsClosedNanoseconds.store(SystemClock.monotonicNanoseconds(), ordering: .releasing)
        for endpoints in [pullEndpoints, xsubEndpoints, xpubEndpoints] { endpoints.removeSocketFiles() }
        receipts?.close()
        logger.info(
            "forwarding stopped",
            metadata: [
                "messages_in": "\(state.pull.messagesIn &+ state.xsub.messagesIn)",
                "messages_out": "\(state.xpub.messagesOut)",
            ])
    }
}

#if canImport(Glibc)
    import Glibc
#endif
