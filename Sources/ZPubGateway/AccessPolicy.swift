import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// What a request or a WebSocket client presents: static tokens (`tokens` in [http]) and the
/// user of a verified JWT.
struct Credentials: Sendable, Equatable {
    var tokens: Set<String> = []
    var user: TokenUser?
    /// A token was presented that is none of the static ones (and no JWT): a refusal says the
    /// token is wrong, not missing.
    var presentedUnknown = false

    /// Whether the client presented any token at all.
    var presentedAny: Bool { presentedUnknown || !tokens.isEmpty || user != nil }
}

/// Who may connect, subscribe and publish: allowed origins, bearer tokens per prefix, publish
/// prefixes, and what a JWT grants. Immutable and pure, so it is shared by every event loop and
/// unit-tested alone.
///
/// A JWT's claims are the whole grant of the client that presents one: it may subscribe under
/// its `subscribe` prefixes and publish under its `publish` prefixes, static token rules and
/// publish_prefixes notwithstanding (the app that signed it is the authority), and nothing else.
/// Without a JWT the static rules apply, and with `allow_anonymous = false` a client must present
/// a JWT or one of the static tokens.
struct AccessPolicy: Sendable {
    enum Denial: Error, Equatable {
        case originNotAllowed(String)
        case hostNotAllowed(String)
        /// `presented`: the client gave a token, and it is not this prefix's.
        case tokenRequired(prefix: String, presented: Bool = false)
        /// `presented`: the client gave a token, and it is none this gateway knows.
        case credentialsRequired(presented: Bool = false)
        case notInToken(prefix: String, subject: String)
        case publishNotAllowed(topic: String)

        var message: String {
            switch self {
            case .originNotAllowed(let origin):
                "origin \(origin) is not allowed; add it to allowed_origins in [http]"
            case .hostNotAllowed(let host):
                "a request for Host \(host) is not allowed: a name other than an address or localhost may have been pointed at this gateway by another site (DNS rebinding). If it is yours (a proxy's public name, or an nginx upstream's name: proxy_set_header Host $host or $proxy_host), add its origin (https://\(host)) to allowed_origins in [http]"
            case .tokenRequired(let prefix, false):
                "prefix \"\(prefix)\" needs a bearer token (Authorization: Bearer, ?access_token= or \"token\")"
            case .tokenRequired(let prefix, true):
                "the token given is not the one for prefix \"\(prefix)\" (tokens in [http]); check it, or subscribe outside that prefix"
            case .credentialsRequired(false):
                "this gateway needs a token (allow_anonymous = false): a JWT from the app, or a static token, as Authorization: Bearer, ?access_token= or \"token\""
            case .credentialsRequired(true):
                // The operator_token given to /watch read as no token at all (a walkthrough).
                "the token given is none this gateway admits (allow_anonymous = false): give one of the static tokens in [http], or a JWT where the gateway has JWT keys (an operator_token, if that is what was given, opens the operator pages, not subscriptions)"
            case .notInToken(let prefix, let subject):
                "the token of \(subject) does not grant \"\(prefix)\"; its subscribe and publish claims list what it may use"
            case .publishNotAllowed(let topic):
                "publishing to \"\(topic)\" is not allowed; publish_prefixes in [http] lists what is"
            }
        }

        /// 401 when other credentials would help, 403 when these are known and not enough.
        var isUnauthorized: Bool {
            switch self {
            case .tokenRequired, .credentialsRequired: true
            default: false
            }
        }

        /// The `code` of the JSON error.
        var code: String {
            switch self {
            case .originNotAllowed: "origin_not_allowed"
            case .hostNotAllowed: "host_not_allowed"
            case .tokenRequired, .credentialsRequired: "token_required"
            case .notInToken: "not_in_token"
            case .publishNotAllowed: "publish_not_allowed"
            }
        }
    }

    let allowsAnyOrigin: Bool
    let origins: Set<String>
    /// The hosts ("name[:port]") of the listed origins: Host headers a browser's request may
    /// name besides addresses and localhost (`checkHost`).
    let originHosts: Set<String>
    /// This machine's name (gethostname, lowercased), which its own clients may name the
    /// gateway by (Debian's /etc/hosts points it at 127.0.1.1): no other site's page can have it.
    let machineName: String
    let publishPrefixes: [[UInt8]]
    let tokens: [(prefix: [UInt8], token: String)]
    /// Every static token, and the operator's: a presented string in here is never read as a JWT.
    let staticTokens: Set<String>
    let allowsAnonymous: Bool

