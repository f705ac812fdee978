/// The `[http]` section: zpubd's optional HTTP listener for browsers (WebSocket, Server-Sent
/// Events) and monitoring systems (health, stats, Prometheus metrics, a status page).
/// See docs/http.md.
public struct HTTPSettings: Codable, Equatable, Sendable {
    public enum Defaults {
        /// Off: a fresh install exposes nothing new.
        public static let enabled = false
        /// Loopback when on: a reverse proxy (TLS, public name) goes in front.
        public static let listen = "127.0.0.1:8080"
        /// Empty: only pages served by zpubd itself (same origin), and clients that send no
        /// Origin at all (curl, servers), may connect.
        public static let allowedOrigins: [String] = []
        /// Messages waiting for one client before it counts as too slow and is dropped.
        public static let clientQueue = 1_000
        /// Connected WebSocket and SSE clients at most; further ones get 503.
        public static let maxClients = 10_000
        /// Largest WebSocket frame a client may send, in bytes (larger: close code 1009).
        public static let maxFrame = 65_536
        /// Prefixes one client may subscribe to at once.
        public static let maxClientPrefixes = 64
        /// No prefix may be published to over HTTP unless listed.
        public static let publishPrefixes: [String] = []
        /// No bearer tokens: every prefix is open to whoever may connect.
        public static let tokens: [String] = []
        /// Seconds between the pings sent to an idle WebSocket client; one that answers nothing
        /// for two intervals is closed (a vanished browser behind NAT otherwise holds its slot
        /// for hours). 0 turns pings off.
        public static let pingInterval = 30
        /// Milliseconds a client's first queued message waits before its queue is written:
        /// what arrives meanwhile goes out in the same write (one system call instead of one per
        /// message). 0 writes each message at once.
        public static let writeDelayMilliseconds = 0
        /// Subscriptions a second that the gateway may add at the broker for prefixes it did
        /// not hold (as many at once): each costs the forwarding loop some 5 µs, and its
        /// unsubscribe as much, so 5,000 is at most 5% of it. Clients that connect or subscribe
        /// faster (a restart's reconnections, or one reconnecting in a loop with new prefixes)
        /// wait for theirs, in turn.
        public static let upstreamSubscriptionsPerSecond = 5_000
        /// Distinct prefixes the gateway holds for its clients at once (each one or two
        /// subscriptions at the broker, whose `max_subscriptions` must leave room for them):
        /// a client that asks for a new one past it is refused (`gateway_full`). Unset, this
        /// or what `max_subscriptions` leaves room for (`upstreamPrefixLimit`), whichever is less.
        public static let maxUpstreamPrefixes = 10_000
        /// Distinct prefixes the clients of one user (a JWT's `sub`) may hold at once, over all
        /// their connections: so that one user cannot take every one of `max_upstream_prefixes`
        /// by connecting again and again (each connection holds `max_client_prefixes`). A tenth
        /// of the default cap; 0: no limit per user.
        public static let maxUserPrefixes = 1_000
    }

    public var enabled = Defaults.enabled
    /// host:port (IPv6 as [::1]:8080).
    public var listen = Defaults.listen
    public var allowedOrigins = Defaults.allowedOrigins
    public var clientQueue = Defaults.clientQueue
    public var maxClients = Defaults.maxClients
    public var maxFrame = Defaults.maxFrame
    public var maxClientPrefixes = Defaults.maxClientPrefixes
    public var publishPrefixes = Defaults.publishPrefixes
    /// "PREFIX=TOKEN": subscribing to or publishing on topics under PREFIX needs the token.
    public var tokens = Defaults.tokens
    public var pingInterval = Defaults.pingInterval
    public var writeDelayMilliseconds = Defaults.writeDelayMilliseconds
    public var upstreamSubscriptionsPerSecond = Defaults.upstreamSubscriptionsPerSecond
    /// nil: derived from `max_subscriptions` (`upstreamPrefixLimit`).
    public var maxUpstreamPrefixes: Int?
    public var maxUserPrefixes = Defaults.maxUserPrefixes
    /// When set, the operator pages (`/`, `/watch`, `/status/events`, `/stats`, `/metrics`) need
    /// it: they show every topic and subscription. `/healthz` stays open.
    public var operatorToken: String?
    /// HS256: a file holding the secret the web app signs its JWTs with (32 bytes or more).
    public var jwtSecretFile: String?
    /// RS256 or EdDSA: a PEM file with the public key of the app's signing key.
    public var jwtPublicKeyFile: String?
    /// Whether a client without any token may subscribe and publish (where no static token rule
    /// protects the prefix). Unset: yes without JWT keys, no with them.
    public var allowAnonymous: Bool?
    /// HTTPS and WSS: a PEM certificate chain (leaf first) and its private key.
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?

    public init() {}

