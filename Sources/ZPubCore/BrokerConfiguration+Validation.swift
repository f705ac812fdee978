/// Checking a configuration before it is used: every problem, with the key it concerns, so that
/// the configuration file reader can name the line (nats-server's way: all errors at once).
extension BrokerConfiguration {
    /// Problems that make this configuration unusable, whatever it was read from. Each names
    /// the key and what to do; `ConfigurationFile` adds line numbers.
    public func validate() -> [(key: String, message: String)] {
        limitProblems() + securityProblems() + endpointProblems() + http.validate() + gatewayRoomProblems()
            + pair.validate()
            + (pair.peerPublicKeyFile != nil && serverSecretKeyFile == nil
                ? [
                    (
                        "peer_public_key_file",
                        "a CURVE pair link needs this broker's own key too: set server_secret_key_file in [security] (zpub keygen writes one)"
                    )
                ] : [])
    }

    /// A `max_upstream_prefixes` set in the file must fit in the broker's subscription table:
    /// each prefix is one subscription there, two under or above a history prefix (its
    /// sequence markers), and catch-ups add a marker each for a while. (Unset, it is derived
    /// to fit: `HTTPSettings.upstreamPrefixLimit`.)
    func gatewayRoomProblems() -> [(key: String, message: String)] {
        // Out of its range it is reported as such, and 2 x a huge number would overflow.
        guard http.enabled, let prefixes = http.maxUpstreamPrefixes, (1...1_000_000).contains(prefixes) else {
            return []
        }
        let needed = 2 * prefixes + 64
        guard maxSubscriptions < needed else { return [] }
        let fits = (maxSubscriptions - 64) / 2
        let advice =
            fits >= 1
            ? "lower max_upstream_prefixes in [http] to at most \(fits) (or remove it: the gateway then takes what fits), or raise max_subscriptions in [limits]"
            : "raise max_subscriptions in [limits] to at least \(needed)"
        return [
            (
                "max_upstream_prefixes",
                "max_upstream_prefixes (\(prefixes)) needs max_subscriptions of at least \(needed) (twice it, plus 64: a prefix under or above a history prefix is two subscriptions at the broker, and catch-ups add their markers); max_subscriptions is \(maxSubscriptions): \(advice)"
            )
        ]
    }

