import Synchronization
import ZPubCore

/// The gateway's own counters, written by event loops and the gateway thread, read by
/// /metrics and the status page. Relaxed atomics: each is a count, none orders anything.
final class GatewayCounters: Sendable {
    let webSocketClients = Atomic<Int>(0)
    let sseClients = Atomic<Int>(0)
    let statusClients = Atomic<Int>(0)
    /// WebSocket upgrades accepted (their 101 on its way) whose session has not started yet:
    /// they count against max_clients already (`UpgradePlace`).
    let upgradingWebSockets = Atomic<Int>(0)
    let webSocketConnections = Atomic<UInt64>(0)
    let sseConnections = Atomic<UInt64>(0)
    /// Clients dropped because their queue was full (too slow).
    let droppedSlow = Atomic<UInt64>(0)
    /// WebSocket clients closed because they answered no ping for two `ping_interval`s.
    let droppedUnresponsive = Atomic<UInt64>(0)
    /// Closed when their JWT expired (and, on a WebSocket, no fresh one came).
    let droppedExpired = Atomic<UInt64>(0)
    /// Control requests (STATS, HEALTH, ...) refused because too many were already waiting.
    let controlBusy = Atomic<UInt64>(0)
    /// WebSocket subscribes and unsubscribes refused as beyond `SubscriptionChangeLimit`.
    let changesRefused = Atomic<UInt64>(0)
    /// Requests refused: origin, token, too many clients, bad request, not found.
    let rejectedOrigin = Atomic<UInt64>(0)
    let rejectedToken = Atomic<UInt64>(0)
    let rejectedFull = Atomic<UInt64>(0)
    /// Clients and subscriptions refused for `max_upstream_prefixes`.
    let rejectedGatewayFull = Atomic<UInt64>(0)
    /// Clients and subscriptions refused for `max_user_prefixes`.
    let rejectedUserFull = Atomic<UInt64>(0)
    let rejectedBadRequest = Atomic<UInt64>(0)
    let notFound = Atomic<UInt64>(0)
    let httpRequests = Atomic<UInt64>(0)
    /// Messages the gateway received from the broker, and handed to clients (per client).
    let messagesIn = Atomic<UInt64>(0)
    let bytesIn = Atomic<UInt64>(0)
    let webSocketMessagesOut = Atomic<UInt64>(0)
    let webSocketBytesOut = Atomic<UInt64>(0)
    let sseMessagesOut = Atomic<UInt64>(0)
    let sseBytesOut = Atomic<UInt64>(0)
    let published = Atomic<UInt64>(0)
    let publishFailures = Atomic<UInt64>(0)
    /// Distinct prefixes the gateway's SUB socket holds (the union of its clients').
    let upstreamPrefixes = Atomic<Int>(0)
    /// `max_upstream_prefixes` in force (`HTTPSettings.upstreamPrefixLimit`).
    let upstreamPrefixLimit = Atomic<Int>(0)
    /// Prefixes clients hold that wait for the gateway's budget of new subscriptions at the
    /// broker (`upstream_subscriptions_per_s`), and how many have waited in all.
    let upstreamWaiting = Atomic<Int>(0)
    let upstreamDelayed = Atomic<UInt64>(0)
    /// Subscription barriers the forwarding loop did not answer in time (`BrokerLink`): their
    /// subscribes were answered without them.
    let barriersGivenUp = Atomic<UInt64>(0)
    /// Subscribes (and SSE `subscribed` events) answered without their catch-up's reply, which
    /// did not come in time (`BrokerLink.catchUpConfirmationTimeoutNanoseconds`).
    let catchUpConfirmationsGivenUp = Atomic<UInt64>(0)
    let resumes = Atomic<UInt64>(0)
    /// Catch-ups waiting for their turn to ask the broker (`ResumeTurns`).
    let resumesWaiting = Atomic<Int>(0)
    let resumedValues = Atomic<UInt64>(0)
    /// Catch-ups whose marker never came (`BrokerLink.expireRoundsWithoutMarker`).
    let markersLost = Atomic<UInt64>(0)
    /// Cached values a catch-up had no room for (the oldest; the client is told: `truncated`).
    let valuesLeftOut = Atomic<UInt64>(0)
    /// Requests the gateway put to the broker's control API, per command (`ControlDispatcher`):
    /// what /healthz, /stats, /metrics, the status feed and catch-ups cost the broker.
    private let controlRequests = Locked<[ControlCommand: UInt64]>([:])
    /// Connected clients per JWT user (`sub`): an entry lives while its user has a client, so
    /// the table is bounded by max_clients.
    private let users = Locked<[String: Int]>([:])
    /// The users shown by /stats and the status page, busiest first.
    static let shownUsers = 20
    /// The distinct prefixes a user's clients hold (`UpstreamClaims`), shown beside its
    /// clients: how near it is to `max_user_prefixes`.
    private let userPrefixes: @Sendable (String) -> Int