    init(_ settings: HTTPSettings, machineName: String = Self.hostName()) {
        allowsAnyOrigin = settings.allowedOrigins.contains("*")
        origins = Set(settings.allowedOrigins.map(Self.normalize))
        originHosts = Set(origins.compactMap { Self.authority(of: $0).map(String.init) })
        self.machineName = machineName.lowercased()
        publishPrefixes = settings.publishPrefixes.map { Array($0.utf8) }
        tokens = settings.tokenRules.map { (Array($0.prefix.utf8), $0.token) }
        staticTokens = Set(tokens.map(\.token) + (settings.operatorToken.map { [$0] } ?? []))
        allowsAnonymous = settings.allowsAnonymous
    }

    /// A client without a JWT and without any static token, where `allow_anonymous = false`.
    func isAnonymousRefused(_ credentials: Credentials) -> Bool {
        !allowsAnonymous && credentials.user == nil && !tokens.contains { credentials.tokens.contains($0.token) }
    }

    /// A request without Origin (not a browser) is allowed; so is a page served by zpubd itself
    /// (its Origin names the Host it was loaded from) when that Host is an address or
    /// localhost, and any origin listed. A DNS name in Host proves nothing: a page of
    /// evil.example whose name the attacker points at zpubd's address (DNS rebinding) sends
    /// Origin and Host both naming evil.example. Pages served under a name are listed.
    func checkOrigin(_ origin: String?, host: String?) -> Denial? {
        guard let origin, !allowsAnyOrigin else { return nil }
        let normalized = Self.normalize(origin)
        if origins.contains(normalized) { return nil }
        if let host, let authority = Self.authority(of: normalized), authority == host.lowercased(),
            Self.isAddressOrLocalhost(host: host)
        {
            return nil
        }
        return .originNotAllowed(origin)
    }

    /// DNS rebinding: a page of evil.example whose name its owner points at zpubd's address
    /// makes the visitor's browser send requests it takes for same-origin ones, a GET or an
    /// EventSource without Origin, and Host naming evil.example: /stats, /metrics, the status
    /// page and SSE streams then read out to that page. So a request is taken only for a Host
    /// that is an address, localhost, this machine's name or the host of a listed origin:
    /// every request that arrived over loopback (`viaLoopback`: the gateway's default listen,
    /// and the usual rebinding target even when it listens everywhere), where no other Host is
    /// legitimate; otherwise a browser's (one with Origin, or Sec-Fetch-Site, which browsers
    /// send to HTTPS and localhost pages but not to plain HTTP ones: a gateway reachable under
    /// a name, over plain HTTP, is behind TLS or a proxy in any deployment that matters), so
    /// that clients on other machines may name it as they like.
    /// A request whose Origin is listed is the listed page's (a rebound page cannot send it),
    /// whatever name it reached the gateway under.
    func checkHost(_ host: String?, origin: String? = nil, fromBrowser: Bool, viaLoopback: Bool) -> Denial? {
        guard fromBrowser || viaLoopback, !allowsAnyOrigin, let host else { return nil }
        if let origin, origins.contains(Self.normalize(origin)) { return nil }
        let name = host.lowercased()
        if Self.isAddressOrLocalhost(host: name) || originHosts.contains(name) { return nil }
        if !machineName.isEmpty, name == machineName || name.hasPrefix(machineName + ":") { return nil }
        // A listed origin on the scheme's default port is sent as Host with or without it.
        if let colon = name.lastIndex(of: ":"), !name.hasSuffix("]"),
            originHosts.contains(String(name[..<colon]))
        {
            let port = name[name.index(after: colon)...]
            if port == "80" || port == "443" { return nil }
        }
        return .hostNotAllowed(host)
    }

    /// RFC 9112 3.2: a server answers 400 to an HTTP/1.1 request without Host, to any with more
    /// than one, and to one whose Host is no valid `uri-host[:port]`. (HTTP/1.0 may omit it.)
    /// `checkHost` judges the name; without this a request could name none, or two.
    static func hostFieldProblem(_ hosts: [String], http11: Bool) -> String? {
        if hosts.count > 1 {
            return "a request has one Host header, this one had \(hosts.count) (RFC 9112 3.2)"
        }
        guard let host = hosts.first else {
            return http11
                ? "an HTTP/1.1 request needs a Host header (RFC 9112 3.2): the address or name and port you connect to"
                : nil
        }
        return isHostAndPort(host)
            ? nil
            : "Host \"\(host)\" is not a host[:port] (RFC 9112 3.2); send the address or name and port you connect to"
    }

