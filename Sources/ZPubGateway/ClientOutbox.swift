import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization
import ZPubCore

/// One client's bounded queue between the gateway's ZeroMQ thread (which offers messages and
/// must never wait) and the client's event loop (which writes them while the socket takes them).
///
/// The queue holds what the connection could not take yet: NIO's own outbound buffer is capped
/// by the channel's write-buffer water mark, so a client that stops reading makes the channel
/// unwritable, this queue grows, and past `limit` the client is dropped with a reason.
final class ClientOutbox: Sendable {
    enum Kind: String, Sendable {
        case webSocket = "websocket"
        case serverSentEvents = "sse"
    }

    /// A message ready for the wire, encoded once and shared by every client that gets it.
    enum Item: Sendable {
        /// A message to WebSocket clients, already a whole frame (`WireFormat.webSocketFrame`).
        case webSocketFrame(ByteBuffer)
        /// An SSE event, already an HTTP chunk (`WireFormat.chunk`).
        case event(ByteBuffer)
        /// Nothing to write: the broker forwards the prefixes of the WebSocket subscribe with
        /// this ticket. Told to the session in order with the messages (`SubscriptionConfirmed`).
        case confirmation(UInt64)
        /// The gateway's own SSE event (`subscribed`), already an HTTP chunk, or WebSocket
        /// frames (`subscribed` for a URL's prefixes): written as the others, not counted as a
        /// message.
        case notice(ByteBuffer)
        /// The last item: once what is queued before it is written, the client is told why
        /// and disconnected (`closeWithError`). The gateway's stop queues it.
        case goodbye(code: String, reason: String, closeCode: UInt16)

        var byteCount: Int {
            switch self {
            case .webSocketFrame(let buffer), .event(let buffer), .notice(let buffer): buffer.readableBytes
            case .confirmation, .goodbye: 0
            }
        }

        /// A message of the broker's (or of a catch-up's), counted as written.
        var isMessage: Bool {
            switch self {
            case .webSocketFrame, .event: true
            case .confirmation, .notice, .goodbye: false
            }
        }

        /// A message for WebSocket clients, framed: text when it reads as text, binary otherwise.
        static func webSocket(_ frames: [[UInt8]], sequence: UInt64?) -> Item {
            switch WireFormat.webSocket(frames, sequence: sequence) {
            case .text(let bytes): .webSocketFrame(WireFormat.webSocketFrame(opcode: .text, bytes))
            case .binary(let bytes): .webSocketFrame(WireFormat.webSocketFrame(opcode: .binary, bytes))
            }
        }

        /// One of the gateway's own JSON messages (gap, caught_up, error) for WebSocket clients.
        static func webSocketText(_ json: String) -> Item {
            .webSocketFrame(WireFormat.webSocketFrame(opcode: .text, Array(json.utf8)))
        }
    }

    private struct State {
        var queue = CircularBuffer<Item>(initialCapacity: 4)
        var drainScheduled = false
        /// A delayed drain is pending, but the queue reached half its limit, so a drain now was
        /// asked for too (`write_delay_ms` must not make a client look too slow).
        var earlyDrainRequested = false
        var closed = false
        /// An SSE stream's last event was written (`endStream`): nothing follows it.
        var ended = false
        /// Catch-up messages still queued: live messages behind them are measured against
        /// `limit` on top of these, so a resume does not make the next live message "too slow".
        var catchUpQueued = 0
        /// Catch-up messages not yet written. Live messages that arrive meanwhile wait behind
        /// them, however fast the client reads: up to `resumeFactor` times `limit` of them may
        /// (`liveBound`). Measured: at 5,000 messages a second, a WebSocket client with
        /// client_queue = 300 that read a replay of 3,000 as fast as Python could was dropped
        /// as too slow in 3 of 6 tries, its 300 live messages' worth gone in 60 ms.
        var catchUpLeft = 0
        /// Queued items that are not messages (`Item.isMessage`): not counted against the limit.
        var notices = 0
        /// Closed by `closeAfterQueued`'s patience, with messages still queued.
        var cutOff = false

        var messagesQueued: Int { queue.count - notices }
    }

