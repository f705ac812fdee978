import CKernel
import Logging
import ZPubCore
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// What the control server can be asked to do by the broker.
enum ControlServerCommand: Sendable {
    case reconfigure(BrokerConfiguration, serverKey: CurveKey?, revoked: Bool, ReplySlot<[BrokerError]>)
    /// The outcome of the RELOAD with this number: the reply to send.
    case reloaded(ControlReply, request: UInt64)
    /// A SNAPSHOT or REPLAY waiting for its reply may have it now (`DeferredReply`).
    case deferredReady
    case stop
}

/// Asks the daemon to reload its configuration file, as SIGHUP does, and calls `done` (on any
/// thread) with RELOAD's reply once it is in force or refused.
public typealias ReloadHandler = @Sendable (_ done: @escaping @Sendable (ControlReply) -> Void) -> Void

/// The control socket's shell, on a thread of its own so that a slow admin (or a big TOPICS
/// reply to encode) never holds up forwarding: it reads a request, parses it
/// (`ControlRequest`), has `ControlResponder` answer it, and sends the JSON back.
///
/// Every request gets exactly one reply frame of JSON, errors included: a REQ client must never
/// be left waiting. The socket is a ROUTER, which REQ clients talk to as to a REP, so that
/// replies can go out in another order than the requests came: a SNAPSHOT or REPLAY waits up
/// to 5 s for its client's marker subscription, and with a REP every other admin (`zpub
/// health`, a monitoring probe) waited behind it. A DEALER client may leave out REQ's empty
/// delimiter frame; its reply then has none either.
final class ControlServer {
    /// Replies larger than this are followed by malloc_trim (see `serveOneRequest`).
    static let largeReplyBytes = 256 * 1024

    private let socket: Socket
    private var endpoints: BoundEndpoints
    private let responder: ControlResponder
    private let mailbox: Mailbox<ControlServerCommand>
    private let registry: EndpointRegistry
    private let logger: Logger
    private let message = Message()
    /// The CURVE server key the socket was last set up with (see `reconfigure`).
    private var serverKey: CurveKey?
    /// Who reloads for RELOAD (zpubd's; nil: RELOAD gets an error).
    private let reloadHandler: ReloadHandler?
    /// The RELOAD being carried out: its number, when its reply is given up on, and whom it
    /// goes to. No other request is read meanwhile (a reload is quick, and the RELOAD's reply
    /// must go out before the endpoint change held for it), but the mailbox is: the reload's
    /// own change to this thread comes through it.
    private var pendingReload: (request: UInt64, deadline: UInt64, envelope: [[UInt8]])?
    /// SNAPSHOT and REPLAY requests waiting for their reply, with whom each goes to; at most
    /// `SnapshotRendezvous.capacity` (the loop keeps no more).
    private var deferred: [(envelope: [[UInt8]], reply: DeferredReply)] = []
    /// Routing frames kept at most before a request (REQ's envelope through proxies); libzmq
    /// limits a routing id to 255 bytes.
    static let maxEnvelopeFrames = 16
    private var reloadsAsked: UInt64 = 0
    /// A reload's change to the control endpoints that would close the connection the pending
    /// RELOAD came through (libzmq ends the connections an endpoint accepted when it is
    /// unbound): CURVE switched on or off, a new server key, an endpoint removed. Made once
    /// that RELOAD is answered, so that the reply goes out first; added endpoints are bound at
    /// once. Requests are not read meanwhile (`pendingReload`).
    private var endpointsAfterReply: (wanted: [String], rebind: Bool)?
    /// TOPICS, SUBSCRIPTIONS and HISTORY requests read and not yet answered, oldest first.
    /// Their replies are costly (a copy of the loop's tables, a page read from disk); the other
    /// requests (HEALTH, STATS, ...) are answered as they are read, ahead of these, so that a
    /// flood of them from some clients cannot keep a health check waiting (a probe: 800 REQ
    /// clients asking TOPICS of 10,000 topics held every other request for over 10 s). One is
    /// answered per turn, and with it every waiting request equal to it: all were read before
    /// its reply was built, which is then as fresh for each of them.
    private var costly: [CostlyRequest] = []
    /// A costly request, and its number among those read (`costlyRead`).
    private typealias CostlyRequest = (envelope: [[UInt8]], request: ControlRequest, read: UInt64, bytes: Int)
    /// Costly requests read so far.
    private var costlyRead: UInt64 = 0
    /// The reply last built for a costly request, while equal requests read before it was
    /// built still wait for it (`answerCostly`).
    private var sharedReply: (request: ControlRequest, json: [UInt8], builtAfterRead: UInt64)?
    /// Bytes of costly replies sent at most per turn (one reply at least): 800 replies of
    /// 500 KB each to equal TOPICS requests, sent in one turn, held HEALTH for 0.8 s.
    static let costlyTurnBytes = 8 << 20
    /// Costly requests waiting at most, and their bytes (request and routing frames); more
    /// are refused (`unavailable`), to be asked again. Requests are small (`max_control_request`,
    /// 4 KiB by default; TOPICS is a few bytes): at 256, 517 of 800 equal TOPICS were refused.
    static let maxCostlyWaiting = 4_096
    static let maxCostlyWaitingBytes = 4 << 20
    /// The bytes of the costly requests waiting.
    private var costlyBytes = 0
    /// Requests read at most per turn before a costly one is answered and the mailbox looked at.
    static let readsPerTurn = 256
    /// The longest a RELOAD is waited for (`Broker.reloadTimeoutMilliseconds`, shorter only
    /// in tests).
    private let reloadTimeoutMilliseconds: UInt64

