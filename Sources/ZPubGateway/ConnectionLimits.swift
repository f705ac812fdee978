import NIOCore
import Synchronization

/// How long an HTTP connection may take to deliver a whole request (its head and its body):
/// counted from its accept, which covers a TLS handshake, and on a kept-alive connection from
/// the end of each response. A connection that sends nothing, or half a request line, was
/// otherwise kept for ever. Event streams and WebSockets are not affected: the deadline ends
/// with the request that opens them. (Event-loop only.)
struct RequestDeadline {
    /// 10 s, what web servers commonly allow for a request's head: browsers, curl and Prometheus
    /// send a request at once after connecting, and a kept-alive connection that stays idle this
    /// long costs little to open again. Not a setting: nobody should need another value.
    static let limit = TimeAmount.seconds(10)
    static var seconds: Int64 { limit.nanoseconds / 1_000_000_000 }

    private var timer: Scheduled<Void>?

    /// Starts counting again from now; `expired` runs on `eventLoop` when the time is up.
    mutating func restart(on eventLoop: EventLoop, _ expired: @escaping @Sendable () -> Void) {
        timer?.cancel()
        timer = eventLoop.scheduleTask(in: Self.limit, expired)
    }

    mutating func stop() {
        timer?.cancel()
        timer = nil
    }
}

/// The HTTP connections that are not a client's stream (yet): waiting for a request or a TLS
/// handshake, being answered, or idle between two requests. None of them counts against
/// max_clients, and each holds a descriptor and a pipeline, so they have a cap of their own:
/// past it a new connection is refused at once, and one host opening idle sockets by the
/// thousand cannot use up zpubd's descriptors. (The request deadline frees the idle ones.)
final class PlainConnections: Sendable {
    /// As many as the listen backlog: far more than legitimate clients hold while their request
    /// is read (requests are read as they arrive, on one event loop), and a bound of about
    /// 8 MiB on what the idle ones cost.
    static let limit = 1_024

    private let count = Atomic<Int>(0)
    /// When the last "refusing connections" warning was logged (uptime, ns): one a minute.
    private let lastWarning = Atomic<UInt64>(0)
    private static let warningInterval: UInt64 = 60_000_000_000

    /// The connection's place among the `limit`, or nil when all are taken.
    func admit() -> Slot? {
        var current = count.load(ordering: .relaxed)
        while current < Self.limit {
            let (exchanged, found) = count.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return Slot(self) }
            current = found
        }
        return nil
    }

    fileprivate func leave() {
        count.subtract(1, ordering: .relaxed)
    }

    /// Whether a refusal should be logged now: the first one, then one a minute at most.
    func shouldWarn() -> Bool {
        let now = NIODeadline.now().uptimeNanoseconds
        let last = lastWarning.load(ordering: .relaxed)
        guard last == 0 || now - last >= Self.warningInterval else { return false }
        return lastWarning.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged
    }

    /// A connection's place, given back once, when the connection becomes a client's stream or
    /// closes. (Event-loop only, as its `HTTPHandler`.)
    final class Slot {
        private var connections: PlainConnections?

        fileprivate init(_ connections: PlainConnections) {
            self.connections = connections
        }

        func release() {
            connections?.leave()
            connections = nil
        }
    }
}

/// A WebSocket upgrade's place among max_clients, from `shouldUpgrade` (which sends the 101)
/// until its `WebSocketSession` counts it as a client, or the connection closes first. Without
/// it, the client was counted only once its session started: upgrades that arrived together
/// all passed the check before any of them counted. Taken and released at most once each.
final class UpgradePlace: Sendable {
    private let counters: GatewayCounters
    private let held = Atomic<Bool>(false)

    init(counters: GatewayCounters) {
        self.counters = counters
    }

    func take() {
        guard !held.exchange(true, ordering: .relaxed) else { return }
        counters.upgradingWebSockets.add(1, ordering: .relaxed)
    }

    func release() {
        guard held.exchange(false, ordering: .relaxed) else { return }
        counters.upgradingWebSockets.subtract(1, ordering: .relaxed)
    }
}

/// Answers a connection refused by `PlainConnections` and hangs up: over plain HTTP with a 503
/// that says why; over TLS at once, since answering would first cost the handshake that the
/// refusal is there to save.
final class TooManyConnectionsHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let answers: Bool
    private var done = false

    init(answers: Bool) {
        self.answers = answers
    }

    static let response = RawHTTPResponse.error(
        status: "503 Service Unavailable", code: "too_many_connections",
        "the gateway has \(PlainConnections.limit) connections that are not yet clients (waiting for their request, or idle between requests); try again in a few seconds",
        extraHeaders: "Retry-After: \(RequestDeadline.seconds)\r\n")

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Whatever the client sends is not read: it is being hung up on.
    }

    private func refuse(_ context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        guard answers else {
            context.close(promise: nil)
            return
        }
        Goodbye.close(context.channel, once: context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: Self.response))))
    }
}

/// A whole HTTP response written as bytes, for the answers given outside NIO's HTTP handlers
/// (a refused connection has none; a request cut off by its deadline has them mid-request).
enum RawHTTPResponse {
    /// `{"error":{"code":...,"message":...}}`, as every gateway error, with `Connection: close`.
    static func error(status: String, code: String, _ message: String, extraHeaders: String = "") -> [UInt8] {
        let body =
            "{\"error\":{\"code\":\(WireFormat.jsonString(code)),\"message\":\(WireFormat.jsonString(message))}}\n"
        let head =
            "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Cache-Control: no-store\r\nDate: \(HTTPDate.now())\r\nConnection: close\r\n\(extraHeaders)\r\n"
        return Array((head + body).utf8)
    }
}

/// How often a WebSocket client may change its set of prefixes. Each change that adds a prefix
/// nobody else holds, or removes the last holder's, is a (un)subscription frame from the
/// gateway's SUB to the broker's XPUB, which the forwarding loop handles on its costly path
/// (the subscription table, upstream forwarding, and with the last-value cache on a scan of the
/// cache). `max_client_prefixes` bounds how many prefixes a client holds, not how often it
/// changes them: without this, one client subscribing and unsubscribing in a loop kept the
/// forwarding loop busy for everyone. A change beyond the allowance is refused with
/// `too_many_changes` and not applied; the connection stays open. Each `WebSocketSession` keeps
/// its client's `TokenBucket`, on its event loop.
enum SubscriptionChangeLimit {
    /// 20 changes a second, kept up for as long as the client likes: far more than a page
    /// driven by a person changes (a view opened, a list scrolled: a few a second), and about a
    /// two-hundredth of what one Python client sending as fast as it could got through without
    /// a limit (2,000 changes in 0.53 s, each a frame for the forwarding loop;
    /// `GatewaySubscriptionChurnTests`). Not a setting: the burst below already follows
    /// `max_client_prefixes`, and a client that needs to change faster than this for ever is
    /// the one the limit is there to stop.
    static let perSecond = 20

    /// Twice `max_client_prefixes`: a client may subscribe to all the prefixes it may hold at
    /// once, at connect or later, and replace its whole set once (unsubscribing them all and
    /// subscribing as many new ones) without waiting. The URL's `?prefix=`s are not counted:
    /// they come with the connection.
    static func burst(maxClientPrefixes: Int) -> Int { 2 * max(1, maxClientPrefixes) }

    /// A new client's allowance, full.
    static func bucket(maxClientPrefixes: Int, now: UInt64) -> TokenBucket {
        TokenBucket(burst: burst(maxClientPrefixes: maxClientPrefixes), perSecond: perSecond, now: now)
    }
}
