import Logging
import Systemd
import ZPubCore
import ZPubStore
import ZeroMQ

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One broker's side of a primary/backup pair (docs/topologies.md, "A pair"), on a thread of
/// its own. It binds a ROUTER on `[ha] bind` and connects a DEALER to `[ha] peer`:
///
/// - **heartbeats**, DEALER to the peer's ROUTER, `heartbeat_ms` apart: `[HB, state, last
///   sequence assigned]`. The latest one heard drives `PairMachine`.
/// - **replication**, while this broker is not active and the peer is: `[HISTORY, since]` on the
///   DEALER; the peer answers with its control API's HISTORY reply (kept messages with their
///   sequences, 1,000 at most), which the forwarding loop writes into this broker's history.
///   Asked again at once while there is more, else every `replicationIntervalMilliseconds`.
///
/// A change of role is logged, sent to systemd (STATUS=) and shown by HEALTH. Taking over binds
/// the producers' endpoints and continues the sequences after the highest either broker
/// announced. A broker that finds itself active beside an active primary (a healed partition)
/// stops (`onDemoted`): restarted, it rejoins as passive.
final class PairLink {
    static let replicationIntervalMilliseconds: UInt64 = 50
    /// How often the passive side asks for the last values stored since its last copy.
    static let valuesIntervalMilliseconds: UInt64 = 1_000
    /// A VALUES reply's bounds (as HISTORY's pages): encoding a whole cache of 64 MiB at once
    /// would hold this thread, which sends the heartbeats, long enough for the peer to take
    /// over. A full page says so, and the backup asks for the next one at once.
    static let valuesPageEntries = 1_000
    static let valuesPageBytes = 4 << 20
    /// Replies the ROUTER queues for one client of the pair port (libzmq's default, 1,000):
    /// VALUES and HISTORY pages of up to 4 MiB each, so a client that asks and never reads
    /// held gigabytes. The peer asks one page of each at a time and reads its answers; past
    /// this many unread, newer replies are dropped (a page is asked again after
    /// `replicationTimeoutMilliseconds`, and a heartbeat's answer is stale by then anyway).
    static let repliesQueuedPerClient: Int32 = 32
    /// How long a replication request may go unanswered before it is asked again.
    static let replicationTimeoutMilliseconds: UInt64 = 2_000

    enum Command: Sendable {
        /// The broker is stopping: it drains what producers sent, and takes over nothing.
        case drain
        /// The forwarding loop has stopped, having numbered up to `lastSequence`: hand over
        /// (if active) and stop.
        case stop(lastSequence: UInt64)
    }

    let mailbox = Mailbox<Command>()
    /// How long an active broker that stops keeps answering its passive peer's HISTORY
    /// requests, and beating, until the peer has asked for what follows its last sequence
    /// (it mirrored everything): its last messages are in its own history only until then.
    /// The peer asks every `replicationIntervalMilliseconds` while it is behind.
    /// Longer than the peer waits for an answer before it asks again
    /// (`replicationTimeoutMilliseconds`): a request lost to a slow disk is asked again in time.
    static let handOverMilliseconds: UInt64 = 5_000
    private let settings: PairSettings
    private let router: Socket
    private let dealer: Socket
    private let loop: ForwardingLoopHandle
    private let historyOn: Bool
    /// The history writer (answers the peer's HISTORY requests); nil when history is off.
    private let history: HistoryHandle?
    /// How long this thread waits for the loop or the writer: half a heartbeat interval, so
    /// that heartbeats go out on time whatever they are doing.
    private var shortWait: Int { max(10, settings.heartbeatMilliseconds / 2) }
    private let valuesOn: Bool
    /// The active peer's cache sequence mirrored so far, and when it was last asked.
    private var valuesThrough: UInt64 = 0
    private var valuesAsked: UInt64 = 0
    private let logger: Logger
    private let notifier: NotifyRelay
    private let onDemoted: @Sendable () -> Void
    private var machine: PairMachine
    private var status: PairStatus
    private var lastHeartbeat: UInt64 = 0
    /// A question to the loop (`refreshView`) not answered yet.
    private var unansweredView: ReplySlot<PairLoopView>?
    /// When the loop counted `subscribers`.
    private var subscribersCountedAt: UInt64 = 0
    /// Replication: the request in flight (sent when), the last time one was answered.
    private var requestSent: UInt64?
    /// The `since` of the last HISTORY request sent.
    private var requestedSince: UInt64 = 0
    /// Mirroring asks again after this sequence (the loop had no room for the next message);
    /// until that request's reply, replies to earlier ones are ignored.
    private var mirrorRetryAfter: UInt64?
    private var lastReplication: UInt64 = 0
    private var moreToReplicate = false
    private var ownNextSequence: UInt64 = 1
    /// Clients connected, for the takeover rule: subscribers on the XPUB and the gateway's.
    private var subscribers = 0
    /// Since when this passive broker's history has been ahead of the active peer's (`checkAhead`).
    private var aheadSince: UInt64?
    private let clientsElsewhere: ClientsElsewhere
    /// The most sequences the peer assigned between two of its heartbeats: what it may have
    /// assigned after its last heartbeat and before it died, which a takeover skips.
    private var peerBurst: UInt64 = 0
    /// Whether the peer was ever heard active: a takeover then skips the sequences it may have
    /// used unseen.
    private var peerWasActive = false
    /// Where this primary numbers from since it last heard the backup active beside it.
    private var numberingAboveBackupFrom: UInt64 = 0
    /// Whether the peer was heard at all since this broker started: a takeover without it
    /// cannot know how far the peer numbered while this one was down (`unheardTakeoverGap`).
    private var peerEverHeard = false
    /// The broker is stopping (it drains what producers sent): heartbeats go on, so that the
    /// peer does not take over while this one still forwards, but this one takes over nothing.
    private var draining = false
    /// This broker gave up being active and stops (`standDown`).
    private var stoodDown = false
    /// The forwarding loop has stopped (`Command.stop`).
    private var stopping = false
    /// The `since` of the peer's last HISTORY request: what it has received to mirror.
    private var peerAskedSince: UInt64 = 0
    /// The peer's sequence in its last heartbeat as passive: what it had mirrored then.
    private var peerPassiveSequence: UInt64 = 0
    /// The peer said it stops (`BYE`, from a zpubd since 2026-12-05), and no heartbeat came
    /// since: a hand-over does not wait for it.
    private var peerSaidGoodbye = false
    /// The peer's goodbye said that this broker had mirrored every number it gave, through
    /// `through`, in its run `run` (from a zpubd since 2026-12-05; cleared once a peer is heard
    /// active): a takeover then knows the numbers it skips above were never used.
    private var peerHandedOver: (run: UInt64, through: UInt64)?
    /// The peer's run that said goodbye: a report of it read later (its last answer, on the
    /// other connection) is not taken, or it would undo the goodbye (`PairMachine.peerStopped`).
    private var peerGoneRun: UInt64?
    /// This broker, active and stopped, saw its peer mirror everything through this sequence
    /// (the hand-over): said in its goodbye.
    private var handedOverThrough: UInt64?
    /// Whether the peer keeps history, as its reports say (a zpubd before 2026-12-05 does not
    /// say: taken as yes). One that keeps none asks for nothing: no hand-over waits for it.
    private var peerKeepsHistory = true
    private var dualActiveLog = LogRateLimit()
    private var refusedReplyLog = LogRateLimit()
    /// Every report of this broker's state (heartbeat or answer) carries this run's random id
    /// and a number counting up, so that the peer, which gets them on two connections, takes
    /// a report only if it is newer than the last it took: an answer read after a newer
    /// heartbeat, or a heartbeat after a newer answer, would otherwise undo it.
    private let runID = UInt64.random(in: 1...UInt64.max)
    /// When each way a pair can be misconfigured was last logged (`warnOfMisconfiguration`):
    /// one problem's warning does not hold back the other's.
    private var lastMisconfigurationWarning: [Misconfiguration: UInt64] = [:]
    /// When each was last seen, and what it is: a problem of the pair's for a while after.
    private var misconfigurationSeen: [Misconfiguration: (at: UInt64, message: String)] = [:]
    private enum Misconfiguration { case peerIsThisBroker, sameRole, historyDiffers, prefixesDiffer }
    /// Whether heartbeats travel both ways (`PairLinkWatch`).
    private var linkWatch: PairLinkWatch
    /// Whether the link runs over CURVE: a wrong key is then one reason for a silent peer.
    private let linkEncrypted: Bool
    /// The producers' endpoints the loop has not bound though active (a takeover's bind failed).
    private var unboundProducerEndpoints: [String] = []
    private var reportNumber: UInt64 = 0
    /// Which of the peer's reports are newer than the last one taken.
    private var peerReports = PeerReportOrder()
    /// The peer's HISTORY request the writer is answering, sent once ready
    /// (`sendHistoryAnswerIfReady`): this thread, which sends the heartbeats, never waits for
    /// a slow disk, and a slow answer is late, not lost (the peer then waited 2 s to ask
    /// again). The peer asks one at a time; a request that comes while one is answered is
    /// dropped, and asked again after 2 s.
    private var pendingHistory:
        (identity: [UInt8], echo: [UInt8], slot: ReplySlot<Result<HistoryReply, ControlError>>, asked: UInt64)?
    static let unheardTakeoverGap = PairSettings.unheardTakeoverGap
    /// No broker numbers near 2^62 (a million messages a second for 146,000 years); a number
    /// above it from the peer, in a heartbeat or a HISTORY reply, is damaged or hostile, and
    /// taken as it is it would wrap the sequences' arithmetic.
    static let sequenceCeiling: UInt64 = 1 << 62
    /// The largest frame the ROUTER takes from the peer: its requests' frames are a word and a
    /// number or two (and its CURVE handshake a few hundred bytes).
    static let maxRequestFrameBytes: Int64 = 4_096