    init(
        socket: Socket, endpoints: BoundEndpoints, responder: ControlResponder, serverKey: CurveKey?,
        mailbox: Mailbox<ControlServerCommand>, registry: EndpointRegistry, reloadHandler: ReloadHandler?,
        reloadTimeoutMilliseconds: UInt64, logger: Logger
    ) {
        self.serverKey = serverKey
        self.reloadHandler = reloadHandler
        self.reloadTimeoutMilliseconds = reloadTimeoutMilliseconds
        self.socket = socket
        self.endpoints = endpoints
        self.responder = responder
        self.mailbox = mailbox
        self.registry = registry
        self.logger = logger
    }

    /// How long the replies sent at a stop (to a RELOAD or SNAPSHOT it cut short) are given to
    /// go out before the socket closes.
    static let stopReplyLingerMilliseconds: Int32 = 200

    func run() {
        var repliedAtStop = false
        var poller = Poller()
        let socketIndex = poller.add(socket)
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        while true {
            // Costly requests wait: the socket and the mailbox are looked at, not waited for.
            var timeout = costly.isEmpty ? -1 : 0
            let deadlines = deferred.map(\.reply.deadline) + (pendingReload.map { [$0.deadline] } ?? [])
            if let deadline = deadlines.min() {
                let now = SystemClock.monotonicNanoseconds()
                timeout = now >= deadline || !costly.isEmpty ? 0 : Int((deadline - now) / 1_000_000) + 1
            }
            // While a RELOAD waits no request is read: the socket is not watched either, or
            // one queued request would make every poll return at once (zmq_poll is level-
            // triggered), a core spinning for as long as the reload takes.
            poller.setWatching(socketIndex, pendingReload == nil)
            do {
                _ = try poller.poll(timeoutMilliseconds: timeout)
            } catch {
                logger.critical("control server cannot poll: \(error)")
                break
            }
            if poller.isReadable(mailboxIndex) {
                var stop = false
                for command in mailbox.take() {
                    switch command {
                    case .stop:
                        stop = true
                    case .reconfigure(let newConfiguration, let newServerKey, let revoked, let slot):
                        slot.fulfill(reconfigure(newConfiguration, serverKey: newServerKey, revoked: revoked))
                    case .reloaded(let reply, let request):
                        // A reply to a RELOAD already answered (timed out) is not sent.
                        guard pendingReload?.request == request else { break }
                        answerReload(reply)
                    case .deferredReady:
                        break  // looked at below, with the deadlines
                    }
                }
                if stop {
                    // The socket closes next: no endpoint change is worth making.
                    if let pendingReload {
                        send(
                            .error(ControlError(.unavailable, "zpubd is stopping: the reload may not have finished")),
                            to: pendingReload.envelope)
                    }
                    for waiting in deferred {
                        send(.error(ControlError(.unavailable, "zpubd is stopping")), to: waiting.envelope)
                    }
                    let refusedCostly = refuseCostly(because: "zpubd is stopping")
                    repliedAtStop = pendingReload != nil || !deferred.isEmpty || refusedCostly
                    break
                }
            }
            answerDeferred()
            if let pendingReload, SystemClock.monotonicNanoseconds() >= pendingReload.deadline {
                answerReload(
                    .error(
                        ControlError(
                            .unavailable,
                            "the reload did not finish within \(reloadTimeoutMilliseconds / 1_000) s; the log says how it ends"
                        )))
            }
            if pendingReload == nil && poller.isReadable(socketIndex) {
                // Everything waiting (a turn's worth): the cheap ones are answered at once.
                var reads = 0
                while reads < Self.readsPerTurn && pendingReload == nil && serveOneRequest() { reads += 1 }
            }
            // After the reply's bytes are freed (see `serveOneRequest`).
            if answerCostly() { ckernel_malloc_trim() }
        }
        // Replies just queued for requests the stop cut short get a moment to go out; with
        // none, the socket is dropped at once.
        try? socket.setOption(.linger, repliedAtStop ? Self.stopReplyLingerMilliseconds : 0)
        socket.close()
        endpoints.removeSocketFiles()
    }