    let id: ClientID
    let kind: Kind
    let channel: Channel
    let limit: Int
    /// How long the first message queued on an empty queue waits before the queue is written
    /// (`write_delay_ms`): the messages that arrive meanwhile leave in one write. Nil: at once.
    let writeDelay: TimeAmount?
    /// SSE: where pre-framed chunks are written (below the HTTP encoder; `RawWriter`).
    let rawWriter: NIOLoopBound<ChannelHandlerContext>?
    private let counters: GatewayCounters
    private let state = Locked(State())
    /// WebSocket publishes posted to the link and not handled by it yet (`holdPublish`).
    private let publishesWaiting = Atomic<Int>(0)

    /// A WebSocket client's publishes that may wait for the gateway's ZeroMQ thread at once.
    /// Unbounded, they grew while that thread was busy (a fan-out of 1,024 messages to
    /// thousands of clients), and fed the fan-out that held it (an audit).
    static let maxPublishesWaiting = 256

    init(
        id: ClientID, kind: Kind, channel: Channel, limit: Int, writeDelayMilliseconds: Int = 0,
        counters: GatewayCounters, rawWriter: ChannelHandlerContext? = nil
    ) {
        self.id = id
        self.kind = kind
        self.channel = channel
        self.limit = limit
        self.writeDelay = writeDelayMilliseconds > 0 ? .milliseconds(Int64(writeDelayMilliseconds)) : nil
        self.rawWriter = rawWriter.map { NIOLoopBound($0, eventLoop: channel.eventLoop) }
        self.counters = counters
    }

    /// Takes a place for a publish on its way to the link (the client's event loop); false
    /// when `maxPublishesWaiting` are taken: the publish is refused at once, as busy.
    func holdPublish() -> Bool {
        if publishesWaiting.add(1, ordering: .relaxed).newValue <= Self.maxPublishesWaiting { return true }
        publishesWaiting.subtract(1, ordering: .relaxed)
        return false
    }

    /// The link handled a publish `holdPublish` let through (its thread).
    func publishHandled() {
        publishesWaiting.subtract(1, ordering: .relaxed)
    }

    /// Publishes waiting for the link now (a test's look at the bound).
    var publishesWaitingCount: Int { publishesWaiting.load(ordering: .relaxed) }

    /// How many times `limit` a resume may queue at once: what a reconnecting client missed
    /// arrives in one go, and is bounded by the link to this many messages.
    static let resumeFactor = 10

    /// Messages queued now (any thread): what a catch-up's room is reckoned from.
    var queuedCount: Int { state.withLock { $0.messagesQueued } }

    /// Queues a message (any thread, never blocks). False when the queue is full: the caller
    /// drops the client. A resume's catch-up (`catchingUp`) may fill the queue up to
    /// `resumeFactor` times the limit.
    func offer(_ item: Item, catchingUp: Bool = false) -> Bool {
        enum Drain {
            case none, now
            case after(TimeAmount)
        }
        let (accepted, drain) = state.withLock { state -> (Bool, Drain) in
            if state.closed { return (true, .none) }
            let bound = catchingUp ? limit * Self.resumeFactor : liveBound(state)
            if state.messagesQueued >= bound { return (false, .none) }
            state.queue.append(item)
            if catchingUp {
                state.catchUpQueued += 1
                state.catchUpLeft += 1
            }
            if state.drainScheduled {
                // Messages held by the write delay count against the limit like any others: at
                // half of it, they are written now rather than waiting out the delay and making
                // a client that reads perfectly well "too slow".
                guard writeDelay != nil, !state.earlyDrainRequested, state.messagesQueued >= max(1, bound / 2) else {
                    return (true, .none)
                }
                state.earlyDrainRequested = true
                return (true, .now)
            }
            state.drainScheduled = true
            return (true, writeDelay.map { .after($0) } ?? .now)
        }
        switch drain {
        case .none: break
        case .now: channel.eventLoop.execute { self.drain() }
        case .after(let delay): channel.eventLoop.scheduleTask(in: delay) { self.drain() }
        }
        return accepted
    }

    /// How many messages may be queued when a live one comes: `limit`, on top of the catch-up
    /// messages still queued; while a catch-up is being written, `resumeFactor` times `limit`
    /// on top of what is left of it. Once it is written, the live backlog behind it may only
    /// shrink, by `limit` at most above its lowest point since (a client that reads slower than
    /// messages come is still dropped, with at most that many queued).
    private func liveBound(_ state: State) -> Int {
        state.catchUpLeft > 0 ? state.catchUpLeft + limit * Self.resumeFactor : limit + state.catchUpQueued
    }

