import Logging
import NIOCore
import ZPubCore
import ZeroMQ

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#endif

/// What event loops ask of the gateway's ZeroMQ thread.
enum LinkCommand: Sendable {
    /// A new client with its first prefixes; with `resumeAfter`, first the cached values newer
    /// than that last-value sequence (an SSE reconnection with Last-Event-ID).
    case attach(ClientOutbox, prefixes: [[UInt8]], resumeAfter: UInt64?)
    case subscribe(ClientID, [UInt8])
    case unsubscribe(ClientID, [UInt8])
    case detach(ClientID)
    case publish([[UInt8]])
    /// The reply to a round's SNAPSHOT request, from the control thread (`ControlDispatcher`).
    case snapshotReplied(token: String, Result<ControlReply, ControlUnavailable>)
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

    let mailbox = Mailbox<LinkCommand>()
    private let control: ControlDispatcher
    private let counters: GatewayCounters
    private let logger: Logger
    private let sub: Socket
    private let push: Socket
    private var index = SubscriptionIndex()
    private var clients: [ClientID: Client] = [:]
    private let tokenPrefix = "gw\(getpid())-"
    private var nextToken = 0

    private struct Client {
        let outbox: ClientOutbox
        var resume: Resume?
    }

    /// An SSE client catching up through the snapshot round `token`: cached values newer than
    /// `since` first, then the live stream (the round's `SnapshotCatchUp` holds it meanwhile).
    private struct Resume {
        let token: String
        let since: UInt64
    }

    /// A SNAPSHOT request and its marker: for a resuming client, or (no client) only to learn
    /// the cache's sequence for SSE event ids.
    private struct Round {
        var client: ClientID?
        var catchUp: SnapshotCatchUp<ClientOutbox.Item>
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

    init(context: Context, control: ControlDispatcher, counters: GatewayCounters, logger: Logger) throws {
        self.control = control
        self.counters = counters
        self.logger = logger
        sub = try Socket(context, type: .sub)
        push = try Socket(context, type: .push)
        for socket in [sub, push] { try socket.setOption(.linger, 0) }
        // Room for bursts while this thread hands messages to clients' queues.
        try sub.setOption(.receiveHighWaterMark, 100_000)
        // Subscriptions must all reach the broker, however many clients subscribe at once.
        try sub.setOption(.sendHighWaterMark, 0)
        try sub.connect(InternalEndpoints.endpoint(for: .xpub)!)
        try push.connect(InternalEndpoints.endpoint(for: .pull)!)
    }

    func run() {
        var poller = Poller()
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        let subIndex = poller.add(sub)
        let message = Message()
        var stopping = false
        while !stopping {
            do {
                _ = try poller.poll(timeoutMilliseconds: 200)
            } catch {
                logger.critical("http gateway cannot poll: \(error)")
                break
            }
            let now = SystemClock.monotonicNanoseconds()
            if poller.isReadable(mailboxIndex) {
                for command in mailbox.take() {
                    if case .stop = command { stopping = true } else { handle(command) }
                }
            }
            if poller.isReadable(subIndex) { receiveBurst(message) }
            startWatermarkRoundIfDue(now: now)
        }
        sub.close()
        push.close()
    }

    // MARK: Commands

    private func handle(_ command: LinkCommand) {
        switch command {
        case .attach(let outbox, let prefixes, let resumeAfter):
            clients[outbox.id] = Client(outbox: outbox)
            for prefix in prefixes { subscribe(outbox.id, prefix) }
            if let since = resumeAfter { startResume(outbox.id, since: since) }
        case .subscribe(let id, let prefix):
            if clients[id] != nil { subscribe(id, prefix) }
        case .unsubscribe(let id, let prefix):
            if index.remove(id, prefix) { setUpstream(prefix, subscribed: false) }
        case .detach(let id):
            guard let client = clients.removeValue(forKey: id) else { return }
            client.outbox.close()
            for prefix in index.removeAll(id) { setUpstream(prefix, subscribed: false) }
        case .publish(let frames):
            do {
                if try push.send(frames: frames, dontWait: true) {
                    counters.published.add(1, ordering: .relaxed)
                } else {
                    counters.publishFailures.add(1, ordering: .relaxed)
                }
            } catch {
                counters.publishFailures.add(1, ordering: .relaxed)
            }
        case .snapshotReplied(let token, let result):
            snapshotReplied(token: token, result)
        case .stop:
            break
        }
    }