    /// Sends the replies of waiting SNAPSHOTs and REPLAYs that have one now, or whose time is up.
    private func answerDeferred() {
        guard !deferred.isEmpty else { return }
        let now = SystemClock.monotonicNanoseconds()
        deferred.removeAll { waiting in
            guard let reply = waiting.reply.reply(now >= waiting.reply.deadline) else { return false }
            let large = send(reply, to: waiting.envelope)
            if large { ckernel_malloc_trim() }
            return true
        }
    }

    /// The control part of a reload. Its endpoints change all or none (a failure is reported,
    /// the old ones stay); CURVE switched on or off, or a new server key, binds them again, since
    /// libzmq keeps each endpoint's options from when it was bound.
    /// `revoked`: the allow lists no longer let in every admin they did (`Broker.reload`).
    private func reconfigure(
        _ newConfiguration: BrokerConfiguration, serverKey newServerKey: CurveKey?, revoked: Bool
    ) -> [BrokerError] {
        let (old, new) = (
            responder.configuration.security(for: .control).curve, newConfiguration.security(for: .control).curve
        )
        let curveChanged = old != new || (new && newServerKey != serverKey)
        let rebind = curveChanged || revoked
        // Only the options that change: setting the high-water mark again on a socket whose
        // client is leaving killed zpubd (`SocketSetup.applyOptions`).
        let inForce = responder.configuration
        responder.reconfigure(newConfiguration)
        serverKey = newServerKey
        do {
            try SocketSetup.applyOptions(
                to: socket, role: .control, configuration: newConfiguration, serverKey: newServerKey, inForce: inForce)
        } catch {
            logger.error("cannot apply socket options to control: \(error)")
        }
        if curveChanged {
            logger.notice(
                "CURVE changed on control: its endpoints are bound again, and the admins connected there reconnect under the new settings"
            )
        } else if revoked {
            logger.notice(
                "the allow lists of control no longer let in every admin they did: its endpoints are bound again, and the admins connected there reconnect and are checked again"
            )
        }
        let wanted = newConfiguration.controlEndpoints
        // A change held for a RELOAD's reply still to come is part of this one.
        let rebindAll = rebind || endpointsAfterReply?.rebind == true
        let failure: BrokerError?
        if pendingReload != nil && endpoints.wouldUnbind(wanted, rebind: rebindAll) {
            failure = endpoints.reconcileAdded(wanted, on: socket, logger: logger)
            if failure == nil { endpointsAfterReply = (wanted, rebindAll) }
        } else {
            if endpoints.wouldUnbind(wanted, rebind: rebindAll) { refuseCostlyBeforeUnbind() }
            failure = endpoints.reconcile(with: wanted, rebind: rebindAll, on: socket, logger: logger)
            endpointsAfterReply = nil
        }
        registry.setHeld(.control, endpointsAfterReply?.wanted)
        IPCPermissions.apply(newConfiguration.controlIPCMode, to: endpoints.boundHere, logger: logger)
        registry.set(.control, endpoints.actual)
        return failure.map { [$0] } ?? []
    }