    init(userPrefixes: @escaping @Sendable (String) -> Int = { _ in 0 }) {
        self.userPrefixes = userPrefixes
    }

    func controlRequested(_ command: ControlCommand) {
        controlRequests.withLock { $0[command, default: 0] += 1 }
    }

    func userConnected(_ subject: String) {
        users.withLock { $0[subject, default: 0] += 1 }
    }

    func userLeft(_ subject: String) {
        users.withLock { table in
            guard let count = table[subject] else { return }
            table[subject] = count > 1 ? count - 1 : nil
        }
    }

    /// A JSON-ready snapshot, for the status page and `/metrics`.
    var snapshot: Snapshot {
        Snapshot(
            webSocketClients: webSocketClients.load(ordering: .relaxed),
            sseClients: sseClients.load(ordering: .relaxed),
            statusClients: statusClients.load(ordering: .relaxed),
            webSocketConnections: webSocketConnections.load(ordering: .relaxed),
            sseConnections: sseConnections.load(ordering: .relaxed),
            droppedSlow: droppedSlow.load(ordering: .relaxed),
            droppedUnresponsive: droppedUnresponsive.load(ordering: .relaxed),
            droppedExpired: droppedExpired.load(ordering: .relaxed),
            rejected: [
                "origin": rejectedOrigin.load(ordering: .relaxed),
                "token": rejectedToken.load(ordering: .relaxed),
                "full": rejectedFull.load(ordering: .relaxed),
                "gateway_full": rejectedGatewayFull.load(ordering: .relaxed),
                "user_full": rejectedUserFull.load(ordering: .relaxed),
                "bad_request": rejectedBadRequest.load(ordering: .relaxed),
                "not_found": notFound.load(ordering: .relaxed),
                "busy": controlBusy.load(ordering: .relaxed),
            ],
            changesRefused: changesRefused.load(ordering: .relaxed),
            httpRequests: httpRequests.load(ordering: .relaxed),
            messagesIn: messagesIn.load(ordering: .relaxed),
            bytesIn: bytesIn.load(ordering: .relaxed),
            webSocketMessagesOut: webSocketMessagesOut.load(ordering: .relaxed),
            webSocketBytesOut: webSocketBytesOut.load(ordering: .relaxed),
            sseMessagesOut: sseMessagesOut.load(ordering: .relaxed),
            sseBytesOut: sseBytesOut.load(ordering: .relaxed),
            published: published.load(ordering: .relaxed),
            publishFailures: publishFailures.load(ordering: .relaxed),
            upstreamPrefixes: upstreamPrefixes.load(ordering: .relaxed),
            upstreamPrefixLimit: upstreamPrefixLimit.load(ordering: .relaxed),
            upstreamWaiting: upstreamWaiting.load(ordering: .relaxed),
            upstreamDelayed: upstreamDelayed.load(ordering: .relaxed),
            barriersGivenUp: barriersGivenUp.load(ordering: .relaxed),
            catchUpConfirmationsGivenUp: catchUpConfirmationsGivenUp.load(ordering: .relaxed),
            resumes: resumes.load(ordering: .relaxed),
            resumesWaiting: resumesWaiting.load(ordering: .relaxed),
            controlRequests: controlRequests.withLock { table in
                Dictionary(uniqueKeysWithValues: table.map { ($0.key.rawValue, $0.value) })
            },
            resumedValues: resumedValues.load(ordering: .relaxed),
            markersLost: markersLost.load(ordering: .relaxed),
            valuesLeftOut: valuesLeftOut.load(ordering: .relaxed),
            // The claims' counts read after this table's lock is let go: one lock at a time.
            users: users.withLock { table in
                table.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(Self.shownUsers)
            }.map { UserClients(sub: $0.key, clients: $0.value, prefixes: userPrefixes($0.key)) },
            userCount: users.withLock { $0.count })
    }