    /// The most distinct prefixes the gateway may hold with a broker of `maxSubscriptions`:
    /// `max_upstream_prefixes` (unset: 10,000), never more than half of what the table holds
    /// beyond 64 (a prefix under or above a history prefix is two subscriptions, and catch-ups
    /// add markers). A value that does not fit refuses the file while the gateway is on
    /// (`gatewayRoomProblems`); one reloaded beside `enabled = false`, with the gateway still
    /// running, is held to what fits here.
    public func upstreamPrefixLimit(maxSubscriptions: Int) -> Int {
        min(maxUpstreamPrefixes ?? Defaults.maxUpstreamPrefixes, max(1, (maxSubscriptions - 64) / 2))
    }

    public var usesJWT: Bool { jwtSecretFile != nil || jwtPublicKeyFile != nil }
    public var allowsAnonymous: Bool { allowAnonymous ?? !usesJWT }
    public var usesTLS: Bool { tlsCertificateFile != nil }

    enum CodingKeys: String, CodingKey {
        case enabled, listen, tokens
        case allowedOrigins = "allowed_origins"
        case clientQueue = "client_queue"
        case maxClients = "max_clients"
        case maxFrame = "max_frame"
        case maxClientPrefixes = "max_client_prefixes"
        case publishPrefixes = "publish_prefixes"
        case pingInterval = "ping_interval"
        case writeDelayMilliseconds = "write_delay_ms"
        case upstreamSubscriptionsPerSecond = "upstream_subscriptions_per_s"
        case maxUpstreamPrefixes = "max_upstream_prefixes"
        case maxUserPrefixes = "max_user_prefixes"
        case operatorToken = "operator_token"
        case jwtSecretFile = "jwt_secret_file"
        case jwtPublicKeyFile = "jwt_public_key_file"
        case allowAnonymous = "allow_anonymous"
        case tlsCertificateFile = "tls_certificate_file"
        case tlsKeyFile = "tls_key_file"
    }