    /// Answers the pending RELOAD (its outcome, or that it did not finish in time), then makes
    /// the endpoint change held for that reply (`endpointsAfterReply`). The reply is queued:
    /// the connection it goes to is ended only once it is written (within `linger_ms`; with 0
    /// it may be lost, as before this was held back).
    private func answerReload(_ reply: ControlReply) {
        guard let envelope = pendingReload?.envelope else { return }
        pendingReload = nil
        send(reply, to: envelope)
        guard let (wanted, rebind) = endpointsAfterReply else { return }
        endpointsAfterReply = nil
        registry.setHeld(.control, nil)
        refuseCostlyBeforeUnbind()
        if let failure = endpoints.reconcileRemoved(wanted, rebind: rebind, on: socket, logger: logger) {
            logger.error(
                "the reload's change to the control endpoints, made after RELOAD was answered, left one unbound: \(failure.message); CONFIG shows the endpoints bound, and a reload with the endpoint fixed binds it"
            )
        }
        IPCPermissions.apply(responder.configuration.controlIPCMode, to: endpoints.boundHere, logger: logger)
        registry.set(.control, endpoints.actual)
    }

    /// Reads one request, if one waits, and answers it, or queues it (`costly`); false when
    /// none waited.
    private func serveOneRequest() -> Bool {
        var largeReply = false
        defer {
            // A reply listing 100,000 subscriptions builds ~10 MiB of small allocations on this
            // thread; glibc keeps the freed memory in the thread's arena for good unless told.
            if largeReply { ckernel_malloc_trim() }
        }
        do {
            guard try socket.receive(into: message, dontWait: true) else { return false }
            let maxRequest = responder.configuration.maxControlRequest
            // The ROUTER's routing id first, then (from a REQ, or through proxies) more routing
            // frames up to an empty one, then the request. A DEALER may send the request with
            // no empty frame before it: frames that could be routing frames are held until an
            // empty one shows they were, or the message ends and shows they were the request.
            // Every frame is read, but only the routing frames and at most the limit's worth of
            // request are kept: a million empty frames would cost a million array entries.
            var envelope = [message.bytes]
            var held: [[UInt8]] = []
            var delimited = false
            var requestStarted = false
            var frames: [[UInt8]] = []
            var frameCount = 0
            var total = 0
            func takeRequestFrame(_ bytes: [UInt8]) {
                total += bytes.count
                frameCount += 1
                if total <= maxRequest && frames.count < 2 { frames.append(bytes) }
            }
            while message.hasMore {
                _ = try socket.receive(into: message)
                if !delimited && !requestStarted {
                    if message.count == 0 {
                        envelope += held + [[]]
                        held = []
                        delimited = true
                        continue
                    }
                    if message.hasMore && message.count <= 255 && held.count < Self.maxEnvelopeFrames {
                        held.append(message.bytes)
                        continue
                    }
                    // No empty frame came, or none can count any more: the request starts
                    // with what was held.
                    requestStarted = true
                    for frame in held { takeRequestFrame(frame) }
                    held = []
                }
                if frames.count < 2 && total + message.count <= maxRequest {
                    takeRequestFrame(message.bytes)
                } else {
                    total += message.count
                    frameCount += 1
                }
            }
            // Routing frames and a delimiter with nothing after them: an empty request.
            if frameCount == 0 { takeRequestFrame([]) }
            responder.countRequest(bytes: total)
            let reply: ControlReply
            if total > maxRequest {
                reply = .error(
                    ControlError(
                        .requestTooLarge,
                        "the request is \(total) bytes; the limit is \(maxRequest) (max_control_request)"))
            } else if frameCount > 1 {
                reply = .error(ControlError(.badRequest, "a request is exactly one frame; this one had \(frameCount)"))
            } else {
                switch ControlRequest.parse(frames: frames, maxSize: maxRequest) {
                case .success(let request) where request.command == .reload:
                    guard let handler = reloadHandler else {
                        reply = .error(
                            ControlError(
                                .unavailable, "this broker has nothing to reload: it runs inside another program"))
                        break
                    }
                    // Answered when the reload is done (`reloaded`), by this thread.
                    reloadsAsked += 1
                    let (request, mailbox) = (reloadsAsked, mailbox)
                    pendingReload = (
                        request, SystemClock.monotonicNanoseconds() + reloadTimeoutMilliseconds * 1_000_000, envelope
                    )
                    handler { reply in mailbox.post(.reloaded(reply, request: request)) }
                    return true
                case .success(let request) where request.command == .snapshot || request.command == .replay:
                    guard deferred.count < SnapshotRendezvous<Void>.capacity else {
                        reply = .error(
                            ControlError(
                                .unavailable,
                                "\(deferred.count) SNAPSHOT and REPLAY requests are waiting for their marker subscriptions already; retry once they are answered (each waits \(ControlResponder.snapshotTimeoutMilliseconds / 1_000) s at most)"
                            ))
                        break
                    }
                    let mailbox = mailbox
                    if let later = responder.respondLater(to: request, ready: { mailbox.post(.deferredReady) }) {
                        deferred.append((envelope, later))
                        return true
                    }
                    reply = responder.respond(to: request)
                case .success(let request) where Self.isCostly(request.command):
                    let bytes = envelope.reduce(request.argument.count + 16) { $0 + $1.count }
                    guard costly.count < Self.maxCostlyWaiting && costlyBytes + bytes <= Self.maxCostlyWaitingBytes
                    else {
                        reply = .error(
                            ControlError(
                                .unavailable,
                                "\(costly.count) TOPICS, SUBSCRIPTIONS and HISTORY requests are waiting already; retry in a moment"
                            ))
                        break
                    }
                    costlyRead += 1
                    costlyBytes += bytes
                    costly.append((envelope, request, costlyRead, bytes))
                    return true
                case .success(let request): reply = responder.respond(to: request)
                case .failure(let error): reply = .error(error)
                }
            }
            largeReply = send(reply, to: envelope)
        } catch {
            // Not read again this turn: a failing socket logs once a turn, not once a read.
            logger.error("control request failed: \(error)")
            return false
        }
        return true
    }