    private func subscribe(_ id: ClientID, _ prefix: [UInt8]) {
        if index.add(id, prefix) { setUpstream(prefix, subscribed: true) }
    }

    private func setUpstream(_ prefix: [UInt8], subscribed: Bool) {
        try? sub.setOption(subscribed ? .subscribe : .unsubscribe, bytes: prefix)
        counters.upstreamPrefixes.store(index.distinctPrefixes, ordering: .relaxed)
    }

    // MARK: Messages: broker -> clients

    private func receiveBurst(_ message: Message) {
        do {
            for _ in 0..<1_024 {
                guard try sub.receive(into: message, dontWait: true) else { return }
                var frames = [message.bytes]
                while message.hasMore {
                    _ = try sub.receive(into: message)
                    frames.append(message.bytes)
                }
                deliver(frames)
            }
        } catch {
            logger.error("http gateway: receiving from the broker failed: \(error)")
        }
    }

    private func deliver(_ frames: [[UInt8]]) {
        let topic = frames[0]
        if topic.starts(with: Self.markerPrefix) {
            markerArrived(topic: topic, frames: frames)
            return  // markers are the gateway's and other snapshot clients' business, not browsers'
        }
        messageNumber &+= 1
        counters.messagesIn.add(1, ordering: .relaxed)
        counters.bytesIn.add(UInt64(frames.reduce(0) { $0 + $1.count }), ordering: .relaxed)
        let matched = index.clients(matching: topic)
        guard !matched.isEmpty else { return }
        var webSocketItem: ClientOutbox.Item?
        var eventItem: ClientOutbox.Item?
        for id in matched {
            guard let client = clients[id] else { continue }
            let item: ClientOutbox.Item
            switch client.outbox.kind {
            case .webSocket:
                if webSocketItem == nil {
                    webSocketItem =
                        switch WireFormat.webSocket(frames) {
                        case .text(let bytes): .webSocketText(ByteBuffer(bytes: bytes))
                        case .binary(let bytes): .webSocketBinary(ByteBuffer(bytes: bytes))
                        }
                }
                item = webSocketItem!
            case .serverSentEvents:
                if eventItem == nil {
                    let id = WireFormat.eventID(sequence: watermark, number: messageNumber)
                    eventItem = .event(
                        ByteBuffer(
                            bytes: WireFormat.serverSentEvent(
                                id: id, event: nil, data: WireFormat.jsonOrBase64(frames))))
                }
                item = eventItem!
            }
            if let resume = client.resume {
                deliverResuming(id, round: resume.token, topic: topic, item: item)
            } else if !client.outbox.offer(item) {
                drop(id)
            }
        }
    }

    /// A live message for a client still catching up: delivered, skipped or held as its
    /// round decides; a client holding more than its queue's limit is dropped as too slow.
    private func deliverResuming(_ id: ClientID, round token: String, topic: [UInt8], item: ClientOutbox.Item) {
        guard var round = rounds[token], let outbox = clients[id]?.outbox else { return }
        let now = round.catchUp.received(topic: topic, item)
        rounds[token] = round
        if let now {
            if !outbox.offer(now) { drop(id) }
        } else if round.catchUp.heldCount > outbox.limit {
            drop(id)
        }
    }

    /// A client whose queue is full: counted, told why, disconnected.
    private func drop(_ id: ClientID) {
        guard let client = clients.removeValue(forKey: id) else { return }
        counters.droppedSlow.add(1, ordering: .relaxed)
        for prefix in index.removeAll(id) { setUpstream(prefix, subscribed: false) }
        client.outbox.close()
        client.outbox.closeTooSlow()
        logger.info(
            "http gateway: dropped a \(client.outbox.kind.rawValue) client that fell \(client.outbox.limit) messages behind (client_queue)"
        )
    }