    /// CONFIG shows which prefixes have tokens, never the tokens themselves.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(enabled, forKey: .enabled)
        try container.encode(listen, forKey: .listen)
        try container.encode(allowedOrigins, forKey: .allowedOrigins)
        try container.encode(clientQueue, forKey: .clientQueue)
        try container.encode(maxClients, forKey: .maxClients)
        try container.encode(maxFrame, forKey: .maxFrame)
        try container.encode(maxClientPrefixes, forKey: .maxClientPrefixes)
        try container.encode(publishPrefixes, forKey: .publishPrefixes)
        try container.encode(tokenPrefixes.map { "\($0)=(hidden)" }, forKey: .tokens)
        try container.encode(pingInterval, forKey: .pingInterval)
        try container.encode(writeDelayMilliseconds, forKey: .writeDelayMilliseconds)
        try container.encode(upstreamSubscriptionsPerSecond, forKey: .upstreamSubscriptionsPerSecond)
        try container.encodeIfPresent(maxUpstreamPrefixes, forKey: .maxUpstreamPrefixes)
        try container.encode(maxUserPrefixes, forKey: .maxUserPrefixes)
        try container.encodeIfPresent(operatorToken.map { _ in "(hidden)" }, forKey: .operatorToken)
        // Paths, not secrets: an operator checks which files are in force.
        try container.encodeIfPresent(jwtSecretFile, forKey: .jwtSecretFile)
        try container.encodeIfPresent(jwtPublicKeyFile, forKey: .jwtPublicKeyFile)
        try container.encode(allowsAnonymous, forKey: .allowAnonymous)
        try container.encodeIfPresent(tlsCertificateFile, forKey: .tlsCertificateFile)
        try container.encodeIfPresent(tlsKeyFile, forKey: .tlsKeyFile)
    }

    /// The listen address split into host and port, or nil when it is not host:port.
    public var hostAndPort: (host: String, port: Int)? {
        Self.parseListen(listen)
    }

    public static func parseListen(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        // No host has a "/": "http://127.0.0.1:8080" was taken for host "http://127.0.0.1",
        // and failed only at the bind, "UnknownHost".
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port), !host.isEmpty,
            !host.contains("/")
        else {
            return nil
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "*" { host = "0.0.0.0" }
        return (host, port)
    }

    /// The prefixes that have a token, in file order.
    public var tokenPrefixes: [String] {
        tokens.compactMap { entry in entry.firstIndex(of: "=").map { String(entry[..<$0]) } }
    }

    /// The publish prefixes under which a client without a token may publish something: with
    /// anonymous clients allowed, those no static token's prefix covers whole.
    public var openPublishPrefixes: [String] {
        guard allowsAnonymous else { return [] }
        let guarded = tokenPrefixes
        // Bytes, as the gateway compares topics (`hasPrefix` took canonically equal strings
        // for equal).
        return publishPrefixes.filter { prefix in !guarded.contains { prefix.utf8.starts(with: $0.utf8) } }
    }

    /// (prefix, token) pairs; entries without "=" are reported by `validate()`.
    public var tokenRules: [(prefix: String, token: String)] {
        tokens.compactMap { entry in
            guard let equals = entry.firstIndex(of: "=") else { return nil }
            return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
        }
    }

    /// Problems with these settings, each naming its key (as `BrokerConfiguration.validate`).
    public func validate() -> [(key: String, message: String)] {
        var problems: [(key: String, message: String)] = []
        func check(_ key: String, _ value: Int, _ range: ClosedRange<Int>, _ meaning: String) {
            if let problem = BrokerConfiguration.rangeProblem(key, value, range, meaning) { problems.append(problem) }
        }
        if hostAndPort == nil {
            problems.append(
                (
                    "listen",
                    "listen \"\(listen)\" is not host:port; write e.g. \"127.0.0.1:8080\", \"[::1]:8080\" or \"0.0.0.0:8080\""
                ))
        } else if let host = hostAndPort?.host, host.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            CIDR.parseAddress(host) == nil
        {
            // Refused by --check-config, not at the bind (exit 1, after the check said the file
            // was good: a walkthrough, 2026-12-07). A name cannot be told until it is resolved.
            problems.append(("listen", "listen \"\(listen)\": \(host) is not an IPv4 address"))
        }
        check("client_queue", clientQueue, 1...1_000_000, "the messages queued per HTTP client")
        check("max_clients", maxClients, 1...1_000_000, "the number of HTTP clients")
        check("max_frame", maxFrame, 128...(16 << 20), "the largest WebSocket frame in bytes")
        check("max_client_prefixes", maxClientPrefixes, 1...10_000, "the prefixes per HTTP client")
        check("ping_interval", pingInterval, 0...3_600, "the seconds between WebSocket pings (0: off)")
        check(
            "write_delay_ms", writeDelayMilliseconds, 0...1_000,
            "the milliseconds a client's messages are held to be written together (0: at once)")
        check(
            "upstream_subscriptions_per_s", upstreamSubscriptionsPerSecond, 1...1_000_000,
            "the subscriptions a second the gateway may add at the broker")
        if let maxUpstreamPrefixes {
            check(
                "max_upstream_prefixes", maxUpstreamPrefixes, 1...1_000_000,
                "the distinct prefixes the gateway holds for its clients")
        }
        check(
            "max_user_prefixes", maxUserPrefixes, 0...1_000_000,
            "the distinct prefixes one user's clients may hold (0: no limit)")
        for origin in allowedOrigins
        where origin != "*" && !["http://", "https://"].contains(where: origin.lowercased().hasPrefix) {
            problems.append(
                (
                    "allowed_origins",
                    "allowed origin \"\(origin)\" is not scheme://host[:port] (e.g. \"https://example.com\") or \"*\""
                ))
        }
        if let operatorToken, operatorToken.count < 8 {
            problems.append(
                (
                    "operator_token",
                    "operator_token is shorter than 8 characters; use a long random one (e.g. openssl rand -hex 16)"
                ))
        }
        if (tlsCertificateFile == nil) != (tlsKeyFile == nil) {
            problems.append(
                (
                    tlsCertificateFile == nil ? "tls_key_file" : "tls_certificate_file",
                    "TLS needs both tls_certificate_file and tls_key_file (PEM); set both, or neither for plain HTTP"
                ))
        }
        for (key, path) in [
            ("jwt_secret_file", jwtSecretFile), ("jwt_public_key_file", jwtPublicKeyFile),
            ("tls_certificate_file", tlsCertificateFile), ("tls_key_file", tlsKeyFile),
        ] {
            if let path, !path.hasPrefix("/"), !path.hasPrefix(TextFile.credentialScheme) {
                problems.append(
                    (key, "\(key) \"\(path)\" is not an absolute path; write the full path (or credential:NAME)"))
            }
        }
        for (index, entry) in tokens.enumerated() {
            // Named by its place, never its text: without the =, any of it may be the token, and
            // the problem goes to the log and to RELOAD's reply.
            guard let equals = entry.firstIndex(of: "=") else {
                problems.append(
                    (
                        "tokens",
                        "entry \(index + 1) of [http] tokens (counting from 1) has no =: write \"PREFIX=TOKEN\" (its text is not shown, as it may hold the token)"
                    ))
                continue
            }
            if entry[entry.index(after: equals)...].count < 8 {
                problems.append(
                    (
                        "tokens",
                        "the token for prefix \"\(entry[..<equals])\" is shorter than 8 characters; use a long random one (e.g. openssl rand -hex 16)"
                    ))
            }
        }
        return problems
    }
}