    init(
        settings: PairSettings, context: Context, loop: ForwardingLoopHandle, history: HistoryHandle?,
        historyOn: Bool, valuesOn: Bool, curve: (own: CurveKeyPair, peer: CurveKey)?, logger: Logger,
        notifier: NotifyRelay, clientsElsewhere: ClientsElsewhere = ClientsElsewhere(),
        onDemoted: @escaping @Sendable () -> Void
    ) throws {
        self.clientsElsewhere = clientsElsewhere
        linkEncrypted = curve != nil
        guard let role = settings.role, let bind = settings.bind, let peer = settings.peer else {
            throw BrokerError(code: .socketSetupFailed, message: "[ha] needs role, bind and peer")
        }
        self.settings = settings
        self.history = history
        // Known before the peer's first heartbeat, which can come in the first pass of `run`
        // (`apply` compares them when joining as passive).
        ownNextSequence = history?.firstMirroredSequence ?? 1
        self.loop = loop
        self.historyOn = historyOn
        self.valuesOn = valuesOn
        self.logger = logger
        self.notifier = notifier
        self.onDemoted = onDemoted
        machine = PairMachine(
            role: role, failoverMilliseconds: settings.failoverMilliseconds,
            nowNanoseconds: SystemClock.monotonicNanoseconds())
        linkWatch = PairLinkWatch(
            failoverMilliseconds: settings.failoverMilliseconds, nowNanoseconds: SystemClock.monotonicNanoseconds())
        status = PairStatus(role: role, peer: peer)
        router = try Socket(context, type: .router)
        dealer = try Socket(context, type: .dealer)
        for socket in [router, dealer] {
            try socket.setOption(.linger, 0)
            // A vanished peer machine (no RST) is noticed by ZMTP heartbeats, not hours later.
            try socket.setOption(.heartbeatInterval, Int32(settings.heartbeatMilliseconds))
            try socket.setOption(.heartbeatTimeout, Int32(settings.failoverMilliseconds))
        }
        if let curve {
            // Encrypted, and only the peer's key may connect (the ZAP handler's "pair" domain).
            try router.setOption(.zapDomain, string: PairSettings.zapDomain)
            try router.setOption(.zapEnforceDomain, 1)
            try router.makeCurveServer(secretKey: curve.own.secretKey)
            try dealer.makeCurveClient(serverKey: curve.peer, keyPair: curve.own)
        } else if !Endpoint.isLoopbackOnly(bind) && !bind.hasPrefix("ipc://") {
            logger.warning(
                "the pair link on \(bind) is neither encrypted nor authenticated: whoever reaches it can read history and disturb the pair's choice; set peer_public_key_file in [ha] (docs/topologies.md)"
            )
        }
        // The peer's requests are a few short frames; a larger one is not from a zpubd (and
        // would be held in memory whole).
        try router.setOption(.maxMessageSize, int64: Self.maxRequestFrameBytes)
        // Nothing queues for a peer that is not connected: a heartbeat held back and delivered
        // after a partition heals would say a stale state.
        try dealer.setOption(.immediate, 1)
        try dealer.setOption(.sendHighWaterMark, 100)
        try router.setOption(.sendHighWaterMark, Self.repliesQueuedPerClient)
        do {
            try router.bind(bind)
        } catch let error as ZMQError {
            router.close()
            dealer.close()
            throw BrokerError.pairBindFailed(endpoint: bind, error: error)
        }
        try dealer.connect(peer)
        loop.pairStatus.withLock { $0 = status }
    }

