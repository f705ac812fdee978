import NIOCore
import NIOPosix
import Synchronization
import ZPubCore

/// The control request could not be served: the queue is full or the gateway is stopping.
struct ControlUnavailable: Error, CustomStringConvertible {
    var description: String
}

/// Calls the broker's typed control API (`BrokerControl`) for the gateway: /healthz, /stats,
/// /metrics, the status page and SSE resumes. `respond` may wait for the forwarding loop (up to
/// its deadline), so it runs on a thread of its own, never on an event loop and never on the
/// ZeroMQ link's thread.
final class ControlDispatcher: Sendable {
    /// Requests waiting for that thread; past this, callers get `ControlUnavailable` at once
    /// (HTTP 503) instead of an ever longer queue behind a stalled loop.
    static let maxQueued = 256

    private let control: any BrokerControl
    private let pool: NIOThreadPool
    private let queued = Atomic<Int>(0)
    /// `requestShared`: who waits for the request in flight, per command.
    private let sharing = Locked<[String: [@Sendable (Result<ControlReply, ControlUnavailable>) -> Void]]>([:])
    private let counters: GatewayCounters

    init(control: any BrokerControl, counters: GatewayCounters) {
        self.control = control
        self.counters = counters
        // One thread: requests are served in order.
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    /// Serves `request` on the control thread and calls `completion` there with the reply.
    func submit(
        _ request: ControlRequest, completion: @escaping @Sendable (Result<ControlReply, ControlUnavailable>) -> Void
    ) {
        guard queued.add(1, ordering: .relaxed).newValue <= Self.maxQueued else {
            queued.subtract(1, ordering: .relaxed)
            counters.controlBusy.add(1, ordering: .relaxed)
            completion(
                .failure(
                    ControlUnavailable(
                        description: "\(Self.maxQueued) requests are already waiting for the broker; try again")))
            return
        }
        counters.controlRequested(request.command)
        pool.submit { [self] state in
            queued.subtract(1, ordering: .relaxed)
            guard case .active = state else {
                return completion(.failure(ControlUnavailable(description: "the gateway is shutting down")))
            }
            completion(.success(control.respond(to: request)))
        }
    }

    /// Calls `done` once the broker has applied the subscriptions that reached it so far
    /// (`BrokerControl.afterSubscriptionsApplied`): at once, on the caller's thread, since it
    /// never waits; `done` is called on the forwarding loop's.
    func afterSubscriptionsApplied(_ done: @escaping @Sendable () -> Void) {
        control.afterSubscriptionsApplied(done)
    }

    /// `BrokerControl.isPassiveInPair`, on the caller's thread (it never waits).
    var brokerIsPassive: Bool { control.isPassiveInPair }

    /// Whether the broker sends a backlog now, and when it last finished one
    /// (`BrokerControl.catchUp`), on the caller's thread (it never waits).
    var brokerCatchUp: BacklogCatchUpState { control.catchUp }

    /// The same, for an event loop: the future completes on `eventLoop`.
    func request(_ request: ControlRequest, on eventLoop: EventLoop) -> EventLoopFuture<ControlReply> {
        let promise = eventLoop.makePromise(of: ControlReply.self)
        submit(request, completion: Self.completing(promise))
        return promise.futureResult
    }

    /// A completion that hands the reply, or the reason there is none, to `promise`.
    private static func completing(_ promise: EventLoopPromise<ControlReply>)
        -> @Sendable (Result<ControlReply, ControlUnavailable>) -> Void
    {
        { result in
            switch result {
            case .success(let reply): promise.succeed(reply)
            case .failure(let error): promise.fail(error)
            }
        }
    }

    /// HEALTH or STATS for /healthz, /stats and /metrics: one request in flight per command,
    /// whose reply every HTTP request that asked meanwhile shares. Anyone may ask /healthz, as
    /// often as its connections allow; one request each would fill the queue (`maxQueued`) that
    /// catch-ups need too. Nothing is reused once answered: a request after a PAUSE sees it.
    func requestShared(_ command: ControlCommand, on eventLoop: EventLoop) -> EventLoopFuture<ControlReply> {
        let promise = eventLoop.makePromise(of: ControlReply.self)
        let deliver = Self.completing(promise)
        let key = "\(command)"
        let first = sharing.withLock { waiting in
            defer { waiting[key, default: []].append(deliver) }
            return waiting[key] == nil
        }
        if first {
            submit(ControlRequest(command: command)) { [sharing] result in
                let callbacks = sharing.withLock { $0.removeValue(forKey: key) ?? [] }
                for callback in callbacks { callback(result) }
            }
        }
        return promise.futureResult
    }

    /// Finishes what is queued (each request has the broker's deadline) and stops the thread.
    func shutdown() {
        try? pool.syncShutdownGracefully()
    }
}