    struct UserClients: Codable, Equatable, Sendable {
        var sub: String
        var clients: Int
        /// Distinct prefixes its clients hold.
        var prefixes: Int
    }

    struct Snapshot: Codable, Equatable, Sendable {
        var webSocketClients: Int
        var sseClients: Int
        var statusClients: Int
        var webSocketConnections: UInt64
        var sseConnections: UInt64
        var droppedSlow: UInt64
        var droppedUnresponsive: UInt64
        var droppedExpired: UInt64
        var rejected: [String: UInt64]
        var changesRefused: UInt64
        var httpRequests: UInt64
        var messagesIn: UInt64
        var bytesIn: UInt64
        var webSocketMessagesOut: UInt64
        var webSocketBytesOut: UInt64
        var sseMessagesOut: UInt64
        var sseBytesOut: UInt64
        var published: UInt64
        var publishFailures: UInt64
        var upstreamPrefixes: Int
        var upstreamPrefixLimit: Int
        var upstreamWaiting: Int
        var upstreamDelayed: UInt64
        var barriersGivenUp: UInt64
        var catchUpConfirmationsGivenUp: UInt64
        var resumes: UInt64
        var resumesWaiting: Int
        /// Per command word (STATS, REPLAY, ...).
        var controlRequests: [String: UInt64]
        var resumedValues: UInt64
        var markersLost: UInt64
        var valuesLeftOut: UInt64
        /// JWT users with clients connected (the busiest `shownUsers`), and how many in all.
        var users: [UserClients]
        var userCount: Int

        enum CodingKeys: String, CodingKey {
            case users
            case userCount = "user_count"
            case rejected, published, resumes
            case webSocketClients = "websocket_clients"
            case sseClients = "sse_clients"
            case statusClients = "status_clients"
            case webSocketConnections = "websocket_connections"
            case sseConnections = "sse_connections"
            case droppedSlow = "dropped_slow"
            case droppedUnresponsive = "dropped_unresponsive"
            case droppedExpired = "dropped_expired"
            case changesRefused = "subscription_changes_refused"
            case httpRequests = "http_requests"
            case messagesIn = "messages_in"
            case bytesIn = "bytes_in"
            case webSocketMessagesOut = "websocket_messages_out"
            case webSocketBytesOut = "websocket_bytes_out"
            case sseMessagesOut = "sse_messages_out"
            case sseBytesOut = "sse_bytes_out"
            case publishFailures = "publish_failures"
            case upstreamPrefixes = "upstream_prefixes"
            case upstreamPrefixLimit = "upstream_prefix_limit"
            case upstreamWaiting = "upstream_waiting"
            case upstreamDelayed = "upstream_delayed"
            case barriersGivenUp = "barriers_given_up"
            case catchUpConfirmationsGivenUp = "catch_up_confirmations_given_up"
            case resumedValues = "resumed_values"
            case resumesWaiting = "resumes_waiting"
            case controlRequests = "control_requests"
            case markersLost = "markers_lost"
            case valuesLeftOut = "values_left_out"
        }
    }
}