    /// The log level and every numeric limit in its range.
    func limitProblems() -> [(key: String, message: String)] {
        var problems: [(key: String, message: String)] = []
        func check(_ key: String, _ value: Int, _ range: ClosedRange<Int>, _ meaning: String, shown: String? = nil) {
            if let problem = Self.rangeProblem(key, value, range, meaning, shown: shown) { problems.append(problem) }
        }
        if !Self.logLevels.contains(logLevel) {
            problems.append(
                (
                    "log_level",
                    "log_level \"\(logLevel)\" is not a log level; use one of \(Self.logLevels.joined(separator: ", "))"
                )
            )
        }
        check("send_hwm", sendHighWaterMark, 0...100_000_000, "the send high-water mark (0 = unlimited)")
        check("receive_hwm", receiveHighWaterMark, 0...100_000_000, "the receive high-water mark (0 = unlimited)")
        check("linger_ms", lingerMilliseconds, 0...60_000, "the linger time in ms")
        // libzmq holds the handshake's own commands to this limit too (CURVE's INITIATE with
        // its metadata: 300 bytes): below that, every producer's handshake failed, silently,
        // and the file had passed --check-config (an audit).
        check(
            "max_message_size", maxMessageSize, Self.minMaxMessageSize...(1 << 31),
            "the maximum message size in bytes (libzmq holds the handshake to it as well)")
        check("handshake_timeout_ms", handshakeMilliseconds, 0...600_000, "the handshake timeout in ms (0 = none)")
        check("io_threads", ioThreads, 1...64, "the number of libzmq I/O threads")
        check("multicast_rate_kbps", multicastRateKbps, 1...10_000_000, "the multicast rate in kbit/s")
        check(
            "heartbeat_interval_ms", heartbeatIntervalMilliseconds, 0...3_600_000,
            "the heartbeat interval in ms (0 = off)")
        check("heartbeat_timeout_ms", heartbeatTimeoutMilliseconds, 0...3_600_000, "the heartbeat timeout in ms")
        check(
            "tcp_keepalive_idle_s", tcpKeepaliveIdleSeconds, 0...Self.maxKeepaliveSeconds,
            "the idle seconds before TCP keepalive probes (0 = off)")
        check(
            "tcp_keepalive_interval_s", tcpKeepaliveIntervalSeconds, 1...3_600,
            "the seconds between TCP keepalive probes")
        check("tcp_keepalive_count", tcpKeepaliveCount, 1...100, "the unanswered TCP keepalive probes before a drop")
        check("max_topics", maxTopics, 0...10_000_000, "the number of tracked topics")
        check("max_subscriptions", maxSubscriptions, 1...10_000_000, "the number of distinct subscriptions")
        check(
            "max_live_subscriptions", maxLiveSubscriptions, 1...100_000_000,
            "the number of subscriptions of all connections together")
        check("max_subscription_length", maxSubscriptionLength, 1...4_096, "the subscription length in bytes")
        check("max_control_request", maxControlRequest, 64...1_048_576, "the control request size in bytes")
        check("shutdown_drain_ms", shutdownDrainMilliseconds, 0...60_000, "the shutdown drain time in ms")
        check(
            "resume_catch_up_ms", resumeCatchUpMilliseconds, 0...600_000,
            "the time RESUME's backlog may be paced by the subscribers, in ms (0 = not paced)")
        check(
            "catch_up_stall_ms", catchUpStallMilliseconds, 100...60_000,
            "the time in ms a paced message waits for a subscriber that reads nothing")
        check("start_hold_ms", startHoldMilliseconds, 0...60_000, "the time in ms producers wait at start")
        check("max_entries", lastValueMaxEntries, 1...10_000_000, "the number of cached last values")
        check("max_bytes", lastValueMaxBytes, 1...(1 << 34), "the bytes of cached last values")
        check(
            "max_age_s", lastValueMaxAgeSeconds, 0...31_536_000,
            "the age of cached last values in seconds (0 = no limit)")
        for prefix in lastValuePrefixes where prefix.utf8.count > maxSubscriptionLength {
            problems.append(
                ("prefixes", "last-value prefix \"\(prefix.prefix(40))...\" is longer than max_subscription_length"))
        }
        // [history] keys share names with [last_value]'s: found by a longer key, shown as written.
        check(
            "history_max_messages", historyMaxMessages, 1...1_000_000_000, "the number of stored messages",
            shown: "max_messages")
        check("history_max_bytes", historyMaxBytes, 1...(1 << 40), "the bytes of stored messages", shown: "max_bytes")
        check(
            "history_max_age_s", historyMaxAgeSeconds, 0...315_360_000,
            "the age of stored messages in seconds (0 = no limit)", shown: "max_age_s")
        check(
            "history_sync_interval_ms", historySyncIntervalMilliseconds, 10...60_000,
            "the interval in ms after which received messages are on disk", shown: "sync_interval_ms")
        check(
            "history_queue_bytes", historyQueueBytes, 65_536...(1 << 32),
            "the bytes of messages waiting for the history writer", shown: "queue_bytes")
        check(
            "history_sequence_reserve", historySequenceReserve, 1_000...(1 << 40),
            "the sequence numbers reserved ahead of the last one committed", shown: "sequence_reserve")
        for prefix in historyPrefixes where prefix.hasPrefix("$zpub/") {
            problems.append(("history_prefixes", "history prefix \"\(prefix)\" is under $zpub/, which is zpubd's own"))
        }
        if let directory = stateDirectory, directory.isEmpty {
            problems.append(("state_directory", "directory must not be empty; leave it out to keep history in memory"))
        }
        return problems
    }