    /// Queues a notice that is not a message (any thread, never blocks), behind the messages
    /// queued before it and outside the limit: a subscribe's confirmation (a WebSocket session
    /// has one outstanding at a time, and gets one notice for its URL's prefixes; an SSE stream
    /// gets one, its `subscribed` event), or the gateway's goodbye (`closeAfterQueued`).
    func confirm(_ item: Item) {
        let drainNow = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.queue.append(item)
            state.notices += 1
            // Behind a drain already due (after `write_delay_ms`, or when the channel can take
            // more), which writes it with the messages it waits for.
            guard !state.drainScheduled else { return false }
            state.drainScheduled = true
            return true
        }
        if drainNow { channel.eventLoop.execute { self.drain() } }
    }

    /// Stops accepting; what is queued is discarded.
    func close() {
        state.withLock { state in
            state.closed = true
            state.queue.removeAll()
            state.notices = 0
        }
    }

    /// Closed by `closeAfterQueued`'s patience before it had taken what was queued.
    var wasCutOff: Bool { state.withLock { $0.cutOff } }

    /// Closed (`close`, `endStream`): nothing more is written (a keep-alive comment either).
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Ends an SSE stream with its last event, an `error` with `data`, and the chunk that ends
    /// a chunked body (on the channel's event loop): closed first, so that nothing queued or
    /// offered is written after it, and written once, when an expiry and a drop meet.
    func endStream(lastEvent data: [UInt8], promise: EventLoopPromise<Void>) {
        let first = state.withLock { state -> Bool in
            defer {
                state.closed = true
                state.ended = true
                state.queue.removeAll()
                state.notices = 0
            }
            return !state.ended
        }
        guard first else { return promise.succeed(()) }
        writeRaw(WireFormat.lastServerSentEvent(error: data), promise: promise)
    }

    /// Tells the client it was too slow (a close frame 1008, or a last SSE `error` event) and
    /// disconnects it. The message only gets through if the connection has room, which a slow
    /// client's often has not: the disconnection itself is what counts.
    func closeTooSlow() {
        closeWithError(
            code: "too_slow", "too slow: more than \(limit) messages queued (client_queue)", closeCode: 1008,
            grace: .milliseconds(200))
    }

    /// Tells the client why (a close frame with `closeCode`, or a last SSE `error` event with
    /// `code`) and disconnects it once that is written, or after `grace` (`Goodbye`): a client
    /// told to come back (`resume_again`) may be reading a catch-up's backlog, and closed
    /// before its goodbye went out it would not learn why. A client known to be slow gets less.
    func closeWithError(code: String, _ reason: String, closeCode: UInt16, grace: TimeAmount = Goodbye.grace) {
        channel.eventLoop.execute {
            self.sayGoodbye(code: code, reason, closeCode: closeCode, grace: grace)
        }
    }

    /// As `closeWithError`, behind what is queued (any thread, never blocks): the client gets
    /// the messages offered before this first. Outside the limit, as a notice is. A client
    /// that has not taken them `patience` later (one that does not read: its goodbye would
    /// wait for room forever) is closed as `closeTooSlow` closes one.
    func closeAfterQueued(code: String, _ reason: String, closeCode: UInt16, patience: TimeAmount) {
        confirm(.goodbye(code: code, reason: reason, closeCode: closeCode))
        channel.eventLoop.scheduleTask(in: patience) {
            let waiting = self.state.withLock { state in
                state.cutOff = state.queue.contains { if case .goodbye = $0 { true } else { false } }
                return state.cutOff
            }
            guard waiting else { return }
            self.close()
            self.sayGoodbye(code: code, reason, closeCode: closeCode, grace: .milliseconds(200))
        }
    }

    /// `closeWithError`'s work, on the channel's event loop.
    private func sayGoodbye(code: String, _ reason: String, closeCode: UInt16, grace: TimeAmount) {
        switch kind {
        case .webSocket:
            // Through the session, which sends nothing after its close frame (pongs, pings,
            // replies); nothing queued here follows it either.
            close()
            channel.pipeline.fireUserInboundEventTriggered(
                CloseRequested(code: closeCode, reason: reason, grace: grace))
        case .serverSentEvents:
            let written = channel.eventLoop.makePromise(of: Void.self)
            endStream(lastEvent: Array(WireFormat.errorJSON(code: code, reason).utf8), promise: written)
            channel.flush()
            Goodbye.close(channel, once: written.futureResult, grace: grace)
        }
    }

    /// Writes queued messages while the channel is writable (on the channel's event loop); called
    /// again when the channel becomes writable.
    func drain() {
        var wrote = 0
        var bytes = 0
        var wroteAny = false
        while channel.isWritable {
            let next = state.withLock { state -> Item? in
                if let item = state.queue.popFirst() {
                    if !item.isMessage {
                        state.notices -= 1
                        return item
                    } else if state.catchUpLeft > 0 {
                        state.catchUpLeft -= 1
                        // The catch-up is written: the live backlog behind it is what may shrink.
                        if state.catchUpLeft == 0 { state.catchUpQueued = state.messagesQueued }
                    } else {
                        state.catchUpQueued = min(state.catchUpQueued, state.messagesQueued)
                    }
                    return item
                }
                state.drainScheduled = false
                state.earlyDrainRequested = false
                return nil
            }
            guard let item = next else { break }
            if case .confirmation(let ticket) = item {
                // Synchronous: the session writes the subscribe's replies here, in order.
                channel.pipeline.fireUserInboundEventTriggered(SubscriptionConfirmed(ticket: ticket))
                continue
            }
            if case .goodbye(let code, let reason, let closeCode) = item {
                if wroteAny { channel.flush() }
                wroteAny = false
                sayGoodbye(code: code, reason, closeCode: closeCode, grace: Goodbye.grace)
                break
            }
            write(item)
            wroteAny = true
            guard item.isMessage else { continue }
            wrote += 1
            bytes += item.byteCount
        }
        if wroteAny { channel.flush() }
        if wrote > 0 {
            switch kind {
            case .webSocket:
                counters.webSocketMessagesOut.add(UInt64(wrote), ordering: .relaxed)
                counters.webSocketBytesOut.add(UInt64(bytes), ordering: .relaxed)
            case .serverSentEvents:
                counters.sseMessagesOut.add(UInt64(wrote), ordering: .relaxed)
                counters.sseBytesOut.add(UInt64(bytes), ordering: .relaxed)
            }
        }
        if !channel.isWritable {
            // Resumed by channelWritabilityChanged; until then offers only queue.
            state.withLock { $0.drainScheduled = true }
        }
    }

    /// Called by the session when the channel becomes writable again.
    func writabilityChanged() {
        guard channel.isWritable else { return }
        drain()
    }

    private func write(_ item: Item) {
        switch item {
        case .event(let chunk), .webSocketFrame(let chunk), .notice(let chunk): writeRaw(chunk)
        case .confirmation, .goodbye: break
        }
    }

    /// A pre-framed SSE chunk or WebSocket frame, below the HTTP or WebSocket encoder (on the
    /// channel's event loop).
    func writeRaw(_ chunk: ByteBuffer, promise: EventLoopPromise<Void>? = nil) {
        if let rawWriter {
            rawWriter.value.write(NIOAny(chunk), promise: promise)
        } else {
            channel.write(chunk, promise: promise)
        }
    }
}

/// The broker forwards the prefixes of the WebSocket subscribe with this ticket: the session
/// may send its `subscribed` replies (`WebSocketSession`).
struct SubscriptionConfirmed: Sendable {
    let ticket: UInt64
}

/// The gateway closes a WebSocket client (too slow, told to resume again, the gateway's
/// stop): the session sends the close frame and hangs up after `grace` at most (`Goodbye`).
struct CloseRequested: Sendable {
    let code: UInt16
    let reason: String
    let grace: TimeAmount
}

extension WebSocketFrame {
    /// A close frame with a code and a reason (cut to the 123 bytes a close frame allows).
    static func close(code: UInt16, reason: String) -> WebSocketFrame {
        var buffer = ByteBuffer()
        buffer.writeInteger(code)
        buffer.writeString(reason.utf8Prefix(123))
        return WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)
    }
}

extension String {
    /// At most `maxBytes` of this string's UTF-8, cut between characters: a close frame's
    /// reason cut inside one is a protocol error to the browser.
    func utf8Prefix(_ maxBytes: Int) -> String {
        var bytes = Array(utf8.prefix(maxBytes))
        while String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
