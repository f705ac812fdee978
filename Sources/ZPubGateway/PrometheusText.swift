import ZPubCore

/// Renders the broker's STATS and the gateway's counters in the Prometheus text exposition
/// format (version 0.0.4). A pure function of two snapshots: the counters already live in the
/// broker, so they are read at scrape time rather than mirrored into a metrics registry.
struct PrometheusText {
    private var out = ""

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func render(stats: StatsSnapshot?, gateway: GatewayCounters.Snapshot) -> String {
        var text = PrometheusText()
        text.gauge("zpub_up", "1 when the broker answered the scrape's STATS request", [([:], stats == nil ? 0 : 1)])
        if let stats { text.broker(stats) }
        text.gateway(gateway)
        return text.out
    }

    private mutating func broker(_ stats: StatsSnapshot) {
        let roles = stats.sockets.keys.sorted { $0.rawValue < $1.rawValue }
        var messages: [([String: String], Double)] = []
        var bytes: [([String: String], Double)] = []
        for role in roles {
            guard let counters = stats.sockets[role] else { continue }
            let socket = role.rawValue
            messages.append((["socket": socket, "direction": "in"], Double(counters.messagesIn)))
            messages.append((["socket": socket, "direction": "out"], Double(counters.messagesOut)))
            bytes.append((["socket": socket, "direction": "in"], Double(counters.bytesIn)))
            bytes.append((["socket": socket, "direction": "out"], Double(counters.bytesOut)))
        }
        counter("zpub_socket_messages_total", "Messages (frames for subscriptions) per socket and direction", messages)
        counter("zpub_socket_bytes_total", "Bytes per socket and direction", bytes)
        counter("zpub_messages_in_total", "Data messages received from producers", [([:], Double(stats.messagesIn))])
        counter("zpub_messages_out_total", "Data messages handed to XPUB", [([:], Double(stats.messagesOut))])
        counter("zpub_bytes_in_total", "Bytes of data messages received", [([:], Double(stats.bytesIn))])
        counter("zpub_bytes_out_total", "Bytes of data messages handed to XPUB", [([:], Double(stats.bytesOut))])
        gauge("zpub_uptime_seconds", "Seconds since zpubd started", [([:], stats.uptimeSeconds)])
        gauge("zpub_forwarding_paused", "1 while forwarding is paused", [([:], stats.forwarding == .paused ? 1 : 0)])
        gauge(
            "zpub_catching_up",
            "1 while a held backlog (RESUME, start_hold_ms) goes out at the slowest subscriber's pace",
            [([:], stats.catchUp == nil ? 0 : 1)])
        let subscriptions = stats.subscriptions
        gauge("zpub_subscriptions", "Live subscriptions", [([:], Double(subscriptions.total))])
        gauge("zpub_subscription_prefixes", "Distinct subscribed prefixes", [([:], Double(subscriptions.prefixes))])
        counter(
            "zpub_subscription_events_total", "Subscribe and unsubscribe frames seen",
            [
                (["kind": "subscribe"], Double(subscriptions.subscribeEvents)),
                (["kind": "unsubscribe"], Double(subscriptions.unsubscribeEvents)),
            ])
        counter(
            "zpub_subscriptions_refused_total", "Subscriptions refused",
            [
                (["reason": "too_long"], Double(subscriptions.refusedTooLong)),
                (["reason": "table_full"], Double(subscriptions.refusedTableFull)),
            ])
        counter(
            "zpub_subscriptions_admitted_later_total",
            "Subscriptions refused for a full table, admitted once it had room",
            [([:], Double(subscriptions.admittedLater))])
        gauge(
            "zpub_subscriptions_waiting_for_room", "Subscriptions refused for a full table, waiting for room",
            [([:], Double(subscriptions.waitingForRoom))])
        counter(
            "zpub_subscriptions_waiting_given_up_total",
            "Waiting subscriptions that gave their place to another connection's at the bounds",
            [([:], Double(subscriptions.waitingGivenUp))])
        counter(
            "zpub_not_subscriptions_total", "Messages peers of the XPUB sent that were no subscription, dropped",
            [([:], Double(subscriptions.notSubscriptions))])
        counter(
            "zpub_dropped_for_misdirection_total",
            "XPUB subscribers dropped after such a message: those libzmq would have paired wrongly",
            [([:], Double(subscriptions.droppedForMisdirection))])
        counter(
            "zpub_subscribers_dropped_over_live_limit_total",
            "Subscriber connections dropped for subscribing past max_live_subscriptions",
            [([:], Double(subscriptions.droppedOverTheTotal))])
        gauge("zpub_topics", "Topics tracked by topic accounting", [([:], Double(stats.topics.tracked))])
        counter(
            "zpub_untracked_messages_total", "Messages on topics beyond max_topics",
            [([:], Double(stats.topics.untrackedMessages))])
        counter(
            "zpub_unwanted_messages_total", "Messages no subscription wanted", [([:], Double(stats.unwantedMessages))])
        counter("zpub_send_failures_total", "Messages XPUB refused", [([:], Double(stats.sendFailures))])
        counter(
            "zpub_internal_topic_messages_total", "Messages from producers or upstreams on $zpub/ topics, dropped",
            [([:], Double(stats.internalTopicMessages ?? 0))])
        counter(
            "zpub_dropped_log_records_total",
            "Log records of the forwarding loop dropped because the log's reader did not keep up",
            [([:], Double(stats.droppedLogRecords ?? 0))])
        counter(
            "zpub_control_replies_dropped_total",
            "Control replies dropped because their client had 16 replies unread already",
            [([:], Double(stats.controlRepliesDropped ?? 0))])
        counter(
            "zpub_connection_events_summarized_total",
            "Connection events the forwarding loop took as counts because it had fallen behind them",
            [([:], Double(stats.connectionEventsSummarized ?? 0))])
        gauge(
            "zpub_peers", "Connected peers per data socket",
            stats.peers.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                (["socket": $0.key.rawValue], Double($0.value))
            })
        counter(
            "zpub_handshake_failures_total", "Connections dropped during the ZeroMQ handshake",
            [([:], Double(stats.handshakeFailures))])
        if let history = stats.history {
            let prefixes = history.perPrefix.keys.sorted()
            gauge(
                "zpub_history_messages", "Messages history keeps, per history prefix",
                prefixes.map { (["prefix": $0], Double(history.perPrefix[$0]?.messages ?? 0)) })
            gauge(
                "zpub_history_bytes", "Bytes of the messages history keeps, per history prefix",
                prefixes.map { (["prefix": $0], Double(history.perPrefix[$0]?.bytes ?? 0)) })
            gauge(
                "zpub_history_sequence", "The oldest kept and the newest assigned history sequence",
                [(["end": "first"], Double(history.firstSequence)), (["end": "last"], Double(history.lastSequence))])
            counter("zpub_history_written_total", "Messages history wrote", [([:], Double(history.written))])
            counter(
                "zpub_history_commits_total", "Transactions the history writer committed",
                [([:], Double(history.commits ?? 0))])
            counter(
                "zpub_history_not_kept_total", "Messages history could not keep",
                [
                    (["reason": "queue_full"], Double(history.dropped)),
                    (["reason": "write_failed"], Double(history.writeFailures)),
                ])
            counter(
                "zpub_history_evictions_total", "Oldest messages removed to stay within the bounds",
                [([:], Double(history.evictions))])
            gauge(
                "zpub_history_queued_bytes", "Bytes waiting for the history writer",
                [([:], Double(history.queuedBytes))])
            gauge(
                "zpub_history_disk_bytes", "Bytes of the history database and its log",
                [([:], Double(history.diskBytes))])
            gauge(
                "zpub_history_last_sync_seconds", "Unix time of the last sync of history to disk",
                [([:], Double(history.lastSyncMilliseconds) / 1000)])
        }
        if let pair = stats.pair {
            gauge(
                "zpub_pair_active", "1 on the active broker of a primary/backup pair, 0 on the other",
                [(["role": pair.role.rawValue], pair.active ? 1 : 0)])
            gauge(
                "zpub_pair_replication_lag_messages",
                "Kept messages the active peer has that this broker has not mirrored",
                [([:], Double(pair.lagMessages))])
            gauge(
                "zpub_pair_replication_lag_seconds", "Age of the newest mirrored message while more are waiting",
                [([:], Double(pair.lagMilliseconds) / 1000)])
            gauge(
                "zpub_pair_peer_heard_seconds", "Seconds since the peer was last heard (absent: never)",
                pair.peerHeardMillisecondsAgo.map { [([:], Double($0) / 1000)] } ?? [])
            counter(
                "zpub_pair_role_changes_total", "Changes of this broker's pair state", [([:], Double(pair.changes))])
            // Every kind, 0 or 1, so that an alert on one has a series before it first fires.
            let present = Set((pair.problems ?? []).map(\.kind))
            gauge(
                "zpub_pair_problem", "1 while the pair has this problem (HEALTH's pair.problems say what to do)",
                PairProblem.kinds.map { (["kind": $0], present.contains($0) ? 1 : 0) })
        }
        if let descriptors = stats.descriptors {
            gauge(
                "zpub_accept_paused", "1 while new TCP connections are paused: out of file descriptors",
                [([:], descriptors.acceptPaused ? 1 : 0)])
            counter(
                "zpub_accept_pauses_total", "Times zpubd ran out of file descriptors and paused new connections",
                [([:], Double(descriptors.acceptPauses))])
        }
        let cache = stats.lastValue
        gauge("zpub_last_value_entries", "Cached last values", [([:], Double(cache.entries))])
        gauge("zpub_last_value_bytes", "Bytes of cached last values", [([:], Double(cache.bytes))])
        counter(
            "zpub_last_value_events_total", "Last-value cache events",
            [
                (["event": "hit"], Double(cache.hits)), (["event": "miss"], Double(cache.misses)),
                (["event": "update"], Double(cache.updates)), (["event": "deletion"], Double(cache.deletions)),
                (["event": "eviction"], Double(cache.evictions)), (["event": "snapshot"], Double(cache.snapshots)),
                (["event": "too_large"], Double(cache.tooLarge ?? 0)),
                (["event": "upstream_value_known"], Double(cache.upstreamValuesKnown ?? 0)),
            ])
        gauge(
            "zpub_upstream_connected", "1 when an upstream broker is connected",
            stats.upstreams.map { (["endpoint": $0.endpoint], $0.state == .connected ? 1 : 0) })
        counter(
            "zpub_security_denied_total", "Connections the ZAP handler refused, per socket",
            stats.security.deniedBySocket.keys.sorted().map {
                (["socket": $0], Double(stats.security.deniedBySocket[$0] ?? 0))
            })
    }

    private mutating func gateway(_ gateway: GatewayCounters.Snapshot) {
        gauge(
            "zpub_http_clients", "Connected HTTP gateway clients",
            [
                (["kind": "websocket"], Double(gateway.webSocketClients)),
                (["kind": "sse"], Double(gateway.sseClients)),
                (["kind": "status"], Double(gateway.statusClients)),
            ])
        counter(
            "zpub_http_connections_total", "HTTP gateway clients accepted",
            [
                (["kind": "websocket"], Double(gateway.webSocketConnections)),
                (["kind": "sse"], Double(gateway.sseConnections)),
            ])
        counter(
            "zpub_http_clients_dropped_total",
            "Clients dropped: queue full (too_slow), no reply to pings (unresponsive), JWT expired (token_expired)",
            [
                (["reason": "too_slow"], Double(gateway.droppedSlow)),
                (["reason": "unresponsive"], Double(gateway.droppedUnresponsive)),
                (["reason": "token_expired"], Double(gateway.droppedExpired)),
            ])
        counter(
            "zpub_http_rejected_total", "HTTP requests refused",
            gateway.rejected.keys.sorted().map { (["reason": $0], Double(gateway.rejected[$0] ?? 0)) })
        counter(
            "zpub_http_subscription_changes_refused_total",
            "WebSocket subscribes and unsubscribes refused: the client changed its prefixes too fast",
            [([:], Double(gateway.changesRefused))])
        counter("zpub_http_requests_total", "HTTP requests", [([:], Double(gateway.httpRequests))])
        counter(
            "zpub_http_messages_in_total", "Messages the gateway received from the broker",
            [([:], Double(gateway.messagesIn))])
        counter(
            "zpub_http_messages_out_total", "Messages handed to HTTP clients (one per client)",
            [
                (["kind": "websocket"], Double(gateway.webSocketMessagesOut)),
                (["kind": "sse"], Double(gateway.sseMessagesOut)),
            ])
        counter(
            "zpub_http_bytes_out_total", "Bytes handed to HTTP clients",
            [
                (["kind": "websocket"], Double(gateway.webSocketBytesOut)),
                (["kind": "sse"], Double(gateway.sseBytesOut)),
            ])
        counter(
            "zpub_http_published_total", "Messages WebSocket clients and POST /publish published",
            [([:], Double(gateway.published))])
        counter(
            "zpub_http_publish_failures_total", "Publishes the broker did not take",
            [([:], Double(gateway.publishFailures))])
        gauge(
            "zpub_http_upstream_prefixes", "Distinct prefixes the gateway subscribes to",
            [([:], Double(gateway.upstreamPrefixes))])
        gauge(
            "zpub_http_upstream_prefix_limit", "Distinct prefixes the gateway may hold (max_upstream_prefixes)",
            [([:], Double(gateway.upstreamPrefixLimit))])
        gauge(
            "zpub_http_upstream_waiting", "Prefixes waiting for the budget of new subscriptions at the broker",
            [([:], Double(gateway.upstreamWaiting))])
        counter(
            "zpub_http_upstream_delayed_total", "Subscriptions at the broker that waited for the budget",
            [([:], Double(gateway.upstreamDelayed))])
        counter(
            "zpub_http_subscription_barriers_given_up_total",
            "Subscribes answered without the forwarding loop's confirmation, which did not come within 5 s",
            [([:], Double(gateway.barriersGivenUp))])
        counter(
            "zpub_http_catch_up_confirmations_given_up_total",
            "Subscribes with a catch-up answered without its reply, which did not come within 10 s",
            [([:], Double(gateway.catchUpConfirmationsGivenUp))])
        counter(
            "zpub_http_resumes_total",
            "Catch-ups: reconnections (Last-Event-ID, since) and new clients of cached prefixes",
            [([:], Double(gateway.resumes))])
        gauge(
            "zpub_http_resumes_waiting", "Catch-ups waiting for their turn to ask the broker",
            [([:], Double(gateway.resumesWaiting))])
        counter(
            "zpub_http_control_requests_total", "Requests the gateway put to the broker's control API",
            gateway.controlRequests.keys.sorted().map { (["command": $0], Double(gateway.controlRequests[$0] ?? 0)) })
        counter(
            "zpub_http_markers_lost_total",
            "Catch-ups whose marker never came (the broker's queue to the gateway was full); their clients were asked to resume again",
            [([:], Double(gateway.markersLost))])
        counter(
            "zpub_http_values_left_out_total",
            "Cached values a catch-up had no room for (the oldest); its client was told (truncated)",
            [([:], Double(gateway.valuesLeftOut))])
    }

    // MARK: Format

    private mutating func counter(_ name: String, _ help: String, _ samples: [([String: String], Double)]) {
        family(name, help, "counter", samples)
    }

    private mutating func gauge(_ name: String, _ help: String, _ samples: [([String: String], Double)]) {
        family(name, help, "gauge", samples)
    }

    private mutating func family(
        _ name: String, _ help: String, _ type: String, _ samples: [([String: String], Double)]
    ) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for (labels, value) in samples {
            out += name
            if !labels.isEmpty {
                out += "{"
                out += labels.keys.sorted().map { "\($0)=\"\(Self.escape(labels[$0]!))\"" }.joined(separator: ",")
                out += "}"
            }
            out += " \(Self.format(value))\n"
        }
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