    func run() {
        var poller = Poller()
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        let routerIndex = poller.add(router)
        let dealerIndex = poller.add(dealer)
        logger.notice(
            "pair: \(status.role.rawValue), listening on \(settings.bind ?? "") for \(status.peer); waiting \(settings.failoverMilliseconds) ms for the peer"
        )
        notifier.status("pair: \(status.role.rawValue), waiting for the peer \(status.peer)")
        let heartbeat = UInt64(settings.heartbeatMilliseconds) * 1_000_000
        // The loop passes at least once a heartbeat: a gap of two means this thread did not
        // run (the process stopped, or starved of CPU), and the peer's silence over it cannot be
        // told from this broker's own (`PairMachine.noteOwnStall`). A shorter stall, with the
        // peer heard at most a heartbeat before it, stays under failover_ms (4 heartbeats).
        let stallNanoseconds = 2 * heartbeat
        var lastPass = SystemClock.monotonicNanoseconds()
        /// The loop stopped: the thread ends once `handOver` is over, or at once without one.
        var handOver: HandOver?
        while true {
            let now = SystemClock.monotonicNanoseconds()
            let untilHeartbeat = heartbeat &- min(heartbeat, now &- lastHeartbeat)
            var timeout = Int(min(untilHeartbeat / 1_000_000, Self.replicationIntervalMilliseconds))
            // An answer on its way from the history writer is looked for often.
            if pendingHistory != nil { timeout = min(timeout, 2) }
            do {
                _ = try poller.poll(timeoutMilliseconds: max(1, timeout))
            } catch {
                logger.critical("pair link cannot poll: \(error)")
                return
            }
            if poller.isReadable(mailboxIndex) {
                for command in mailbox.take() {
                    switch command {
                    case .drain: draining = true
                    case .stop(let lastSequence): handOver = startHandOver(through: lastSequence, now: now)
                    }
                }
                if stopping && handOver == nil { break }
            }
            if let waiting = handOver, handOverIsOver(waiting, now: SystemClock.monotonicNanoseconds()) { break }
            let resumed = SystemClock.monotonicNanoseconds()
            if resumed &- lastPass > stallNanoseconds {
                machine.noteOwnStall(nowNanoseconds: resumed)
                linkWatch.noteOwnStall(nowNanoseconds: resumed)
                logger.warning(
                    "pair: this broker did not run for \((resumed &- lastPass) / 1_000_000) ms (stopped, or starved of CPU); the peer's silence is counted from now"
                )
            }
            lastPass = resumed
            if poller.isReadable(routerIndex) { serveRequests() }
            sendHistoryAnswerIfReady()
            if poller.isReadable(dealerIndex) { receiveReplies() }
            let later = SystemClock.monotonicNanoseconds()
            if later &- lastHeartbeat >= heartbeat { beat(now: later) }
            replicateIfDue(now: later)
            // Before a takeover the clients are counted afresh: in a partition they are gone
            // from here, and a count from before the peer fell silent could still show them.
            // Only a count the loop took since then decides (`countIsFresh`).
            if machine.state != .active && machine.peerIsSilent(nowNanoseconds: later) { refreshView() }
            // Starved within this pass (after the check above: the peer's heartbeats of that time
            // may wait unread), it is the same: the silence counts from now. A probe saw a
            // passive primary take over from a live backup this way, and note its stall 6 ms later.
            let beforeTick = SystemClock.monotonicNanoseconds()
            if beforeTick &- resumed > stallNanoseconds {
                machine.noteOwnStall(nowNanoseconds: beforeTick)
                linkWatch.noteOwnStall(nowNanoseconds: beforeTick)
            }
            let clients = subscribers > 0 && machine.countIsFresh(countedAtNanoseconds: subscribersCountedAt)
            if !draining, let transition = machine.tick(nowNanoseconds: later, clientsConnected: clients) {
                apply(transition)
            }
            publishStatus(now: later)
        }
        // The peer's hand-over (if it is stopping too, as active) need not wait for this one.
        try? dealer.setOption(.linger, Int32(Self.goodbyeLingerMilliseconds))
        // With this run's id and the last sequence given once the peer mirrored everything: its
        // takeover then knows the numbers it skips were never used (not `not_kept`).
        let goodbye = [Array(String(runID).utf8)] + (handedOverThrough.map { [Array(String($0).utf8)] } ?? [])
        let mirrored = handedOverThrough.map { ", which has mirrored everything through sequence \($0)" } ?? ""
        let next = machine.state == .active ? "; it takes over now if clients are connected to it" : ""
        logger.info("pair: saying goodbye to the peer\(mirrored)\(next)")
        _ = try? dealer.send(frames: [Array("BYE".utf8)] + goodbye, dontWait: true)
        // The peer may be active from now on: for the rest of this broker's shutdown, HEALTH
        // no longer says it is (a `zpub sub` following the pair asked it for a replay).
        status.active = false
        let gone = status
        loop.pairStatus.withLock { $0 = gone }
        router.close()
        dealer.close()
    }

    /// How long the goodbye may take to go out as the pair link closes.
    static let goodbyeLingerMilliseconds = 200

    // MARK: Heartbeats

    /// Learns the loop's sequence and subscribers, then tells the peer this broker's state.
    private func beat(now: UInt64) {
        // A stopped loop answers no query: each would hold this thread `shortWait`.
        if !stopping { refreshView() }
        announce(now: now)
    }

    /// Tells the peer this broker's state and last sequence, as known now.
    private func announce(now: UInt64) {
        lastHeartbeat = now
        _ = try? dealer.send(frames: [Array("HB".utf8)] + report(), dontWait: true)
    }

    /// This broker's state, last sequence, run and report number, as heartbeat and answer say it.
    private func report() -> [[UInt8]] {
        reportNumber &+= 1
        return [
            Array(machine.state.rawValue.utf8), Array(String(announcedSequence).utf8), Array(String(runID).utf8),
            Array(String(reportNumber).utf8), Array(status.role.rawValue.utf8),
            Array((historyOn ? "history" : "no_history").utf8),
            // Their digest: each broker tells whether the other keeps the same prefixes.
            Array(Self.prefixesDigest(loop.historyPrefixes.withLock { $0 }).utf8),
        ]
    }

    /// The seventh field of a report (from a zpubd since 2026-12-07): a digest of the
    /// `[history] prefixes`, whatever their order. The list itself might not fit the frame.
    static func prefixesDigest(_ prefixes: [String]) -> String {
        let joined = Set(prefixes).sorted().joined(separator: "\u{0}")
        let digest = Array(joined.utf8).withUnsafeBytes {
            SipHash.hash13($0, key: SipHash.Key(k0: 0x7a70_7562_7061_6972, k1: 0x7072_6566_6978_6573))
        }
        return String(digest, radix: 16)
    }

    /// The last sequence this broker may have given, for the peer's takeover to number above.
    /// While waiting, that includes what an earlier run that stopped uncleanly reserved: it
    /// may have given those numbers (sequence markers, receipts, SSE ids) to clients without
    /// committing the messages. A takeover beside a waiting peer skips little or nothing above
    /// what the peer says (the primary of two starting together nothing; a passive broker
    /// whose active peer restarted a takeover's gap), so it must not say less. Once passive,
    /// this broker mirrors from its last stored message on, and says that.
    private var announcedSequence: UInt64 {
        guard machine.state == .waiting else { return ownNextSequence &- 1 }
        return max(ownNextSequence, history?.firstNewSequence ?? 1) &- 1
    }

    /// Whether a report (`fields`) is this broker's own, heard back because `peer` leads here;
    /// says so (a misconfiguration) if it is.
    private func warnIfOwnReport(_ fields: ArraySlice<[UInt8]>) -> Bool {
        guard isOwnReport(fields) else { return false }
        warnOfMisconfiguration(
            .peerIsThisBroker,
            "pair: this broker hears its own heartbeats: [ha] peer (\(status.peer)) leads back to this broker itself (another spelling of its own bind?); set it to the other broker's pair endpoint. Until then the peer counts as silent"
        )
        return true
    }