    /// Answers the costly requests waiting, `unavailable`, before control endpoints are
    /// unbound: libzmq ends the connections an endpoint accepted with it, and a reply sent
    /// after that is dropped (the client's REQ waits for ever). Sent now, they go out within
    /// the linger, as RELOAD's own reply does.
    private func refuseCostlyBeforeUnbind() {
        refuseCostly(because: "the control endpoints are being bound again (a reload); ask again")
    }

    /// Answers every costly request waiting with `unavailable` and `message`, and forgets
    /// them; true when there was one.
    @discardableResult
    private func refuseCostly(because message: String) -> Bool {
        guard !costly.isEmpty else { return false }
        let refusal = ControlReply.error(ControlError(.unavailable, message))
        for waiting in costly { send(refusal, to: waiting.envelope) }
        costly = []
        costlyBytes = 0
        sharedReply = nil
        return true
    }

    /// Requests whose replies are built from a copy of the loop's tables or read from disk.
    private static func isCostly(_ command: ControlCommand) -> Bool {
        command == .topics || command == .subscriptions || command == .history
    }

    /// Answers the oldest costly request, and waiting ones equal to it that were read before
    /// its reply was built, with the same reply: as many as `costlyTurnBytes` of replies
    /// allow this turn (one at least), the rest at the next turns (the reply is kept for them).
    /// True when a large reply went out and none is kept: time for malloc_trim.
    private func answerCostly() -> Bool {
        guard let first = costly.first else { return false }
        let shared: (request: ControlRequest, json: [UInt8], builtAfterRead: UInt64)
        if let reply = sharedReply, reply.request == first.request, first.read <= reply.builtAfterRead {
            shared = reply
        } else {
            shared = (first.request, responder.respond(to: first.request).json, costlyRead)
        }
        func sharesTheReply(_ waiting: CostlyRequest) -> Bool {
            waiting.request == shared.request && waiting.read <= shared.builtAfterRead
        }
        var budget = max(1, Self.costlyTurnBytes / max(1, shared.json.count))
        var large = false
        var others: [CostlyRequest] = []
        for waiting in costly {
            if budget > 0 && sharesTheReply(waiting) {
                large = send(json: shared.json, to: waiting.envelope)
                budget -= 1
                costlyBytes -= waiting.bytes
            } else {
                others.append(waiting)
            }
        }
        costly = others
        sharedReply = costly.contains(where: sharesTheReply) ? shared : nil
        return large && sharedReply == nil
    }