    /// CURVE needs a server key; allow lists need CURVE or valid blocks; the control socket
    /// stays off the network without CURVE.
    func securityProblems() -> [(key: String, message: String)] {
        var problems: [(key: String, message: String)] = []
        let curveRoles = BrokerSocketRole.allCases.filter { security(for: $0).curve }
        if let first = curveRoles.first, serverSecretKeyFile == nil {
            problems.append(
                (
                    "security.\(first.rawValue).curve",
                    "curve is on for \(curveRoles.map(\.rawValue).joined(separator: ", ")) but [security] has no server_secret_key_file; create one with `zpub keygen`"
                ))
        }
        for role in BrokerSocketRole.allCases {
            let settings = security(for: role)
            // Each role's section has its own keys (and lines).
            let section = "security.\(role.rawValue)"
            // A promise of encryption that multicast would silently break.
            if settings.curve || settings.allowedKeys != nil || !settings.allowedAddresses.isEmpty,
                let multicast = endpoints(for: role).first(where: Endpoint.isMulticast)
            {
                let key = settings.curve ? "curve" : settings.allowedKeys != nil ? "allowed_keys" : "allowed_addresses"
                problems.append(
                    (
                        "\(section).\(key)",
                        "[security.\(role.rawValue)] cannot protect \(multicast): pgm and epgm carry no ZeroMQ handshake, so CURVE, allowed_keys and allowed_addresses do not apply to them. Put the multicast endpoint on a trusted network without security settings, or leave it out"
                    ))
            }
            if settings.allowedKeys != nil && !settings.curve {
                problems.append(
                    (
                        "\(section).allowed_keys",
                        "allowed_keys in [\(section)] needs curve = true there: without CURVE, clients have no key"
                    ))
            }
            for block in settings.allowedAddresses where CIDR(block) == nil {
                problems.append(
                    (
                        "\(section).allowed_addresses",
                        "\"\(block)\" in [\(section)] allowed_addresses is not an address or CIDR block (e.g. 10.0.0.0/8, ::1)"
                    ))
            }
            // A loopback endpoint's clients all come from one address: a list without it leaves
            // the endpoint no client at all (a walkthrough's --check-config passed that, and
            // every connection was refused).
            let blocks = settings.allowedAddresses.compactMap(CIDR.init)
            // ZAP also checks XSUB's own connections to its upstreams: a list naming only them
            // is a working configuration, whatever the bound endpoints.
            if !blocks.isEmpty && !(role == .xsub && !upstreamEndpoints.isEmpty) {
                for endpoint in endpoints(for: role) {
                    guard let client = Endpoint.loopbackClientAddress(endpoint),
                        !blocks.contains(where: { $0.contains(client) })
                    else { continue }
                    problems.append(
                        (
                            "\(section).allowed_addresses",
                            "[\(section)] allowed_addresses refuses every client of \(endpoint): clients of a loopback endpoint connect from \(client), which none of its blocks holds. Add \"\(client)\" to allowed_addresses, or bind an address the clients it lists can reach"
                        ))
                }
            }
        }
        // The control socket can pause the broker and read its configuration: never open it to
        // the network without CURVE.
        if !security(for: .control).curve {
            for endpoint in controlEndpoints where !Endpoint.isLoopbackOnly(endpoint) {
                problems.append(
                    (
                        "control",
                        "refusing to bind the control socket to \(endpoint) without CURVE: anyone who can reach it could pause the broker. Use a loopback or ipc endpoint, or set curve = true in [security.control]"
                    ))
            }
        }
        if !(0...0o777).contains(controlIPCMode.bits) {
            problems.append(("control_ipc_mode", "control_ipc_mode must be an octal file mode such as \"0660\""))
        }
        return problems
    }