    // MARK: Snapshots, resumes and the event-id watermark

    private func startResume(_ id: ClientID, since: UInt64) {
        let token = startRound(client: id, prefix: "")
        clients[id]?.resume = Resume(token: token, since: since)
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
        _ = startRound(client: nil, prefix: "$zpub/")
    }

    /// Subscribes to a fresh marker topic and asks for a SNAPSHOT (docs/last-value.md).
    private func startRound(client: ClientID?, prefix: String) -> String {
        nextToken += 1
        let catchUp = SnapshotCatchUp<ClientOutbox.Item>(token: tokenPrefix + String(nextToken))
        try? sub.setOption(.subscribe, bytes: catchUp.markerTopic)
        rounds[catchUp.token] = Round(client: client, catchUp: catchUp)
        let token = catchUp.token
        let mailbox = self.mailbox
        control.submit(ControlRequest(command: .snapshot, argument: Array("\(token) \(prefix)".utf8))) { result in
            mailbox.post(.snapshotReplied(token: token, result))
        }
        return token
    }

    private func markerArrived(topic: [UInt8], frames: [[UInt8]]) {
        let token = String(decoding: topic.dropFirst(Self.markerPrefix.count), as: UTF8.self)
        guard var round = rounds[token] else { return }
        round.catchUp.markerReceived(frames: frames)
        if let sequence = round.catchUp.markerSequence { watermark = max(watermark, sequence) }
        try? sub.setOption(.unsubscribe, bytes: topic)
        rounds[token] = round
        finishRoundIfDone(token)
    }

    private func snapshotReplied(token: String, _ result: Result<ControlReply, ControlUnavailable>) {
        guard var round = rounds[token] else { return }
        let release: SnapshotCatchUp<ClientOutbox.Item>.Release
        if case .success(.snapshot(let reply)) = result {
            release = round.catchUp.replied(reply)
            cacheEnabled = !reply.prefixes.isEmpty
        } else {
            release = round.catchUp.failed()
            try? sub.setOption(.unsubscribe, bytes: round.catchUp.markerTopic)
            switch result {
            case .success(let reply): logger.warning("http gateway: SNAPSHOT failed: \(reply.failure?.message ?? "?")")
            case .failure(let error): logger.warning("http gateway: SNAPSHOT failed: \(error)")
            }
        }
        rounds[token] = round
        if let id = round.client { deliverRelease(release, to: id) }
        finishRoundIfDone(token)
    }

    private func finishRoundIfDone(_ token: String) {
        guard let round = rounds[token], round.catchUp.isComplete else { return }
        rounds[token] = nil
        if let id = round.client { clients[id]?.resume = nil }
    }

    /// Sends a resuming client the cached values it missed (newer than its Last-Event-ID, under
    /// its prefixes), then the live messages its round released.
    private func deliverRelease(_ release: SnapshotCatchUp<ClientOutbox.Item>.Release, to id: ClientID) {
        guard let client = clients[id], let resume = client.resume else { return }
        var items: [ClientOutbox.Item] = []
        let wanted = index.prefixes(of: id)
        for entry in release.entries where entry.sequence > resume.since {
            guard let frames = entry.messageFrames, wanted.contains(where: { frames[0].starts(with: $0) })
            else { continue }
            let eventID = WireFormat.eventID(sequence: entry.sequence, number: 0)
            items.append(
                .event(
                    ByteBuffer(
                        bytes: WireFormat.serverSentEvent(
                            id: eventID, event: nil, data: WireFormat.jsonOrBase64(frames))
                    ))
            )
        }
        counters.resumedValues.add(UInt64(items.count), ordering: .relaxed)
        items += release.items
        for item in items where !client.outbox.offer(item) {
            drop(id)
            return
        }
    }
}