    /// Whether a report of the peer's (`fields`: state, sequence, and from a zpubd since
    /// 2026-12-02 run and number) is newer than the last taken; takes note of it if so.
    /// A report from this very run (`runID`: the pair's `peer` leads back here) is not taken,
    /// nor is the peer's silence broken by it; one whose role (the fifth field, from a zpubd
    /// since 2026-12-04) is this broker's own tells of two brokers configured alike. Both are
    /// logged as critical, once a minute at most: the pair cannot work as configured.
    private func isNewerReport(_ fields: ArraySlice<[UInt8]>) -> Bool {
        let field = { (offset: Int) in
            fields.count > offset ? String(decoding: fields[fields.startIndex + offset], as: UTF8.self) : nil
        }
        if warnIfOwnReport(fields) { return false }
        // A late report of a run that said goodbye.
        if let gone = peerGoneRun, fields.count > 2,
            UInt64(String(decoding: fields[fields.startIndex + 2], as: UTF8.self)) == gone
        {
            return false
        }
        if let role = field(4).flatMap(PairSettings.Role.init(rawValue:)), role == status.role {
            warnOfMisconfiguration(
                .sameRole,
                "pair: the peer is configured as \(role.rawValue) too: [ha] role must be \"primary\" on one broker and \"backup\" on the other; until that is fixed both may be active at once"
            )
        }
        // The sixth field (from a zpubd since 2026-12-05): whether the peer keeps history.
        if let peerKeeps = field(5).map({ $0 == "history" }) { peerKeepsHistory = peerKeeps }
        if let peerKeeps = field(5).map({ $0 == "history" }), peerKeeps != historyOn {
            let (keeper, other) = historyOn ? ("this broker", "the peer") : ("the peer", "this broker")
            warnOfMisconfiguration(
                .historyDiffers,
                "pair: \(keeper) keeps history and \(other) keeps none ([history] prefixes on one broker only): \(other) mirrors nothing, and while it is active nothing is kept, so clients cannot resume across a failover to it (zpub sub --since, SSE Last-Event-ID) and what they missed is lost; give both brokers the same [history] prefixes, and restart the one changed (whether a pair member keeps history is read at its start; docs/topologies.md)",
                level: .warning)
        }
        // Seen from the passive side before (a warning for each topic it mirrored and did not
        // keep), never in HEALTH: a monitor saw nothing wrong (a walkthrough).
        if historyOn, peerKeepsHistory, let peerDigest = field(6),
            peerDigest != Self.prefixesDigest(loop.historyPrefixes.withLock { $0 })
        {
            warnOfMisconfiguration(
                .prefixesDiffer,
                "pair: the peer's [history] prefixes differ from this broker's (\(loop.historyPrefixes.withLock { $0 }.map { "\"\($0)\"" }.joined(separator: ", "))): what the active one keeps and the passive one does not is not mirrored, and is missing from history after a failover; give both brokers the same [history] prefixes (docs/topologies.md)",
                level: .warning)
        }
        return peerReports.take(reportFields: fields)
    }

    /// Whether a report (state, sequence, run, ...) is this very broker's own: its `peer`
    /// leads back to itself.
    private func isOwnReport(_ fields: ArraySlice<[UInt8]>) -> Bool {
        fields.count > 2 && UInt64(String(decoding: fields[fields.startIndex + 2], as: UTF8.self)) == runID
    }

    private func warnOfMisconfiguration(
        _ problem: Misconfiguration, _ message: String, level: Logger.Level = .critical
    ) {
        let now = SystemClock.monotonicNanoseconds()
        // Shown as a pair problem without the log's "pair: " (the other problems have none).
        misconfigurationSeen[problem] = (now, message.hasPrefix("pair: ") ? String(message.dropFirst(6)) : message)
        if let last = lastMisconfigurationWarning[problem], now &- last < 60_000_000_000 { return }
        lastMisconfigurationWarning[problem] = now
        logger.log(level: level, "\(message)")
    }

    /// Asks the loop for its next sequence and its subscribers, waiting `shortWait` at most
    /// (else the last known ones stay; the watchdog deals with a hung loop). One question at a
    /// time: one the loop has not answered yet is waited for again, not asked anew (each answer
    /// of a broker that is not active costs three system calls per connection).
    private func refreshView() {
        let slot = unansweredView ?? ReplySlot<PairLoopView>()
        if unansweredView == nil { loop.post(.pairQuery(slot)) }
        guard let view = slot.wait(milliseconds: shortWait) else {
            unansweredView = slot
            return
        }
        unansweredView = nil
        subscribersCountedAt = view.countedAtNanoseconds
        ownNextSequence = view.nextSequence
        subscribers = view.subscribers + clientsElsewhere.count
        unboundProducerEndpoints = view.unboundProducerEndpoints
        if machine.state != .active, let stopped = view.mirrorStoppedAfter, mirrorRetryAfter != stopped {
            // The loop had no room for a mirrored message: ask again from there, and take no
            // reply to a request asked before.
            logger.info(
                "pair: this broker's history queue had no room for mirrored message \(stopped &+ 1); asking again")
            status.replicatedThrough = stopped
            mirrorRetryAfter = stopped
            moreToReplicate = true
            requestSent = nil
        }
        // What this broker kept before (its own store, after a restart) needs no mirroring.
        if status.replicatedThrough == 0 { status.replicatedThrough = view.nextSequence &- 1 }
    }

    /// Heartbeats and replication requests from the peer, on the ROUTER. Of several heartbeats
    /// waiting only the newest counts.
    private func serveRequests() {
        var newest: (state: PairMachine.State, sequence: UInt64, identity: [UInt8], fields: ArraySlice<[UInt8]>)?
        var valuesRequest: (identity: [UInt8], since: UInt64)?
        defer { if let valuesRequest { sendValues(after: valuesRequest.since, to: valuesRequest.identity) } }
        // A goodbye with no heartbeat after it: the peer is gone now, not `failover_ms` later
        // (a planned stop hands over first, then says so).
        var goodbyeLast = false
        defer { if goodbyeLast { machine.peerStopped(nowNanoseconds: SystemClock.monotonicNanoseconds()) } }
        while let frames = try? router.receiveFrames(dontWait: true) {
            guard frames.count >= 2 else { continue }
            let identity = frames[0]
            let kind = String(decoding: frames[1], as: UTF8.self)
            switch kind {
            case "HB" where frames.count >= 4:
                if let state = PairMachine.State(rawValue: String(decoding: frames[2], as: UTF8.self)),
                    let sequence = UInt64(String(decoding: frames[3], as: UTF8.self))
                {
                    newest = (state, sequence, identity, frames[2...])
                    // A heartbeat after a goodbye on the same connection: a new run.
                    let run = frames.count > 4 ? UInt64(String(decoding: frames[4], as: UTF8.self)) : nil
                    if run == nil || run != peerGoneRun {
                        peerSaidGoodbye = false
                        goodbyeLast = false
                    }
                }
            case "BYE":
                peerSaidGoodbye = true
                goodbyeLast = true
                // "BYE <run> [<through>]": the run that stops, and (after a complete hand-over)
                // the last sequence it gave, all mirrored here.
                let run = frames.count >= 3 ? UInt64(String(decoding: frames[2], as: UTF8.self)) : nil
                peerGoneRun = run ?? peerGoneRun
                if let run, frames.count >= 4, let through = UInt64(String(decoding: frames[3], as: UTF8.self)) {
                    peerHandedOver = (run, through)
                }
            case "VALUES" where frames.count >= 3:
                // The newest only: the peer asks one page at a time, and each answer copies the
                // cache on the forwarding loop.
                valuesRequest = (identity, UInt64(String(decoding: frames[2], as: UTF8.self)) ?? 0)
            case "HISTORY" where frames.count >= 3:
                // What the peer has mirrored: a hand-over waits for it.
                if let since = UInt64(String(decoding: frames[2], as: UTF8.self)) { peerAskedSince = since }
                // One at a time: the peer asks again when an answer is 2 s late, and requests
                // queued behind a slow disk would only grow the writer's mailbox.
                guard pendingHistory == nil else { continue }
                guard let history, var query = HistoryQuery.parse(Array("since ".utf8) + frames[2]) else { continue }
                // The fourth frame, when the peer sends it: the bytes its history queue has room for.
                if frames.count >= 4, let room = Int(String(decoding: frames[3], as: UTF8.self)), room > 0 {
                    query.maxBytes = room
                }
                query.tellsSplits = true
                let slot = ReplySlot<Result<HistoryReply, ControlError>>()
                history.mailbox.post(.query(query, slot))
                pendingHistory = (identity, frames[2], slot, SystemClock.monotonicNanoseconds())
            default:
                continue
            }
        }
        guard let newest else { return }
        // Its own heartbeat (`peer` leads back here) is neither answered nor taken for an
        // active peer's: it said "both brokers are active" every 10 s once this one was.
        if warnIfOwnReport(newest.fields) { return }
        linkWatch.peerHeardOnBind(nowNanoseconds: SystemClock.monotonicNanoseconds())
        let wasActive = machine.state == .active
        if isNewerReport(newest.fields) { heard(newest.state, sequence: newest.sequence) }
        // Answered on the peer's own connection, in the state this heartbeat left this broker
        // in: in a one-way partition (the peer's pair port unreachable from here, this one's
        // from there) the peer hears this broker this way, and a backup that took over yields
        // instead of staying active beside the primary.
        _ = try? router.send(frames: [newest.identity, Array("HB".utf8)] + report(), dontWait: true)
        if newest.state == .active && wasActive && machine.state == .active && status.role == .primary {
            if let heldBack = dualActiveLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                logger.critical(
                    "pair: both brokers are active (the backup at sequence \(newest.sequence)); the answer to its heartbeat tells it that the primary keeps the role. If this repeats, the backup hears neither: check the pair link between \(settings.bind ?? "this broker") and \(settings.peer ?? "the peer")\(heldBack == 0 ? "" : " (\(heldBack) more since the last such message)")"
                )
            }
        }
    }

    /// Answers the peer's VALUES request: the last values stored after `since`, a page at most.
    private func sendValues(after since: UInt64, to identity: [UInt8]) {
        // A stopped loop answers nothing: waiting for it would hold this thread `shortWait`.
        guard !stopping else { return }
        let slot = ReplySlot<(entries: [LastValueCache.Entry], more: Bool)>()
        loop.post(.lastValues(since: since, slot))
        guard let page = slot.wait(milliseconds: shortWait) else { return }
        let list = page.entries.map {
            MessageJSON(frames: $0.frames, style: .exact, seq: $0.sequence, storedMilliseconds: $0.storedMilliseconds)
        }
        guard let json = try? JSONEncoder().encode(list) else { return }
        // The third frame is new: a backup that does not know it asks again in a second.
        let more = Array((page.more ? "more" : "done").utf8)
        _ = try? router.send(frames: [identity, Array("VALUES".utf8), Array(json), more], dontWait: true)
        status.valuePagesServed = (status.valuePagesServed ?? 0) &+ 1
    }

    /// An active broker's wait, once its loop has stopped, for its passive peer to mirror
    /// through `lastSequence`.
    struct HandOver {
        var lastSequence: UInt64
        var deadline: UInt64
    }

    /// The hand-over to start now that the loop stopped at `lastSequence`, or nil when there
    /// is none to wait for: this broker is not active, keeps no history, or has no passive
    /// peer that is heard; or the peer has asked for what follows already.
    private func startHandOver(through lastSequence: UInt64, now: UInt64) -> HandOver? {
        stopping = true
        ownNextSequence = max(ownNextSequence, lastSequence &+ 1)
        // A peer silent for a moment (starved of CPU) is waited for; one silent for longer
        // than a hand-over lasts is taken for gone.
        let heardLately = machine.peerHeard.map { now &- $0 < Self.handOverMilliseconds * 1_000_000 } ?? false
        // A peer still waiting (just started) mirrors once it hears this one active.
        let mirroring = machine.peerState == .passive || machine.peerState == .waiting
        guard historyOn, history != nil, peerKeepsHistory, machine.state == .active, mirroring, heardLately,
            !peerSaidGoodbye
        else { return nil }
        guard peerAskedSince < lastSequence else {
            // A run that kept nothing (0) says nothing of the numbers of runs before it.
            if lastSequence > 0 { handedOverThrough = lastSequence }
            return nil
        }
        logger.info(
            "pair: forwarding has stopped at sequence \(lastSequence); waiting up to \(Self.handOverMilliseconds) ms for the peer to mirror what it has not (it asked for what follows \(peerAskedSince))"
        )
        return HandOver(lastSequence: lastSequence, deadline: now &+ Self.handOverMilliseconds * 1_000_000)
    }

    /// Whether `handOver` is over: the peer asked for what follows its last sequence, or is
    /// active, or said it stops, or the time is up (each said). A peer that falls silent is waited for
    /// all the same: one starved of CPU for a second or two catches up once it runs (a probe:
    /// given up on after half a second, the peer missed 254-874 messages, 3 times of 3).
    private func handOverIsOver(_ handOver: HandOver, now: UInt64) -> Bool {
        if peerAskedSince >= handOver.lastSequence {
            logger.info("pair: the peer has mirrored everything through sequence \(handOver.lastSequence)")
            handedOverThrough = handOver.lastSequence
            return true
        }
        if machine.peerState == .active || peerSaidGoodbye {
            logger.warning(
                "pair: the peer \(peerSaidGoodbye ? "is stopping too" : "is no longer passive"), having mirrored through sequence \(peerAskedSince) of \(handOver.lastSequence); the rest is in this broker's history only"
            )
            return true
        }
        guard now >= handOver.deadline else { return false }
        logger.warning(
            "pair: the peer had mirrored through sequence \(peerAskedSince) of \(handOver.lastSequence) when the hand-over's \(Self.handOverMilliseconds) ms ran out; should it take over, the rest is in this broker's history only (it may be behind: lag_messages in its STATS)"
        )
        return true
    }

    /// Sends the writer's answer to the peer's HISTORY request, if it has come.
    private func sendHistoryAnswerIfReady() {
        guard let pending = pendingHistory else { return }
        guard let result = pending.slot.wait(milliseconds: 0) else {
            // The peer asks again after this long: an answer later than that is not waited for.
            let age = SystemClock.monotonicNanoseconds() &- pending.asked
            if age > Self.replicationTimeoutMilliseconds * 1_000_000 { pendingHistory = nil }
            return
        }
        pendingHistory = nil
        guard case .success(let reply) = result, let json = try? JSONEncoder().encode(reply) else { return }
        // The third frame echoes the request's sequence, so that the peer can tell a late reply
        // to an earlier request from the one it waits for.
        _ = try? router.send(
            frames: [pending.identity, Array("HISTORY".utf8), Array(json), pending.echo], dontWait: true)
        status.historyPagesServed = (status.historyPagesServed ?? 0) &+ 1
    }

    /// The peer's state and last sequence, from its heartbeat (or, on a one-way partition, the
    /// primary's answer on this broker's own connection).
    private func heard(_ state: PairMachine.State, sequence: UInt64) {
        // A damaged or hostile heartbeat must not wrap the takeover's arithmetic.
        let newest = (state: state, sequence: min(sequence, Self.sequenceCeiling))
        peerEverHeard = true
        if newest.state == .active { peerWasActive = true }
        if newest.state == .waiting {
            // The peer restarted: its cache sequences (in memory) may start again from zero,
            // and what its last run mirrored says nothing of this one's (a hand-over would
            // take it for mirrored).
            valuesThrough = 0
            peerAskedSince = 0
            peerPassiveSequence = 0
        }
        // A passive peer's sequence is what it has mirrored (a waiting one's may include a
        // reserve of its own).
        if newest.state == .passive { peerPassiveSequence = newest.sequence }
        // Only an active broker gives numbers: a new run heard waiting (restarted at once)
        // leaves the goodbye's word on the numbers above it standing, an active one ends it.
        if newest.state == .active { peerHandedOver = nil }
        // Only what an active peer numbered between two of its heartbeats: a passive one's
        // position jumps as it mirrors across a takeover's skip, and counted as a burst, each
        // skip doubled the next (2^31 after one 2^30 skip, then 2^32...).
        if newest.state == .active && machine.peerState == .active && newest.sequence > status.peerSequence
            && status.peerSequence > 0
        {
            peerBurst = max(peerBurst, newest.sequence &- status.peerSequence)
        }
        status.peerSequence = newest.sequence
        // A broker that stops takes over nothing, from the peer's word either.
        let now = SystemClock.monotonicNanoseconds()
        if draining {
            machine.noteHeard(newest.state, nowNanoseconds: now)
        } else if let transition = machine.peerSaid(newest.state, nowNanoseconds: now) {
            apply(transition)
        }
        if newest.state == .active && machine.state == .active && status.role == .primary && !draining {
            numberAbove(activeBackupAt: newest.sequence)
        }
        checkAhead()
    }

    /// Both brokers are active (this primary was silent past the failover time, a SIGSTOP or a
    /// partition, and the backup took over): the backup stands down on this broker's answer,
    /// and this one numbers on above everything the backup numbered. How far that is, this one
    /// cannot know: the heartbeat it reads first may have waited in its socket while it was
    /// stopped (measured: the backup's first as active, 1,000,000, when it had numbered to
    /// 2,320,680), and the backup numbers until it hears the answer. So it skips as far as a
    /// takeover by a broker that never heard its peer (`unheardTakeoverGap`, a billion), and
    /// again should a later heartbeat show the backup beyond that. Going on from its own lower
    /// numbers, it gave numbers that clients resuming from the backup's (`since`,
    /// Last-Event-ID) took for ones they had, and a `zpub sub` following the pair said
    /// "numbering started again" at each; skipping by the takeover's 1,000,000 from the stale
    /// heartbeat, it gave 40 numbers the backup had given. Messages this broker numbered before
    /// it heard the backup stay below the backup's: the numbers a takeover skips are there for
    /// them (in its history, for a reader from before them).
    private func numberAbove(activeBackupAt sequence: UInt64) {
        // The loop's view may not have the last jump yet: once is enough for a backup's numbers.
        guard sequence >= max(ownNextSequence, numberingAboveBackupFrom) else { return }
        let next = sequence &+ max(2 &* peerBurst, Self.unheardTakeoverGap) &+ 1
        numberingAboveBackupFrom = next
        logger.critical(
            "pair: the backup numbered up to sequence \(sequence) while both brokers were active; this primary numbers from \(next) on, so that no number is given twice and clients resuming from the backup's numbers miss nothing after them"
        )
        if let history, peerKeepsHistory {
            // Where the backup's numbering split from this one's: what it had mirrored before
            // it took over, as far as this broker knows (its last HISTORY request, its last
            // heartbeat as passive; it may have mirrored a page more: a reader then gets some
            // messages twice, never too few). Before the reserve, and so before any REPLAY the
            // writer answers later: the backup may already have stood down on a heartbeat this
            // broker had queued before it was stopped, and clients come here now.
            let split = max(peerAskedSince, peerPassiveSequence)
            let first = max(ownNextSequence, split &+ 1)
            if first < next { history.mailbox.post(.split(numbers: first...(next - 1), resumeAfter: split)) }
        }
        if let history {
            // Recorded before anything is numbered there, as a takeover's reserve is. No
            // heartbeat meanwhile (a sync may take seconds on a slow disk): hearing this broker,
            // the backup stands down, and a client then turns here, which must find the numbers
            // above the backup's already. The backup, itself active, waits for nothing.
            let reserved = ReplySlot<Bool>()
            // Not settled: the loop may number below `next` until it reads the jump.
            history.mailbox.post(.reserve(above: next, unusedAbove: nil, settles: false, reserved))
            let recorded = reserved.wait(milliseconds: Int(ForwardingLoop.reserveWaitNanoseconds / 1_000_000))
            if recorded != true {
                logger.warning(
                    "pair: numbering from \(next) without a durable reserve there: history keeps nothing until its writer records one (forwarding goes on)"
                )
            }
        }
        loop.post(.pairNumberFrom(next))
        ownNextSequence = max(ownNextSequence, next)
    }

    /// A broker that joined as passive with its history ahead of the active peer's: its store
    /// holds numbers the peer has not given yet, and will give to other messages (each was
    /// active alone in turn: the backup took over and was stopped, then the primary started
    /// alone from its own last number). Mirroring would wait until the peer passed them, and
    /// the two histories would disagree under one number. Still ahead after `failover_ms` of
    /// heartbeats, it stops like a demoted broker, and its history is set aside.
    private func checkAhead() {
        guard let since = aheadSince else { return }
        let own = ownNextSequence &- 1
        guard machine.state == .passive, own > status.peerSequence else {
            aheadSince = nil
            return
        }
        guard SystemClock.monotonicNanoseconds() &- since >= UInt64(settings.failoverMilliseconds) * 1_000_000
        else { return }
        aheadSince = nil
        logger.critical(
            "pair: this broker's history reaches sequence \(own), beyond the active peer's \(status.peerSequence): the two numbered different messages alike (each was active alone); this broker stops, its history is set aside, and it mirrors the peer's from the start when restarted"
        )
        standDown()
    }

    /// Gives up being active, and stops: the loop unbinds the producers' endpoints first (a
    /// second at most is waited for that), so that nothing more is taken in here while zpubd
    /// drains and stops.
    private func standDown() {
        stoodDown = true
        let slot = ReplySlot<Bool>()
        loop.post(.pairStandDown(slot))
        if slot.wait(milliseconds: 1_000) == nil && !loop.stopped.load(ordering: .acquiring) {
            logger.warning(
                "pair: the forwarding loop did not unbind the producers' endpoints within 1 s; zpubd stops all the same, and what producers send meanwhile is numbered into a history that is set aside"
            )
        }
        onDemoted()
    }

    // MARK: Replication

    /// Not faster than this broker's writer stores what comes: the bytes of the history queue's
    /// first half still free, which a page (of messages, or of last values to persist) waits for
    /// while it is negative. A message without room is asked for again; a last value without
    /// room would go unpersisted. `Int.max` without history.
    private var historyQueueRoom: Int {
        guard let history else { return .max }
        return history.queue.capacityBytes / 2 - history.queue.depth.queuedBytes
    }

    private func replicateIfDue(now: UInt64) {
        // A broker that gave up being active mirrors nothing more: it stops, and its history
        // is set aside (the loop refuses such pages too).
        guard !stoodDown else { return }
        if valuesOn, machine.state != .active, machine.peerState == .active,
            now &- valuesAsked > Self.valuesIntervalMilliseconds * 1_000_000, historyQueueRoom >= 0
        {
            valuesAsked = now
            _ = try? dealer.send(frames: [Array("VALUES".utf8), Array(String(valuesThrough).utf8)], dontWait: true)
        }
        guard historyOn, machine.state != .active, machine.peerState == .active else {
            requestSent = nil
            return
        }
        if let sent = requestSent {
            // Unanswered (the peer died, or restarted): ask again after a while.
            guard now &- sent > Self.replicationTimeoutMilliseconds * 1_000_000 else { return }
        } else if !moreToReplicate && now &- lastReplication < Self.replicationIntervalMilliseconds * 1_000_000 {
            return
        }
        let room = historyQueueRoom
        guard room >= 0 else { return }
        var frames = [Array("HISTORY".utf8), Array(String(status.replicatedThrough).utf8)]
        // No more than the history queue has room for (its records take a little more than
        // the frames): a page that did not fit would be read and sent for nothing.
        if history != nil { frames.append(Array(String(max(1, room * 3 / 4)).utf8)) }
        if (try? dealer.send(frames: frames, dontWait: true)) == true {
            requestSent = now
            requestedSince = status.replicatedThrough
        }
    }

    private func receiveReplies() {
        while let frames = try? dealer.receiveFrames(dontWait: true) {
            guard frames.count >= 2 else { continue }
            if String(decoding: frames[0], as: UTF8.self) == "HB" {
                // The peer's answer to this broker's heartbeat, on this broker's connection
                // (taken only if newer than the last report taken, whichever way that came).
                guard frames.count >= 3,
                    let state = PairMachine.State(rawValue: String(decoding: frames[1], as: UTF8.self)),
                    let sequence = UInt64(String(decoding: frames[2], as: UTF8.self))
                else { continue }
                if !isOwnReport(frames[1...]) {
                    linkWatch.peerHeardOnConnection(nowNanoseconds: SystemClock.monotonicNanoseconds())
                }
                if isNewerReport(frames[1...]) { heard(state, sequence: sequence) }
                continue
            }
            if String(decoding: frames[0], as: UTF8.self) == "VALUES" {
                // A reply that arrives after a takeover is the old active's: this broker's
                // values are the current ones now.
                guard machine.state != .active else { continue }
                mirrorValues(frames[1])
                // A full page: the next one now, not in a second.
                if frames.count >= 3 && frames[2] == Array("more".utf8) { valuesAsked = 0 }
                continue
            }
            guard String(decoding: frames[0], as: UTF8.self) == "HISTORY" else { continue }
            // The request it answers (a peer before the echo: the last one sent).
            let since = frames.count >= 3 ? UInt64(String(decoding: frames[2], as: UTF8.self)) : requestedSince
            // Asking again from where the loop stopped: replies to earlier requests would leave
            // a hole (and move `replicatedThrough` past it).
            if let retry = mirrorRetryAfter {
                guard since == retry else { continue }
                mirrorRetryAfter = nil
            }
            requestSent = nil
            lastReplication = SystemClock.monotonicNanoseconds()
            guard let reply = try? JSONDecoder().decode(HistoryReply.self, from: Data(frames[1])) else {
                moreToReplicate = false
                continue
            }
            let messages: [StoredMessage] = reply.messages.compactMap { entry in
                guard let sequence = entry.seq, let frames = entry.messageFrames else { return nil }
                return StoredMessage(
                    sequence: sequence, receivedMilliseconds: entry.storedMilliseconds ?? 0, frames: frames, prefix: "")
            }
            if let problem = Self.implausible(reply, messages: messages, since: since ?? requestedSince) {
                // Not mirrored, and asked again once the request times out: the reply of a
                // damaged or hostile peer must not number this broker's history.
                moreToReplicate = false
                requestSent = SystemClock.monotonicNanoseconds()
                if let heldBack = refusedReplyLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                    logger.error(
                        "pair: refused the peer's HISTORY reply: \(problem); nothing of it is mirrored (is the peer a zpubd of this version, and the pair link its alone? docs/topologies.md)\(heldBack == 0 ? "" : " (\(heldBack) more since the last such message)")"
                    )
                }
                continue
            }
            if let gap = reply.gap, gap.to > status.replicatedThrough {
                // Evicted on the peer before it could be mirrored: nothing to fetch, skip it.
                logger.warning(
                    "pair: sequences \(gap.from)-\(gap.to) are no longer kept by the peer and cannot be mirrored")
                status.replicatedThrough = gap.to
            }
            if !messages.isEmpty {
                loop.post(.replicate(messages, after: since ?? requestedSince))
                status.replicatedThrough = messages.last!.sequence
                let newest = messages.last!.receivedMilliseconds
                status.lagMilliseconds =
                    reply.more ? SystemClock.wallMilliseconds() &- min(newest, SystemClock.wallMilliseconds()) : 0
            } else {
                status.lagMilliseconds = 0
            }
            // Nothing newer kept: the peer's assigned sequences up to here are ours too.
            if !reply.more { status.replicatedThrough = max(status.replicatedThrough, reply.lastSequence) }
            moreToReplicate = reply.more
            // Numbers the peer did not keep are not kept here either: its reasons say why.
            if let notKept = reply.notKept, !notKept.isEmpty, let history {
                history.mailbox.post(.peerNotKept(notKept))
            }
            // Numbers it never used (a takeover's skip after a complete hand-over) are not
            // told here either.
            let unused = Self.unusedNumbers(in: reply, messages: messages, after: since ?? requestedSince)
            if !unused.isEmpty, let history { history.mailbox.post(.peerUnused(unused)) }
            // Where the peer's numbering split: a resume here after a later failover starts
            // after the split as it would there.
            for split in reply.splits ?? [] where split.first <= split.last {
                history?.mailbox.post(.split(numbers: split.first...split.last, resumeAfter: split.resumeAfter))
            }
        }
    }

    /// The numbers in the holes among a HISTORY reply's messages (from `after` on) that
    /// neither its `not_kept` nor its `gap` covers: the peer's history accounts for every number
    /// it gave, so these it never used (the numbers a takeover skipped after a complete
    /// hand-over).
    static func unusedNumbers(in reply: HistoryReply, messages: [StoredMessage], after: UInt64)
        -> [ClosedRange<UInt64>]
    {
        var told = (reply.notKept ?? []).map { $0.from...$0.to }
        if let gap = reply.gap { told.append(gap.from...gap.to) }
        var unused: [ClosedRange<UInt64>] = []
        var previous = after
        for message in messages {
            if message.sequence > previous &+ 1 {
                unused += SequenceRanges.parts(of: (previous + 1)...(message.sequence - 1), outside: told)
            }
            previous = max(previous, message.sequence)
        }
        return unused
    }

    /// Why a HISTORY reply cannot be the peer's answer to a request for what follows `since`,
    /// or nil: sequences above the ceiling, or not rising after `since`, would wrap or rewind
    /// the numbers this broker gives its own messages once it takes over.
    static func implausible(_ reply: HistoryReply, messages: [StoredMessage], since: UInt64) -> String? {
        if messages.count != reply.messages.count { return "a message without a sequence or readable frames" }
        var previous = since
        for message in messages {
            guard message.sequence > previous, message.sequence <= sequenceCeiling else {
                return "message sequence \(message.sequence) after \(previous) (sequences rise, and stay below 2^62)"
            }
            previous = message.sequence
        }
        for bound in [reply.lastSequence, reply.gap?.to ?? 0] where bound > sequenceCeiling {
            return "sequence \(bound) is above 2^62"
        }
        // Made into ranges (`unusedNumbers`), a range that runs downwards trapped: a peer's one
        // reply stopped this broker (a review, 2026-12-07).
        let ranges = (reply.notKept ?? []).map { ($0.from, $0.to) } + (reply.gap.map { [($0.from, $0.to)] } ?? [])
        for (from, to) in ranges where from > to || to > sequenceCeiling {
            return "numbers \(from) to \(to) (ranges run upwards, and stay below 2^62)"
        }
        return nil
    }

    /// Last values from the active peer, written into this broker's cache (not sent to
    /// subscribers while passive), so that a takeover starts with them.
    private func mirrorValues(_ json: [UInt8]) {
        guard let list = try? JSONDecoder().decode([MessageJSON].self, from: Data(json)) else { return }
        let entries: [LastValueCache.Entry] = list.compactMap { entry in
            guard let frames = entry.messageFrames, let sequence = entry.seq else { return nil }
            return LastValueCache.Entry(
                frames: frames, bytes: frames.reduce(0) { $0 + 4 + $1.count }, sequence: sequence,
                storedMilliseconds: entry.storedMilliseconds ?? 0)
        }
        guard let newest = entries.last?.sequence else { return }
        loop.post(.restoreValues(entries))
        valuesThrough = max(valuesThrough, newest)
    }

    // MARK: Changes of role

    private func apply(_ transition: PairMachine.Transition) {
        status.changes &+= 1
        logger.notice(
            "pair: \(status.role.rawValue) \(transition.from.rawValue) -> \(transition.to.rawValue): \(transition.reason)",
            metadata: ["pair_state": "\(transition.to.rawValue)"])
        notifier.status("pair: \(status.role.rawValue), \(transition.to.rawValue) (\(transition.reason))")
        switch transition.to {
        case .active:
            // Sequences continue after the highest either side knows of, plus what the old
            // active may have assigned after its last heartbeat (twice its largest burst between
            // two heartbeats): those were never mirrored, and are skipped rather than reused, so
            // that a client resuming from a sequence it got from the old active misses nothing
            // (docs/topologies.md, "What a failover can lose").
            let known = max(status.replicatedThrough, status.peerSequence, ownNextSequence &- 1)
            // A peer never heard since this broker started may have numbered all the while it
            // was down: skipped by far more. A peer heard only waiting or passive numbered
            // nothing this one does not know of.
            let gap =
                peerWasActive
                ? max(2 &* peerBurst, PairSettings.minimumTakeoverGap) : peerEverHeard ? 0 : Self.unheardTakeoverGap
            let next = known &+ gap &+ 1
            // The loop numbers from here, or above its store's reserve after an unclean stop.
            let first = max(next, history?.firstNewSequence ?? 1)
            status.tookOverAt = first
            // Sequences below it are used or skipped: the heartbeats say so from now on.
            ownNextSequence = max(ownNextSequence, first)
            // After a complete hand-over (a goodbye, and no peer heard active since: everything
            // it numbered is mirrored here), the numbers skipped were never used: not told as
            // possibly lost. The skip stays: a `zpub sub` following the pair sees the takeover
            // by it.
            let handedOver = peerHandedOver.flatMap { goodbye in
                status.replicatedThrough >= goodbye.through ? goodbye.through : nil
            }
            let slot = ReplySlot<[BrokerError]>()
            loop.post(.pairActivate(nextSequence: next, unusedAbove: handedOver, slot))
            // Heartbeats go on while the loop binds and reserves sequences (a write and a sync,
            // seconds on a slow disk): a peer that heard nothing meanwhile, a primary restarting
            // beside this broker say, would count it as silent and go active too.
            // The loop's own wait for the history reserve, and a margin: the loop starts its
            // clock when it reads the request, after this one.
            let deadline = SystemClock.monotonicNanoseconds() &+ ForwardingLoop.reserveWaitNanoseconds &+ 1_000_000_000
            var failures: [BrokerError]?
            repeat {
                announce(now: SystemClock.monotonicNanoseconds())
                failures = slot.wait(milliseconds: settings.heartbeatMilliseconds)
                // An abandoned slot (the loop stopped) answers every wait at once: no spinning.
            } while failures == nil && SystemClock.monotonicNanoseconds() < deadline
                && !loop.stopped.load(ordering: .acquiring)
            for failure in failures ?? [] {
                logger.error("pair: taking over: \(failure.message)")
            }
            requestSent = nil
        case .passive where transition.from == .waiting && historyOn && ownNextSequence &- 1 > status.peerSequence:
            // Checked again on the peer's heartbeats for `failover_ms` (`checkAhead`): one
            // heartbeat's sequence is stale when the peer's loop was slow to tell it.
            aheadSince = SystemClock.monotonicNanoseconds()
        case .passive where transition.from == .active:
            logger.critical(
                "pair: the primary is active too (a partition between the pair healed); this backup stops so that one active broker remains, and rejoins as passive when restarted"
            )
            standDown()
        default:
            break
        }
    }

    private func publishStatus(now: UInt64) {
        status.state = machine.state
        status.active = machine.state == .active
        status.peerState = machine.peerState
        status.peerHeardMillisecondsAgo = machine.peerHeard.map { (now &- $0) / 1_000_000 }
        status.clients = subscribers
        status.lagMessages =
            machine.state == .active ? 0 : status.peerSequence &- min(status.peerSequence, status.replicatedThrough)
        let problems = currentProblems(now: now)
        reportChanges(in: problems)
        status.problems = problems.isEmpty ? nil : problems
        let snapshot = status
        loop.pairStatus.withLock { $0 = snapshot }
    }

    /// What is wrong with the pair now (`PairProblem`).
    private func currentProblems(now: UInt64) -> [PairProblem] {
        var problems: [PairProblem] = []
        if let oneWay = linkWatch.problem(nowNanoseconds: now, bind: settings.bind ?? "", peer: status.peer) {
            problems.append(oneWay)
        }
        if !draining && machine.peerIsSilent(nowNanoseconds: now) {
            // A peer whose key this broker does not have (or the other way round) is refused
            // at the handshake, on one side only in the log.
            let check =
                linkEncrypted
                ? "check the pair link, and that each broker's [ha] peer_public_key_file holds the other's public key"
                : "check the pair link"
            let silence =
                peerSaidGoodbye
                ? "said it stops"
                : status.peerHeardMillisecondsAgo.map { "has not been heard for \(Self.seconds($0))" }
                    ?? "has not been heard since this broker started"
            if machine.state == .active {
                problems.append(
                    PairProblem(
                        kind: PairProblem.peerSilent,
                        message:
                            "the peer (\(status.peer)) \(silence): no standby would take over should this broker fail; start it, or \(check)"
                    ))
            } else if subscribers == 0 {
                problems.append(
                    PairProblem(
                        kind: PairProblem.peerSilent,
                        message:
                            "the peer (\(status.peer)) \(silence), and this broker takes over only while clients are connected to it (none are): no broker of the pair may be active; start the peer, or \(check)"
                    ))
            }
        }
        let window = 2 &* UInt64(settings.failoverMilliseconds) * 1_000_000
        for problem in [Misconfiguration.peerIsThisBroker, .sameRole, .historyDiffers, .prefixesDiffer] {
            guard let seen = misconfigurationSeen[problem], now &- seen.at < max(window, 5_000_000_000) else {
                continue
            }
            problems.append(PairProblem(kind: PairProblem.misconfigured, message: seen.message))
        }
        if machine.state == .active && !unboundProducerEndpoints.isEmpty {
            problems.append(
                PairProblem(
                    kind: PairProblem.producersUnbound,
                    message:
                        "this broker is active but could not bind \(unboundProducerEndpoints.joined(separator: ", ")): producers cannot reach it there (the log says why); free the port and reload (zpub reload), or restart zpubd"
                ))
        }
        return problems
    }

    /// Kinds of problem in the last status, to log a change once.
    private var reportedProblems: Set<String> = []
    /// Whether the silence last told was the peer's since this broker started: its first
    /// heartbeat then is not "heard again" (a walkthrough, 2026-12-07).
    private var silentSinceStart = false

    /// Logs a link that works one way, and a silent peer, when they begin and end (the other
    /// problems are logged where they are found).
    private func reportChanges(in problems: [PairProblem]) {
        let kinds = Set(problems.map(\.kind))
        defer { reportedProblems = kinds }
        for problem in problems where !reportedProblems.contains(problem.kind) {
            if problem.kind == PairProblem.oneWayLink { logger.critical("pair: \(problem.message)") }
            // Beside an active broker too: its standby died or stalls, and nothing would take
            // over should this one fail (an operator watching `journalctl -g pair:` saw nothing).
            if problem.kind == PairProblem.peerSilent {
                logger.warning("pair: \(problem.message)")
                silentSinceStart = machine.peerHeard == nil
            }
        }
        if reportedProblems.contains(PairProblem.oneWayLink) && !kinds.contains(PairProblem.oneWayLink) {
            logger.notice("pair: heartbeats travel both ways between the pair again")
        }
        if reportedProblems.contains(PairProblem.peerSilent) && !kinds.contains(PairProblem.peerSilent)
            && machine.peerIsSilent(nowNanoseconds: SystemClock.monotonicNanoseconds()) == false
        {
            logger.notice("pair: the peer (\(status.peer)) is heard \(silentSinceStart ? "now" : "again")")
        }
    }

    private static func seconds(_ milliseconds: UInt64) -> String {
        milliseconds < 10_000 ? "\(milliseconds) ms" : "\(milliseconds / 1_000) s"
    }
}

/// How many clients this broker serves through another door than its XPUB's connections: the
/// HTTP gateway's browsers, whose SUB joins the XPUB over inproc (no connection events). They
/// count for a pair's takeover as subscribers do: behind a load balancer that sends browsers
/// to the passive broker once the active one fails, they are the clients that vote. Set once
/// the gateway runs.
public final class ClientsElsewhere: Sendable {
    private let source = Locked<(@Sendable () -> Int)?>(nil)

    public init() {}

    /// Counts with `source` from now on.
    public func count(with source: @escaping @Sendable () -> Int) {
        self.source.withLock { $0 = source }
    }

    var count: Int { source.withLock { $0 }?() ?? 0 }
}
