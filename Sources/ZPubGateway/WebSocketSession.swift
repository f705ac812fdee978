import NIOCore
import NIOHTTP1
import NIOWebSocket
import ZPubCore

/// One WebSocket client, after the upgrade: reads its requests (JSON text frames), answers
/// them, and registers it with the ZeroMQ thread, which sends it messages through its
/// `ClientOutbox`. Runs on the connection's event loop. See docs/http.md ("WebSocket").
final class WebSocketSession: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let shared: GatewayShared
    private let head: HTTPRequestHead
    /// The place the upgrade took among max_clients, handed over to `webSocketClients` once
    /// this session counts as a client.
    private let place: UpgradePlace
    private var outbox: ClientOutbox?
    /// Held by bytes, as the broker and the link know them: Swift's String equality takes
    /// canonically equivalent spellings ("é" precomposed or not) for one, and each spelling
    /// held that way was a new prefix upstream that no limit counted.
    private var prefixes: Set<[UInt8]> = []
    /// The URL's prefixes, in its order (each once): the link confirms them in that order.
    private let urlPrefixes: [[UInt8]]
    /// `?since=` in the URL: the URL's prefixes resume from this history sequence.
    private let since: UInt64?
    private var credentials: Credentials
    /// Closes the connection when its JWT expires, unless a fresh token came first.
    private var expiry: Scheduled<Void>?
    private var closing = false
    /// The token failed between the upgrade's check and this session's start.
    private var refusedAtStart: TokenRejection?
    /// Liveness: a ping goes out every `ping_interval`; any frame from the client clears
    /// `awaitingReply`. Still set at the next tick: the client is gone, close it.
    private var pingTask: RepeatedTask?
    private var awaitingReply = false
    /// The client's allowance of subscription changes (`SubscriptionChangeLimit`).
    private var changes: TokenBucket
    /// A subscribe's replies, held until the link confirms that the broker forwards its
    /// prefixes (`SubscriptionConfirmed`); requests read meanwhile wait in `deferred`, so that
    /// replies keep the order of their requests.
    private var awaitingConfirmation: (ticket: UInt64, replies: [String])?
    private var lastTicket: UInt64 = 0
    /// While a subscribe is handled: its replies, in order, instead of being sent.
    private var collectedReplies: [String]?

    init(shared: GatewayShared, head: HTTPRequestHead, place: UpgradePlace) {
        self.shared = shared
        self.head = head
        self.place = place
        changes = SubscriptionChangeLimit.bucket(
            maxClientPrefixes: shared.settings.maxClientPrefixes, now: NIODeadline.now().uptimeNanoseconds)
        let target = RequestTarget(uri: head.uri) ?? RequestTarget(path: "/ws")
        // Checked before the upgrade; checked again here, since the token may have expired, or
        // a reload changed the keys, in between: then the client is closed at once.
        switch shared.credentials(head, target) {
        case .success(let presented): credentials = presented
        case .failure(let rejection):
            credentials = Credentials()
            refusedAtStart = rejection
        }
        var seen = Set<[UInt8]>()
        urlPrefixes = target.values("prefix").map { Array($0.utf8) }.filter { seen.insert($0).inserted }
        prefixes = seen
        since = target.value("since").flatMap { UInt64($0) }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if let refusedAtStart {
            close(context, code: 4401, reason: String(refusedAtStart.message.prefix(120)))
            return
        }
        // Checked before the upgrade; claimed now (another client may have taken the room).
        let outcome = shared.claims.claim(prefixes, user: credentials.user?.subject)
        guard outcome == .claimed else {
            countRefusal(outcome)
            let (code, message) = shared.claims.refusal(outcome, prefixes, user: credentials.user?.subject)
            reply(context, error: code, message)
            let limit = outcome == .userFull ? "max_user_prefixes" : "max_upstream_prefixes"
            close(context, code: 1013, reason: "\(code): \(limit) reached; try again later")
            return
        }
        let outbox = ClientOutbox(
            id: shared.makeClientID(), kind: .webSocket, channel: context.channel, limit: shared.settings.clientQueue,
            writeDelayMilliseconds: shared.settings.writeDelayMilliseconds, counters: shared.counters,
            rawWriter: context.pipeline.syncOperations.rawWriterContext())
        self.outbox = outbox
        shared.counters.webSocketClients.add(1, ordering: .relaxed)
        place.release()
        shared.counters.webSocketConnections.add(1, ordering: .relaxed)
        // Prefixes in the URL (?prefix=...) were checked before the upgrade.
        // With ?since=: every kept message under them after that sequence first.
        shared.linkMailbox.post(
            .attach(outbox, prefixes: urlPrefixes, resume: since.map { .history(after: $0) }))
        startPings(context)
        scheduleExpiry(context)
        if let user = credentials.user {
            shared.counters.userConnected(user.subject)
            shared.logger.debug("websocket client \(outbox.id) connected as \(user.subject)")
        }
    }

    private func scheduleExpiry(_ context: ChannelHandlerContext) {
        expiry?.cancel()
        expiry = nil
        guard let user = credentials.user else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        expiry = context.eventLoop.scheduleTask(in: WireFormat.timeUntil(user.expires)) {
            let (session, context) = loopBound.value
            guard !session.closing else { return }
            // A fresh token sent in time may wait behind a subscribe (`deferred`).
            if session.adoptDeferredRefresh(context) { return }
            session.shared.counters.droppedExpired.add(1, ordering: .relaxed)
            session.shared.logger.info("websocket client closed: the token of \(user.subject) expired")
            session.close(
                context, code: 4401, reason: "token expired: reconnect with a fresh one, or send refresh before exp")
        }
    }

    /// The `refresh` requests waiting in `deferred`, handled now, in order, until one gives the
    /// client a token that has not expired (their replies ahead of the subscribe's they waited
    /// behind): true when one did.
    private func adoptDeferredRefresh(_ context: ChannelHandlerContext) -> Bool {
        while let refresh = deferred.firstIndex(where: Self.isRefresh) {
            let before = credentials.user?.expires
            process(deferred.remove(at: refresh), context: context)
            if let user = credentials.user, user.expires != before, user.expires > SystemClock.wallSeconds() {
                return true
            }
        }
        return false
    }

    private static func isRefresh(_ frame: WebSocketFrame) -> Bool {
        guard frame.opcode == .text else { return false }
        var data = frame.unmaskedData
        guard case .success(.refresh) = ClientRequest.parse(data.readBytes(length: data.readableBytes) ?? []) else {
            return false
        }
        return true
    }

    /// Takes a token sent on the socket: a static one joins the others; a JWT replaces the
    /// client's user (and its expiry) if it is valid and still grants every prefix the client
    /// holds. Otherwise the client is told why, and keeps what it had.
    private func adopt(_ token: String, context: ChannelHandlerContext) -> Bool {
        var next = credentials
        if let rejection = shared.present(token, to: &next) {
            shared.counters.rejectedToken.add(1, ordering: .relaxed)
            reply(context, error: rejection.reason.rawValue, rejection.message)
            return false
        }
        if let user = next.user, user != credentials.user {
            let lost = prefixes.filter { !user.maySubscribe($0) }.map { String(decoding: $0, as: UTF8.self) }.sorted()
            guard lost.isEmpty else {
                shared.counters.rejectedToken.add(1, ordering: .relaxed)
                reply(
                    context, error: "not_in_token",
                    "the new token of \(user.subject) does not grant \(lost.map { "\"\($0)\"" }.joined(separator: ", ")), which this client holds; unsubscribe first"
                )
                return false
            }
        }
        if next.user?.subject != credentials.user?.subject, outbox != nil {
            if let old = credentials.user { shared.counters.userLeft(old.subject) }
            if let new = next.user { shared.counters.userConnected(new.subject) }
            shared.claims.move(prefixes, from: credentials.user?.subject, to: next.user?.subject)
        }
        credentials = next
        scheduleExpiry(context)
        return true
    }

    private func startPings(_ context: ChannelHandlerContext) {
        let seconds = shared.settings.pingInterval
        guard seconds > 0 else { return }
        let interval = TimeAmount.seconds(Int64(seconds))
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        pingTask = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (session, context) = loopBound.value
            session.pingTick(context)
        }
    }

    private func pingTick(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        // While reading is paused (`readingPaused`) the client's pong may be waiting unread.
        // So may it while this turn's budget holds reading, unless the replies cannot leave.
        if awaitingReply && !readingPaused && !(pausedForTurn && context.channel.isWritable) {
            shared.counters.droppedUnresponsive.add(1, ordering: .relaxed)
            let seconds = 2 * shared.settings.pingInterval
            close(context, code: 1001, reason: "no reply to ping for \(seconds) s (ping_interval)")
            return
        }
        awaitingReply = true
        context.writeAndFlush(
            wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "zpub"))), promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        detach()
    }

    func channelInactive(context: ChannelHandlerContext) {
        detach()
        context.fireChannelInactive()
    }

    private func detach() {
        detached = true
        pingTask?.cancel()
        pingTask = nil
        expiry?.cancel()
        expiry = nil
        guard let outbox else { return }
        self.outbox = nil
        if let user = credentials.user { shared.counters.userLeft(user.subject) }
        shared.claims.release(prefixes, user: credentials.user?.subject)
        shared.linkMailbox.post(.detach(outbox.id))
        shared.counters.webSocketClients.add(-1, ordering: .relaxed)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { unwritableArrivals = 0 }
        outbox?.writabilityChanged()
        processDeferred(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Frames read while replies could not go out, in order, until one has to wait again (for
    /// writability, a confirmation, or the next turn of the event loop: `TurnBudget`).
    private func processDeferred(context: ChannelHandlerContext) {
        while context.channel.isWritable, !closing, awaitingConfirmation == nil, !deferred.isEmpty,
            takeTurn(context)
        {
            process(deferred.removeFirst(), context: context)
        }
        if readingPaused || pausedForTurn, deferred.isEmpty {
            readingPaused = false
            pausedForTurn = false
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            context.triggerUserOutboundEvent(WebSocketFrameCheck.ReadingPause.ended, promise: nil)
        }
    }

    /// Requests read while the connection could not take their replies, answered once it can,
    /// or while a subscribe waits for the broker (`awaitingConfirmation`, usually well under a
    /// millisecond; as long as `upstream_subscriptions_per_s` makes it, or a catch-up takes to
    /// be answered, up to 10 s).
    /// A client that sends requests and does not read the replies had every request of a read
    /// answered at once (a request naming 64 prefixes gets 64 replies: ten times its size),
    /// the replies queued whatever the water mark. NIO reads no more while the connection is
    /// not writable, so these are what one read brought; more than `maxDeferred` of them is a
    /// client that does not read at all.
    private var deferred = CircularBuffer<WebSocketFrame>()
    static let maxDeferred = 1_024
    /// Frames held at most, whatever holds them: one read (16 KiB at most) brings fewer.
    static let maxHeld = 4_096
    /// Requests read ahead while a subscribe waits for the broker; then reading pauses
    /// (`readingPaused`) until they are answered.
    static let readAheadWhileConfirming = 64
    private var readingPaused = false
    /// Reading stopped while this turn's budget of frames is used (`TurnBudget`).
    private var pausedForTurn = false

    /// Stops reading, unless a pause (`readingPaused`, `pausedForTurn`) already did; reading
    /// starts again when the deferred frames are served (`processDeferred`). The frame check
    /// is told: an unfinished message's time does not run meanwhile.
    private func stopReading(_ context: ChannelHandlerContext) {
        guard !readingPaused && !pausedForTurn else { return }
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        context.triggerUserOutboundEvent(WebSocketFrameCheck.ReadingPause.began, promise: nil)
    }
    /// Frames that arrived while the replies could not leave, since the connection last could
    /// take them: past `maxDeferred`, a client that does not read (frames deferred for the
    /// turn's budget, which may be a whole read's, are not counted).
    private var unwritableArrivals = 0
    /// Frames served in this turn of the event loop (`TurnBudget`).
    private var turn = TurnBudget()
    private var detached = false

    /// A frame's place in this turn; past the budget, frames wait for the turn's end.
    private func takeTurn(_ context: ChannelHandlerContext) -> Bool {
        if turn.take(shared.turns) { return true }
        guard turn.startWaiting() else { return false }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        shared.turns.afterThisTurn(on: context.eventLoop) {
            let (session, context) = loopBound.value
            session.turn.resumed()
            guard !session.detached else { return }
            session.processDeferred(context: context)
        }
        return false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        awaitingReply = false
        if closing {
            // A close was sent: only the client's echo of it matters now.
            if frame.opcode == .connectionClose { process(frame, context: context) }
            return
        }
        guard context.channel.isWritable, deferred.isEmpty, awaitingConfirmation == nil, takeTurn(context) else {
            guard deferred.count < Self.maxHeld else {
                // More than one read brings: NIO reads all a connection still has when it ends
                // (a reset, an EOF), however reading was paused, and closes it then, so none of
                // it can be answered. 200 clients that sent 1 MiB of pings each and hung up
                // held 400 MB of frames for 30 s, and the gateway answered no one meanwhile.
                // Closed now, the rest is not read; counted as a client that does not read.
                deferred.removeAll()
                shared.counters.droppedUnresponsive.add(1, ordering: .relaxed)
                closing = true
                context.close(promise: nil)
                return
            }
            if awaitingConfirmation == nil, context.channel.isWritable {
                // This turn's frames are served (`TurnBudget`): the rest of what was read
                // waits for the turn's end, and nothing more is read until it is served.
                // (Not `readingPaused`: a client whose replies then stop leaving is judged by
                // the ping timer as any other.)
                deferred.append(frame)
                stopReading(context)
                pausedForTurn = true
                return
            }
            if awaitingConfirmation != nil, context.channel.isWritable {
                // Pings and a close are not requests: answered now, whatever waits.
                if frame.opcode != .text && frame.opcode != .binary && frame.opcode != .continuation {
                    return process(frame, context: context)
                }
                // A client that sends requests faster than a subscribe is confirmed is told to
                // slow down by TCP: nothing more is read until the requests read are answered.
                deferred.append(frame)
                if deferred.count >= Self.readAheadWhileConfirming, !readingPaused {
                    stopReading(context)
                    readingPaused = true
                }
                return
            }
            unwritableArrivals += 1
            guard unwritableArrivals <= Self.maxDeferred else {
                // It reads nothing: as unresponsive as one that does not answer pings.
                deferred.removeAll()
                shared.counters.droppedUnresponsive.add(1, ordering: .relaxed)
                close(context, code: 1008, reason: "requests sent while their replies are not read")
                return
            }
            deferred.append(frame)
            return
        }
        process(frame, context: context)
    }

    private func process(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        switch frame.opcode {
        case .text:
            var data = frame.unmaskedData
            let bytes = data.readBytes(length: data.readableBytes) ?? []
            switch ClientRequest.parse(bytes) {
            case .success(let request): handle(request, context: context)
            case .failure(let violation):
                shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
                close(context, code: violation.code, reason: violation.reason)
            }
        case .binary:
            shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
            close(context, code: 1003, reason: "binary frames are not accepted; send JSON text frames (docs/http.md)")
        case .ping:
            var payload = frame.unmaskedData
            let bytes = payload.readBytes(length: payload.readableBytes) ?? []
            context.writeAndFlush(
                wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: ByteBuffer(bytes: bytes))), promise: nil)
        case .connectionClose:
            // Echo the close (RFC 6455 5.5.1), then hang up.
            guard !closing else {
                context.close(promise: nil)
                return
            }
            var data = frame.unmaskedData
            // A body is a 2-byte code and a UTF-8 reason (RFC 6455 5.5.1); one that is not gets
            // the protocol error (1002) or bad data (1007) close, not an echo.
            if data.readableBytes == 1 {
                shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
                return close(
                    context, code: 1002, reason: "a close frame's body is a 2-byte code and a reason, not 1 byte")
            }
            // No code at all is a normal close (RFC 6455 5.5.1), echoed as 1000.
            let received = data.readInteger(as: UInt16.self) ?? 1000
            let reason = data.readBytes(length: data.readableBytes) ?? []
            guard Array(String(decoding: reason, as: UTF8.self).utf8) == reason else {
                shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
                return close(context, code: 1007, reason: "the close frame's reason is not UTF-8 (RFC 6455 5.5.1)")
            }
            // A code that must not be on the wire is a protocol error (RFC 6455 7.4.1: 1005, 1006
            // and 1015 only describe a closure; 1004 and other unassigned ones mean nothing), as
            // Autobahn's cases 7.9 expect; any other is echoed.
            guard Self.isSendableCloseCode(received) else {
                shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
                return close(
                    context, code: 1002,
                    reason:
                        "close code \(received) must not be sent (RFC 6455 7.4): use 1000-1003, 1007-1014, or 3000-4999"
                )
            }
            closing = true
            Goodbye.close(
                context.channel, once: context.writeAndFlush(wrapOutboundOut(.close(code: received, reason: ""))))
        default:
            break
        }
    }

    /// What the handlers before this one could not read. Left unhandled, a message that
    /// `NIOWebSocketFrameAggregator` refused (too large in fragments, say) vanished: the
    /// aggregator drops it and reports only here, and the client waited for an answer on an
    /// open connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let refused as NIOWebSocketFrameAggregator.Error:
            // The rest of a refused message may follow, each fragment an error of its own.
            guard !closing else { return }
            shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
            let (code, reason) = Self.closeFrame(for: refused, maxFrame: shared.settings.maxFrame)
            close(context, code: code, reason: reason)
        case let violation as WebSocketFrameCheck.Violation:
            guard !closing else { return }
            shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
            close(context, code: violation.code, reason: violation.reason)
        case let broken as NIOWebSocketError:
            // The frame decoder's own refusals, answered here with a reason (NIO's error
            // handler, not installed, sent the code alone).
            guard !closing else { return }
            shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
            let (code, reason) = Self.closeFrame(for: broken, maxFrame: shared.settings.maxFrame)
            close(context, code: code, reason: reason)
        default:
            // An I/O or TLS error: the connection is of no further use.
            context.close(promise: nil)
        }
    }

    /// A close code a peer may put in its close frame (RFC 6455 7.4.1 and 7.4.2; 1012-1014 as
    /// IANA's registry has them since): the assigned ones that are not only for a closure's
    /// description, and the ranges for libraries (3000-3999) and applications (4000-4999).
    static func isSendableCloseCode(_ code: UInt16) -> Bool {
        (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code)
    }

    /// The close code and reason for a frame the decoder refused.
    static func closeFrame(for error: NIOWebSocketError, maxFrame: Int) -> (UInt16, String) {
        switch error {
        case .invalidFrameLength:
            (1009, "frame over max_frame (\(maxFrame) bytes); send smaller requests")
        case .fragmentedControlFrame:
            (1002, "a control frame (ping, pong, close) may not be fragmented (RFC 6455 5.5)")
        case .multiByteControlFrameLength:
            (1002, "a control frame (ping, pong, close) carries at most 125 bytes (RFC 6455 5.5)")
        }
    }

    /// The close code and reason for a fragmented message the aggregator refused.
    static func closeFrame(for error: NIOWebSocketFrameAggregator.Error, maxFrame: Int) -> (UInt16, String) {
        switch error {
        case .accumulatedFrameSizeIsTooLarge:
            (1009, "message over max_frame (\(maxFrame) bytes) in all its fragments; send smaller requests")
        case .tooManyFragments:
            (1009, "message in more than \(maxFragments) fragments; send it in fewer")
        case .receivedNewFrameWithoutFinishingPrevious:
            (1002, "new message before the last fragment of the previous one (RFC 6455 5.4)")
        case .didReceiveFragmentBeforeReceivingTextOrBinaryFrame:
            (1002, "continuation frame with no message to continue (RFC 6455 5.4)")
        case .nonFinalFragmentSizeIsTooSmall:
            (1002, "fragment too small (RFC 6455 5.4)")
        }
    }

    /// The most fragments a message may come in: enough for any client that fragments
    /// sensibly, few enough that tiny fragments cannot make one message cost thousands of
    /// buffers.
    static let maxFragments = 64

    private func handle(_ request: ClientRequest, context: ChannelHandlerContext) {
        guard let outbox else { return }
        // A request answers each prefix it names: more than a client may hold would let one
        // 64 KiB frame of empty prefixes queue some 20,000 replies, 12 times its size.
        if let count = request.prefixCount, count > shared.settings.maxClientPrefixes {
            reply(
                context, error: "too_many_prefixes",
                "a request names at most max_client_prefixes (\(shared.settings.maxClientPrefixes)) prefixes; it named \(count)"
            )
            return
        }
        switch request {
        case .subscribe(let list, let token, let since):
            subscribe(list, token: token, since: since, outbox: outbox, context: context)
        case .unsubscribe(let list):
            for prefix in list {
                // Only what the client holds: the link has nothing to undo for the rest.
                let bytes = Array(prefix.utf8)
                if prefixes.contains(bytes) {
                    guard mayChange("unsubscribe", prefix, context: context) else { continue }
                    prefixes.remove(bytes)
                    shared.claims.release([bytes], user: credentials.user?.subject)
                    shared.linkMailbox.post(.unsubscribe(outbox.id, bytes))
                }
                send(context, "{\"type\":\"unsubscribed\",\"prefix\":\(WireFormat.jsonString(prefix))}")
            }
        case .publish(let topic, let payload, let token):
            if let token, !adopt(token, context: context) { return }
            let topicBytes = Array(topic.utf8)
            // As POST /publish: markers and snapshots under $zpub/ are zpubd's, and a forged one
            // would reach every subscriber of "" (the gateway's own marker parser among them).
            if topicBytes.starts(with: BrokerState.internalPrefix) {
                reply(context, error: "publish_not_allowed", "topics under $zpub/ are zpubd's own", topic: topic)
                return
            }
            if let denial = shared.policy.checkPublish(topicBytes, credentials) {
                reply(context, error: denial.code, denial.message, topic: topic)
                return
            }
            if let problem = shared.oversized([topicBytes, payload]) {
                shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
                reply(context, error: "message_too_large", problem, topic: topic)
                return
            }
            guard outbox.holdPublish() else {
                shared.counters.publishFailures.add(1, ordering: .relaxed)
                reply(
                    context, error: "broker_busy",
                    "\(ClientOutbox.maxPublishesWaiting) publishes of this connection still wait for the gateway's link to the broker: this message was not published; send it again later",
                    topic: topic)
                return
            }
            shared.linkMailbox.post(.publish([topicBytes, payload], client: outbox))
        case .refresh(let token):
            // A refresh is a JWT's: a static token (or a gateway without JWT keys) answered
            // "refreshed" and changed nothing.
            var probe = Credentials()
            if shared.present(token, to: &probe) == nil && probe.user == nil {
                shared.counters.rejectedToken.add(1, ordering: .relaxed)
                reply(
                    context, error: "bad_token",
                    "refresh takes a JWT, and this token is not one (a static token is sent with subscribe or publish, and lasts as long as the connection)"
                )
                return
            }
            guard adopt(token, context: context) else { return }
            if let user = credentials.user {
                send(
                    context,
                    "{\"type\":\"refreshed\",\"sub\":\(WireFormat.jsonString(user.subject)),\"exp\":\(Int64(min(max(0, user.expires), 9e15)))}"
                )
            } else {
                send(context, "{\"type\":\"refreshed\"}")
            }
        case .ping:
            send(context, "{\"type\":\"pong\"}")
        }
    }

    /// A `subscribe`: each prefix answered in order, `subscribed` or why not. Without `since`,
    /// the replies wait until the broker forwards the new prefixes (`finishSubscribe`).
    private func subscribe(
        _ list: [String], token: String?, since: UInt64?, outbox: ClientOutbox, context: ChannelHandlerContext
    ) {
        collectedReplies = []
        var accepted: [[UInt8]] = []
        defer { finishSubscribe(accepted, since: since, outbox: outbox, context: context) }
        if let token, !adopt(token, context: context) { return }
        for prefix in list {
            if let problem = shared.prefixProblem(prefix) {
                reply(context, error: "bad_prefix", problem, prefix: prefix)
                continue
            }
            if let denial = shared.policy.checkSubscribe(Array(prefix.utf8), credentials) {
                shared.counters.rejectedToken.add(1, ordering: .relaxed)
                reply(context, error: denial.code, denial.message, prefix: prefix)
                continue
            }
            let bytes = Array(prefix.utf8)
            let held = prefixes.contains(bytes)
            if !held && prefixes.count >= shared.settings.maxClientPrefixes {
                reply(
                    context, error: "too_many_prefixes",
                    "at most max_client_prefixes (\(shared.settings.maxClientPrefixes)) per client", prefix: prefix)
                continue
            }
            // A prefix the client holds already changes nothing, unless a catch-up comes
            // with it (`since`: a marker subscribed and unsubscribed at the broker, a REPLAY).
            // Room first: a refusal for room must not cost the client one of its changes.
            let user = credentials.user?.subject
            if !held, case let outcome = shared.claims.wouldAdmit([bytes], user: user), outcome != .claimed {
                refuseForRoom(prefix, outcome, context: context)
                continue
            }
            if !held || since != nil, !mayChange("subscribe", prefix, context: context) { continue }
            if !held, case let outcome = shared.claims.claim([bytes], user: user), outcome != .claimed {
                refuseForRoom(prefix, outcome, context: context)
                continue
            }
            prefixes.insert(bytes)
            accepted.append(bytes)
            send(context, WireFormat.subscribedJSON(prefix: prefix, since: since))
        }
    }

    /// Hands a subscribe to the link, and sends its replies: at once with `since` (the replay
    /// covers what comes before the catch-up starts) or when nothing was accepted; otherwise
    /// once the link confirms, in order with the messages it sent before
    /// (`userInboundEventTriggered`).
    private func finishSubscribe(
        _ accepted: [[UInt8]], since: UInt64?, outbox: ClientOutbox, context: ChannelHandlerContext
    ) {
        let replies = collectedReplies ?? []
        collectedReplies = nil
        if since == nil, !accepted.isEmpty {
            lastTicket &+= 1
            awaitingConfirmation = (lastTicket, replies)
            // One command for the request: its cached prefixes make one catch-up, not one each.
            shared.linkMailbox.post(.subscribe(outbox.id, accepted, confirm: lastTicket))
            return
        }
        for text in replies { send(context, text) }
        if let since, !accepted.isEmpty {
            shared.linkMailbox.post(.resume(outbox.id, prefixes: accepted, after: since))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let requested = event as? CloseRequested {
            return close(context, code: requested.code, reason: requested.reason, grace: requested.grace)
        }
        guard let confirmed = event as? SubscriptionConfirmed else {
            return context.fireUserInboundEventTriggered(event)
        }
        guard let waiting = awaitingConfirmation, waiting.ticket == confirmed.ticket else { return }
        awaitingConfirmation = nil
        // Written, then flushed once: a flush can make the channel writable again at once, and
        // whatever that lets through (the outbox, deferred requests) must come after these.
        for text in waiting.replies {
            context.write(
                wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text))), promise: nil)
        }
        context.flush()
        processDeferred(context: context)
    }

    /// Takes one of the client's subscription changes; when it has none left, tells it so (the
    /// change is not applied, the connection stays open) and returns false.
    private func mayChange(_ operation: String, _ prefix: String, context: ChannelHandlerContext) -> Bool {
        let now = NIODeadline.now().uptimeNanoseconds
        if changes.take(now: now) { return true }
        shared.counters.changesRefused.add(1, ordering: .relaxed)
        let milliseconds = (changes.untilNext(now: now) + 999_999) / 1_000_000
        reply(
            context, error: "too_many_changes",
            "\(operation) not applied: more than \(SubscriptionChangeLimit.perSecond) subscription changes a second (after a burst of \(changes.burst)); slow down, and send it again in \(milliseconds) ms or later",
            prefix: prefix)
        return false
    }

    /// A prefix new to the gateway when it holds `max_upstream_prefixes`, or new to the
    /// client's user when its clients hold `max_user_prefixes`.
    private func refuseForRoom(_ prefix: String, _ outcome: UpstreamClaims.Outcome, context: ChannelHandlerContext) {
        countRefusal(outcome)
        let (code, message) = shared.claims.refusal(outcome, [Array(prefix.utf8)], user: credentials.user?.subject)
        reply(context, error: code, message, prefix: prefix)
    }

    private func countRefusal(_ outcome: UpstreamClaims.Outcome) {
        if outcome == .userFull {
            shared.counters.rejectedUserFull.add(1, ordering: .relaxed)
        } else {
            shared.counters.rejectedGatewayFull.add(1, ordering: .relaxed)
        }
    }

    private func reply(
        _ context: ChannelHandlerContext, error code: String, _ message: String, prefix: String? = nil,
        topic: String? = nil
    ) {
        send(context, WireFormat.errorJSON(code: code, message, prefix: prefix, topic: topic))
    }

    private func send(_ context: ChannelHandlerContext, _ text: String) {
        if collectedReplies != nil { return collectedReplies!.append(text) }
        context.writeAndFlush(
            wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text))), promise: nil)
    }

    /// Sends a close frame and hangs up, whether or not the client reads it (`Goodbye`).
    private func close(
        _ context: ChannelHandlerContext, code: UInt16, reason: String, grace: TimeAmount = Goodbye.grace
    ) {
        guard !closing else { return }
        closing = true
        Goodbye.close(
            context.channel, once: context.writeAndFlush(wrapOutboundOut(.close(code: code, reason: reason))),
            grace: grace)
    }
}