    /// Upstreams that can be connected to, a way in and a way out, no reserved or doubly bound
    /// endpoint.
    func endpointProblems() -> [(key: String, message: String)] {
        var problems: [(key: String, message: String)] = []
        var seenUpstreams: [String] = []
        for endpoint in upstreamEndpoints {
            // One link per endpoint: the upstream table is keyed by it (a repeat would also
            // connect twice to one publisher and get each of its messages twice), also when
            // written two ways (localhost and 127.0.0.1, an ipc path through `..`: an audit's
            // two spellings delivered every message twice).
            if let first = seenUpstreams.first(where: { Endpoint.sameTarget(endpoint, $0) }) {
                let spelled = first == endpoint ? "" : " (as \"\(first)\" too)"
                problems.append(
                    (
                        "upstream",
                        "upstream endpoint \"\(endpoint)\" is given twice\(spelled): each of its messages would arrive twice; list each upstream once"
                    ))
                continue
            }
            seenUpstreams.append(endpoint)
            if let problem = Endpoint.problem(with: endpoint) {
                problems.append(("upstream", "upstream endpoint \"\(endpoint)\": \(problem)"))
            } else if endpoint.hasPrefix("tcp://*") {
                problems.append(
                    (
                        "upstream",
                        "upstream endpoint \"\(endpoint)\": an upstream is connected to, so it needs a host, not *"
                    ))
            } else if let loop = upstreamLoop(endpoint) {
                problems.append(("upstream", loop))
            }
        }

        if xpubEndpoints.isEmpty {
            problems.append(
                ("xpub", "xpub has no endpoint: subscribers would have nowhere to connect; give at least one"))
        }
        if pullEndpoints.isEmpty && xsubEndpoints.isEmpty {
            problems.append(
                ("pull", "pull and xsub both have no endpoint: messages would have no way in; give at least one"))
        }
        for role in BrokerSocketRole.allCases {
            for endpoint in endpoints(for: role) where endpoint.hasPrefix(InternalEndpoints.reservedPrefix) {
                problems.append(
                    (
                        role.rawValue,
                        "endpoint \"\(endpoint)\" is reserved for zpubd's own use; pick another inproc name"
                    ))
            }
        }
        var seen: [String: BrokerSocketRole] = [:]
        for role in BrokerSocketRole.allCases {
            for endpoint in endpoints(for: role) {
                if let problem = Endpoint.problem(with: endpoint) ?? Endpoint.bindProblem(with: endpoint) {
                    problems.append((role.rawValue, "\(role.rawValue) endpoint \"\(endpoint)\": \(problem)"))
                }
                // The same port on another address (tcp://*:P beside tcp://127.0.0.1:P): the
                // second bind failed at start, blamed on "another process (another zpubd?)".
                if seen[endpoint] == nil,
                    let (other, otherRole) = seen.first(where: { Endpoint.takeTheSamePort($0.key, endpoint) })
                {
                    problems.append(
                        (
                            role.rawValue,
                            "\(role.rawValue) endpoint \"\(endpoint)\" takes the port of \(otherRole.rawValue) endpoint \"\(other)\" (* holds a port on every address): give each endpoint a port of its own"
                        ))
                }
                if let other = seen[endpoint], other == role {
                    problems.append(
                        (role.rawValue, "\(role.rawValue) endpoint \"\(endpoint)\" is listed twice; list it once"))
                } else if let other = seen[endpoint] {
                    problems.append(
                        (
                            role.rawValue,
                            "endpoint \"\(endpoint)\" is given for both \(other.rawValue) and \(role.rawValue); each endpoint can be bound once"
                        )
                    )
                }
                seen[endpoint] = role
            }
        }
        // The pair's own endpoint too: bound while passive, it would make the takeover's bind
        // of the same endpoint fail, leaving an active broker that producers cannot reach.
        if let bind = pair.bind, pair.role != nil, let other = seen[bind] {
            problems.append(
                (
                    "bind",
                    "[ha] bind \"\(bind)\" is also the \(other.rawValue) endpoint; the pair link needs an endpoint of its own"
                ))
        } else if let bind = pair.bind, pair.role != nil,
            let (other, role) = seen.first(where: { Endpoint.takeTheSamePort($0.key, bind) })
        {
            problems.append(
                (
                    "bind",
                    "[ha] bind \"\(bind)\" takes the port of \(role.rawValue) endpoint \"\(other)\" (* holds a port on every address): give the pair link a port of its own"
                ))
        }
        // The gateway's listener too: it failed at start ("Address already in use") after
        // --check-config had passed the file (an audit).
        if http.enabled, let (host, port) = http.hostAndPort {
            let listener = "tcp://" + (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
            let taken =
                seen.first(where: { Endpoint.takeTheSamePort($0.key, listener) }).map {
                    "\($0.value.rawValue) endpoint \"\($0.key)\""
                }
                ?? pair.bind.flatMap { bind in
                    pair.role != nil && Endpoint.takeTheSamePort(bind, listener) ? "[ha] bind \"\(bind)\"" : nil
                }
            if let taken {
                problems.append(
                    (
                        "listen",
                        "[http] listen \"\(http.listen)\" takes the port of \(taken): give the gateway a port of its own"
                    ))
            }
        }
        return problems
    }

    /// Why an upstream would lead back into this broker, or nil. The upstream link subscribes
    /// at the endpoint it connects to and forwards what arrives into the broker, which
    /// publishes it on its xpub: connected to its own xpub (or to one of its internal sockets),
    /// the broker receives every message it sends, forwards it again, and so on forever, one
    /// core at 100%.
    func upstreamLoop(_ endpoint: String) -> String? {
        let advice = "point upstream at another broker's xpub endpoint, or remove it"
        if endpoint.hasPrefix(InternalEndpoints.reservedPrefix) {
            return
                "upstream endpoint \"\(endpoint)\" is under \(InternalEndpoints.reservedPrefix), which is reserved for this broker's own sockets: it would forward the broker's messages back into itself forever (a loop); \(advice)"
        }
        guard let own = xpubEndpoints.first(where: { Endpoint.reaches(endpoint, bound: $0) }) else { return nil }
        let same = own == endpoint ? "" : " (\(own) listens there)"
        return
            "upstream endpoint \"\(endpoint)\" is this broker's own xpub endpoint\(same): the broker would receive every message it publishes and forward it again, forever (a loop); \(advice)"
    }
}