    /// `uri-host [":" port]` (RFC 9110 7.2, RFC 3986 3.2.2): an IPv6 address in brackets, or a
    /// name or IPv4 address of unreserved, percent-encoded and sub-delims characters; then
    /// digits of a port up to 65535.
    static func isHostAndPort(_ value: String) -> Bool {
        var rest = Substring(value)
        if rest.hasPrefix("[") {
            guard let end = rest.firstIndex(of: "]") else { return false }
            var address = in6_addr()
            guard inet_pton(AF_INET6, String(rest[rest.index(after: rest.startIndex)..<end]), &address) == 1 else {
                return false
            }
            rest = rest[rest.index(after: end)...]
        } else {
            let name = rest.prefix { $0 != ":" }
            let isNameByte = { (byte: UInt8) in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"):
                    true
                default: hostPunctuation.contains(byte)
                }
            }
            guard !name.isEmpty, name.utf8.allSatisfy(isNameByte) else { return false }
            rest = rest[name.endIndex...]
        }
        guard let colon = rest.first else { return true }
        let port = rest.dropFirst()
        return colon == ":" && port.count <= 5 && port.allSatisfy(\.isASCII) && port.allSatisfy(\.isNumber)
            && (Int(port) ?? 0) <= 65535
    }

    private static let hostPunctuation = Set("-._~!$&'()*+,;=%".utf8)

    /// This machine's name, as `gethostname` gives it ("" if it cannot).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return String(cString: buffer)
    }

    /// Whether a Host header ("name:port", "[v6]:port") names an IP address or localhost.
    static func isAddressOrLocalhost(host: String) -> Bool {
        var name = Substring(host.lowercased())
        if name.hasPrefix("[") {
            guard let end = name.firstIndex(of: "]") else { return false }
            name = name[name.index(after: name.startIndex)..<end]
            var address = in6_addr()
            return inet_pton(AF_INET6, String(name), &address) == 1
        }
        if let colon = name.lastIndex(of: ":") { name = name[..<colon] }
        if name == "localhost" { return true }
        var address = in_addr()
        return inet_pton(AF_INET, String(name), &address) == 1
    }

    /// The CORS origin to echo for an allowed cross-origin request.
    func corsOrigin(for origin: String?) -> String? {
        guard let origin else { return nil }
        if allowsAnyOrigin { return "*" }
        return origins.contains(Self.normalize(origin)) ? origin : nil
    }

    /// A subscription to `prefix` receives every topic under a protected prefix P when P starts
    /// with `prefix` ("" covers everything), and topics under P when `prefix` starts with P:
    /// either way it needs P's token.
    func checkSubscribe(_ prefix: [UInt8], _ credentials: Credentials) -> Denial? {
        if let user = credentials.user {
            return user.maySubscribe(prefix)
                ? nil : .notInToken(prefix: String(decoding: prefix, as: UTF8.self), subject: user.subject)
        }
        if isAnonymousRefused(credentials) { return .credentialsRequired(presented: credentials.presentedAny) }
        for rule in tokens where PrefixMatcher.overlap(rule.prefix, prefix) {
            if !credentials.tokens.contains(rule.token) {
                return .tokenRequired(
                    prefix: String(decoding: rule.prefix, as: UTF8.self), presented: credentials.presentedAny)
            }
        }
        return nil
    }

    func checkPublish(_ topic: [UInt8], _ credentials: Credentials) -> Denial? {
        if let user = credentials.user {
            return user.mayPublish(topic)
                ? nil : .notInToken(prefix: String(decoding: topic, as: UTF8.self), subject: user.subject)
        }
        if isAnonymousRefused(credentials) { return .credentialsRequired(presented: credentials.presentedAny) }
        guard publishPrefixes.contains(where: { topic.starts(with: $0) }) else {
            return .publishNotAllowed(topic: String(decoding: topic, as: UTF8.self))
        }
        for rule in tokens where topic.starts(with: rule.prefix) && !credentials.tokens.contains(rule.token) {
            return .tokenRequired(
                prefix: String(decoding: rule.prefix, as: UTF8.self), presented: credentials.presentedAny)
        }
        return nil
    }

    /// "host:port" of "scheme://host:port", or nil without "://".
    private static func authority(of origin: String) -> Substring? {
        origin.firstRange(of: "://").map { origin[$0.upperBound...] }
    }

    private static func normalize(_ origin: String) -> String {
        var text = origin.lowercased()
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }
}