    /// Sends a reply after the routing frames its request came with; true when it was a
    /// large one.
    @discardableResult
    private func send(_ reply: ControlReply, to envelope: [[UInt8]]) -> Bool {
        send(json: reply.json, to: envelope)
    }

    @discardableResult
    private func send(json bytes: [UInt8], to envelope: [[UInt8]]) -> Bool {
        // libzmq lets a client have `controlRepliesQueued` replies unread, counting what it
        // has read by the notes its I/O thread sends every eighth reply read, which the socket
        // takes in only now and then (`takeInPendingNotes`). A REQ client quick enough that
        // its next request was always there before this thread looked again found the count
        // 16 behind, and its reply dropped: the test of 10,000 requests in a row failed twice
        // in a dozen full runs, and a probe (three such clients, two cores kept busy) lost a
        // reply every few seconds.
        socket.takeInPendingNotes()
        do {
            // Never blocks: with ZMQ_ROUTER_MANDATORY the routing frame fails at once for a
            // client that left (EHOSTUNREACH) or has no room (false, EAGAIN), and then the
            // reply's other frames are not sent. A REQ client is its own to retry.
            message.replace(with: envelope[0])
            guard try socket.send(message, more: true, dontWait: true) else {
                responder.countDroppedReply()
                return bytes.count > Self.largeReplyBytes
            }
            for frame in envelope.dropFirst() {
                message.replace(with: frame)
                try socket.send(message, more: true, dontWait: true)
            }
            message.replace(with: bytes)
            try socket.send(message, dontWait: true)
            responder.countReply(bytes: bytes.count)
        } catch let error as ZMQError where error.code == EHOSTUNREACH {
            // The client left before its reply was ready (a REQ that gave up): counted as
            // answered, as it was before libzmq told.
            responder.countReply(bytes: bytes.count)
        } catch {
            logger.error("control reply failed: \(error)")
        }
        return bytes.count > Self.largeReplyBytes
    }
}

/// The endpoints each socket is bound to right now, readable from any thread, and those a
/// socket will have once a change held back is made (the control socket's, until the RELOAD
/// that asked for it is answered).
final class EndpointRegistry: Sendable {
    private let table = Locked<[String: [String]]>([:])
    private let held = Locked<[String: [String]]>([:])

    func set(_ role: BrokerSocketRole, _ endpoints: [String]) {
        table.withLock { $0[role.rawValue] = endpoints }
    }

    func all() -> [String: [String]] {
        table.withLock { $0 }
    }

    /// `endpoints` nil: no change is held for `role`.
    func setHeld(_ role: BrokerSocketRole, _ endpoints: [String]?) {
        held.withLock { $0[role.rawValue] = endpoints }
    }

    func allHeld() -> [String: [String]] {
        held.withLock { $0 }
    }
}
